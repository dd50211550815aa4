//! A customer's active entitlements (Stripe's Entitlements): the lookup keys of the features
//! Stripe says the customer has, one row per customer, ordered like every other object (by
//! the event's second; a same-second tie decided by the API's copy, re-fetched). Read from
//! the object by hand (an `entitlements.active_entitlement_summary.updated` event's, or
//! `GET /v1/entitlements/active_entitlements`): only the lookup keys matter here.

use miniserde::json::Value;
use sea_orm::{sea_query::Expr, ActiveValue::Set, ConnectionTrait};

use super::{
    again_on_tie, decide_or_refetch,
    write::{newer_than, upsert_guarded, watermark_of},
    Applied, Fetched, Plan, Source, SyncError,
};
use crate::db::{clock::now, entities::customer_entitlement};

/// What Stripe says a customer is entitled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementFacts {
    pub customer: String,
    pub livemode: bool,
    /// The features' lookup keys, sorted.
    pub lookup_keys: Vec<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The lookup keys of a list of `entitlements.active_entitlement` objects.
fn keys_of(data: &[Value]) -> Option<Vec<String>> {
    let mut keys = data
        .iter()
        .map(|e| match e {
            Value::Object(e) => text(e.get("lookup_key")),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()?;
    keys.sort();
    keys.dedup();
    Some(keys)
}

impl EntitlementFacts {
    /// Reads an `entitlements.active_entitlement_summary` object.
    pub fn read(object: &Value) -> Option<EntitlementFacts> {
        let Value::Object(map) = object else {
            return None;
        };
        let customer = text(map.get("customer"))?;
        let Some(Value::Object(list)) = map.get("entitlements") else {
            return None;
        };
        let Some(Value::Array(data)) = list.get("data") else {
            return None;
        };
        // A summary lists them all in one page; a longer list is read through the API.
        if matches!(list.get("has_more"), Some(Value::Bool(true))) {
            return None;
        }
        Some(EntitlementFacts {
            customer,
            livemode: matches!(map.get("livemode"), Some(Value::Bool(true))),
            lookup_keys: keys_of(data)?,
        })
    }

    /// `GET /v1/entitlements/active_entitlements?customer=…`, page by page.
    pub async fn retrieve(
        stripe: &::stripe::Client,
        customer: &str,
    ) -> Result<EntitlementFacts, ::stripe::StripeError> {
        let all = super::raw_list::list_for_customer(
            stripe,
            "/entitlements/active_entitlements",
            customer,
            unreadable,
        )
        .await?;
        let livemode = all.iter().any(|e| {
            matches!(e, Value::Object(e) if matches!(e.get("livemode"), Some(Value::Bool(true))))
        });
        Ok(EntitlementFacts {
            customer: customer.to_owned(),
            livemode,
            lookup_keys: keys_of(&all).ok_or_else(unreadable)?,
        })
    }
}

fn unreadable() -> ::stripe::StripeError {
    ::stripe::StripeError::JSONDeserialize("an active entitlement without a lookup key".into())
}

/// Writes a customer's entitlements, ordered by the event's second (a tie re-fetched).
pub async fn apply_entitlements(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    facts: &EntitlementFacts,
    source: Source,
) -> Result<Applied, SyncError> {
    use customer_entitlement::Column as C;
    let id = facts.customer.as_str();
    again_on_tie(
        source,
        || apply_once(conn, fetched, facts, source),
        || watermark_of::<customer_entitlement::Entity>(conn, id, C::StripeEventAt),
    )
    .await
}

async fn apply_once(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    facts: &EntitlementFacts,
    source: Source,
) -> Result<Applied, SyncError> {
    use customer_entitlement::Column as C;
    let id = facts.customer.as_str();
    let watermark =
        watermark_of::<customer_entitlement::Entity>(conn, id, C::StripeEventAt).await?;
    let refetch = |after| fetched.entitlements(id, after);
    let (source, refetched) = match decide_or_refetch(watermark, source, refetch)? {
        Plan::Stale => return Ok(Applied::Stale),
        Plan::Write { source, fetched } => (source, fetched),
    };
    let facts = refetched.as_ref().unwrap_or(facts);
    let row = customer_entitlement::ActiveModel {
        customer_id: Set(facts.customer.clone()),
        lookup_keys: Set(facts.lookup_keys.join("\n")),
        livemode: Set(facts.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let guard = newer_than(
        Expr::col((customer_entitlement::Entity, C::StripeEventAt)),
        source,
    );
    Ok(upsert_guarded(
        conn,
        row,
        [C::LookupKeys, C::StripeEventAt, C::UpdatedAt],
        guard,
    )
    .await?)
}
