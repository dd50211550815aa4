//! Who gets the paid features, loaded by its own rule: the user's subscriptions, and the
//! invoice whose first attempt starts the grace clock (the oldest still owed of the primary
//! subscription), read from the database and handed to the pure rules in
//! [`super::access`]. The guard, the page and the page's API all go through here, so
//! what a page happens to list never changes who gets access.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, JoinType, QueryFilter, QuerySelect,
};

use super::{
    access::{self, Access},
    customer::live_customer,
    model::{Invoice, Subscription, SubscriptionStatus},
    summary::PlanState,
};
use crate::{
    db::{
        clock,
        entities::{customer_entitlement, invoice, stripe_customer, subscription},
    },
    error::AppError,
    state::AppState,
};

/// A user's access now, when the grace clock of a failed payment started (if one did), and
/// whether they may start a plan through Checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub access: Access,
    pub grace_started_at: Option<i64>,
    /// No plan, or only one that ended: anything live is changed in the portal instead.
    pub may_start_plan: bool,
}

/// The features (their lookup keys) a user has now: those Stripe's Entitlements list for the
/// user's customer, while the access rule grants access (so `PAST_DUE_GRACE` still ends them,
/// whatever Stripe still lists). Empty without access or without a customer.
pub async fn features(state: &AppState, user_id: i64) -> Result<(Access, Vec<String>), AppError> {
    let Some((customer_id, rows)) = customer_and_subscriptions(state, user_id).await? else {
        let none: &[Subscription] = &[];
        return Ok((decide(state, none, clock::now()).await?.access, vec![]));
    };
    let subscriptions: Vec<Subscription> = rows.iter().map(to_model).collect();
    let access = decide(state, &subscriptions, clock::now()).await?.access;
    if !access.granted {
        return Ok((access, vec![]));
    }
    let listed = customer_entitlement::Entity::find_by_id(customer_id)
        .one(&state.db)
        .await?
        .map(|row| row.keys().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok((access, listed))
}

/// The user's access now.
pub async fn load(state: &AppState, user_id: i64) -> Result<Entitlement, AppError> {
    let subscriptions: Vec<Subscription> = customer_and_subscriptions(state, user_id)
        .await?
        .map(|(_, rows)| rows.iter().map(to_model).collect())
        .unwrap_or_default();
    Ok(decide(state, &subscriptions, clock::now()).await?)
}

/// Access over subscriptions already read: the grace clock is read here, by its rule.
pub async fn decide<S: AsRef<Subscription>>(
    state: &AppState,
    subscriptions: &[S],
    now: i64,
) -> Result<Entitlement, DbErr> {
    let grace_started_at = grace_clock(&state.db, subscriptions).await?;
    let primary = access::primary(subscriptions).map(AsRef::as_ref);
    Ok(Entitlement {
        access: access::access_under(subscriptions, now, state.config.past_due, grace_started_at),
        grace_started_at,
        may_start_plan: PlanState::of(primary).offers_new_plan(),
    })
}

/// When the primary subscription's grace clock started, if it is past_due: the first attempt
/// of its oldest invoice still owed ([`access::grace_started_at`]), whatever else the
/// customer has.
async fn grace_clock<S: AsRef<Subscription>>(
    db: &impl ConnectionTrait,
    subscriptions: &[S],
) -> Result<Option<i64>, DbErr> {
    // Only a past_due plan's access depends on the clock: every other page view and guard
    // check is spared the query.
    let Some(primary) = access::primary(subscriptions)
        .map(AsRef::as_ref)
        .filter(|p| p.status == SubscriptionStatus::PastDue)
    else {
        return Ok(None);
    };
    let unpaid: Vec<Invoice> = invoice::Entity::find()
        .filter(invoice::Column::SubscriptionId.eq(primary.id.as_str()))
        .filter(invoice::Column::Status.is_in(["open", "uncollectible"]))
        .all(db)
        .await?
        .into_iter()
        .map(|i| Invoice {
            subscription_id: i.subscription_id,
            status: i.status,
            created: i.created,
            finalized_at: i.finalized_at,
        })
        .collect();
    Ok(access::grace_started_at(&unpaid, &primary.id))
}

/// The user's live Stripe customer in this mode and its subscriptions, in one statement.
pub(super) async fn customer_and_subscriptions(
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

/// What the rules know of a subscription row.
pub(super) fn to_model(s: &subscription::Model) -> Subscription {
    Subscription {
        status: SubscriptionStatus::parse(&s.status),
        id: s.id.clone(),
        current_period_start: s.current_period_start,
        current_period_end: s.current_period_end,
        cancel_at_period_end: s.cancel_at_period_end,
        cancel_at: s.cancel_at,
        canceled_at: s.canceled_at,
        ended_at: s.ended_at,
        trial_end: s.trial_end,
    }
}
