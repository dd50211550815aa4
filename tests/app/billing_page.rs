//! The billing page tells each state in words: no plan, a trial, renewing, cancelling,
//! payment trouble, ended, the card and the invoices; and, through the double's test clock, the
//! dunning banner's attempts, next try and deadline until Stripe stops retrying.

use billfold::db::entities::{invoice, payment_method};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::support::{
    app::{Backend, TestApp},
    billing::{
        a_subscription, now, page_for, page_saying, sign_up_with_customer, subscribe_in_stripe, DAY,
    },
    stripe_stand_in::StripeStandIn,
};

async fn the_page_tells_each_state_in_words(backend: Backend) {
    let stripe = StripeStandIn::start().await;
    let app = stripe.app(backend, &[]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let end = 1_893_456_000; // 1 Jan 2030
    let when = "1 Jan 2030 (UTC)";

    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("No active subscription"));
    assert!(html.contains("Choose a plan"));

    let mut trial = a_subscription("trialing", end);
    trial.trial_end = Set(Some(end));
    let html = page_for(&app, &customer, trial).await;
    assert!(html.contains("Free Trial"), "{html}");
    assert!(html.contains(&format!("Trial ends on {when}")));

    let html = page_for(&app, &customer, a_subscription("active", end)).await;
    assert!(html.contains(&format!("Renews on {when}")));
    assert!(html.contains("$29.00 / month"));
    assert!(html.contains("Manage Billing"));

    let mut cancelling = a_subscription("active", end);
    cancelling.cancel_at_period_end = Set(true);
    let html = page_for(&app, &customer, cancelling).await;
    assert!(html.contains(&format!("Cancels on {when}")));
    assert!(html.contains("Resume plan"));

    let mut cancel_at = a_subscription("active", end + 30 * DAY);
    cancel_at.cancel_at = Set(Some(end));
    let html = page_for(&app, &customer, cancel_at).await;
    assert!(
        html.contains(&format!("Cancels on {when}")),
        "cancel_at counts too"
    );

    invoice::Entity::insert(invoice::ActiveModel {
        id: Set("in_open".into()),
        customer_id: Set(customer.clone()),
        subscription_id: Set(Some("sub_page_test".into())),
        status: Set("open".into()),
        amount_due: Set(2900),
        amount_paid: Set(0),
        currency: Set("usd".into()),
        hosted_invoice_url: Set(Some("https://invoice.example/in_open".into())),
        period_start: Set(None),
        period_end: Set(None),
        created: Set(end - DAY),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
        attempt_count: Set(1),
        next_payment_attempt: Set(Some(now() + 3 * DAY)),
        finalized_at: Set(Some(end - DAY)),
    })
    .exec(&app.db)
    .await
    .expect("invoice");
    let html = page_for(&app, &customer, a_subscription("past_due", end)).await;
    assert!(html.contains("Your last payment failed"));
    assert!(html.contains("https://invoice.example/in_open"));
    assert!(html.contains("Update payment method"));

    let mut ended = a_subscription("canceled", end);
    ended.ended_at = Set(Some(end));
    let html = page_for(&app, &customer, ended).await;
    assert!(html.contains(&format!("Your plan ended on {when}")));
    assert!(html.contains("Choose a plan"));

    payment_method::Entity::insert(payment_method::ActiveModel {
        id: Set("pm_page".into()),
        customer_id: Set(Some(customer.clone())),
        brand: Set(Some("visa".into())),
        last4: Set(Some("4242".into())),
        exp_month: Set(Some(12)),
        exp_year: Set(Some(2030)),
        is_default: Set(true),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
    })
    .exec(&app.db)
    .await
    .expect("card");
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("Visa •••• 4242, expires 12/2030"));
    assert!(html.contains("$29.00"), "the invoice amount");

    // The access page agrees with the rules.
    let html = app.get("/app").await.text().await.expect("html");
    assert!(html.contains("Pro reports: locked"));
    page_for(&app, &customer, a_subscription("active", now() + 10 * DAY)).await;
    let html = app.get("/app").await.text().await.expect("html");
    assert!(html.contains("Pro reports: unlocked"));
    app.stop().await;
}

/// The open invoice of a customer as the double has it: (attempt_count, next_payment_attempt).
async fn open_invoice_in_stripe(
    stripe: &stripe::Client,
    customer: &str,
) -> Option<(u64, Option<i64>)> {
    let invoices = stripe_billing::invoice::ListInvoice::new()
        .customer(customer)
        .status(stripe_shared::InvoiceStatus::Open)
        .send(stripe)
        .await
        .expect("invoices");
    invoices
        .data
        .first()
        .map(|i| (i.attempt_count, i.next_payment_attempt))
}

/// Dunning through the double's test clock: a renewal fails on a card that declines, and
/// after each failed attempt the banner's count and next-try date are the invoice's; after
/// the last one it says retries have stopped and offers a new plan. `/app` tells the same.
async fn the_dunning_banner_tells_attempts_and_dates(backend: Backend) {
    use stripe_billing::subscription::UpdateSubscription;
    use stripe_payment::payment_method::AttachPaymentMethod;
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "20d")]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let sub = subscribe_in_stripe(&stripe, &customer, 900).await;
    let failing = AttachPaymentMethod::new("pm_card_chargeCustomerFail")
        .customer(customer.as_str())
        .send(&stripe)
        .await
        .expect("attach");
    UpdateSubscription::new(sub.as_str())
        .default_payment_method(failing.id.to_string())
        .send(&stripe)
        .await
        .expect("switch to the failing card");
    let sim = app.state.sim.clone().expect("the mounted double");

    // The renewal, then the double's three retries (3, 5 and 7 days apart).
    let mut first_failure = None;
    for (attempt, days) in [(1, 32), (2, 3), (3, 5)] {
        sim.advance_customer_clock(&customer, std::time::Duration::from_secs(days * 86_400))
            .await
            .expect("advance the clock");
        let (count, next) = open_invoice_in_stripe(&stripe, &customer)
            .await
            .expect("an open invoice");
        assert_eq!(count, attempt);
        let next = next.expect("another try is scheduled");
        let tries = if attempt == 1 {
            "We tried to charge your card once.".to_owned()
        } else {
            format!("We tried to charge your card {attempt} times.")
        };
        let html = page_saying(&app, &tries).await;
        assert!(html.contains("Your last payment failed"), "{attempt}");
        let next_try = format!(
            "Next try: {}.",
            billfold::billing::summary::format_date(next)
        );
        assert!(html.contains(&next_try), "attempt {attempt}: {next_try}");
        // The grace runs from the invoice's finalization: read once `invoice.finalized` is
        // applied (its delivery may trail the failed attempt's on a loaded machine).
        let mut finalized_at = None;
        let mut patience =
            crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
        while patience.another_try().await {
            finalized_at = billfold::db::entities::invoice::Entity::find()
                .filter(billfold::db::entities::invoice::Column::Status.eq("open"))
                .one(&app.db)
                .await
                .expect("query")
                .and_then(|row| row.finalized_at);
            if finalized_at.is_some() {
                break;
            }
        }
        let failed_at = *first_failure
            .get_or_insert(finalized_at.expect("the open invoice's finalization applied"));
        let ends = billfold::billing::summary::format_date(failed_at + 20 * DAY);
        page_saying(
            &app,
            &format!("Your access ends on {ends} unless the payment goes through."),
        )
        .await;
        // The same deadline on /app (read a bounded while: on a loaded machine the retry's
        // last events may still be on their way when the billing page first says it).
        let deadline = format!("access ends on {ends}");
        let mut app_page = String::new();
        let mut patience =
            crate::support::patience::Patience::every(std::time::Duration::from_millis(50));
        while patience.another_try().await {
            app_page = app.get("/app").await.text().await.expect("html");
            if app_page.contains(&deadline) {
                break;
            }
        }
        assert!(
            app_page.contains(&deadline),
            "/app tells the deadline, attempt {attempt}"
        );
        assert!(
            app_page.contains("Pro reports: unlocked"),
            "still within the grace period"
        );
    }
    let html = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("data-severity=\"warning\""),
        "three tries: warning"
    );

    // The last retry fails too: Stripe stops and the plan ends.
    sim.advance_customer_clock(&customer, std::time::Duration::from_secs(7 * 86_400))
        .await
        .expect("advance the clock");
    page_saying(&app, "retries have stopped").await;
    // Once the plan's own end has arrived too, a new plan is offered beside the banner.
    let html = page_saying(&app, "Choose a plan").await;
    assert!(html.contains("Stripe has stopped retrying"));
    assert!(html.contains("data-severity=\"critical\""));
    let app_page = app.get("/app").await.text().await.expect("html");
    assert!(app_page.contains("Pro reports: locked"));
    app.stop().await;
}

crate::support::on_both_databases!(
    the_page_tells_each_state_in_words,
    the_dunning_banner_tells_attempts_and_dates,
);
