use sea_orm::entity::prelude::*;

/// A Checkout session Billfold replaced with a newer one and has still to expire at Stripe,
/// so that only the newest one can be paid. Written in the transaction that replaces it;
/// removed once Stripe has expired it (or it was paid, or Stripe no longer has it).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "checkout_expiries")]
pub struct Model {
    /// `cs_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    /// `cus_…` the session was for.
    pub customer_id: String,
    /// Attempts to expire it that failed.
    pub attempts: i32,
    /// What Stripe (or the network) said the last time it failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
