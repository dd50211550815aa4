use sea_orm::entity::prelude::*;

/// Something about a customer's billing only an operator can put right, shown on
/// `/admin/billing`. One row per cause (`kind`, `object_id`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_alerts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix seconds.
    pub raised_at: i64,
    /// What is wrong: one of the `billing::sync::alert` kinds.
    pub kind: String,
    /// `cus_…` it is about.
    pub customer_id: String,
    /// The object that showed it (`cs_…`, `cus_…`).
    pub object_id: String,
    /// What an operator reads.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
