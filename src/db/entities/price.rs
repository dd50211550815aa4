use sea_orm::entity::prelude::*;

/// A Stripe price with its product's name, as synced from Stripe.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "prices")]
pub struct Model {
    /// `price_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub product_id: String,
    pub product_name: String,
    pub product_active: bool,
    pub nickname: Option<String>,
    /// In the currency's smallest unit.
    pub unit_amount: Option<i64>,
    pub currency: String,
    /// `month` or `year` for recurring prices.
    pub interval: Option<String>,
    pub interval_count: Option<i32>,
    pub trial_period_days: Option<i32>,
    pub active: bool,
    /// How the catalogue (`billing.toml`) names the price; none for a price it does not sell.
    pub lookup_key: Option<String>,
    pub livemode: bool,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    /// Unix seconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
