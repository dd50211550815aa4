use sea_orm::entity::prelude::*;

/// A Stripe product, ordered on its own watermark. Its name and active flag are copied onto
/// its prices (`prices.product_name`, `product_active`) and its subscriptions' plan names
/// whenever this row takes a newer state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    /// `prod_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub active: bool,
    /// Deleted in Stripe: final unless something newer says otherwise.
    pub deleted: bool,
    pub livemode: bool,
    /// `created` of the Stripe event (or the time of the API read) that last wrote this row.
    pub stripe_event_at: Option<i64>,
    /// Unix seconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
