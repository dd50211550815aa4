//! Subscription schedules: the switch a schedule has planned (a downgrade waiting for the
//! period's end), so the page can say "Switches to Starter on …". Only what the page needs
//! is kept, read from the object by hand (an event's, or the API's): a schedule's shape
//! varies by API version and nothing else depends on it.

use miniserde::json::{Number, Value};
use sea_orm::{sea_query::Expr, ActiveValue::Set, ConnectionTrait};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{
    again_on_tie, decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Fetched, Plan, Source, SyncError,
};
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

fn as_i64(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Number(Number::U64(n))) => i64::try_from(*n).ok(),
        Some(Value::Number(Number::I64(n))) => Some(*n),
        _ => None,
    }
}

/// A string, or the id of an expanded object.
fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => match o.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

impl ScheduleFacts {
    /// Reads what the page needs of a schedule object (an event's, or the API's), by hand:
    /// its id, subscription, status, and the phase after the current one.
    pub fn read(object: &Value) -> Option<ScheduleFacts> {
        let Value::Object(map) = object else {
            return None;
        };
        let id = text(map.get("id"))?;
        let status = text(map.get("status"))?;
        let subscription = text(map.get("subscription"));
        let current_end = match map.get("current_phase") {
            Some(Value::Object(p)) => as_i64(p.get("end_date")),
            _ => None,
        };
        let next = match (current_end, map.get("phases")) {
            (Some(end), Some(Value::Array(phases))) => phases.iter().find_map(|phase| {
                let Value::Object(phase) = phase else {
                    return None;
                };
                let start = as_i64(phase.get("start_date"))?;
                if start < end {
                    return None;
                }
                let price = match phase.get("items") {
                    Some(Value::Array(items)) => match items.first() {
                        Some(Value::Object(item)) => text(item.get("price")),
                        _ => None,
                    },
                    _ => None,
                }?;
                Some((price, start))
            }),
            _ => None,
        };
        Some(ScheduleFacts {
            id,
            subscription_id: subscription,
            status,
            next,
        })
    }

    /// `GET /v1/subscription_schedules/{id}`, read like an event's object.
    pub async fn retrieve(
        stripe: &::stripe::Client,
        id: &str,
    ) -> Result<ScheduleFacts, ::stripe::StripeError> {
        let object: Value =
            RequestBuilder::new(StripeMethod::Get, format!("/subscription_schedules/{id}"))
                .customize::<Value>()
                .send(stripe)
                .await?;
        ScheduleFacts::read(&object).ok_or_else(unreadable)
    }

    /// Every schedule of a customer (`GET /v1/subscription_schedules?customer=…`), page by page.
    pub async fn list(
        stripe: &::stripe::Client,
        customer: &str,
    ) -> Result<Vec<ScheduleFacts>, ::stripe::StripeError> {
        super::raw_list::list_for_customer(stripe, "/subscription_schedules", customer, unreadable)
            .await?
            .iter()
            .map(|object| ScheduleFacts::read(object).ok_or_else(unreadable))
            .collect()
    }
}

fn unreadable() -> ::stripe::StripeError {
    ::stripe::StripeError::JSONDeserialize("a subscription schedule without an id or status".into())
}

/// Writes a schedule's planned switch, ordered like every other object: by the event's
/// second, and a same-second tie is decided by the API's copy (re-fetched).
pub async fn apply_schedule(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    facts: &ScheduleFacts,
    source: Source,
) -> Result<Applied, SyncError> {
    use subscription_schedule::Column as C;
    let id = facts.id.as_str();
    again_on_tie(
        source,
        || apply_once(conn, fetched, facts, source),
        || watermark_of::<subscription_schedule::Entity>(conn, id, C::StripeEventAt),
    )
    .await
}

async fn apply_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    facts: &ScheduleFacts,
    source: Source,
) -> Result<Applied, SyncError> {
    use subscription_schedule::Column as C;
    let id = facts.id.as_str();
    let watermark =
        watermark_of::<subscription_schedule::Entity>(conn, id, C::StripeEventAt).await?;
    let refetch = |after| fetched.schedule(id, after);
    let (source, fetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let facts = fetched.as_ref().unwrap_or(facts);
    let row = subscription_schedule::ActiveModel {
        id: Set(facts.id.clone()),
        subscription_id: Set(facts.subscription_id.clone()),
        status: Set(facts.status.clone()),
        next_price_id: Set(facts.next.as_ref().map(|(p, _)| p.clone())),
        switch_at: Set(facts.next.as_ref().map(|(_, at)| *at)),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let guard = newer_than(
        Expr::col((subscription_schedule::Entity, C::StripeEventAt)),
        source,
    );
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
