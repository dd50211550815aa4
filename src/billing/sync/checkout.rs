//! A completed Checkout: the link from a Stripe customer to the Billfold user who paid.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use stripe_shared::{CheckoutSession, Subscription};

use super::{
    alert::{raise_in, Alert, SECOND_LIVE_SUBSCRIPTION},
    subscription::apply_subscription,
    Applied, Fetched, Source, SyncError,
};
use crate::{
    billing::model::SubscriptionStatus,
    db::entities::{stripe_customer, subscription},
};

/// Why a completed Checkout Session was not applied: it is not one Billfold created.
pub const UNKNOWN_CUSTOMER: &str =
    "a Checkout Session for a customer Billfold did not create (e.g. a Payment Link)";
/// …or it names another user than the customer's own.
pub const OTHER_USER: &str =
    "a Checkout Session whose client_reference_id is not the user of its customer";

/// What Checkout is told to hand back as `client_reference_id`: the organisation that pays.
pub fn checkout_reference(org_id: i64) -> String {
    format!("org_{org_id}")
}

/// Whether a session's `client_reference_id` names the customer's owner: `org_<id>` for its
/// organisation, or (sessions opened before organisations) the id of the user who opened the
/// customer.
fn names_owner(reference: Option<&str>, owner: &stripe_customer::Model) -> bool {
    let Some(reference) = reference.map(str::trim) else {
        return false;
    };
    match reference.strip_prefix("org_") {
        Some(org) => org
            .parse::<i64>()
            .is_ok_and(|id| Some(id) == owner.organization_id),
        None => reference.parse::<i64>().ok() == Some(owner.user_id),
    }
}

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
        .await?;
    let Some(owner) = owner else {
        return Ok(Applied::Refused(UNKNOWN_CUSTOMER));
    };
    if !names_owner(cs.client_reference_id.as_deref(), &owner) {
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
    flag_second_live_subscription(conn, cs, customer.id().as_str(), sub).await?;
    Ok(Applied::Applied)
}

/// A Checkout that gave its customer a second live subscription (a session left payable
/// beside a plan begun since, say) is put in front of the operators: Stripe charges for both.
async fn flag_second_live_subscription(
    conn: &impl ConnectionTrait,
    cs: &CheckoutSession,
    customer_id: &str,
    sub: &Subscription,
) -> Result<(), DbErr> {
    use subscription::Column as C;
    let live = |status: &str| !SubscriptionStatus::parse(status).is_terminal();
    if !live(sub.status.as_str()) {
        return Ok(());
    }
    let others: Vec<(String, String)> = subscription::Entity::find()
        .select_only()
        .column(C::Id)
        .column(C::Status)
        .filter(C::CustomerId.eq(customer_id))
        .filter(C::Deleted.eq(false))
        .filter(C::Id.ne(sub.id.as_str()))
        .into_tuple()
        .all(conn)
        .await?;
    let others: Vec<String> = others
        .into_iter()
        .filter(|(_, status)| live(status))
        .map(|(id, _)| id)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        customer = %customer_id,
        session = %cs.id,
        subscription = %sub.id,
        live = ?others,
        "a completed Checkout gave a customer a second live subscription"
    );
    let detail = format!(
        "Checkout {} made {}, a second live subscription beside {}: the customer is charged \
         for both. Cancel (and refund) the one they did not mean to keep, in Stripe.",
        cs.id,
        sub.id,
        others.join(", ")
    );
    raise_in(
        conn,
        Alert {
            kind: SECOND_LIVE_SUBSCRIPTION,
            customer_id,
            object_id: cs.id.as_str(),
            detail: &detail,
        },
    )
    .await
}
