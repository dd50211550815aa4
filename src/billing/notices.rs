//! The billing messages: what an applied Stripe event means the customer's user should hear by
//! mail, queued in the event's own transaction, from what the billing tables say once the event
//! is applied (so an event that arrives late, twice, replayed or recovered by the reconciler
//! speaks from the newest truth, and each message's key queues it once):
//!
//! | message | when | key |
//! |---|---|---|
//! | trial ends soon | `customer.subscription.trial_will_end`, the plan still trialing and nothing collected yet | `trial_ending:<sub>:<trial end>` |
//! | payment failed | a past_due plan's newest unpaid invoice has had an attempt (on `invoice.payment_failed` or the plan's update, whichever is second) | `payment_failed:<invoice>` |
//! | payment needs your action | `invoice.payment_action_required`, the invoice still open | `action_required:<invoice>` |
//! | plan ended | the plan is canceled or unpaid, and the customer has no other live plan | `plan_ended:<sub>` |
//!
//! Events older than a week (recovered long after) say nothing: the page has said it since.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{
    entitlement::{grace_clock, to_model},
    model::SubscriptionStatus,
    sync::{Fetched, SyncError},
};
use crate::{
    db::{
        clock,
        entities::{
            invoice, membership, organization, payment_method, stripe_customer, subscription, user,
        },
    },
    domain::Role,
    mail::{
        notice::{ActionRequired, PaymentFailed, PlanEnded, TrialEnding},
        outbox::{self, NewMail},
        Kind,
    },
};

/// How old an event may be and still cause a message.
const RECENT_SECS: i64 = 7 * 86_400;

/// Queues what an applied event means to the customer's user, in the event's transaction.
/// `fetched`: what the pipeline read from Stripe before the transaction (a reminder asks for
/// the subscription and its latest invoice as Stripe has them now: the pipeline reads them and
/// runs the event again).
pub async fn queue_for_event(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    event_type: &str,
    object_id: Option<&str>,
    event_created: i64,
) -> Result<(), SyncError> {
    let Some(id) = object_id else {
        return Ok(());
    };
    if clock::now() - event_created > RECENT_SECS {
        return Ok(());
    }
    match event_type {
        "invoice.payment_failed" => {
            let sub = invoice::Entity::find_by_id(id)
                .one(conn)
                .await?
                .and_then(|i| i.subscription_id);
            if let Some(sub) = sub {
                if let Some(sub) = subscription::Entity::find_by_id(sub).one(conn).await? {
                    payment_failed(conn, &sub).await?;
                }
            }
        }
        "invoice.payment_action_required" => action_required(conn, id).await?,
        "customer.subscription.trial_will_end" if still_trialing_unpaid(fetched, id)? => {
            trial_ending(conn, id).await?;
        }
        "customer.subscription.updated" | "customer.subscription.deleted" => {
            // One read of the row as the event left it serves both messages.
            if let Some(sub) = subscription::Entity::find_by_id(id).one(conn).await? {
                payment_failed(conn, &sub).await?;
                plan_ended(conn, &sub).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Stripe's caveat: `trial_will_end` can come in the same moment as the payment of a trial
/// shortened to now, carrying the subscription as it was before. So the subscription and its
/// latest invoice are read as Stripe has them now: still trialing, the trial still ahead, and
/// nothing collected.
fn still_trialing_unpaid(fetched: &Fetched, sub_id: &str) -> Result<bool, SyncError> {
    let Some((sub, _)) = fetched.latest::<stripe_shared::Subscription>(sub_id)? else {
        return Ok(false);
    };
    let ahead = sub.trial_end.is_some_and(|end| end > clock::now());
    if sub.status.as_str() != "trialing" || !ahead {
        return Ok(false);
    }
    let Some(latest) = sub
        .latest_invoice
        .as_ref()
        .and_then(|i| i.id().as_ref().map(|id| id.as_str().to_owned()))
    else {
        return Ok(true);
    };
    let collected = fetched
        .latest::<stripe_shared::Invoice>(&latest)?
        .is_some_and(|(inv, _)| {
            inv.status.as_ref().map(|s| s.as_str()) == Some("paid") && inv.amount_paid > 0
        });
    Ok(!collected)
}

/// Who hears about the customer's billing, and where: the organisation's billing contact, a
/// member who manages its billing (a personal organisation's: its user). For a team, the
/// member whose address is the billing address, else its first owner.
async fn recipient(
    conn: &impl ConnectionTrait,
    customer_id: &str,
) -> Result<Option<(i64, String)>, DbErr> {
    let Some(customer) = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let Some(org_id) = customer.organization_id else {
        return Ok(None);
    };
    let Some(org) = organization::Entity::find_by_id(org_id).one(conn).await? else {
        return Ok(None);
    };
    let mut managers: Vec<(membership::Model, Option<user::Model>)> = membership::Entity::find()
        .find_also_related(user::Entity)
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(
            membership::Column::Role.is_in(
                Role::ALL
                    .into_iter()
                    .filter(|r| r.manages_billing())
                    .map(Role::as_str),
            ),
        )
        .order_by_asc(membership::Column::CreatedAt)
        .order_by_asc(membership::Column::Id)
        .all(conn)
        .await?;
    let contact = org.billing_email.as_deref();
    let chosen = managers
        .iter()
        .position(|(_, u)| u.as_ref().map(|u| u.email.as_str()) == contact)
        .or_else(|| {
            managers
                .iter()
                .position(|(m, _)| m.role == Role::Owner.as_str())
        })
        .unwrap_or(0);
    if managers.is_empty() {
        return Ok(None);
    }
    Ok(managers.swap_remove(chosen).1.map(|u| (u.id, u.email)))
}

async fn queue(
    conn: &impl ConnectionTrait,
    customer_id: &str,
    key: String,
    kind: Kind,
    facts: serde_json::Value,
) -> Result<(), DbErr> {
    let Some((user_id, email)) = recipient(conn, customer_id).await? else {
        return Ok(());
    };
    outbox::enqueue(
        conn,
        NewMail {
            key,
            kind,
            user_id: Some(user_id),
            to: email,
            params: facts,
        },
    )
    .await?;
    Ok(())
}

fn json<T: serde::Serialize>(facts: &T) -> serde_json::Value {
    serde_json::to_value(facts).unwrap_or_default()
}

/// The payment-failed mail for `sub` (the row as the event left it), when it is past due with
/// an open invoice that has been tried.
async fn payment_failed(
    conn: &impl ConnectionTrait,
    sub: &subscription::Model,
) -> Result<(), DbErr> {
    let sub_id = sub.id.as_str();
    if SubscriptionStatus::parse(&sub.status) != SubscriptionStatus::PastDue {
        return Ok(());
    }
    let Some(unpaid) = invoice::Entity::find()
        .filter(invoice::Column::SubscriptionId.eq(sub_id))
        .filter(invoice::Column::Status.eq("open"))
        .filter(invoice::Column::AttemptCount.gte(1))
        .order_by_desc(invoice::Column::Created)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let failed_at = grace_clock(conn, &[to_model(sub)]).await?;
    let organization_id = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(sub.customer_id.as_str()))
        .one(conn)
        .await?
        .and_then(|c| c.organization_id);
    let facts = PaymentFailed {
        plan: sub.plan_name.clone(),
        amount_due: unpaid.amount_due,
        currency: unpaid.currency.clone(),
        next_attempt: unpaid.next_payment_attempt,
        failed_at,
        organization_id,
    };
    queue(
        conn,
        &sub.customer_id,
        format!("payment_failed:{}", unpaid.id),
        Kind::PaymentFailed,
        json(&facts),
    )
    .await
}

async fn action_required(conn: &impl ConnectionTrait, invoice_id: &str) -> Result<(), DbErr> {
    let Some(inv) = invoice::Entity::find_by_id(invoice_id).one(conn).await? else {
        return Ok(());
    };
    if inv.status != "open" {
        return Ok(());
    }
    let facts = ActionRequired {
        amount_due: inv.amount_due,
        currency: inv.currency.clone(),
        invoice_url: inv.hosted_invoice_url.clone(),
    };
    queue(
        conn,
        &inv.customer_id,
        format!("action_required:{}", inv.id),
        Kind::ActionRequired,
        json(&facts),
    )
    .await
}

/// The reminder's facts from the tables; the same checks as Stripe's copy (above) against the
/// tables too, so neither an old copy nor an old row sends one.
async fn trial_ending(conn: &impl ConnectionTrait, sub_id: &str) -> Result<(), DbErr> {
    let Some(sub) = subscription::Entity::find_by_id(sub_id).one(conn).await? else {
        return Ok(());
    };
    let Some(trial_end) = sub.trial_end else {
        return Ok(());
    };
    if SubscriptionStatus::parse(&sub.status) != SubscriptionStatus::Trialing
        || trial_end <= clock::now()
        || sub.cancel_at_period_end
    {
        return Ok(());
    }
    if let Some(latest) = &sub.latest_invoice_id {
        let collected = invoice::Entity::find_by_id(latest.as_str())
            .one(conn)
            .await?
            .is_some_and(|i| i.status == "paid" && i.amount_paid > 0);
        if collected {
            return Ok(());
        }
    }
    let has_card = sub.default_payment_method.is_some()
        || payment_method::Entity::find()
            .filter(payment_method::Column::CustomerId.eq(sub.customer_id.as_str()))
            .one(conn)
            .await?
            .is_some();
    let facts = TrialEnding {
        plan: sub.plan_name.clone(),
        trial_end,
        amount: sub.unit_amount,
        currency: sub.currency.clone(),
        interval: sub.interval.clone(),
        has_card,
    };
    queue(
        conn,
        &sub.customer_id,
        format!("trial_ending:{}:{trial_end}", sub.id),
        Kind::TrialEnding,
        json(&facts),
    )
    .await
}

/// The plan-ended mail for `sub` (the row as the event left it), when it ended and no other
/// plan of the customer lives on.
async fn plan_ended(conn: &impl ConnectionTrait, sub: &subscription::Model) -> Result<(), DbErr> {
    let status = SubscriptionStatus::parse(&sub.status);
    if !matches!(
        status,
        SubscriptionStatus::Canceled | SubscriptionStatus::Unpaid
    ) {
        return Ok(());
    }
    // A plan replaced by another live one has not ended for the user.
    let others_live = subscription::Entity::find()
        .filter(subscription::Column::CustomerId.eq(sub.customer_id.as_str()))
        .filter(subscription::Column::Id.ne(sub.id.as_str()))
        .filter(subscription::Column::Status.is_in(["active", "trialing", "past_due"]))
        .one(conn)
        .await?
        .is_some();
    if others_live {
        return Ok(());
    }
    let facts = PlanEnded {
        plan: sub.plan_name.clone(),
        retries_stopped: status == SubscriptionStatus::Unpaid,
    };
    queue(
        conn,
        &sub.customer_id,
        format!("plan_ended:{}", sub.id),
        Kind::PlanEnded,
        json(&facts),
    )
    .await
}
