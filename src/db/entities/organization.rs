use sea_orm::entity::prelude::*;

/// An organisation: who pays (its Stripe customer, one per mode) and who belongs (its
/// memberships). Every account has a personal one (`personal_of`); a user can make team ones.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// The user whose personal organisation this is; `None` for a team.
    #[sea_orm(unique)]
    pub personal_of: Option<i64>,
    /// Where receipts, invoices and billing mail go; `None`: the owner's address (a personal
    /// organisation's, which follows its user's changes).
    pub billing_email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::membership::Entity")]
    Membership,
}

impl Related<super::membership::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Membership.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
