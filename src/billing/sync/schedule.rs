//! Subscription schedules: the switch a schedule has planned (a downgrade waiting for the
//! period's end), so the page can say "Switches to Starter on …". Only what the page needs
//! is kept, read from the event's object by hand: a schedule's shape varies by API version
//! and nothing else depends on it.

use sea_orm::{sea_query::Expr, ActiveValue::Set, ConnectionTrait, ExprTrait};

use super::{write::upsert_guarded, Applied, Source, SyncError};
use crate::db::{clock::now, entities::subscription_schedule};

/// The facts of a schedule the page needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleFacts {
    pub id: String,
    pub subscription_id: Option<String>,
    pub status: String,
    /// The price of the phase after the current one, and when it starts.
    pub next: Option<(String, i64)>,
}

/// Writes a schedule's planned switch. Ordered by the event's second; within one second the
/// later delivery wins (schedules are not re-fetched, and their events come in bursts within
/// a second: created, then updated).
pub async fn apply_schedule(
    conn: &impl ConnectionTrait,
    facts: &ScheduleFacts,
    source: Source,
) -> Result<Applied, SyncError> {
    use subscription_schedule::Column as C;
    let row = subscription_schedule::ActiveModel {
        id: Set(facts.id.clone()),
        subscription_id: Set(facts.subscription_id.clone()),
        status: Set(facts.status.clone()),
        next_price_id: Set(facts.next.as_ref().map(|(p, _)| p.clone())),
        switch_at: Set(facts.next.as_ref().map(|(_, at)| *at)),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let watermark = Expr::col((subscription_schedule::Entity, C::StripeEventAt));
    let guard = watermark.clone().is_null().or(watermark.lte(source.at()));
    Ok(upsert_guarded(
        conn,
        row,
        [
            C::SubscriptionId,
            C::Status,
            C::NextPriceId,
            C::SwitchAt,
            C::StripeEventAt,
            C::UpdatedAt,
        ],
        guard,
    )
    .await?)
}
