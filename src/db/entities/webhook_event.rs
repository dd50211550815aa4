use sea_orm::entity::prelude::*;

/// Every Stripe event received, with what became of it. The primary key is Stripe's
/// event id, which is what makes delivery exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// `evt_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub event_type: String,
    pub livemode: bool,
    /// Stripe's `created` (unix seconds).
    pub created: i64,
    pub api_version: Option<String>,
    /// Unix seconds.
    pub received_at: i64,
    pub processed_at: Option<i64>,
    /// `applied`, `duplicate`, `stale`, `ignored`, `failed`, `mode_mismatch` or `processing`.
    pub outcome: String,
    pub error: Option<String>,
    pub attempts: i32,
    /// The raw body as delivered, for replays.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
