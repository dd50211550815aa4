//! Seats: a plan the catalogue prices per seat (`seats = { minimum, maximum }`) has its
//! subscription's quantity kept equal to the organisation's seat count, through the outbox
//! of changes for Stripe, under the catalogue's policy (`[catalog.seat_policy]`):
//!
//! - **The count** is one rule ([`seat_count`]): the organisation's members, and its pending
//!   invitations when `count_pending_invitations` says so; within the plan's minimum and
//!   maximum.
//! - **Coalesced**: a member change queues the organisation's row to go out after
//!   `coalesce_secs`; changes meanwhile ride on it (the count is read when it goes), so twenty
//!   people joining within the window are one update.
//! - **Budgeted**: at most `updates_per_hour` quantity updates per subscription (Stripe allows
//!   200); a change beyond it waits for the hour to turn.
//! - **Growth** is charged as `growth` says: `charge_now` (`always_invoice`: one invoice per
//!   coalesced change), `next_invoice` (`create_prorations`), or `at_renewal` (no proration:
//!   the next renewal charges the new count).
//! - **Release**: seats that free up go `at_once` (credited on the next invoice) or at
//!   `period_end` (the quantity is lowered just before the renewal, without proration).
//! - The first purchase sets the quantity to the count (Checkout's `quantity`).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use stripe_billing::subscription::{
    UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};

use super::{
    model::SubscriptionStatus,
    stripe_errors::send_idempotent,
    stripe_outbox::{after_failure, Kind, Outcome},
};
use crate::{
    billing_file::catalog::{Catalog, Plan, Release, SeatPolicy, Seats},
    db::{
        clock,
        entities::{
            invitation, membership, price, stripe_customer, stripe_outbox as outbox_row,
            subscription,
        },
    },
    state::AppState,
};

/// The organisation's seat count by the policy: members, and pending invitations if counted.
pub async fn seat_count(
    conn: &impl ConnectionTrait,
    org_id: i64,
    policy: &SeatPolicy,
) -> Result<u64, DbErr> {
    let members = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .count(conn)
        .await?;
    let invited = if policy.count_pending_invitations {
        invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(org_id))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(clock::now()))
            .count(conn)
            .await?
    } else {
        0
    };
    Ok(members + invited)
}

/// The quantity a per-seat plan bills for `count` seats.
pub fn quantity_for(seats: &Seats, count: u64) -> u64 {
    let at_least = count.max(seats.minimum).max(1);
    seats.maximum.map_or(at_least, |max| at_least.min(max))
}

/// How long the hour of the update budget is.
pub const BUDGET_WINDOW_SECS: i64 = 3_600;

/// How long before the period's end freed seats are released (policy `period_end`): before
/// Stripe makes the renewal invoice.
const RELEASE_LEAD_SECS: i64 = 3_600;

/// Queues "the quantity follows the seats" for every live customer of `org_id`, to go after the
/// policy's coalescing window. Call in the transaction that changes the members (or, when
/// pending invitations count, the invitations); wake [`AppState::stripe_updates`] after.
pub async fn queue_sync(
    conn: &impl ConnectionTrait,
    org_id: i64,
    policy: &SeatPolicy,
) -> Result<(), DbErr> {
    let customers: Vec<String> = stripe_customer::Entity::find()
        .select_only()
        .column(stripe_customer::Column::CustomerId)
        .filter(stripe_customer::Column::OrganizationId.eq(org_id))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .into_tuple()
        .all(conn)
        .await?;
    let delay = i64::try_from(policy.coalesce_secs).unwrap_or(0);
    for customer in customers {
        super::stripe_outbox::enqueue(conn, Kind::SeatQuantity, &customer, delay).await?;
    }
    Ok(())
}

/// The customer's live subscription on a plan priced per seat, and that plan's seats.
pub async fn per_seat_subscription(
    conn: &impl ConnectionTrait,
    catalog: &Catalog,
    customer_id: &str,
) -> Result<Option<(subscription::Model, Seats)>, DbErr> {
    let subs = subscription::Entity::find()
        .filter(subscription::Column::CustomerId.eq(customer_id))
        .filter(subscription::Column::Deleted.eq(false))
        .all(conn)
        .await?;
    for sub in subs {
        let live = matches!(
            SubscriptionStatus::parse(&sub.status),
            SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
        );
        if !live {
            continue;
        }
        if let Some(seats) = seats_of(conn, catalog, &sub).await? {
            return Ok(Some((sub, seats)));
        }
    }
    Ok(None)
}

/// The seats of the catalogue plan a subscription is on, if it is priced per seat.
async fn seats_of(
    conn: &impl ConnectionTrait,
    catalog: &Catalog,
    sub: &subscription::Model,
) -> Result<Option<Seats>, DbErr> {
    let own: Option<Option<String>> = match &sub.price_id {
        Some(id) => {
            price::Entity::find_by_id(id.as_str())
                .select_only()
                .column(price::Column::LookupKey)
                .into_tuple()
                .one(conn)
                .await?
        }
        None => None,
    };
    let siblings: Vec<Option<String>> = match &sub.product_id {
        Some(product) => {
            price::Entity::find()
                .select_only()
                .column(price::Column::LookupKey)
                .filter(price::Column::ProductId.eq(product.as_str()))
                .into_tuple()
                .all(conn)
                .await?
        }
        None => Vec::new(),
    };
    Ok(catalog
        .plan_of(
            own.flatten().as_deref(),
            siblings.iter().flatten().map(String::as_str),
        )
        .and_then(|plan| plan.seats))
}

/// The quantity Checkout asks for a price: the organisation's seat count for a plan priced per
/// seat, else 1.
pub async fn checkout_quantity(
    conn: &impl ConnectionTrait,
    plan: &Plan,
    org_id: i64,
    policy: &SeatPolicy,
) -> Result<u64, DbErr> {
    Ok(match plan.seats {
        Some(seats) => quantity_for(&seats, seat_count(conn, org_id, policy).await?),
        None => 1,
    })
}

/// Refuses one more seat beyond the organisation's per-seat plan's maximum, with the way to a
/// bigger plan.
pub async fn room_for_one_more(
    conn: &impl ConnectionTrait,
    catalog: &Catalog,
    org_id: i64,
) -> Result<Result<(), String>, DbErr> {
    let customers: Vec<String> = stripe_customer::Entity::find()
        .select_only()
        .column(stripe_customer::Column::CustomerId)
        .filter(stripe_customer::Column::OrganizationId.eq(org_id))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .into_tuple()
        .all(conn)
        .await?;
    for customer in customers {
        let Some((_, seats)) = per_seat_subscription(conn, catalog, &customer).await? else {
            continue;
        };
        let Some(max) = seats.maximum else {
            continue;
        };
        // Pending invitations would take their seats once accepted.
        let counting_invitations = SeatPolicy {
            count_pending_invitations: true,
            ..catalog.seat_policy
        };
        if seat_count(conn, org_id, &counting_invitations).await? >= max {
            return Ok(Err(format!(
                "Your plan allows up to {max} seats, and they are all taken or invited. \
                 Remove someone, or ask your billing admins about a bigger plan on the billing page."
            )));
        }
    }
    Ok(Ok(()))
}

/// One attempt at a customer's seat row: the quantity the policy wants now, sent (or deferred).
pub(super) async fn attempt(state: &AppState, due: &outbox_row::Model) -> Result<Outcome, DbErr> {
    let policy = state.config.catalog.seat_policy;
    let nothing = || Ok(Outcome::Done { sent: false });
    let Some(customer) = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(due.customer_id.as_str()))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .one(&state.db)
        .await?
    else {
        return nothing();
    };
    let Some(org) = customer.organization_id else {
        return nothing();
    };
    let Some((sub, seats)) =
        per_seat_subscription(&state.db, &state.config.catalog, &due.customer_id).await?
    else {
        return nothing();
    };
    let now = clock::now();
    let Some(item) = sub.item_id.clone() else {
        // A row written before items were kept: the next event about it brings the item.
        return Ok(Outcome::Defer {
            at: now + 60,
            why: "waiting for Stripe's copy of the subscription's item".into(),
        });
    };
    let want = quantity_for(&seats, seat_count(&state.db, org, &policy).await?);
    let have = sub.quantity.and_then(|q| u64::try_from(q).ok());
    if have == Some(want) {
        return nothing();
    }
    let lowering = have.is_some_and(|have| want < have);
    let proration = if lowering {
        match policy.release {
            Release::AtOnce => "create_prorations",
            Release::PeriodEnd => {
                let release_at = sub.current_period_end.map(|end| end - RELEASE_LEAD_SECS);
                if let Some(at) = release_at.filter(|at| *at > now) {
                    return Ok(Outcome::Defer {
                        at,
                        why: format!(
                            "{want} seats from the end of the period (paid for {} until then)",
                            have.unwrap_or(want)
                        ),
                    });
                }
                "none"
            }
        }
    } else {
        policy.growth.proration_behavior()
    };
    let spent = due
        .window_started_at
        .is_some_and(|start| now - start < BUDGET_WINDOW_SECS)
        && due.window_count >= i32::try_from(policy.updates_per_hour).unwrap_or(i32::MAX);
    if spent {
        return Ok(Outcome::Defer {
            at: due.window_started_at.unwrap_or(now) + BUDGET_WINDOW_SECS,
            why: format!(
                "this hour's {} quantity updates are spent",
                policy.updates_per_hour
            ),
        });
    }
    let mut line = UpdateSubscriptionItems::new();
    line.id = Some(item);
    line.quantity = Some(want);
    let request = UpdateSubscription::new(sub.id.as_str())
        .items(vec![line])
        .proration_behavior(
            proration
                .parse::<UpdateSubscriptionProrationBehavior>()
                .unwrap_or(UpdateSubscriptionProrationBehavior::CreateProrations),
        );
    let key = format!(
        "billfold-{}-{}-{}",
        state.installation_id, due.key, due.generation
    );
    let sent = send_idempotent(state, &request, &key).await;
    crate::metrics::stripe_request("subscriptions.update", &sent);
    Ok(match sent {
        Ok(_) => Outcome::Done { sent: true },
        Err(e) => after_failure(due, &e),
    })
}
