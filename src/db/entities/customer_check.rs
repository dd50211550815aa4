use sea_orm::entity::prelude::*;

/// When the reconciler last compared a customer with Stripe.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_checks")]
pub struct Model {
    /// `cus_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    /// Unix seconds.
    pub checked_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
