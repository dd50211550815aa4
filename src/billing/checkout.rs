//! Stripe Checkout: starting a session for a plan (at most one payable per customer), and
//! expiring the sessions it replaces.

use ::stripe::StripeError;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    ExpireCheckoutSession, RetrieveCheckoutSession,
};

use super::{
    customer::{ensure_customer, on_the_customer},
    entitlement,
    limits::limit_sessions,
    plans::{find_for_sale, may_have_trial},
};
use crate::{
    db::{clock, entities::subscription},
    error::AppError,
    state::AppState,
    web::CurrentUser,
};

/// Starts Stripe Checkout for a plan and returns the Checkout URL.
///
/// At most one Checkout session per customer can be paid: each new session is recorded as
/// the customer's open one, and the one it replaces is expired at Stripe (remembered in the
/// same write, so that if Stripe refuses now the reconciler expires it later). Two tabs (or
/// two clicks) racing each get a session, but only the one recorded last stays payable; and
/// every session expires an hour after it is made.
pub async fn start_checkout(
    state: &AppState,
    user: &CurrentUser,
    price_id: &str,
) -> Result<String, AppError> {
    super::roles::require_billing_manager(state, user).await?;
    let plan = find_for_sale(state, price_id).await?;
    refuse_if_plan_is_live(state, user).await?;
    limit_sessions(state, user).await?;
    let customer_id = ensure_customer(state, user).await?;
    // One trial per billing customer (the catalogue's rule), whatever the price says.
    let trial_days = match plan.trial_days {
        Some(days) => {
            let subscriptions = subscription::Entity::find()
                .filter(subscription::Column::CustomerId.eq(customer_id.as_str()))
                .all(&state.db)
                .await?;
            may_have_trial(state, Some((&customer_id, &subscriptions)))
                .await?
                .then_some(days)
        }
        None => None,
    };
    // A plan priced per seat starts with the organisation's seat count.
    let quantity = match state
        .config
        .catalog
        .plans
        .iter()
        .find(|p| p.key == plan.plan_key)
    {
        Some(catalog_plan) => {
            super::seats::checkout_quantity(
                &state.db,
                catalog_plan,
                user.org.id,
                &state.config.catalog.seat_policy,
            )
            .await?
        }
        None => 1,
    };
    let (customer_id, session) = on_the_customer(state, user, customer_id, "checkout", |c| {
        let request = checkout_request(state, user, &plan.price.id, quantity, trial_days, &c);
        async move {
            let session = request.send(&state.stripe).await;
            crate::metrics::stripe_request("checkout.sessions.create", &session);
            Ok(session.map(|s| (c, s)))
        }
    })
    .await?;
    let url = session
        .url
        .ok_or_else(|| AppError::internal("Checkout session without a URL"))?;
    crate::metrics::billing_session("checkout");
    let replaced =
        crate::billing::sync::record_open_checkout(&state.db, &customer_id, session.id.as_str())
            .await?;
    if let Some(previous) = replaced {
        if expire_or_remember(state, &customer_id, &previous).await? == Some(CheckoutEnd::Completed)
        {
            // The replaced session was paid meanwhile (another tab): it may have made a
            // subscription, and then this session must not make a second.
            crate::billing::sync::sync_customer(&state.db, &state.stripe, &customer_id)
                .await
                .map_err(|e| AppError::internal(format!("re-sync before Checkout: {e}")))?;
            if let Err(refused) = refuse_if_plan_is_live(state, user).await {
                expire_or_remember(state, &customer_id, session.id.as_str()).await?;
                return Err(refused);
            }
        }
    }
    Ok(url)
}

/// A user with a live plan switches plans in the portal, never through a second Checkout.
async fn refuse_if_plan_is_live(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    if entitlement::load(state, user).await?.may_start_plan {
        return Ok(());
    }
    Err(AppError::Conflict(
        "You already have a plan. To switch plans, use Change plan: Stripe shows what you \
         pay for the switch, and you are never charged for two plans."
            .into(),
    ))
}

/// How long a Checkout session can be paid. Stripe's default is a day and its minimum half an
/// hour: an hour is time enough to pay, and a session someone left open is not paid long after
/// beside a plan begun since.
const CHECKOUT_LIFETIME_SECS: i64 = 3_600;

fn checkout_request(
    state: &AppState,
    user: &CurrentUser,
    price_id: &str,
    quantity: u64,
    trial_days: Option<u32>,
    customer_id: &str,
) -> CreateCheckoutSession {
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(price_id.to_owned());
    item.quantity = Some(quantity);
    let mut request = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(customer_id.to_owned())
        .client_reference_id(crate::billing::sync::checkout_reference(user.org.id))
        .line_items(vec![item])
        .success_url(state.config.url_for("/settings/billing?from=checkout"))
        .cancel_url(state.config.url_for("/settings/billing"))
        .expires_at(clock::now() + CHECKOUT_LIFETIME_SECS);
    if let Some(days) = trial_days {
        let mut data = CreateCheckoutSessionSubscriptionData::new();
        data.trial_period_days = Some(days);
        request = request.subscription_data(data);
    }
    request
}

/// How a Checkout session Billfold asked Stripe to expire ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutEnd {
    /// Expired, now or before, or Stripe no longer has it: it can never be paid.
    Expired,
    /// It was paid first.
    Completed,
}

/// Expires a Checkout session at Stripe. The error is Stripe's refusal, when the session is
/// still open (or Stripe could not say what it is).
pub async fn expire_checkout_session(
    stripe: &::stripe::Client,
    session_id: &str,
) -> Result<CheckoutEnd, StripeError> {
    let id = || stripe_checkout::CheckoutSessionId::from(session_id.to_owned());
    let expired = ExpireCheckoutSession::new(id()).send(stripe).await;
    crate::metrics::stripe_request("checkout.sessions.expire", &expired);
    let Err(refused) = expired else {
        return Ok(CheckoutEnd::Expired);
    };
    match RetrieveCheckoutSession::new(id()).send(stripe).await {
        Ok(session) => match session.status {
            Some(stripe_checkout::CheckoutSessionStatus::Complete) => Ok(CheckoutEnd::Completed),
            Some(stripe_checkout::CheckoutSessionStatus::Expired) => Ok(CheckoutEnd::Expired),
            _ => Err(refused),
        },
        Err(StripeError::Stripe(e, 404))
            if e.code
                .as_ref()
                .is_some_and(|c| c.as_str() == "resource_missing") =>
        {
            Ok(CheckoutEnd::Expired)
        }
        Err(_) => Err(refused),
    }
}

/// Expires a session Billfold no longer wants paid. `None` if Stripe would not now: then it
/// stays remembered (`checkout_expiries`) and the reconciler's next cycle tries again.
async fn expire_or_remember(
    state: &AppState,
    customer_id: &str,
    session_id: &str,
) -> Result<Option<CheckoutEnd>, AppError> {
    match expire_checkout_session(&state.stripe, session_id).await {
        Ok(end) => {
            crate::billing::sync::checkout_expiry_done(&state.db, session_id).await?;
            Ok(Some(end))
        }
        Err(e) => {
            tracing::warn!(
                session = %session_id,
                customer = %customer_id,
                error = %e,
                "Stripe would not expire a replaced Checkout session now; the reconciler will"
            );
            crate::billing::sync::checkout_expiry_failed(
                &state.db,
                session_id,
                customer_id,
                &e.to_string(),
            )
            .await?;
            Ok(None)
        }
    }
}
