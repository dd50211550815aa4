use sea_orm::entity::prelude::*;

/// One field the reconciler found different from Stripe, and healed: what the database
/// said and what Stripe says.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drift_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix seconds.
    pub detected_at: i64,
    /// `cus_…` whose objects were compared.
    pub customer_id: String,
    /// `customer`, `subscription`, `payment_method` or `invoice`.
    pub object_type: String,
    pub object_id: String,
    /// A column of the object's table, or `(row)` when the whole row was missing.
    pub field: String,
    /// The event that would have carried the change, had it been delivered.
    pub event_type: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub database_value: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub stripe_value: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
