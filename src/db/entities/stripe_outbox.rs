use sea_orm::entity::prelude::*;

/// A change Billfold owes Stripe, written in the transaction of the change that causes it and
/// sent by the Stripe updates task ([`crate::billing::stripe_outbox`]). One row per target:
/// `key` names it (`customer_email:cus_…`); a newer change bumps `generation` and queues the
/// row again, and the value sent is read when it is sent, so it is always the newest.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key: String,
    /// What to change ([`crate::billing::stripe_outbox::Kind`]).
    pub kind: String,
    /// The Stripe customer it changes (`cus_…`).
    pub customer_id: String,
    /// Bumped by every change queued for the target; an attempt closes the row only if no
    /// newer change came in meanwhile.
    pub generation: i32,
    /// `queued`, `done` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// Unix seconds: not sent before then (the back-off after a temporary failure).
    pub next_attempt_at: i64,
    /// The replica sending it now, and until when its claim holds.
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    /// The last failure: what Stripe (or the network) said.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub done_at: Option<i64>,
    /// When the hour of updates being counted began, and how many were sent in it (a budget
    /// per target, e.g. quantity updates per subscription).
    pub window_started_at: Option<i64>,
    pub window_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
