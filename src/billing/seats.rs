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
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};

use super::{
    model::SubscriptionStatus,
    stripe_errors::send_idempotent,
    stripe_outbox::{after_failure, Kind, Outcome},
};
use crate::{
    billing_file::catalog::{BeyondPaid, Catalog, Growth, Plan, Release, SeatPolicy, Seats},
    db::{
        clock,
        entities::{
            invitation, membership, price, stripe_customer, stripe_outbox as outbox_row,
            subscription,
        },
    },
    domain::Role,
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

/// Whether a member holds a seat, by the one rule: seats go in [`seat_order`]; a member
/// ranked (from 0) below the paid quantity holds one. Beyond it, one who joined after the
/// quantity last went down (or when it never did) is waiting for the quantity to follow the
/// members and keeps the plan; one whose seat was taken away gets what `beyond_paid` says:
/// `until_period_end` keeps it while the period in which the quantity went down lasts
/// (`lowered_at` at or after the current period's start).
pub fn holds_seat(
    rank: u64,
    paid: u64,
    policy: BeyondPaid,
    joined_at: i64,
    lowered_at: Option<i64>,
    period_start: Option<i64>,
) -> bool {
    if rank < paid {
        return true;
    }
    let Some(lowered_at) = lowered_at.filter(|at| joined_at <= *at) else {
        return true;
    };
    match policy {
        BeyondPaid::Keep => true,
        BeyondPaid::UntilPeriodEnd => period_start.is_some_and(|start| lowered_at >= start),
        BeyondPaid::Nothing => false,
    }
}

/// The order seats go in: owners, then billing admins, then members, each by when they
/// joined (then by membership, for a tie).
fn seat_order(m: &membership::Model) -> (u8, i64, i64) {
    let role = match Role::parse(&m.role) {
        Some(Role::Owner) => 0,
        Some(Role::BillingAdmin) => 1,
        _ => 2,
    };
    (role, m.created_at, m.id)
}

/// Whether `user_id` holds a seat of `org_id` on `sub`, a subscription on a plan priced per
/// seat ([`holds_seat`]). Reads the members only when Stripe's quantity is below the count.
pub async fn member_holds_seat(
    conn: &impl ConnectionTrait,
    policy: &SeatPolicy,
    sub: &subscription::Model,
    org_id: i64,
    user_id: i64,
) -> Result<bool, DbErr> {
    let Some(paid) = sub.quantity.and_then(|q| u64::try_from(q).ok()) else {
        return Ok(true);
    };
    // Pending invitations hold no seat of their own: only members are ranked.
    let members_only = SeatPolicy {
        count_pending_invitations: false,
        ..*policy
    };
    if seat_count(conn, org_id, &members_only).await? <= paid {
        return Ok(true);
    }
    let mut members = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .all(conn)
        .await?;
    members.sort_by_key(seat_order);
    let Some((rank, me)) = members
        .iter()
        .enumerate()
        .find(|(_, m)| m.user_id == user_id)
    else {
        return Ok(false);
    };
    Ok(holds_seat(
        u64::try_from(rank).unwrap_or(u64::MAX),
        paid,
        policy.beyond_paid,
        me.created_at,
        sub.quantity_lowered_at,
        sub.current_period_start,
    ))
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
    // What Stripe has now, read from Stripe: the database's copy lags behind the webhook of
    // an update just sent (by this replica or another), and comparing with it would send the
    // same quantity again.
    let read = RetrieveSubscription::new(sub.id.as_str())
        .send(&state.stripe)
        .await;
    crate::metrics::stripe_request("subscriptions.retrieve", &read);
    let live = match read {
        Ok(live) => live,
        Err(e) => return Ok(after_failure(due, &e)),
    };
    let Some(first) = live.items.data.first() else {
        return nothing();
    };
    let item = first.id.to_string();
    let want = quantity_for(&seats, seat_count(&state.db, org, &policy).await?);
    let have = first.quantity;
    if have == Some(want) {
        return nothing();
    }
    let lowering = have.is_some_and(|have| want < have);
    let proration = if lowering {
        match policy.release {
            Release::AtOnce => UpdateSubscriptionProrationBehavior::CreateProrations,
            Release::PeriodEnd => {
                let at = first.current_period_end - RELEASE_LEAD_SECS;
                if at > now {
                    return Ok(Outcome::Defer {
                        at,
                        why: format!(
                            "{want} seats from the end of the period (paid for {} until then)",
                            have.unwrap_or(want)
                        ),
                    });
                }
                UpdateSubscriptionProrationBehavior::None
            }
        }
    } else {
        match policy.growth {
            Growth::ChargeNow => UpdateSubscriptionProrationBehavior::AlwaysInvoice,
            Growth::NextInvoice => UpdateSubscriptionProrationBehavior::CreateProrations,
            Growth::AtRenewal => UpdateSubscriptionProrationBehavior::None,
        }
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
        .proration_behavior(proration);
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

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_000_000;

    #[test]
    fn a_seat_is_held_below_the_paid_quantity_whatever_the_policy() {
        for policy in [
            BeyondPaid::Keep,
            BeyondPaid::UntilPeriodEnd,
            BeyondPaid::Nothing,
        ] {
            assert!(holds_seat(
                4,
                5,
                policy,
                START,
                Some(START + 10),
                Some(START)
            ));
            assert!(holds_seat(
                0,
                1,
                policy,
                START,
                Some(START + 10),
                Some(START)
            ));
        }
    }

    #[test]
    fn beyond_the_paid_seats_the_policy_decides_once_someone_lowered_the_quantity() {
        let lowered = Some(START + 100);
        // Joined before the quantity went down: their seat was taken away.
        let joined = START + 50;
        assert!(holds_seat(
            7,
            5,
            BeyondPaid::Keep,
            joined,
            lowered,
            Some(START)
        ));
        assert!(holds_seat(
            7,
            5,
            BeyondPaid::UntilPeriodEnd,
            joined,
            lowered,
            Some(START)
        ));
        assert!(!holds_seat(
            7,
            5,
            BeyondPaid::Nothing,
            joined,
            lowered,
            Some(START)
        ));
        // After the renewal (a period that started after the lowering): nothing.
        let renewed = Some(START + 2_592_000);
        assert!(!holds_seat(
            7,
            5,
            BeyondPaid::UntilPeriodEnd,
            joined,
            lowered,
            renewed
        ));
        assert!(holds_seat(7, 5, BeyondPaid::Keep, joined, lowered, renewed));
    }

    #[test]
    fn a_member_waiting_for_the_quantity_to_follow_keeps_the_plan() {
        // Never lowered: the quantity has not caught up with new members yet.
        for policy in [BeyondPaid::UntilPeriodEnd, BeyondPaid::Nothing] {
            assert!(holds_seat(9, 5, policy, START + 500, None, Some(START)));
            // Joined after someone lowered it, even periods ago: the outbox raises it.
            assert!(holds_seat(
                9,
                5,
                policy,
                START + 500,
                Some(START - 99_999),
                Some(START)
            ));
        }
    }
}
