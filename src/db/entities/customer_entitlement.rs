use sea_orm::entity::prelude::*;

/// What Stripe's Entitlements say a customer has: the lookup keys of its active features.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_entitlements")]
pub struct Model {
    /// `cus_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// The features' lookup keys, sorted, one per line.
    pub lookup_keys: String,
    pub livemode: bool,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    pub updated_at: i64,
}

impl Model {
    /// The lookup keys, one by one.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.lookup_keys.lines().filter(|k| !k.is_empty())
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
