//! The test clock: renewals, failed renewals and dunning, trial ends.

use std::time::Duration;

use stripe_billing::{invoice::ListInvoice, subscription::UpdateSubscription};
use stripe_shared::{InvoiceStatus, SubscriptionStatus};

use crate::helpers::*;

const DAY: u64 = 86_400;

#[tokio::test]
async fn a_renewal_with_a_good_card_is_paid() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let first_end = sub.items.data[0].current_period_end;
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(32 * DAY))
        .await
        .expect("advance");
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(
        s.items.data[0].current_period_start, first_end,
        "the next period starts where the last ended"
    );
    let invoices = ListInvoice::new()
        .subscription(sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data.len(), 2);
    assert!(invoices
        .data
        .iter()
        .all(|i| i.status == Some(InvoiceStatus::Paid)));
    assert_eq!(
        invoices.data[0].billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_cycle")
    );
    assert_eq!(events_of(&sim, "invoice.paid").await.len(), 2);
}

#[tokio::test]
async fn a_failing_card_makes_the_renewal_past_due_then_dunning_cancels() {
    let sim = start().await;
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let failing = attach(&sim, "pm_card_chargeCustomerFail", &cus).await;
    UpdateSubscription::new(sub.id.clone())
        .default_payment_method(&failing)
        .send(&sim.client)
        .await
        .expect("switch card");

    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(32 * DAY))
        .await
        .expect("advance");
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::PastDue);
    let open = ListInvoice::new()
        .subscription(sub.id.as_str())
        .status(InvoiceStatus::Open)
        .send(&sim.client)
        .await
        .expect("open");
    assert_eq!(open.data.len(), 1);
    assert!(
        open.data[0].next_payment_attempt.is_some(),
        "a retry is scheduled"
    );
    let failed = events_of(&sim, "invoice.payment_failed").await;
    assert_eq!(failed.len(), 1);
    crate::webhooks::assert_typed(&failed[0].to_string());

    // Three more attempts over about two weeks, then the subscription is canceled.
    sim.sim
        .advance_customer_clock(&cus, Duration::from_secs(16 * DAY))
        .await
        .expect("advance");
    let s = retrieve_subscription(&sim, &sub.id).await;
    assert_eq!(s.status, SubscriptionStatus::Canceled);
    assert_eq!(
        s.cancellation_details
            .and_then(|d| d.reason)
            .map(|r| r.as_str().to_string())
            .as_deref(),
        Some("payment_failed")
    );
    assert_eq!(events_of(&sim, "invoice.payment_failed").await.len(), 4);
    let uncollectible = ListInvoice::new()
        .status(InvoiceStatus::Uncollectible)
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(uncollectible.data.len(), 1);
    assert_eq!(
        events_of(&sim, "customer.subscription.deleted").await.len(),
        1
    );
}

#[tokio::test]
async fn dunning_can_leave_the_subscription_unpaid_via_the_admin_endpoints() {
    let sim = start().await;
    let (status, _) = post_form(&sim, "/_admin/settings", "retries_exhausted=mark_unpaid").await;
    assert_eq!(status, 200);
    let (cus, sub) = subscribed(&sim, "pm_card_visa", "starter_monthly").await;
    let failing = attach(&sim, "pm_card_chargeCustomerFail", &cus).await;
    UpdateSubscription::new(sub.id.clone())
        .default_payment_method(&failing)
        .send(&sim.client)
        .await
        .expect("switch card");
    let (status, body) =
        post_form(&sim, &format!("/_admin/customers/{cus}/advance"), "days=50").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        retrieve_subscription(&sim, &sub.id).await.status,
        SubscriptionStatus::Unpaid
    );
    let (status, body) = post_form(&sim, "/_admin/customers/cus_nobody/advance", "days=1").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["param"], "customer");
}

#[tokio::test]
async fn a_trial_ends_into_active_or_past_due() {
    let sim = start().await;
    let (good, good_sub) = subscribed(&sim, "pm_card_visa", "pro_monthly").await;
    let (bad, bad_sub) = subscribed(&sim, "pm_card_chargeCustomerFail", "pro_monthly").await;
    assert_eq!(good_sub.status, SubscriptionStatus::Trialing);
    assert_eq!(bad_sub.status, SubscriptionStatus::Trialing);
    for cus in [&good, &bad] {
        sim.sim
            .advance_customer_clock(cus, Duration::from_secs(12 * DAY))
            .await
            .expect("advance");
    }
    assert_eq!(
        events_of(&sim, "customer.subscription.trial_will_end")
            .await
            .len(),
        2
    );
    for cus in [&good, &bad] {
        sim.sim
            .advance_customer_clock(cus, Duration::from_secs(3 * DAY))
            .await
            .expect("advance");
    }
    let good_now = retrieve_subscription(&sim, &good_sub.id).await;
    assert_eq!(good_now.status, SubscriptionStatus::Active);
    let paid = ListInvoice::new()
        .subscription(good_sub.id.as_str())
        .send(&sim.client)
        .await
        .expect("invoices");
    assert_eq!(paid.data[0].amount_paid, 2900);
    assert_eq!(
        retrieve_subscription(&sim, &bad_sub.id).await.status,
        SubscriptionStatus::PastDue
    );
}
