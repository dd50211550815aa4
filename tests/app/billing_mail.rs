//! Billing messages by mail, through the double's test clock and a real SMTP server: one
//! "trial ends soon" three days before a trial ends (none for a trial shortened and already
//! paid), one "payment failed" on the first failed attempt (none on the retries), one "plan
//! ended" when the retries run out; events delivered again or replayed send nothing more; the
//! payment-failed link signs the user in and opens the portal's card update, once.

use std::time::Duration;

use serde_json::Value;
use stripe_billing::subscription::{
    CreateSubscription, CreateSubscriptionItems, UpdateSubscription, UpdateSubscriptionTrialEnd,
};
use stripe_payment::payment_method::AttachPaymentMethod;

use crate::support::{
    app::{browser_client, location, set_cookies, Backend, TestApp},
    billing::{monthly_price, sign_up_with_customer, subscribe_in_stripe},
    mail_catcher::{link_to, MailCatcher},
    standalone_stripe::settled,
};

/// Waits (a bounded while) for `count` mails of `subject` to `address`.
async fn wait_for(catcher: &MailCatcher, address: &str, subject: &str, count: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        got = catcher.about(address, subject).await;
        if got.len() >= count {
            return got;
        }
    }
    panic!(
        "{} {subject:?} mail(s) to {address}, not {count}",
        got.len()
    );
}

/// Every delivery of the mounted double in, then two polls of the sender.
async fn quiet(app: &TestApp) {
    settled(app.state.sim.as_ref().expect("the mounted double")).await;
    tokio::time::sleep(billfold::mail::sender::POLL * 2).await;
}

async fn advance(app: &TestApp, customer: &str, days: u64) {
    app.state
        .sim
        .as_ref()
        .expect("the mounted double")
        .advance_customer_clock(customer, Duration::from_secs(days * 86_400))
        .await
        .expect("advance the clock");
}

/// A Pro subscription with a 14-day trial and a card.
async fn pro_trial(app: &TestApp, customer: &str) -> String {
    let card = AttachPaymentMethod::new("pm_card_visa")
        .customer(customer)
        .send(&app.state.stripe)
        .await
        .expect("attach");
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(monthly_price(app, "Pro").await);
    CreateSubscription::new()
        .customer(customer)
        .items(vec![item])
        .trial_period_days(14u32)
        .default_payment_method(card.id.to_string())
        .send(&app.state.stripe)
        .await
        .expect("subscribe")
        .id
        .to_string()
}

async fn a_trial_sends_one_reminder_three_days_before_it_ends(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let (email, customer) = sign_up_with_customer(&app).await;
    pro_trial(&app, &customer).await;
    advance(&app, &customer, 10).await;
    quiet(&app).await;
    assert!(
        catcher.about(&email, "trial ends").await.is_empty(),
        "not yet"
    );

    advance(&app, &customer, 2).await;
    let reminder = wait_for(&catcher, &email, "trial ends", 1).await;
    let text = reminder[0]["text"].as_str().expect("text");
    assert!(text.contains("Your free trial of Pro ends soon"), "{text}");
    assert!(
        text.contains("Your card on file will be charged $29.00 a month"),
        "{text}"
    );

    // The trial ends and is paid: nothing more about it.
    advance(&app, &customer, 5).await;
    quiet(&app).await;
    assert_eq!(catcher.about(&email, "trial ends").await.len(), 1);

    // A trial shortened to now is paid at once: Stripe's trial_will_end comes with the
    // payment, and says nothing.
    let (other, other_customer) = sign_up_with_customer(&app).await;
    let sub = pro_trial(&app, &other_customer).await;
    UpdateSubscription::new(sub.as_str())
        .trial_end(UpdateSubscriptionTrialEnd::Now)
        .send(&app.state.stripe)
        .await
        .expect("end the trial now");
    quiet(&app).await;
    let sent = app
        .state
        .sim
        .as_ref()
        .expect("the mounted double")
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "customer.subscription.trial_will_end")
        .count();
    assert_eq!(
        sent, 2,
        "Stripe's trial_will_end came for the shortened trial too"
    );
    assert!(catcher.about(&other, "trial ends").await.is_empty());
    app.stop().await;
}

async fn a_failing_card_sends_one_payment_failed_and_one_plan_ended(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(
        backend,
        &[
            catcher.env()[0],
            catcher.env()[1],
            ("PAST_DUE_GRACE", "20d"),
        ],
    )
    .await;
    let (email, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&app.state.stripe, &customer, 900).await;
    let failing = AttachPaymentMethod::new("pm_card_chargeCustomerFail")
        .customer(customer.as_str())
        .send(&app.state.stripe)
        .await
        .expect("attach");
    UpdateSubscription::new(sub.as_str())
        .default_payment_method(failing.id.to_string())
        .send(&app.state.stripe)
        .await
        .expect("switch to the failing card");

    // The renewal fails: one mail, with the amount, the next try and the end of access.
    advance(&app, &customer, 32).await;
    let failed = wait_for(&catcher, &email, "payment failed", 1).await;
    let text = failed[0]["text"].as_str().expect("text");
    assert!(
        text.contains("We could not charge $9.00 for your Starter plan."),
        "{text}"
    );
    assert!(text.contains("We will try again on"), "{text}");
    assert!(text.contains("your access ends on"), "{text}");
    let fix = link_to(&failed[0], "/fix-payment");

    // The retries fail too: nothing more; then they run out: the plan has ended.
    for days in [3, 5] {
        advance(&app, &customer, days).await;
    }
    quiet(&app).await;
    assert_eq!(catcher.about(&email, "payment failed").await.len(), 1);
    advance(&app, &customer, 7).await;
    let ended = wait_for(&catcher, &email, "plan has ended", 1).await;
    assert!(
        ended[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Your Starter plan has ended")),
        "{ended:?}"
    );

    // Every event replayed: nothing is sent twice.
    let ids: Vec<String> = {
        use billfold::db::entities::webhook_event;
        use sea_orm::EntityTrait;
        webhook_event::Entity::find()
            .all(&app.db)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    for id in &ids {
        let pipeline = billfold::webhooks::pipeline::Pipeline {
            db: &app.state.db,
            stripe: &app.state.stripe,
            livemode: false,
        };
        billfold::webhooks::history::replay(pipeline, id)
            .await
            .expect("replayed");
    }
    quiet(&app).await;
    assert_eq!(catcher.about(&email, "payment failed").await.len(), 1);
    assert_eq!(catcher.about(&email, "plan has ended").await.len(), 1);

    // The mail's link signs the user in and opens the portal's card update (of the
    // organisation whose plan it is); once.
    let path = {
        let after = fix.split_once("://").expect("absolute").1;
        after[after.find('/').expect("path")..].to_owned()
    };
    let org = crate::support::rows::scalar(
        &app,
        &format!("SELECT organization_id FROM stripe_customers WHERE customer_id = '{customer}'"),
    )
    .await
    .expect("the customer's organisation");
    assert!(path.ends_with(&format!("&org={org}")), "{path}");
    let browser = browser_client();
    let res = browser.get(app.url(&path)).send().await.expect("follow");
    assert_eq!(res.status(), 303);
    assert!(
        location(&res).contains("/_stripe-sim/"),
        "{}",
        location(&res)
    );
    assert!(set_cookies(&res)
        .iter()
        .any(|c| c.starts_with("billfold_session=")));
    let again = browser_client()
        .get(app.url(&path))
        .send()
        .await
        .expect("again");
    assert_eq!(
        location(&again),
        "/login?next=%2Fsettings%2Fbilling&link=spent"
    );
    let login = browser_client()
        .get(app.url(&location(&again)))
        .send()
        .await
        .expect("log-in page")
        .text()
        .await
        .expect("html");
    assert!(
        login.contains("That link has been used or has expired."),
        "the log-in page says why: {login}"
    );
    app.stop().await;
}

crate::support::on_both_databases!(
    a_trial_sends_one_reminder_three_days_before_it_ends,
    a_failing_card_sends_one_payment_failed_and_one_plan_ended,
);
