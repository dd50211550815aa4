//! Replaced Checkout sessions Stripe did not expire when they were replaced: each cycle tries
//! again, until Stripe has expired them (or they were paid, or Stripe no longer has them),
//! so a replaced session never stays payable for long.

use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Report;
use crate::{
    billing::{
        checkout::{expire_checkout_session, CheckoutEnd},
        sync,
    },
    db::{clock::now, entities::checkout_expiry},
    state::AppState,
};

/// A session remembered this recently with no failed attempt is still being expired by the
/// request that replaced it.
const IN_FLIGHT_SECS: i64 = 60;
/// The most sessions one cycle tries.
const PER_CYCLE: u64 = 100;

/// Tries every replaced session that is due once more, and counts what came of it.
pub(super) async fn expire_replaced(state: &AppState, report: &mut Report) -> Result<(), DbErr> {
    use checkout_expiry::Column as C;
    let due = checkout_expiry::Entity::find()
        .filter(
            Condition::any()
                .add(C::Attempts.gt(0))
                .add(C::CreatedAt.lte(now() - IN_FLIGHT_SECS)),
        )
        .order_by_asc(C::CreatedAt)
        .limit(PER_CYCLE)
        .all(&state.db)
        .await?;
    for row in due {
        match expire_checkout_session(&state.stripe, &row.session_id).await {
            Ok(end) => {
                if end == CheckoutEnd::Completed {
                    tracing::warn!(
                        session = %row.session_id,
                        customer = %row.customer_id,
                        "a replaced Checkout session was paid before it could be expired"
                    );
                } else {
                    report.checkouts_expired += 1;
                }
                sync::checkout_expiry_done(&state.db, &row.session_id).await?;
            }
            Err(e) => {
                tracing::warn!(
                    session = %row.session_id,
                    customer = %row.customer_id,
                    attempts = row.attempts + 1,
                    error = %e,
                    "reconcile: Stripe would not expire a replaced Checkout session"
                );
                sync::checkout_expiry_failed(
                    &state.db,
                    &row.session_id,
                    &row.customer_id,
                    &e.to_string(),
                )
                .await?;
                report.checkouts_not_expired += 1;
            }
        }
    }
    Ok(())
}
