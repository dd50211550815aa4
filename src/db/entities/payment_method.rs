use sea_orm::entity::prelude::*;

/// A customer's saved payment method (cards show brand, last 4 and expiry).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_methods")]
pub struct Model {
    /// `pm_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `None` once detached from its customer.
    pub customer_id: Option<String>,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    /// The customer's default for invoices.
    pub is_default: bool,
    pub livemode: bool,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    /// Unix seconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
