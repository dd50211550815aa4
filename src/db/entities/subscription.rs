use sea_orm::entity::prelude::*;

/// A Stripe subscription as last synced. Times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    /// `sub_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `cus_…`
    pub customer_id: String,
    /// Stripe's status: `active`, `trialing`, `past_due`, `canceled`, …
    pub status: String,
    pub price_id: Option<String>,
    /// The product's name.
    pub plan_name: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    /// From the subscription item (Stripe moved the period there in API 2025-03-31).
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub latest_invoice_id: Option<String>,
    pub livemode: bool,
    /// Tombstone: a deleted subscription is never brought back by a late update.
    pub deleted: bool,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: i64,
    pub updated_at: i64,
    /// `prod_…` of the price: a product's rename reaches `plan_name` through it.
    pub product_id: Option<String>,
    /// The first item's quantity (seats, for a plan priced per seat); `None` before Stripe's
    /// copy said it.
    pub quantity: Option<i64>,
    /// The first item's id (`si_…`), as the last accepted event had it. The seat update reads
    /// the item from Stripe itself (the copy here can lag behind an update just sent).
    pub item_id: Option<String>,
    /// When Stripe's quantity last went down (the event's time): how long members beyond the
    /// paid seats keep access is counted from it ([`crate::billing::seats::holds_seat`]).
    pub quantity_lowered_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
