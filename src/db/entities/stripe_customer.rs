use sea_orm::entity::prelude::*;

/// Which Stripe customer an organisation is, per mode (test and live never share one).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_customers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The member who opened the customer (the organisation owns it).
    pub user_id: i64,
    /// The organisation the customer is: one per organisation and mode. Every row has one
    /// (rows from before organisations were moved to their user's personal one).
    pub organization_id: Option<i64>,
    pub livemode: bool,
    /// `cus_…`
    #[sea_orm(unique)]
    pub customer_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The customer was deleted in Stripe; the mapping stays so history still resolves.
    pub deleted: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// `created` of the Stripe event that last wrote this row (ordering watermark).
    pub stripe_event_at: Option<i64>,
    /// The customer's default payment method as its last applied state names it, so a card
    /// that arrives after `customer.updated` still knows whether it is the default.
    pub default_payment_method: Option<String>,
    /// The Checkout session Billfold last opened for this customer (`cs_…`): starting another
    /// expires it, so at most one can be paid.
    pub open_checkout_session: Option<String>,
    /// The customer this one replaced, after Stripe said that one was deleted: its
    /// invoices and history still belong to this user.
    pub previous_customer_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
