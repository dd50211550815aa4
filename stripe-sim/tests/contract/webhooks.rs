//! Webhooks: signed with the endpoint's secret, parseable by async-stripe, retried with
//! back-off, logged, optionally duplicated; state survives a restart.

use std::time::Duration;

use stripe_sim::{DeliveryOptions, StripeSim};
use stripe_webhook::{EventObject, Webhook};

use crate::helpers::*;

const SECRET: &str = "whsec_contract_secret";

/// The event's object parsed as the typed variant its type names (not Unknown, not a parse failure).
pub fn assert_typed(body: &str) -> String {
    let event = Webhook::insecure(body)
        .unwrap_or_else(|e| panic!("async-stripe cannot parse the event: {e:?}\n{body}"));
    let kind = event.type_.as_str().to_string();
    if let EventObject::Unknown(_) = event.data.object {
        panic!("{kind} parsed as Unknown");
    }
    assert_eq!(
        event.api_version.as_ref().map(|v| v.as_str()),
        Some("2026-09-30.endive")
    );
    assert!(!event.livemode);
    kind
}

#[tokio::test]
async fn deliveries_are_signed_with_the_endpoints_secret_and_parse() {
    let sim = start().await;
    let hook = receiver(0).await;
    sim.sim.add_webhook_endpoint(&hook.url, SECRET);
    let cus = customer(&sim, "hooks@example.com").await;
    let got = hook
        .wait_for(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    let first = got.first().expect("a delivery");
    let header = first.signature.as_deref().expect("Stripe-Signature");
    assert!(header.starts_with("t=") && header.contains(",v1="));
    let event = Webhook::construct_event(&first.body, header, SECRET)
        .expect("async-stripe's verifier accepts it");
    match event.data.object {
        EventObject::CustomerCreated(c) => assert_eq!(c.id.as_str(), cus),
        other => panic!("expected customer.created, got {other:?}"),
    }
    let raw: serde_json::Value = serde_json::from_str(&first.body).expect("json");
    assert_eq!(raw["pending_webhooks"], 1);
    assert!(raw["request"]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("req_")));
    assert!(
        Webhook::construct_event(&first.body, header, "whsec_other").is_err(),
        "another endpoint's secret does not verify"
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_back_off() {
    let schedule = DeliveryOptions::exponential(Duration::from_millis(300), 4);
    let sim = start_with(schedule, None).await;
    let hook = receiver(2).await;
    sim.sim.add_webhook_endpoint(&hook.url, SECRET);
    customer(&sim, "retry@example.com").await;
    let got = hook
        .wait_for(Duration::from_secs(10), |r| {
            r.iter().any(|x| x.answered == 200)
        })
        .await;
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(
        got[0].body, got[2].body,
        "every attempt sends the same event"
    );
    let first_gap = got[1].at - got[0].at;
    let second_gap = got[2].at - got[1].at;
    assert!(first_gap >= Duration::from_millis(280), "{first_gap:?}");
    assert!(
        second_gap >= Duration::from_millis(580),
        "back-off doubles: {second_gap:?}"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = sim.sim.deliveries();
    let record = log
        .iter()
        .find(|d| d.event_type == "customer.created")
        .expect("logged");
    assert!(record.delivered);
    assert_eq!(record.attempts, 3);
    assert_eq!(record.last_status, Some(200));
    let (status, body) = get_json(&sim, "/_admin/deliveries").await;
    assert_eq!(status, 200);
    let logged = &body["data"][0];
    assert_eq!(logged["attempts"], 3);
    assert_eq!(logged["delivered"], true);
    assert_eq!(logged["event_type"], "customer.created");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_given_up_on() {
    let sim = start_with(
        DeliveryOptions::exponential(Duration::from_millis(50), 2),
        None,
    )
    .await;
    sim.sim
        .add_webhook_endpoint("http://127.0.0.1:9/closed", SECRET);
    customer(&sim, "down@example.com").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = sim.sim.deliveries();
    assert_eq!(log.len(), 1);
    assert!(log[0].gave_up && !log[0].delivered);
    assert_eq!(log[0].attempts, 3);
    assert!(log[0].last_error.is_some());
}

#[tokio::test]
async fn chaos_can_duplicate_every_delivery() {
    let mut options = DeliveryOptions::exponential(Duration::from_millis(50), 2);
    options.duplicate_probability = 1.0;
    options.reorder_window = Duration::from_millis(50);
    let sim = start_with(options, None).await;
    let hook = receiver(0).await;
    sim.sim.add_webhook_endpoint(&hook.url, SECRET);
    customer(&sim, "twice@example.com").await;
    let got = hook
        .wait_for(Duration::from_secs(5), |r| r.len() >= 2)
        .await;
    assert_eq!(got.len(), 2);
    let ids: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).expect("json")["id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "the same event twice");
}

#[tokio::test]
async fn every_event_of_a_full_story_parses_as_its_type() {
    let sim = start().await;
    let hook = receiver(0).await;
    sim.sim.add_webhook_endpoint(&hook.url, SECRET);
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "pro_monthly").await;
    let extra = attach(&sim, "pm_card_mastercard", &cus).await;
    stripe_payment::payment_method::DetachPaymentMethod::new(extra.as_str())
        .send(&sim.client)
        .await
        .expect("detach");
    stripe_billing::subscription::UpdateSubscription::new(sub.id.clone())
        .cancel_at_period_end(true)
        .send(&sim.client)
        .await
        .expect("update");
    stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
        .customer(&cus)
        .send(&sim.client)
        .await
        .expect("portal");
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(12 * 86_400))
        .await
        .expect("trial_will_end");
    let (_, failing) = subscribed(&sim, "pm_card_chargeCustomerFail", "starter_monthly").await;
    stripe_billing::subscription::CancelSubscription::new(failing.id.clone())
        .send(&sim.client)
        .await
        .expect("cancel");
    stripe_core::customer::DeleteCustomer::new(cus.as_str())
        .send(&sim.client)
        .await
        .expect("delete");

    let mut kinds = std::collections::BTreeSet::new();
    for event in all_events(&sim).await {
        kinds.insert(assert_typed(&event.to_string()));
    }
    for want in [
        "customer.created",
        "customer.deleted",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.trial_will_end",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "payment_method.attached",
        "payment_method.detached",
        "billing_portal.session.created",
        "product.created",
        "price.created",
    ] {
        assert!(kinds.contains(want), "no {want} among {kinds:?}");
    }
    // The deliveries themselves (not only the stored events) parse too.
    let got = hook
        .wait_for(Duration::from_secs(5), |r| r.len() >= 20)
        .await;
    for r in &got {
        assert_typed(&r.body);
    }
    let updated = events_of(&sim, "customer.subscription.updated").await;
    let cancel = updated
        .iter()
        .find(|e| {
            e["data"]["previous_attributes"]
                .get("cancel_at_period_end")
                .is_some()
        })
        .expect("an update with previous_attributes");
    assert_eq!(
        cancel["data"]["previous_attributes"]["cancel_at_period_end"],
        false
    );
}

#[tokio::test]
async fn trigger_sends_a_signed_sample_of_each_type() {
    let hook = receiver(0).await;
    for kind in stripe_sim::trigger_event_types() {
        let status = stripe_sim::trigger(kind, &hook.url, SECRET)
            .await
            .expect("trigger");
        assert_eq!(status, 200);
    }
    let got = hook.all();
    assert_eq!(got.len(), stripe_sim::trigger_event_types().len());
    for r in &got {
        let header = r.signature.as_deref().expect("signed");
        Webhook::construct_event(&r.body, header, SECRET).expect("verifies");
        assert_typed(&r.body);
    }
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stripe-sim.json");
    let sim = start_with(DeliveryOptions::default(), Some(file.clone())).await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "team_yearly").await;
    let price_before = price(&sim, "team_yearly").await;
    drop(sim);
    assert!(file.exists());

    let again = start_with(DeliveryOptions::default(), Some(file.clone())).await;
    assert_eq!(
        price(&again, "team_yearly").await,
        price_before,
        "the catalogue is not re-seeded"
    );
    let found = stripe_billing::subscription::RetrieveSubscription::new(sub.id.clone())
        .send(&again.client)
        .await
        .expect("retrieve");
    assert_eq!(found.customer.id().as_str(), cus);

    std::fs::write(&file, b"{not json").expect("corrupt");
    let opened = StripeSim::open(stripe_sim::SimOptions {
        public_base: "http://127.0.0.1:1".into(),
        state_file: Some(file),
        delivery: DeliveryOptions::default(),
        seed: true,
    })
    .await;
    assert!(
        opened.is_err(),
        "a corrupt state file stops the double instead of being overwritten"
    );
}
