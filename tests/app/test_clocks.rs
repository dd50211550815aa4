//! Billing over time through Stripe's Test Clocks API, against the mounted double, with Billfold
//! receiving the webhooks: a customer on a clock, a renewal paid, an upgrade charged at once
//! (`always_invoice`: a paid `subscription_update` invoice), a downgrade leaving a credit on the
//! customer's balance, a cancellation at the period's end, and a failing renewal retried on
//! schedule until it ends. After each step the subscriptions and invoices Billfold stores say
//! what the double says.

use serde_json::Value;

use crate::support::{
    app::{Backend, TestApp},
    rows::{rows, user_with_customer},
    standalone_stripe::settled,
};

const DAY: i64 = 86_400;
/// Stripe leaves a renewal's invoice a draft this long before it finalizes and charges it.
const HOUR: i64 = 3_600;

/// A call to the mounted double as Stripe's API takes it (form-encoded), answered as JSON.
async fn stripe(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let answer = reqwest::Client::new()
        .request(method, app.url(&format!("/_stripe-sim/v1/{path}")))
        .bearer_auth("sk_test_test_clocks")
        .form(form)
        .send()
        .await
        .expect("request");
    let status = answer.status();
    let body: Value = answer.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn get(app: &TestApp, path: &str) -> Value {
    stripe(app, reqwest::Method::GET, path, &[]).await
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Value {
    stripe(app, reqwest::Method::POST, path, form).await
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// Advances the clock to `to` and waits until it is ready and every delivery has settled.
async fn advance(app: &TestApp, clock: &str, to: i64) {
    let at = to.to_string();
    let answered = post(
        app,
        &format!("test_helpers/test_clocks/{clock}/advance"),
        &[("frozen_time", at.as_str())],
    )
    .await;
    assert_eq!(answered["status"], "advancing");
    let now = get(app, &format!("test_helpers/test_clocks/{clock}")).await;
    assert_eq!(now["status"], "ready");
    assert_eq!(now["frozen_time"], to);
    settled(app.state.sim.as_ref().expect("the double")).await;
}

/// Every subscription and invoice of `customer` in the double is in Billfold's tables with the
/// same status (and the subscription with the same period and quantity).
async fn billfold_says_what_stripe_says(app: &TestApp, customer: &str) {
    settled(app.state.sim.as_ref().expect("the double")).await;
    let subs = get(
        app,
        &format!("subscriptions?customer={customer}&status=all"),
    )
    .await;
    for s in subs["data"].as_array().expect("subscriptions") {
        let sid = id(s);
        let ours = rows(
            app,
            &format!(
                "SELECT status, CAST(current_period_end AS TEXT), CAST(quantity AS TEXT) \
                 FROM subscriptions WHERE id = '{sid}'"
            ),
        )
        .await;
        let item = &s["items"]["data"][0];
        assert_eq!(
            ours,
            vec![vec![
                s["status"].as_str().expect("status").to_owned(),
                item["current_period_end"].to_string(),
                item["quantity"].to_string(),
            ]],
            "subscription {sid}"
        );
    }
    let invoices = get(app, &format!("invoices?customer={customer}&limit=100")).await;
    for inv in invoices["data"].as_array().expect("invoices") {
        let iid = id(inv);
        let ours = rows(
            app,
            &format!("SELECT status FROM invoices WHERE id = '{iid}'"),
        )
        .await;
        assert_eq!(
            ours,
            vec![vec![inv["status"].as_str().expect("status").to_owned()]],
            "invoice {iid} ({})",
            inv["billing_reason"]
        );
    }
}

/// A Billfold user whose customer lives on a new clock frozen at `at`; (clock, customer, card).
async fn customer_on_a_clock(app: &TestApp, at: i64, card: &str) -> (String, String, String) {
    let at = at.to_string();
    let clock = id(&post(
        app,
        "test_helpers/test_clocks",
        &[("frozen_time", at.as_str())],
    )
    .await);
    let customer = id(&post(
        app,
        "customers",
        &[
            ("email", "clock@example.com"),
            ("test_clock", clock.as_str()),
        ],
    )
    .await);
    user_with_customer(app, &customer).await;
    let pm = id(&post(
        app,
        &format!("payment_methods/{card}/attach"),
        &[("customer", customer.as_str())],
    )
    .await);
    (clock, customer, pm)
}

async fn price(app: &TestApp, lookup_key: &str) -> String {
    let found = get(app, &format!("prices?lookup_keys[]={lookup_key}")).await;
    id(&found["data"][0])
}

async fn a_plan_over_time_on_a_test_clock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = billfold::db::clock::now();
    let (clock, customer, pm) = customer_on_a_clock(&app, t0, "pm_card_visa").await;
    let starter = price(&app, "starter_monthly").await;
    let pro = price(&app, "pro_monthly").await;
    let sub = post(
        &app,
        "subscriptions",
        &[
            ("customer", customer.as_str()),
            ("items[0][price]", starter.as_str()),
            ("default_payment_method", pm.as_str()),
        ],
    )
    .await;
    let (sid, item) = (
        id(&sub),
        sub["items"]["data"][0]["id"]
            .as_str()
            .expect("item")
            .to_owned(),
    );
    assert_eq!(sub["test_clock"], clock.as_str());
    let first_end = sub["items"]["data"][0]["current_period_end"]
        .as_i64()
        .expect("end");
    billfold_says_what_stripe_says(&app, &customer).await;

    // The renewal: a draft for an hour, as Stripe leaves it, then paid.
    advance(&app, &clock, first_end + 60).await;
    let renewed = get(&app, &format!("subscriptions/{sid}")).await;
    assert_eq!(
        renewed["items"]["data"][0]["current_period_start"],
        first_end
    );
    let latest_path = format!(
        "invoices/{}",
        renewed["latest_invoice"].as_str().expect("invoice")
    );
    let draft = get(&app, &latest_path).await;
    assert_eq!(
        (draft["billing_reason"].as_str(), draft["status"].as_str()),
        (Some("subscription_cycle"), Some("draft"))
    );
    billfold_says_what_stripe_says(&app, &customer).await;
    advance(&app, &clock, first_end + HOUR + 60).await;
    assert_eq!(get(&app, &latest_path).await["status"], "paid");
    billfold_says_what_stripe_says(&app, &customer).await;

    // Ten days in, an upgrade charged at once: a paid `subscription_update` invoice.
    advance(&app, &clock, first_end + 10 * DAY).await;
    let upgraded = post(
        &app,
        &format!("subscriptions/{sid}"),
        &[
            ("items[0][id]", item.as_str()),
            ("items[0][price]", pro.as_str()),
            ("proration_behavior", "always_invoice"),
        ],
    )
    .await;
    let charged = get(
        &app,
        &format!(
            "invoices/{}",
            upgraded["latest_invoice"].as_str().expect("invoice")
        ),
    )
    .await;
    assert_eq!(charged["billing_reason"], "subscription_update");
    assert_eq!(charged["status"], "paid");
    assert!(charged["amount_paid"].as_i64().is_some_and(|a| a > 0));
    assert_eq!(charged["amount_paid"], charged["total"]);
    assert_eq!(charged["amount_remaining"], 0);
    billfold_says_what_stripe_says(&app, &customer).await;

    // Back down at once: the unused time on Pro is a credit on the customer's balance.
    post(
        &app,
        &format!("subscriptions/{sid}"),
        &[
            ("items[0][id]", item.as_str()),
            ("items[0][price]", starter.as_str()),
            ("proration_behavior", "always_invoice"),
        ],
    )
    .await;
    let balance = get(&app, &format!("customers/{customer}")).await["balance"]
        .as_i64()
        .expect("balance");
    assert!(balance < 0, "a downgrade leaves a credit: {balance}");
    billfold_says_what_stripe_says(&app, &customer).await;

    // Cancelled at the period's end: it ends when the clock passes it, and the credit paid
    // toward nothing more.
    let period_end = get(&app, &format!("subscriptions/{sid}")).await["items"]["data"][0]
        ["current_period_end"]
        .as_i64()
        .expect("end");
    post(
        &app,
        &format!("subscriptions/{sid}"),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    billfold_says_what_stripe_says(&app, &customer).await;
    advance(&app, &clock, period_end + 60).await;
    let ended = get(&app, &format!("subscriptions/{sid}")).await;
    assert_eq!(ended["status"], "canceled");
    assert_eq!(ended["ended_at"], period_end);
    billfold_says_what_stripe_says(&app, &customer).await;
    app.stop().await;
}

async fn a_failing_renewal_on_a_test_clock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = billfold::db::clock::now();
    let (clock, customer, pm) = customer_on_a_clock(&app, t0, "pm_card_visa").await;
    let starter = price(&app, "starter_monthly").await;
    let sub = post(
        &app,
        "subscriptions",
        &[
            ("customer", customer.as_str()),
            ("items[0][price]", starter.as_str()),
            ("default_payment_method", pm.as_str()),
        ],
    )
    .await;
    let sid = id(&sub);
    let first_end = sub["items"]["data"][0]["current_period_end"]
        .as_i64()
        .expect("end");
    let failing = id(&post(
        &app,
        "payment_methods/pm_card_chargeCustomerFail/attach",
        &[("customer", customer.as_str())],
    )
    .await);
    post(
        &app,
        &format!("subscriptions/{sid}"),
        &[("default_payment_method", failing.as_str())],
    )
    .await;
    // Charged when the renewal's draft hour is up: declined.
    advance(&app, &clock, first_end + HOUR + 60).await;
    assert_eq!(
        get(&app, &format!("subscriptions/{sid}")).await["status"],
        "past_due"
    );
    billfold_says_what_stripe_says(&app, &customer).await;
    // The first retry, three days on: still failing, still past due.
    advance(&app, &clock, first_end + HOUR + 3 * DAY + 60).await;
    let open = get(&app, &format!("invoices?subscription={sid}&status=open")).await;
    assert_eq!(open["data"][0]["attempt_count"], 2);
    billfold_says_what_stripe_says(&app, &customer).await;
    // Past every retry: the subscription ends, as the double's default dunning setting says.
    advance(&app, &clock, first_end + 30 * DAY).await;
    assert_eq!(
        get(&app, &format!("subscriptions/{sid}")).await["status"],
        "canceled"
    );
    billfold_says_what_stripe_says(&app, &customer).await;
    app.stop().await;
}

crate::support::on_both_databases!(
    a_plan_over_time_on_a_test_clock,
    a_failing_renewal_on_a_test_clock,
);
