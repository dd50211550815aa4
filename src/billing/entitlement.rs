//! Who gets the paid features, loaded by its own rule: the user's subscriptions, and the
//! invoice whose first attempt starts the grace clock (the oldest still owed of the primary
//! subscription), read from the database and handed to the pure rules in
//! [`super::access`]; and what the plan includes (Stripe's Entitlements while access is
//! granted, the catalogue's limits). The guards, the page and `GET /api/billing/state` all go
//! through [`load_all`], so what a page happens to list never changes who gets access.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, JoinType, QueryFilter, QuerySelect,
};

use super::{
    access::{self, Access},
    customer::live_customer,
    model::{Invoice, Subscription, SubscriptionStatus},
    plans::recurring_prices,
    seats,
    summary::{FeatureView, Included, PlanState},
};
use crate::{
    billing_file::catalog::Plan,
    db::{
        clock,
        entities::{customer_entitlement, invoice, price, stripe_customer, subscription},
    },
    error::AppError,
    state::AppState,
    web::CurrentUser,
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

/// A user's billing as the rules read it: the live customer in this mode (if any), its
/// subscriptions, and the access they grant at `now`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub customer_id: Option<String>,
    pub subscriptions: Vec<subscription::Model>,
    pub entitlement: Entitlement,
    /// The clock reading the access was decided at.
    pub now: i64,
}

/// The one loader: the current organisation's customer and subscriptions (one statement),
/// and the access they grant this member now (plus the grace clock's statement when the plan
/// is past_due, and the seat rule's when a per-seat plan pays for fewer seats than members).
pub async fn load_all(state: &AppState, user: &CurrentUser) -> Result<Loaded, AppError> {
    let org_id = user.org.id;
    let (customer_id, subscriptions) = match customer_and_subscriptions(state, org_id).await? {
        Some((customer_id, rows)) => (Some(customer_id), rows),
        None => (None, vec![]),
    };
    let models: Vec<Subscription> = subscriptions.iter().map(to_model).collect();
    let now = clock::now();
    let mut entitlement = decide(state, &models, now).await?;
    let primary =
        access::primary(&models).and_then(|p| subscriptions.iter().find(|row| row.id == p.id));
    if let (true, Some(row)) = (entitlement.access.granted, primary) {
        let per_seat = plan_of(state, row)
            .await?
            .is_some_and(|p| p.seats.is_some());
        let policy = &state.config.catalog.seat_policy;
        if per_seat && !seats::member_holds_seat(&state.db, policy, row, org_id, user.id).await? {
            entitlement.access = Access {
                granted: false,
                reason: access::Reason::NoSeat,
                until: None,
            };
        }
    }
    Ok(Loaded {
        customer_id,
        subscriptions,
        entitlement,
        now,
    })
}

/// The member's access now.
pub async fn load(state: &AppState, user: &CurrentUser) -> Result<Entitlement, AppError> {
    Ok(load_all(state, user).await?.entitlement)
}

/// What the plan includes now: the features Stripe's Entitlements list for the customer
/// *while the access rule grants access* (so `PAST_DUE_GRACE` still ends them, whatever
/// Stripe still lists), and the limits the catalogue sets for the primary subscription's plan.
/// Without access, nothing.
pub async fn included(state: &AppState, loaded: &Loaded) -> Result<Included, AppError> {
    let granted = loaded.entitlement.access.granted;
    let catalog = &state.config.catalog;
    let locked_but = |features: &[FeatureView]| {
        catalog
            .features
            .iter()
            .filter(|f| !features.iter().any(|have| have.lookup_key == f.lookup_key))
            .map(|f| (f.lookup_key.clone(), catalog.where_included(&f.lookup_key)))
            .collect()
    };
    let Some(customer_id) = loaded.customer_id.as_deref() else {
        return Ok(Included {
            granted,
            locked: locked_but(&[]),
            ..Included::default()
        });
    };
    let features: Vec<FeatureView> = if granted {
        customer_entitlement::Entity::find_by_id(customer_id)
            .one(&state.db)
            .await?
            .map(|row| {
                row.keys()
                    .map(|k| FeatureView {
                        lookup_key: k.to_owned(),
                        name: catalog.feature_name(k).to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![]
    };
    let models: Vec<Subscription> = loaded.subscriptions.iter().map(to_model).collect();
    let primary = access::primary(&models)
        .and_then(|p| loaded.subscriptions.iter().find(|row| row.id == p.id));
    let plan = match primary {
        Some(row) => plan_of(state, row).await?,
        None => None,
    };
    Ok(Included {
        granted,
        plan_key: plan.map(|p| p.key.clone()),
        locked: locked_but(&features),
        features,
        limits: plan.map(|p| p.limits.clone()).unwrap_or_default(),
    })
}

/// The catalogue's plan of a subscription ([`Catalog::plan_of`]): first over the prices for
/// sale kept in memory (no query: the page read them already), then, for a price or product
/// no longer sold, over the prices the database holds for its price and its product (archived
/// ones too: a plan no longer sold still has its limits for those on it).
///
/// [`Catalog::plan_of`]: crate::billing_file::catalog::Catalog::plan_of
async fn plan_of<'s>(
    state: &'s AppState,
    row: &subscription::Model,
) -> Result<Option<&'s Plan>, DbErr> {
    let catalog = &state.config.catalog;
    let pick = |prices: &[price::Model]| {
        let own = prices
            .iter()
            .find(|p| row.price_id.as_deref() == Some(p.id.as_str()))
            .and_then(|p| p.lookup_key.as_deref());
        let siblings = prices
            .iter()
            .filter(|p| row.product_id.as_deref() == Some(p.product_id.as_str()))
            .filter_map(|p| p.lookup_key.as_deref());
        catalog.plan_of(own, siblings)
    };
    let for_sale = state
        .plans
        .get_or_load(|| recurring_prices(state.config.stripe.mode.livemode()).all(&state.db))
        .await?;
    if let Some(plan) = pick(&for_sale) {
        return Ok(Some(plan));
    }
    if row.price_id.is_none() && row.product_id.is_none() {
        return Ok(None);
    }
    let mut which = Condition::any();
    if let Some(id) = &row.price_id {
        which = which.add(price::Column::Id.eq(id.as_str()));
    }
    if let Some(product) = &row.product_id {
        which = which.add(price::Column::ProductId.eq(product.as_str()));
    }
    let stored = price::Entity::find().filter(which).all(&state.db).await?;
    Ok(pick(&stored))
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
pub(super) async fn grace_clock<S: AsRef<Subscription>>(
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

/// The organisation's live Stripe customer in this mode and its subscriptions, in one
/// statement.
pub(super) async fn customer_and_subscriptions(
    state: &AppState,
    org_id: i64,
) -> Result<Option<(String, Vec<subscription::Model>)>, AppError> {
    let to_subscriptions = stripe_customer::Entity::belongs_to(subscription::Entity)
        .from(stripe_customer::Column::CustomerId)
        .to(subscription::Column::CustomerId)
        .into();
    let rows = live_customer(state, org_id)
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
