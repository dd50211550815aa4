//! The Test Clocks API as Stripe documents it, through async-stripe's own requests: a clock
//! frozen in time, customers living on it, advancing it (`advancing`, then `ready`) runs what
//! falls due in time order with events stamped in the clock's time, and deleting it deletes
//! its customers.

use stripe_billing::{
    invoice::ListInvoice,
    subscription::{CreateSubscription, CreateSubscriptionItems},
    test_helpers_test_clock::{
        AdvanceTestHelpersTestClock, CreateTestHelpersTestClock, DeleteTestHelpersTestClock,
        ListTestHelpersTestClock, RetrieveTestHelpersTestClock,
    },
};
use stripe_shared::{
    InvoiceStatus, SubscriptionStatus, TestHelpersTestClock, TestHelpersTestClockStatus,
};

use crate::helpers::*;

const DAY: i64 = 86_400;
/// 2030-01-01T00:00:00Z: a clock far from the real now, so nothing lines up by chance.
const T0: i64 = 1_893_456_000;

async fn clock_at(sim: &Sim, at: i64) -> TestHelpersTestClock {
    CreateTestHelpersTestClock::new(at)
        .name("contract")
        .send(&sim.client)
        .await
        .expect("create a test clock")
}

/// A customer on `clock` with `card` attached as their default.
async fn customer_on(sim: &Sim, clock: &TestHelpersTestClock, card: &str) -> (String, String) {
    let (status, c) = post_form(
        sim,
        "/v1/customers",
        &format!("email=clock%40example.com&test_clock={}", clock.id),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    let customer = c["id"].as_str().expect("id").to_owned();
    let pm = attach(sim, card, &customer).await;
    (customer, pm)
}

async fn subscribe(
    sim: &Sim,
    customer: &str,
    pm: &str,
    lookup_key: &str,
) -> stripe_shared::Subscription {
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price(sim, lookup_key).await);
    CreateSubscription::new()
        .customer(customer)
        .items(vec![item])
        .default_payment_method(pm)
        .send(&sim.client)
        .await
        .expect("create subscription")
}

async fn advance(sim: &Sim, clock: &TestHelpersTestClock, to: i64) -> TestHelpersTestClock {
    let answered = AdvanceTestHelpersTestClock::new(clock.id.clone(), to)
        .send(&sim.client)
        .await
        .expect("advance");
    assert_eq!(answered.status, TestHelpersTestClockStatus::Advancing);
    // Poll as Stripe's docs say, until the clock is ready.
    for _ in 0..50 {
        let now = RetrieveTestHelpersTestClock::new(clock.id.clone())
            .send(&sim.client)
            .await
            .expect("retrieve");
        if now.status == TestHelpersTestClockStatus::Ready {
            assert_eq!(now.frozen_time, to);
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the clock never became ready");
}

#[tokio::test]
async fn a_clock_freezes_its_customers_and_a_renewal_happens_when_it_passes() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    assert_eq!(clock.frozen_time, T0);
    assert_eq!(clock.status, TestHelpersTestClockStatus::Ready);
    assert_eq!(clock.name.as_deref(), Some("contract"));
    let (customer, pm) = customer_on(&sim, &clock, "pm_card_visa").await;
    let (_, c) = get_json(&sim, &format!("/v1/customers/{customer}")).await;
    assert_eq!(c["test_clock"], clock.id.as_str());
    assert_eq!(c["created"], T0, "created in the clock's time");
    let sub = subscribe(&sim, &customer, &pm, "starter_monthly").await;
    assert_eq!(sub.start_date, T0);
    let first_end = sub.items.data[0].current_period_end;
    assert_eq!(
        sub.test_clock.as_ref().map(|c| c.id().to_string()),
        Some(clock.id.to_string())
    );

    // Half a month: nothing is due yet.
    advance(&sim, &clock, T0 + 15 * DAY).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.items.data[0].current_period_end, first_end);

    // A minute past the period's end: the new period has begun and its invoice is a draft
    // that says when it will be finalized, as Stripe leaves it for about an hour.
    advance(&sim, &clock, first_end + 60).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.items.data[0].current_period_start, first_end);
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data[0].status, Some(InvoiceStatus::Draft));
    assert_eq!(
        invoices.data[0].automatically_finalizes_at,
        Some(first_end + 3600)
    );
    assert!(events_of(&sim, "invoice.finalized")
        .await
        .iter()
        .all(|e| e["data"]["object"]["id"] != invoices.data[0].id.as_deref().unwrap_or("")));

    // Past the hour: finalized and paid, the events stamped when each fell due.
    advance(&sim, &clock, first_end + DAY).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.items.data[0].current_period_start, first_end);
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data.len(), 2);
    assert_eq!(invoices.data[0].status, Some(InvoiceStatus::Paid));
    assert_eq!(
        invoices.data[0].billing_reason,
        Some(stripe_shared::InvoiceBillingReason::SubscriptionCycle)
    );
    let renewal_id = invoices.data[0]
        .id
        .as_ref()
        .map(|i| i.to_string())
        .expect("an id");
    let renewal_events: Vec<_> = events_of(&sim, "invoice.paid")
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["id"] == renewal_id.as_str())
        .collect();
    assert_eq!(renewal_events.len(), 1);
    assert_eq!(
        renewal_events[0]["created"],
        first_end + 3600,
        "stamped in the clock's time, an hour after the draft"
    );
    assert_eq!(
        renewal_events[0]["data"]["object"]["automatically_finalizes_at"],
        serde_json::Value::Null,
        "only a draft says when it will be finalized"
    );
    let created: Vec<_> = events_of(&sim, "invoice.created")
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["id"] == renewal_id.as_str())
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["created"], first_end);
    let advancing = events_of(&sim, "test_helpers.test_clock.advancing").await;
    let ready = events_of(&sim, "test_helpers.test_clock.ready").await;
    assert_eq!((advancing.len(), ready.len()), (3, 3));

    // Backwards is refused, as Stripe refuses it.
    let back = AdvanceTestHelpersTestClock::new(clock.id.clone(), T0)
        .send(&sim.client)
        .await;
    assert!(back.is_err(), "a clock only moves forward");

    let listed = ListTestHelpersTestClock::new()
        .send(&sim.client)
        .await
        .expect("list");
    assert!(listed.data.iter().any(|c| c.id == clock.id));

    // Deleting the clock deletes its customers, and their subscriptions end.
    let deleted = DeleteTestHelpersTestClock::new(clock.id.clone())
        .send(&sim.client)
        .await
        .expect("delete");
    assert_eq!(deleted.id, clock.id);
    let (status, _) = get_json(&sim, &format!("/v1/test_helpers/test_clocks/{}", clock.id)).await;
    assert_eq!(status, 404);
    let (_, c) = get_json(&sim, &format!("/v1/customers/{customer}")).await;
    assert_eq!(c["deleted"], true);
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Canceled);
}

#[tokio::test]
async fn a_trial_notice_comes_three_days_before_and_the_trial_ends_on_the_clock() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (customer, pm) = customer_on(&sim, &clock, "pm_card_visa").await;
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(price(&sim, "pro_monthly").await);
    let sub = CreateSubscription::new()
        .customer(&customer)
        .items(vec![item])
        .default_payment_method(&pm)
        .trial_period_days(14u32)
        .send(&sim.client)
        .await
        .expect("trial");
    assert_eq!(sub.trial_end, Some(T0 + 14 * DAY));
    advance(&sim, &clock, T0 + 20 * DAY).await;
    let notices = events_of(&sim, "customer.subscription.trial_will_end").await;
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0]["created"],
        T0 + 11 * DAY,
        "three days before the trial ends"
    );
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.items.data[0].current_period_start, T0 + 14 * DAY);
}

#[tokio::test]
async fn an_incomplete_subscription_expires_a_day_later_on_the_clock() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (customer, pm) = customer_on(&sim, &clock, "pm_card_threeDSecure2Required").await;
    let sub = subscribe(&sim, &customer, &pm, "starter_monthly").await;
    assert_eq!(sub.status, SubscriptionStatus::Incomplete);
    advance(&sim, &clock, T0 + 22 * 3600).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(
        s.status,
        SubscriptionStatus::Incomplete,
        "not yet: 23 hours"
    );
    advance(&sim, &clock, T0 + DAY).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::IncompleteExpired);
    assert_eq!(s.ended_at, Some(T0 + 23 * 3600));
}

#[tokio::test]
async fn a_failing_renewal_is_retried_on_schedule_then_dunning_ends_it() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (customer, good) = customer_on(&sim, &clock, "pm_card_visa").await;
    let sub = subscribe(&sim, &customer, &good, "starter_monthly").await;
    let first_end = sub.items.data[0].current_period_end;
    // The card starts failing before the renewal.
    let failing = attach(&sim, "pm_card_chargeCustomerFail", &customer).await;
    let (status, _) = post_form(
        &sim,
        &format!("/v1/subscriptions/{}", sub.id),
        &format!("default_payment_method={failing}"),
    )
    .await;
    assert_eq!(status, 200);
    advance(&sim, &clock, first_end + 3600).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::PastDue);
    let failures = events_of(&sim, "invoice.payment_failed").await;
    assert_eq!(failures.len(), 1);
    // The renewal's own attempt, when its draft hour was up.
    let charged = first_end + 3600;
    assert_eq!(failures[0]["created"], charged, "the renewal's own attempt");
    let retry_at = failures[0]["data"]["object"]["next_payment_attempt"]
        .as_i64()
        .expect("a retry is scheduled");
    assert_eq!(retry_at, charged + 3 * DAY);
    // Past every retry (3, 5 and 7 days after each failure): the subscription ends.
    advance(&sim, &clock, first_end + 30 * DAY).await;
    let failures = events_of(&sim, "invoice.payment_failed").await;
    let stamps: Vec<i64> = failures
        .iter()
        .filter_map(|e| e["created"].as_i64())
        .collect();
    assert_eq!(
        stamps,
        vec![
            charged,
            charged + 3 * DAY,
            charged + 8 * DAY,
            charged + 15 * DAY
        ],
        "each retry when the schedule says, in the clock's time"
    );
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Canceled);
}

#[tokio::test]
async fn a_cancellation_at_the_period_end_happens_when_the_clock_passes_it() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (customer, pm) = customer_on(&sim, &clock, "pm_card_visa").await;
    let sub = subscribe(&sim, &customer, &pm, "starter_monthly").await;
    let end = sub.items.data[0].current_period_end;
    let (status, _) = post_form(
        &sim,
        &format!("/v1/subscriptions/{}", sub.id),
        "cancel_at_period_end=true",
    )
    .await;
    assert_eq!(status, 200);
    advance(&sim, &clock, end - 60).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Active, "not yet");
    advance(&sim, &clock, end + 60).await;
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Canceled);
    assert_eq!(s.ended_at, Some(end));
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data.len(), 1, "no renewal after a cancellation");
}

#[tokio::test]
async fn a_declined_card_is_refused_when_attached() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (status, c) = post_form(&sim, "/v1/customers", &format!("test_clock={}", clock.id)).await;
    assert_eq!(status, 200);
    let customer = c["id"].as_str().expect("id");
    let refused =
        stripe_payment::payment_method::AttachPaymentMethod::new("pm_card_chargeDeclined")
            .customer(customer)
            .send(&sim.client)
            .await
            .err();
    assert!(
        matches!(refused, Some(stripe::StripeError::Stripe(_, 402))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_renewal_draft_cannot_be_deleted_and_finalizing_it_early_charges_it() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (customer, pm) = customer_on(&sim, &clock, "pm_card_visa").await;
    let sub = subscribe(&sim, &customer, &pm, "starter_monthly").await;
    let first_end = sub.items.data[0].current_period_end;
    advance(&sim, &clock, first_end + 60).await;
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    let draft = invoices.data[0].id.as_deref().expect("an id").to_owned();
    assert_eq!(invoices.data[0].status, Some(InvoiceStatus::Draft));

    let (status, body) = delete(&sim, &format!("/v1/invoices/{draft}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("subscription")),
        "{body}"
    );

    let (status, body) = post_form(&sim, &format!("/v1/invoices/{draft}/finalize"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "paid", "{body}");
    assert_eq!(body["automatically_finalizes_at"], serde_json::Value::Null);
    // Its hour passing later does nothing more.
    advance(&sim, &clock, first_end + 2 * 3600).await;
    let paid: Vec<_> = events_of(&sim, "invoice.paid")
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["id"] == draft.as_str())
        .collect();
    assert_eq!(paid.len(), 1);
}

#[tokio::test]
async fn a_paused_subscription_resumes_with_a_new_period_billed_at_once() {
    let sim = start().await;
    let clock = clock_at(&sim, T0).await;
    let (status, c) = post_form(
        &sim,
        "/v1/customers",
        &format!("email=resume%40example.com&test_clock={}", clock.id),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    let customer = c["id"].as_str().expect("id").to_owned();
    let pro = price(&sim, "pro_monthly").await;
    let (status, sub) = post_form(
        &sim,
        "/v1/subscriptions",
        &format!(
            "customer={customer}&items[0][price]={pro}&trial_period_days=3\
             &trial_settings[end_behavior][missing_payment_method]=pause"
        ),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    let id = sub["id"].as_str().expect("id").to_owned();
    // Not paused: refused.
    let (status, err) = post_form(&sim, &format!("/v1/subscriptions/{id}/resume"), "").await;
    assert_eq!(status, 400, "{err}");
    advance(&sim, &clock, T0 + 4 * DAY).await;
    let (_, paused) = get_json(&sim, &format!("/v1/subscriptions/{id}")).await;
    assert_eq!(paused["status"], "paused");
    // Only `now` as the new anchor.
    let (status, err) = post_form(
        &sim,
        &format!("/v1/subscriptions/{id}/resume"),
        "billing_cycle_anchor=unchanged",
    )
    .await;
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &"billing_cycle_anchor".into())
    );

    let pm = attach(&sim, "pm_card_visa", &customer).await;
    let (status, _) = post_form(
        &sim,
        &format!("/v1/subscriptions/{id}"),
        &format!("default_payment_method={pm}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, resumed) = post_form(&sim, &format!("/v1/subscriptions/{id}/resume"), "").await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "active");
    assert_eq!(
        resumed["items"]["data"][0]["current_period_start"],
        T0 + 4 * DAY
    );
    let events = events_of(&sim, "customer.subscription.resumed").await;
    assert_eq!(events.len(), 1);
    crate::webhooks::assert_typed(&events[0].to_string());
    let invoices = ListInvoice::new()
        .subscription(id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data[0].status, Some(InvoiceStatus::Paid));
    assert_eq!(invoices.data[0].amount_paid, 2900);
}
