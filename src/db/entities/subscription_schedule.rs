use sea_orm::entity::prelude::*;

/// A Stripe subscription schedule as far as the page needs it: the switch it has planned.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscription_schedules")]
pub struct Model {
    /// `sub_sched_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub subscription_id: Option<String>,
    /// `not_started`, `active`, `completed`, `released` or `canceled`.
    pub status: String,
    /// The price of the phase after the current one, if any.
    pub next_price_id: Option<String>,
    /// When that phase starts (unix seconds).
    pub switch_at: Option<i64>,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
