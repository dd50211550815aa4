use sea_orm::entity::prelude::*;

/// A Stripe invoice as last synced. Amounts are in the currency's smallest unit.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    /// `in_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// Unix seconds (Stripe's `created`).
    pub created: i64,
    pub livemode: bool,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    pub updated_at: i64,
    /// How many times Stripe has tried to collect it.
    pub attempt_count: i32,
    /// When Stripe tries next (unix seconds); `None` when it will not.
    pub next_payment_attempt: Option<i64>,
    /// When it was finalized: its first collection attempt follows at once.
    pub finalized_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
