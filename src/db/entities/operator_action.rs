use sea_orm::entity::prelude::*;

/// What an operator did on the operators' pages: each page view and each replay, with who.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operator_actions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    /// `view` or `replay`.
    pub action: String,
    /// What was viewed (the page with its filters) or replayed (the event id).
    pub target: Option<String>,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
