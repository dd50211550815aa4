//! Alerts for the operators: what Billfold saw of a customer's billing that only a person can
//! put right. Shown on `/admin/billing`; one row per cause, however often it is seen.

use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait,
};

use super::begin_write;
use crate::db::{clock, entities::billing_alert};

/// Stripe's account has no such customer, deleted or not: the key is another account's than
/// the one the customer was made in. Billing is refused for its user until that is fixed.
pub const CUSTOMER_NOT_IN_ACCOUNT: &str = "customer_not_in_account";
/// A completed Checkout gave a customer a second live subscription: two plans, two charges.
pub const SECOND_LIVE_SUBSCRIPTION: &str = "second_live_subscription";

/// An alert about `customer_id`, shown by `object_id` (the object that showed it).
#[derive(Debug, Clone, Copy)]
pub struct Alert<'a> {
    pub kind: &'static str,
    pub customer_id: &'a str,
    pub object_id: &'a str,
    pub detail: &'a str,
}

/// Raises `alert` inside the caller's transaction; raising it again changes nothing.
pub(super) async fn raise_in(conn: &impl ConnectionTrait, alert: Alert<'_>) -> Result<(), DbErr> {
    billing_alert::Entity::insert(billing_alert::ActiveModel {
        raised_at: Set(clock::now()),
        kind: Set(alert.kind.to_owned()),
        customer_id: Set(alert.customer_id.to_owned()),
        object_id: Set(alert.object_id.to_owned()),
        detail: Set(alert.detail.to_owned()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([billing_alert::Column::Kind, billing_alert::Column::ObjectId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Raises `alert` in a transaction of its own.
pub async fn raise_alert(db: &DatabaseConnection, alert: Alert<'_>) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    raise_in(&*txn, alert).await?;
    txn.commit().await
}
