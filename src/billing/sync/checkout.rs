//! A completed Checkout: the link from a Stripe customer to the Billfold user who paid.

use sea_orm::{
    sea_query::OnConflict,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use stripe_shared::CheckoutSession;

use super::{
    subscription::{apply_subscription, fetch_subscription},
    Applied, Source, SyncError,
};
use crate::db::{
    clock::now,
    entities::{stripe_customer, user},
};

/// Applies `checkout.session.completed`: links the customer to the user named by
/// `client_reference_id` (a user id) when Billfold does not know the customer yet, then
/// applies the subscription the session created (re-fetched unless expanded).
pub async fn apply_checkout_session(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    cs: &CheckoutSession,
    created: i64,
) -> Result<Applied, SyncError> {
    let Some(customer) = cs.customer.as_ref() else {
        return Ok(Applied::Ignored);
    };
    let customer_id = customer.id().as_str();
    let known = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .one(conn)
        .await?
        .is_some();
    let user_id = cs
        .client_reference_id
        .as_deref()
        .and_then(|r| r.trim().parse::<i64>().ok());
    if let (false, Some(user_id)) = (known, user_id) {
        if user::Entity::find_by_id(user_id).one(conn).await?.is_some() {
            let email = cs
                .customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .or_else(|| cs.customer_email.clone());
            // A user who already has a customer in this mode keeps it; the unique
            // (user_id, livemode) key turns this insert into nothing.
            stripe_customer::Entity::insert(stripe_customer::ActiveModel {
                id: NotSet,
                user_id: Set(user_id),
                livemode: Set(cs.livemode),
                customer_id: Set(customer_id.to_owned()),
                email: Set(email),
                name: Set(None),
                deleted: Set(false),
                created_at: Set(now()),
                stripe_event_at: Set(None),
            })
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
        }
    }
    let Some(sub) = cs.subscription.as_ref() else {
        return Ok(Applied::Applied);
    };
    // The session's own copy of the subscription (if expanded) is as old as the session;
    // the API's is the truth. Either is ordered as of the event's time.
    let fetched;
    let sub = match sub.as_object() {
        Some(s) => s,
        None => {
            fetched = fetch_subscription(stripe, sub.id().as_str()).await?;
            &fetched
        }
    };
    apply_subscription(conn, stripe, sub, Source::Api(created), false).await?;
    Ok(Applied::Applied)
}
