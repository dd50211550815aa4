//! The billing page's summary, read from the database in a few queries (no Stripe call), and
//! the re-sync from Stripe when the user comes back from Checkout or the portal.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    customer::find_customer,
    entitlement::{self, to_model, Loaded},
    limits::{RESYNCS_PER_CUSTOMER, USER_STRIPE_CALLS},
    plans::{for_sale, may_have_trial},
    summary::{BillingSummary, CardView, InvoiceView, PlanView, SubscriptionView},
};
use crate::{
    db::{
        clock,
        entities::{invoice, payment_method, price, subscription},
    },
    error::AppError,
    state::AppState,
    web::{CurrentUser, SignedIn},
};

/// How many invoices the page lists.
const INVOICES_SHOWN: u64 = 6;

pub(super) fn subscription_view(s: subscription::Model) -> SubscriptionView {
    SubscriptionView {
        subscription: to_model(&s),
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

/// Reads everything the page shows, in a handful of queries and no Stripe call.
pub async fn load_summary(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<BillingSummary, AppError> {
    let user = &signed_in.user;
    // The one loader the guards read too: access and what the plan includes come from it,
    // never from what this page happens to list.
    let loaded = entitlement::load_all(state, user).await?;
    let included = entitlement::included(state, &loaded).await?;
    let Loaded {
        customer_id,
        subscriptions,
        entitlement,
        now,
    } = loaded;
    let trial = may_have_trial(
        state,
        customer_id
            .as_deref()
            .map(|id| (id, subscriptions.as_slice())),
    )
    .await?;
    let plans = for_sale(state)
        .await?
        .into_iter()
        .map(|p| PlanView {
            price_id: p.price.id,
            product_name: p.plan_name,
            description: p.description,
            unit_amount: p.price.unit_amount,
            currency: p.price.currency,
            interval: p.price.interval,
            trial_period_days: p
                .trial_days
                .filter(|_| trial)
                .and_then(|d| i32::try_from(d).ok()),
            features: p.features,
            limits: p.limits,
        })
        .collect();

    let limit_names = state.config.catalog.limit_names();
    // Whom a member asks (a billing manager needs no one).
    let billing_contacts = if user.org.role.manages_billing() {
        Vec::new()
    } else {
        super::roles::billing_contacts(&state.db, user.org.id).await?
    };
    let org_choices = signed_in.orgs.clone();
    let Some(customer_id) = customer_id else {
        return Ok(BillingSummary {
            email: user.email.clone(),
            email_verified: user.email_verified,
            has_customer: false,
            subscriptions: vec![],
            card: None,
            invoices: vec![],
            plans,
            now,
            past_due: state.config.past_due,
            grace_started_at: None,
            included,
            limit_names,
            org: user.org.clone(),
            org_choices,
            billing_contacts,
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
        email_verified: user.email_verified,
        has_customer: true,
        subscriptions,
        card,
        invoices,
        plans,
        now,
        past_due: state.config.past_due,
        // The banner's deadline by the entitlement's own rule: not from the invoices listed.
        grace_started_at: entitlement.grace_started_at,
        included,
        limit_names,
        org: user.org.clone(),
        org_choices,
        billing_contacts,
    })
}

/// After Checkout or the Portal, pulls the customer's state from Stripe before rendering, so
/// the page is right even before the webhooks land. At most once every few seconds per user.
pub async fn resync_on_return(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    let Some(customer_id) = find_customer(state, user.org.id).await? else {
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
