//! Server side of the billing page: the queries behind it, the user's Stripe customer, and
//! the Checkout and Customer Portal sessions it opens.

use std::{collections::HashMap, time::Duration};

use ::stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
};
use stripe_billing::billing_portal_session::{
    CreateBillingPortalSession, CreateBillingPortalSessionFlowData,
    CreateBillingPortalSessionFlowDataAfterCompletion,
    CreateBillingPortalSessionFlowDataAfterCompletionRedirect,
    CreateBillingPortalSessionFlowDataAfterCompletionType,
    CreateBillingPortalSessionFlowDataSubscriptionCancel,
    CreateBillingPortalSessionFlowDataSubscriptionUpdate,
    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm,
    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems,
    CreateBillingPortalSessionFlowDataType,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    ExpireCheckoutSession, RetrieveCheckoutSession,
};

use super::{
    access,
    model::{Subscription, SubscriptionStatus},
    summary::{BillingSummary, CardView, InvoiceView, PlanView, SubscriptionView},
    PortalFlow,
};
use crate::{
    db::{
        clock,
        entities::{invoice, payment_method, price, stripe_customer, subscription},
    },
    error::AppError,
    state::AppState,
    web::{limit::Rule, CurrentUser},
};

/// How many invoices the page lists.
const INVOICES_SHOWN: u64 = 6;

fn unavailable() -> AppError {
    AppError::Unavailable(
        "Billing is temporarily unavailable. Please try again in a minute.".into(),
    )
}

/// Logs a failed Stripe call with what Stripe said about it and turns it into a user error
/// that says what the user can do: wait a minute (Stripe is down, unreachable or rate
/// limiting), or ask for help (Stripe refused what `action` asked, which a retry will not
/// change; the log has Stripe's request).
pub fn stripe_failure(action: &str, err: StripeError) -> AppError {
    match &err {
        StripeError::Stripe(e, status) => {
            tracing::error!(
                action,
                status,
                error_type = e.type_.as_str(),
                code = e.code.as_ref().map(|c| c.as_str()),
                message = e.message.as_deref(),
                param = e.param.as_deref(),
                request_log_url = e.request_log_url.as_deref(),
                "Stripe refused the request"
            );
            let about_configuration = e.param.as_deref() == Some("configuration")
                || e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("configuration"));
            if action == "portal" && about_configuration {
                return AppError::Unavailable(
                    "The billing portal is not set up yet: create a Customer Portal configuration \
                     in Stripe or set STRIPE_PORTAL_CONFIGURATION_ID."
                        .into(),
                );
            }
            match *status {
                429 => AppError::RateLimited {
                    message: "Stripe is receiving too many requests right now. Please try again \
                              in a minute."
                        .into(),
                    retry_after_secs: 60,
                },
                400..=499 => AppError::Upstream(format!(
                    "Stripe refused to {}. This will not fix itself: please contact support.",
                    describe_action(action)
                )),
                _ => unavailable(),
            }
        }
        other => {
            tracing::error!(action, error = %other, "Stripe could not be reached");
            unavailable()
        }
    }
}

/// What the user was doing, in their words.
fn describe_action(action: &str) -> &'static str {
    match action {
        "portal" => "open the billing portal",
        "checkout" => "start Checkout",
        "create_customer" => "open your billing account",
        _ => "do what was asked",
    }
}

/// How long to wait before retrying a failed idempotent request (the `retry`th retry, from 0)
/// with the same key, if at all. Stripe still working on a request with that key (409) or
/// rate limiting (429) is waited out with back-off, within a request's budget; Stripe
/// unreachable or failing gets one quick retry (sign-up goes on without a customer then).
fn retry_wait(err: &StripeError, retry: usize) -> Option<std::time::Duration> {
    const BACK_OFF_MS: [u64; 3] = [250, 750, 2_000];
    let waits: &[u64] = match err {
        StripeError::Stripe(_, 409 | 429) => &BACK_OFF_MS,
        StripeError::Stripe(_, status) if *status >= 500 => &BACK_OFF_MS[..1],
        StripeError::ClientError(_) | StripeError::Timeout => &BACK_OFF_MS[..1],
        _ => &[],
    };
    waits
        .get(retry)
        .map(|ms| std::time::Duration::from_millis(*ms))
}

/// Sends a request with an idempotency key, retrying as [`retry_wait`] says.
async fn send_idempotent<R>(
    state: &AppState,
    request: &R,
    key: &str,
) -> Result<R::Output, StripeError>
where
    R: StripeRequest,
    R::Output: miniserde::Deserialize + Send,
{
    let key = IdempotencyKey::new(key)
        .map_err(|e| StripeError::ClientError(format!("idempotency key: {e:?}")))?;
    let mut retry = 0;
    loop {
        let result = request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key.clone()))
            .send(&state.stripe)
            .await;
        match result {
            Err(e) => match retry_wait(&e, retry) {
                Some(wait) => {
                    tracing::warn!(error = %e, ?wait, "Stripe request failed; retrying with the same key");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}

fn livemode(state: &AppState) -> bool {
    state.config.stripe.mode.livemode()
}

/// The user's Stripe customer in this mode, unless Stripe deleted it.
fn live_customer(state: &AppState, user_id: i64) -> sea_orm::Select<stripe_customer::Entity> {
    stripe_customer::Entity::find()
        .filter(stripe_customer::Column::UserId.eq(user_id))
        .filter(stripe_customer::Column::Livemode.eq(livemode(state)))
        .filter(stripe_customer::Column::Deleted.eq(false))
}

/// The user's customer id in the current mode, if they have one.
pub async fn find_customer(state: &AppState, user_id: i64) -> Result<Option<String>, AppError> {
    Ok(live_customer(state, user_id)
        .one(&state.db)
        .await?
        .map(|c| c.customer_id))
}

/// The user's live Stripe customer in this mode and its subscriptions, in one statement.
async fn customer_and_subscriptions(
    state: &AppState,
    user_id: i64,
) -> Result<Option<(String, Vec<subscription::Model>)>, AppError> {
    let to_subscriptions = stripe_customer::Entity::belongs_to(subscription::Entity)
        .from(stripe_customer::Column::CustomerId)
        .to(subscription::Column::CustomerId)
        .into();
    let rows = live_customer(state, user_id)
        .select_also(subscription::Entity)
        .join(JoinType::LeftJoin, to_subscriptions)
        .all(&state.db)
        .await?;
    let Some(customer_id) = rows.first().map(|(c, _)| c.customer_id.clone()) else {
        return Ok(None);
    };
    let subscriptions = rows
        .into_iter()
        .filter(|(c, _)| c.customer_id == customer_id)
        .filter_map(|(_, s)| s)
        .collect();
    Ok(Some((customer_id, subscriptions)))
}

/// The user's Stripe customer, created on first need. One per user per mode, whatever the
/// concurrency: Stripe replays the same idempotency key's customer, and the database keeps
/// one row per (user, mode).
pub async fn ensure_customer(state: &AppState, user: &CurrentUser) -> Result<String, AppError> {
    let existing = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::UserId.eq(user.id))
        .filter(stripe_customer::Column::Livemode.eq(livemode(state)))
        .one(&state.db)
        .await?;
    // A customer deleted in Stripe is replaced: the new one gets a key of its own.
    let replaces = match existing {
        Some(row) if !row.deleted => return Ok(row.customer_id),
        Some(row) => Some(row.customer_id),
        None => None,
    };
    // Tied to this installation: another database on the same Stripe account has users with
    // the same ids, and must never be handed this one's customer.
    let mode = if livemode(state) { "live" } else { "test" };
    let base = format!(
        "billfold-{}-customer-{mode}-{}",
        state.installation_id, user.id
    );
    let key = match &replaces {
        None => base,
        Some(old) => format!("{base}-after-{old}"),
    };
    let request = stripe_core::customer::CreateCustomer::new()
        .email(user.email.clone())
        .metadata(HashMap::from([("user_id".to_owned(), user.id.to_string())]));
    let created = send_idempotent(state, &request, &key).await;
    crate::metrics::stripe_request("customers.create", &created);
    let customer = created
        .map_err(|e| stripe_failure("create_customer", e))?
        .id
        .to_string();

    match replaces {
        None => {
            let row = stripe_customer::ActiveModel {
                user_id: Set(user.id),
                livemode: Set(livemode(state)),
                customer_id: Set(customer),
                email: Set(Some(user.email.clone())),
                deleted: Set(false),
                created_at: Set(clock::now()),
                ..Default::default()
            };
            stripe_customer::Entity::insert(row)
                .on_conflict_do_nothing_on([
                    stripe_customer::Column::UserId,
                    stripe_customer::Column::Livemode,
                ])
                .exec(&state.db)
                .await?;
        }
        Some(old) => {
            crate::billing::sync::replace_customer(&state.db, user.id, &old, &customer).await?;
        }
    }
    find_customer(state, user.id)
        .await?
        .ok_or_else(|| AppError::internal("customer row missing right after insert"))
}

/// Sign-up creates the customer, but never fails or hangs because Stripe is slow or down:
/// the first billing action creates it then (same idempotency key, so still one customer).
pub async fn create_customer_at_sign_up(state: &AppState, user: &CurrentUser) {
    // Within the budget of user-triggered Stripe calls; else made when first needed.
    if let Err(refused) = state.limits.check(&[USER_STRIPE_CALLS.on("all")]).await {
        tracing::info!(
            user_id = user.id,
            ?refused,
            "customer deferred: Stripe budget spent"
        );
        return;
    }
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        ensure_customer(state, user),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(user_id = user.id, error = %e, "no Stripe customer at sign-up")
        }
        Err(_) => tracing::warn!(
            user_id = user.id,
            "Stripe too slow at sign-up; customer deferred"
        ),
    }
}

fn subscription_view(s: subscription::Model) -> SubscriptionView {
    SubscriptionView {
        subscription: Subscription {
            status: SubscriptionStatus::parse(&s.status),
            id: s.id,
            current_period_start: s.current_period_start,
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: s.cancel_at,
            canceled_at: s.canceled_at,
            ended_at: s.ended_at,
            trial_end: s.trial_end,
        },
        plan_name: s.plan_name,
        price_id: s.price_id,
        unit_amount: s.unit_amount,
        currency: s.currency,
        interval: s.interval,
        switches_to: None,
    }
}

/// Fills in the switches Stripe has scheduled for these subscriptions (one statement, plus
/// one per price the picker does not know).
async fn scheduled_switches(
    state: &AppState,
    subscriptions: &mut [SubscriptionView],
) -> Result<(), AppError> {
    use crate::db::entities::subscription_schedule as schedule;
    if subscriptions.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = subscriptions
        .iter()
        .map(|s| s.subscription.id.clone())
        .collect();
    let planned = schedule::Entity::find()
        .filter(schedule::Column::SubscriptionId.is_in(ids))
        .filter(schedule::Column::Status.is_in(["not_started", "active"]))
        .filter(schedule::Column::SwitchAt.gt(clock::now()))
        .all(&state.db)
        .await?;
    for row in planned {
        let (Some(sub_id), Some(price_id), Some(at)) =
            (row.subscription_id, row.next_price_id, row.switch_at)
        else {
            continue;
        };
        let Some(view) = subscriptions
            .iter_mut()
            .find(|s| s.subscription.id == sub_id)
        else {
            continue;
        };
        if view.price_id.as_deref() == Some(price_id.as_str()) {
            continue;
        }
        let name = price::Entity::find_by_id(price_id.clone())
            .one(&state.db)
            .await?
            .map(|p| p.product_name)
            .unwrap_or(price_id);
        view.switches_to = Some((name, at));
    }
    Ok(())
}

/// The prices the plan picker offers: active recurring prices of active products, in this
/// mode. The portal's plan switching (`billfold portal apply`, `billfold doctor`) must
/// allow exactly these.
pub fn picker_prices(livemode: bool) -> sea_orm::Select<price::Entity> {
    price::Entity::find()
        .filter(price::Column::Active.eq(true))
        .filter(price::Column::ProductActive.eq(true))
        .filter(price::Column::Livemode.eq(livemode))
        .filter(price::Column::Interval.is_not_null())
        .order_by_asc(price::Column::Interval)
        .order_by_asc(price::Column::UnitAmount)
}

/// Reads everything the page shows, in five queries and no Stripe call.
pub async fn load_summary(
    state: &AppState,
    user: &CurrentUser,
) -> Result<BillingSummary, AppError> {
    let customer = customer_and_subscriptions(state, user.id).await?;
    let plans = state
        .plans
        .get_or_load(|| picker_prices(livemode(state)).all(&state.db))
        .await?
        .iter()
        .map(|p| PlanView {
            price_id: p.id.clone(),
            product_name: p.product_name.clone(),
            unit_amount: p.unit_amount,
            currency: p.currency.clone(),
            interval: p.interval.clone(),
            trial_period_days: p.trial_period_days,
        })
        .collect();

    let Some((customer_id, subscriptions)) = customer else {
        return Ok(BillingSummary {
            email: user.email.clone(),
            has_customer: false,
            subscriptions: vec![],
            card: None,
            invoices: vec![],
            plans,
            now: clock::now(),
            past_due: state.config.past_due,
        });
    };

    // The card on file: the customer's default; else the one a live subscription pays with;
    // else the newest.
    let paying: Vec<String> = subscriptions
        .iter()
        .filter(|s| !s.deleted)
        .filter_map(|s| s.default_payment_method.clone())
        .collect();
    let mut subscriptions = subscriptions
        .into_iter()
        .map(subscription_view)
        .collect::<Vec<_>>();
    scheduled_switches(state, &mut subscriptions).await?;
    let card = payment_method::Entity::find()
        .filter(payment_method::Column::CustomerId.eq(customer_id.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .max_by_key(|pm| (pm.is_default, paying.contains(&pm.id), pm.updated_at))
        .and_then(|pm| {
            Some(CardView {
                brand: pm.brand.unwrap_or_else(|| "card".into()),
                last4: pm.last4?,
                exp_month: pm.exp_month,
                exp_year: pm.exp_year,
            })
        });

    let invoices = invoice::Entity::find()
        .filter(invoice::Column::CustomerId.eq(customer_id))
        // Drafts are not bills yet, and deleted ones never will be.
        .filter(invoice::Column::Status.is_not_in(["draft", super::sync::INVOICE_DELETED]))
        .order_by_desc(invoice::Column::Created)
        .limit(INVOICES_SHOWN)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|i| InvoiceView {
            id: i.id,
            created: i.created,
            amount_due: i.amount_due,
            amount_paid: i.amount_paid,
            currency: i.currency,
            status: i.status,
            hosted_invoice_url: i.hosted_invoice_url,
            attempt_count: i.attempt_count,
            next_payment_attempt: i.next_payment_attempt,
            finalized_at: i.finalized_at,
        })
        .collect();

    Ok(BillingSummary {
        email: user.email.clone(),
        has_customer: true,
        subscriptions,
        card,
        invoices,
        plans,
        now: clock::now(),
        past_due: state.config.past_due,
    })
}

/// After Checkout or the Portal, pulls the customer's state from Stripe before rendering, so
/// the page is right even before the webhooks land. At most once every few seconds per user.
pub async fn resync_on_return(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    let Some(customer_id) = find_customer(state, user.id).await? else {
        return Ok(());
    };
    // De-duplicated across replicas, and within the budget every user shares: when either is
    // spent, the page shows what the database holds and the webhooks catch up.
    let charges = [
        RESYNCS_PER_CUSTOMER.on(customer_id.as_str()),
        USER_STRIPE_CALLS.on("all"),
    ];
    if let Err(refused) = state.limits.check(&charges).await {
        tracing::debug!(customer = %customer_id, ?refused, "re-sync on return skipped");
        return Ok(());
    }
    if let Err(e) =
        crate::billing::sync::sync_customer(&state.db, &state.stripe, &customer_id).await
    {
        // The page still renders what the database holds; webhooks will catch up.
        tracing::warn!(error = %e, customer = %customer_id, "re-sync on return failed");
    }
    Ok(())
}

/// The subscription a deep link acts on: the user's own primary one, looked up here.
async fn primary_subscription_id(
    state: &AppState,
    customer_id: &str,
) -> Result<Option<String>, AppError> {
    let subs: Vec<SubscriptionView> = subscription::Entity::find()
        .filter(subscription::Column::CustomerId.eq(customer_id))
        .filter(subscription::Column::Deleted.eq(false))
        .all(&state.db)
        .await?
        .into_iter()
        .map(subscription_view)
        .filter(|s| !s.subscription.status.is_terminal())
        .collect();
    Ok(access::primary(&subs).map(|s| s.subscription.id.clone()))
}

/// Portal and Checkout sessions per user.
pub static SESSIONS_PER_USER: Rule = Rule::new("sessions", 10, Duration::from_secs(60));
/// The Stripe API calls users can cause (sessions, re-syncs), all users together: what is
/// left of the account's Stripe rate limit stays for webhooks' re-fetches and the reconciler.
pub static USER_STRIPE_CALLS: Rule = Rule::new("stripe-user-calls", 50, Duration::from_secs(10));
/// Re-syncs of one customer on return from Checkout or the Portal: three in a row (a
/// Checkout and a portal return close together are both right), then one every ~3 s, on
/// whichever replica.
pub static RESYNCS_PER_CUSTOMER: Rule = Rule::new("resync", 3, Duration::from_secs(10));

/// Portal and Checkout sessions: within the user's own limit and the shared Stripe budget.
async fn limit_sessions(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    state
        .limits
        .enforce(
            &[
                SESSIONS_PER_USER.on(user.id.to_string()),
                USER_STRIPE_CALLS.on("all"),
            ],
            "Too many attempts to open billing.",
        )
        .await
}

/// Creates a Customer Portal session (optionally deep-linked into one flow) and returns its URL.
pub async fn open_portal(
    state: &AppState,
    user: &CurrentUser,
    flow: Option<PortalFlow>,
    price_id: Option<&str>,
) -> Result<String, AppError> {
    // A switch is to one of the prices the picker shows, checked before anything else.
    let switch_to = match (flow, price_id) {
        (Some(PortalFlow::SubscriptionUpdateConfirm), Some(price)) => {
            let offered = picker_prices(livemode(state))
                .filter(price::Column::Id.eq(price))
                .one(&state.db)
                .await?;
            Some(
                offered
                    .ok_or_else(|| AppError::invalid("price_id", "That plan is not available."))?
                    .id,
            )
        }
        (Some(PortalFlow::SubscriptionUpdateConfirm), None) => {
            return Err(AppError::invalid(
                "price_id",
                "Choose the plan to switch to.",
            ))
        }
        (_, Some(_)) => {
            return Err(AppError::invalid(
                "price_id",
                "A plan is only chosen with flow=subscription_update_confirm.",
            ))
        }
        (_, None) => None,
    };
    limit_sessions(state, user).await?;
    let Some(customer_id) = find_customer(state, user.id).await? else {
        return Err(AppError::NotFound(
            "No billing account yet. Choose a plan to create one.".into(),
        ));
    };
    let session = on_the_customer(state, user, customer_id, "portal", |customer| {
        portal_session(state, customer, flow, switch_to.clone())
    })
    .await?;
    crate::metrics::billing_session("portal");
    Ok(session.url)
}

/// Asks Stripe for a portal session for `customer_id`. The outer error is Billfold's own
/// (no subscription to deep-link into), the inner one Stripe's answer.
async fn portal_session(
    state: &AppState,
    customer_id: String,
    flow: Option<PortalFlow>,
    switch_to: Option<String>,
) -> Result<Result<stripe_billing::BillingPortalSession, StripeError>, AppError> {
    let return_url = state.config.url_for("/settings/billing?from=portal");
    let mut request = CreateBillingPortalSession::new()
        .customer(customer_id.clone())
        .return_url(return_url.clone());
    if let Some(configuration) = &state.config.stripe.portal_configuration_id {
        request = request.configuration(configuration.clone());
    }
    if let Some(flow) = flow {
        let subscription = match flow {
            PortalFlow::PaymentMethodUpdate => None,
            PortalFlow::SubscriptionCancel
            | PortalFlow::SubscriptionUpdate
            | PortalFlow::SubscriptionUpdateConfirm => Some(
                primary_subscription_id(state, &customer_id)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound("You have no subscription to change yet.".into())
                    })?,
            ),
        };
        // The item to switch is the subscription's own, as Stripe has it (the server's
        // lookup, never the request's).
        let item = match (&subscription, switch_to) {
            (Some(sub), Some(price)) => {
                let read = stripe_billing::subscription::RetrieveSubscription::new(sub.as_str())
                    .send(&state.stripe)
                    .await;
                crate::metrics::stripe_request("subscriptions.retrieve", &read);
                let sub = match read {
                    Ok(sub) => sub,
                    Err(e) => return Ok(Err(e)),
                };
                let item = sub.items.data.first().ok_or_else(|| {
                    AppError::Conflict("Your subscription has no plan to switch.".into())
                })?;
                if item.price.id.as_str() == price {
                    return Err(AppError::invalid(
                        "price_id",
                        "You are on that plan already.",
                    ));
                }
                Some((item.id.to_string(), price))
            }
            _ => None,
        };
        request = request.flow_data(flow_data(flow, subscription, item, &return_url));
    }
    let session = request.send(&state.stripe).await;
    crate::metrics::stripe_request("billing_portal.sessions.create", &session);
    Ok(session)
}

/// Whether Stripe no longer knows the customer Billfold holds for the user (deleted in
/// Stripe's Dashboard, or the database was pointed at another Stripe account): no retry with
/// that id can ever succeed.
fn customer_missing(err: &StripeError) -> bool {
    matches!(
        err,
        StripeError::Stripe(e, 400 | 404)
            if e.code.as_ref().is_some_and(|c| c.as_str() == "resource_missing")
                && e.param.as_deref() == Some("customer")
    )
}

/// What Stripe says of a customer it answered `resource_missing` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CustomerStanding {
    /// Stripe deleted it: reading it answers `deleted: true`.
    Deleted,
    /// The key's account has no such customer, deleted or not.
    NotInAccount,
    /// It is there after all.
    Present,
}

/// Reads the customer (`GET /v1/customers/{id}`): only Stripe's own word that it is
/// deleted lets Billfold replace it.
async fn customer_standing(
    state: &AppState,
    customer_id: &str,
) -> Result<CustomerStanding, StripeError> {
    use stripe_core::customer::{RetrieveCustomer, RetrieveCustomerReturned};
    let read = RetrieveCustomer::new(customer_id).send(&state.stripe).await;
    crate::metrics::stripe_request("customers.retrieve", &read);
    match read {
        Ok(RetrieveCustomerReturned::DeletedCustomer(_)) => Ok(CustomerStanding::Deleted),
        Ok(RetrieveCustomerReturned::Customer(_)) => Ok(CustomerStanding::Present),
        Err(StripeError::Stripe(e, 404))
            if e.code
                .as_ref()
                .is_some_and(|c| c.as_str() == "resource_missing") =>
        {
            Ok(CustomerStanding::NotInAccount)
        }
        Err(e) => Err(e),
    }
}

/// The key's Stripe account has no such customer, not even a deleted one: the key is another
/// account's than the one the customer was made in. Replacing the customer would hand the user
/// a new, empty one, on every click, and cut them off from the plan they pay for; so the link
/// is kept, the operators get an alert, and the user an error that is not theirs to fix.
async fn customer_not_in_account(
    state: &AppState,
    user: &CurrentUser,
    customer_id: &str,
    action: &str,
) -> AppError {
    tracing::error!(
        customer = %customer_id,
        user_id = user.id,
        action,
        "Stripe's account has no such customer, not even a deleted one: STRIPE_SECRET_KEY is \
         most likely another account's. The customer is kept; billing is refused until the \
         key is fixed"
    );
    let detail = format!(
        "Stripe's account has no customer {customer_id} (user {}), not even a deleted one: \
         STRIPE_SECRET_KEY is most likely another account's than the one it was made in. \
         The user cannot open billing until the key is fixed (`billfold doctor` checks it).",
        user.id
    );
    let alert = crate::billing::sync::Alert {
        kind: crate::billing::sync::CUSTOMER_NOT_IN_ACCOUNT,
        customer_id,
        object_id: customer_id,
        detail: &detail,
    };
    if let Err(e) = crate::billing::sync::raise_alert(&state.db, alert).await {
        tracing::error!(error = %e, customer = %customer_id, "could not record the alert");
    }
    AppError::Upstream(
        "Billing is misconfigured; the operators have been told. Please try again later.".into(),
    )
}

/// Runs `call` on the user's customer. If Stripe answers that the customer does not exist,
/// Billfold reads it: one Stripe says is deleted is marked so (as `customer.deleted` does),
/// the user gets a new one, and `call` runs once more on that, so the user is never stuck.
/// One the account has never had is kept, and refused ([`customer_not_in_account`]).
async fn on_the_customer<T, F, Fut>(
    state: &AppState,
    user: &CurrentUser,
    customer_id: String,
    action: &str,
    call: F,
) -> Result<T, AppError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, StripeError>, AppError>>,
{
    match call(customer_id.clone()).await? {
        Err(e) if customer_missing(&e) => {
            match customer_standing(state, &customer_id).await {
                Ok(CustomerStanding::Deleted) => {}
                Ok(CustomerStanding::NotInAccount) => {
                    return Err(customer_not_in_account(state, user, &customer_id, action).await)
                }
                Ok(CustomerStanding::Present) => return Err(stripe_failure(action, e)),
                Err(read) => return Err(stripe_failure(action, read)),
            }
            tracing::warn!(
                customer = %customer_id,
                action,
                "Stripe deleted the customer; replacing it"
            );
            crate::billing::sync::apply_customer_deleted(&state.db, &customer_id)
                .await
                .map_err(AppError::internal)?;
            let replacement = ensure_customer(state, user).await?;
            call(replacement)
                .await?
                .map_err(|e| stripe_failure(action, e))
        }
        answer => answer.map_err(|e| stripe_failure(action, e)),
    }
}

fn flow_data(
    flow: PortalFlow,
    subscription: Option<String>,
    item: Option<(String, String)>,
    return_url: &str,
) -> CreateBillingPortalSessionFlowData {
    let kind = match flow {
        PortalFlow::PaymentMethodUpdate => {
            CreateBillingPortalSessionFlowDataType::PaymentMethodUpdate
        }
        PortalFlow::SubscriptionCancel => {
            CreateBillingPortalSessionFlowDataType::SubscriptionCancel
        }
        PortalFlow::SubscriptionUpdate => {
            CreateBillingPortalSessionFlowDataType::SubscriptionUpdate
        }
        PortalFlow::SubscriptionUpdateConfirm => {
            CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm
        }
    };
    let mut data = CreateBillingPortalSessionFlowData::new(kind);
    match (flow, subscription) {
        (PortalFlow::SubscriptionCancel, Some(sub)) => {
            data.subscription_cancel = Some(
                CreateBillingPortalSessionFlowDataSubscriptionCancel::new(sub),
            );
        }
        (PortalFlow::SubscriptionUpdate, Some(sub)) => {
            data.subscription_update = Some(
                CreateBillingPortalSessionFlowDataSubscriptionUpdate::new(sub),
            );
        }
        (PortalFlow::SubscriptionUpdateConfirm, Some(sub)) => {
            let mut confirm_items = Vec::new();
            if let Some((id, price)) = item {
                let mut one =
                    CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(id);
                one.price = Some(price);
                one.quantity = Some(1);
                confirm_items.push(one);
            }
            data.subscription_update_confirm = Some(
                CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
                    confirm_items,
                    sub,
                ),
            );
        }
        _ => {}
    }
    // A finished deep-linked flow comes straight back to the billing page.
    let mut after = CreateBillingPortalSessionFlowDataAfterCompletion::new(
        CreateBillingPortalSessionFlowDataAfterCompletionType::Redirect,
    );
    after.redirect =
        Some(CreateBillingPortalSessionFlowDataAfterCompletionRedirect::new(return_url.to_owned()));
    data.after_completion = Some(after);
    data
}

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
    let plan = price::Entity::find_by_id(price_id.to_owned())
        .filter(price::Column::Active.eq(true))
        .filter(price::Column::Livemode.eq(livemode(state)))
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::invalid("price_id", "That plan is not available."))?;
    refuse_if_plan_is_live(state, user).await?;
    limit_sessions(state, user).await?;
    let customer_id = ensure_customer(state, user).await?;
    let (customer_id, session) = on_the_customer(state, user, customer_id, "checkout", |c| {
        let request = checkout_request(state, user, &plan, &c);
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
    if load_summary(state, user)
        .await?
        .plan_state()
        .offers_new_plan()
    {
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
    plan: &price::Model,
    customer_id: &str,
) -> CreateCheckoutSession {
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(plan.id.clone());
    item.quantity = Some(1);
    let mut request = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(customer_id.to_owned())
        .client_reference_id(user.id.to_string())
        .line_items(vec![item])
        .success_url(state.config.url_for("/settings/billing?from=checkout"))
        .cancel_url(state.config.url_for("/settings/billing"))
        .expires_at(clock::now() + CHECKOUT_LIFETIME_SECS);
    if let Some(days) = plan.trial_period_days.filter(|d| *d > 0) {
        let mut data = CreateCheckoutSessionSubscriptionData::new();
        data.trial_period_days = u32::try_from(days).ok();
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

/// The Pro report for a user the guard let through: their paid invoices, totalled.
pub async fn pro_report(
    state: &AppState,
    paid: &super::guard::Paid,
) -> Result<super::summary::ProReport, AppError> {
    let paid_invoices = match find_customer(state, paid.user.id).await? {
        Some(customer) => {
            invoice::Entity::find()
                .filter(invoice::Column::CustomerId.eq(customer))
                .filter(invoice::Column::Status.eq("paid"))
                .all(&state.db)
                .await?
        }
        None => vec![],
    };
    Ok(super::summary::ProReport {
        invoices_paid: u32::try_from(paid_invoices.len()).unwrap_or(u32::MAX),
        amount_paid: paid_invoices.iter().map(|i| i.amount_paid).sum(),
        currency: paid_invoices.first().map(|i| i.currency.clone()),
        access_until: paid.access.until,
    })
}

/// The same report as a plain Axum route (`GET /app/pro-report`): the one-line guard a host
/// app's own handlers use is the [`Paid`](super::guard::Paid) argument.
pub async fn pro_report_route(
    axum::extract::State(state): axum::extract::State<AppState>,
    paid: super::guard::Paid,
) -> Result<axum::Json<super::summary::ProReport>, AppError> {
    Ok(axum::Json(pro_report(&state, &paid).await?))
}

/// Loads Stripe's active prices (and their products' names) into `prices` through the sync
/// writer. Returns how many prices were read.
pub async fn sync_catalogue(state: &AppState) -> anyhow::Result<usize> {
    crate::billing::sync::sync_catalogue(&state.db, &state.stripe)
        .await
        .map_err(|e| anyhow::anyhow!("loading the price catalogue: {e}"))
}
