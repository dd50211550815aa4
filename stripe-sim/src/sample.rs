//! Sample events for `trigger`: a short customer story played through the double's
//! own API in memory, so every sample is an event the double would really send.

use anyhow::{anyhow, Context};
use axum::http::Method;

use super::{api, cards, clock, form, model::State};

/// The event types `trigger` can produce.
pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
    "payment_method.detached",
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.marked_uncollectible",
    "billing_portal.session.created",
    "product.created",
    "price.created",
];

fn call(
    st: &mut State,
    method: Method,
    path: &str,
    body: &str,
) -> anyhow::Result<serde_json::Value> {
    let form = form::parse(body).map_err(|e| anyhow!("{e}"))?;
    api::route(st, &method, path, &form).map_err(|e| anyhow!("{path}: {}", e.message))
}

fn id(v: &serde_json::Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the response has no id"))
}

fn story(st: &mut State) -> anyhow::Result<()> {
    let starter = st
        .prices
        .iter()
        .find(|p| p.lookup_key.as_deref() == Some("starter_monthly"))
        .map(|p| p.id.clone())
        .context("seeded Starter price")?;
    let customer = id(&call(
        st,
        Method::POST,
        "/v1/customers",
        "email=jenny.rosen%40example.com&name=Jenny+Rosen&metadata[user_id]=42",
    )?)?;
    call(
        st,
        Method::POST,
        &format!("/v1/customers/{customer}"),
        "name=Jenny+R.+Rosen",
    )?;
    let pm = id(&call(
        st,
        Method::POST,
        "/v1/payment_methods/pm_card_visa/attach",
        &format!("customer={customer}"),
    )?)?;
    call(
        st,
        Method::POST,
        &format!("/v1/customers/{customer}"),
        &format!("invoice_settings[default_payment_method]={pm}"),
    )?;
    let session = id(&call(
        st,
        Method::POST,
        "/v1/checkout/sessions",
        &format!(
            "mode=subscription&customer={customer}&line_items[0][price]={starter}&line_items[0][quantity]=1\
             &success_url=https://example.com/ok&client_reference_id=42"
        ),
    )?)?;
    let card = cards::by_token("pm_card_visa").context("test card")?;
    st.complete_checkout(&session, card, (12, 2034), "Jenny Rosen", None)
        .map_err(|d| anyhow!(d.message))?;
    let sub = st
        .subscriptions
        .last()
        .map(|s| s.id.clone())
        .context("a subscription")?;
    call(
        st,
        Method::POST,
        &format!("/v1/subscriptions/{sub}"),
        "cancel_at_period_end=true",
    )?;
    call(
        st,
        Method::POST,
        "/v1/billing_portal/sessions",
        &format!("customer={customer}&return_url=https://example.com/account"),
    )?;

    // A short trial on a card that fails: trial_will_end at once, then a failed renewal.
    let risky = id(&call(
        st,
        Method::POST,
        "/v1/customers",
        "email=risky%40example.com",
    )?)?;
    let failing = id(&call(
        st,
        Method::POST,
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
        &format!("customer={risky}"),
    )?)?;
    call(
        st,
        Method::POST,
        "/v1/subscriptions",
        &format!("customer={risky}&items[0][price]={starter}&default_payment_method={failing}&trial_period_days=2"),
    )?;
    st.advance_clock(&risky, 40 * clock::DAY)
        .map_err(|e| anyhow!(e.message))?;
    call(
        st,
        Method::POST,
        &format!("/v1/payment_methods/{failing}/detach"),
        "",
    )?;
    call(st, Method::DELETE, &format!("/v1/customers/{customer}"), "")?;
    Ok(())
}

/// The JSON body of a fresh sample event of this type, dated now.
pub fn event_payload(event_type: &str) -> anyhow::Result<String> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(anyhow!(
            "no sample for `{event_type}`; these can be triggered: {}",
            EVENT_TYPES.join(", ")
        ));
    }
    let mut st = State::default();
    st.env.public_base = "http://127.0.0.1:12111".into();
    st.seed();
    story(&mut st)?;
    let event = st
        .events
        .iter()
        .rev()
        .find(|e| e.type_ == event_type)
        .ok_or_else(|| anyhow!("the sample story produced no `{event_type}` event"))?;
    let mut json = event.json.clone();
    json["created"] = serde_json::json!(clock::now());
    json["pending_webhooks"] = serde_json::json!(1);
    Ok(serde_json::to_string_pretty(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_has_a_sample() {
        for t in EVENT_TYPES {
            let payload = event_payload(t).unwrap_or_else(|e| panic!("{t}: {e:#}"));
            let v: serde_json::Value = serde_json::from_str(&payload).expect("json");
            assert_eq!(v["type"], *t);
            assert_eq!(v["api_version"], crate::API_VERSION);
        }
        assert!(event_payload("charge.dispute.created").is_err());
    }
}
