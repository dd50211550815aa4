//! A completed Checkout: the link from a Stripe customer to the Billfold user who paid.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use stripe_shared::CheckoutSession;

use super::{subscription::apply_subscription, Applied, Fetched, Source, SyncError};
use crate::db::entities::stripe_customer;

/// Why a completed Checkout Session was not applied: it is not one Billfold created.
pub const UNKNOWN_CUSTOMER: &str =
    "a Checkout Session for a customer Billfold did not create (e.g. a Payment Link)";
/// …or it names another user than the customer's own.
pub const OTHER_USER: &str =
    "a Checkout Session whose client_reference_id is not the user of its customer";

/// Applies `checkout.session.completed` for a session Billfold created: its customer is one
/// Billfold made for a user, and `client_reference_id` names that same user. Then the
/// subscription the session created is applied (re-fetched unless expanded).
///
/// A foreign session (a Payment Link, another app on the account) changes no user's
/// billing: linking its customer to the user its `client_reference_id` names would open a
/// stranger's cards and invoices to that user.
pub async fn apply_checkout_session(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    cs: &CheckoutSession,
    created: i64,
) -> Result<Applied, SyncError> {
    let Some(customer) = cs.customer.as_ref() else {
        return Ok(Applied::Refused(UNKNOWN_CUSTOMER));
    };
    let owner = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer.id().as_str()))
        .filter(stripe_customer::Column::Livemode.eq(cs.livemode))
        .one(conn)
        .await?
        .map(|c| c.user_id);
    let Some(owner) = owner else {
        return Ok(Applied::Refused(UNKNOWN_CUSTOMER));
    };
    let named = cs
        .client_reference_id
        .as_deref()
        .and_then(|r| r.trim().parse::<i64>().ok());
    if named != Some(owner) {
        return Ok(Applied::Refused(OTHER_USER));
    }
    let Some(sub) = cs.subscription.as_ref() else {
        return Ok(Applied::Applied);
    };
    // The session's own copy of the subscription (if expanded) is as old as the session;
    // the API's is the truth. Either is ordered as of the event's time.
    let current;
    let sub = match sub.as_object() {
        Some(s) => s,
        None => match fetched.subscription(sub.id().as_str(), None)? {
            Some(s) => {
                current = s;
                &current
            }
            // Gone from Stripe already: its own deletion event says so.
            None => return Ok(Applied::Applied),
        },
    };
    apply_subscription(conn, fetched, sub, Source::Api(created), false).await?;
    Ok(Applied::Applied)
}
