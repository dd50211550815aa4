use sea_orm::entity::prelude::*;

/// One reconciler cycle: which runner (host and process), when it held the lock, and what
/// it did.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub runner: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub succeeded: bool,
    pub events_processed: i32,
    pub customers_compared: i32,
    pub drift: i32,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
