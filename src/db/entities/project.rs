use sea_orm::entity::prelude::*;

/// One of the demo app's projects: what the catalogue's `projects` limit caps.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Who made it.
    pub user_id: i64,
    /// The organisation it belongs to (what its plan's limit counts).
    pub organization_id: Option<i64>,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
