use sea_orm::entity::prelude::*;

/// The reconciler's named numbers (its events cursor, its last successful cycle, where an
/// events listing left off), shared by every replica.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub value: i64,
    /// What a number cannot hold (where a listing left off, as JSON), if anything.
    pub text_value: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
