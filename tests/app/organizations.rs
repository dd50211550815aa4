//! Organisations: the billing customer is an organisation's. The move from customers of
//! users keeps every row's meaning, and every user's billing reads the same after it.

use migration::{Migrator, MigratorTrait};
use serde_json::Value;

use crate::support::{
    app::{browser_client, unique_email, Backend, TestApp},
    billing::{customer_of, subscribe_in_stripe, PASSWORD},
    rows::scalar,
    standalone_stripe::settled,
};

/// Signs up `email` in a browser of its own; that browser.
async fn signed_up(app: &TestApp, email: &str) -> reqwest::Client {
    let client = browser_client();
    let res = client
        .post(app.url("/api/signup"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(res.status(), 302, "sign-up of {email}");
    client
}

async fn state_of(app: &TestApp, client: &reqwest::Client) -> Value {
    let res = client
        .get(app.url("/api/billing/state"))
        .send()
        .await
        .expect("state");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

async fn count(app: &TestApp, table: &str) -> i64 {
    scalar(app, &format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count")
        .parse()
        .expect("a number")
}

const TABLES: [&str; 9] = [
    "users",
    "sessions",
    "stripe_customers",
    "subscriptions",
    "invoices",
    "payment_methods",
    "webhook_events",
    "drift_records",
    "mail_outbox",
];

/// A database filled through the double (people with plans, one cancelling, one with only a
/// customer, one drift record), taken back to the schema before organisations and moved again:
/// every table keeps its rows, every customer lands in its user's personal organisation with
/// its user as the owner, and each user's billing state is what it was.
async fn the_move_to_organisations_keeps_every_users_billing(backend: Backend) {
    use stripe_billing::subscription::UpdateSubscription;
    let app = TestApp::spawn(backend).await;
    let stripe = stripe::ClientBuilder::new("sk_test_through_the_double")
        .url(app.url("/_stripe-sim/"))
        .build()
        .expect("client");
    let mut people = Vec::new();
    for plan in [Some(900), Some(2900), Some(900), None] {
        let email = unique_email();
        let client = signed_up(&app, &email).await;
        let customer = customer_of(&app, &email).await.expect("a customer");
        if let Some(amount) = plan {
            let sub = subscribe_in_stripe(&stripe, &customer, amount).await;
            if amount == 2900 {
                UpdateSubscription::new(sub.as_str())
                    .cancel_at_period_end(true)
                    .send(&stripe)
                    .await
                    .expect("cancel at period end");
            }
        }
        people.push((email, client, customer));
    }
    settled(app.state.sim.as_ref().expect("the mounted double")).await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!(
            "INSERT INTO drift_records (detected_at, customer_id, object_type, object_id, field, \
             event_type, database_value, stripe_value) VALUES (1, '{}', 'subscription', 'sub_x', \
             'status', 'customer.subscription.updated', 'active', 'canceled')",
            people[0].2
        ),
    )
    .await
    .expect("a drift record");

    let mut before = Vec::new();
    for (_, client, _) in &people {
        before.push(state_of(&app, client).await);
    }
    let states: Vec<&str> = before
        .iter()
        .map(|s| s["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(states[3], "none", "{states:?}");
    assert!(states[..3].iter().all(|s| *s != "none"), "{states:?}");
    assert!(
        before[1]["dates"].to_string().contains("cancel") || states[1] != states[0],
        "the cancelling plan reads differently: {:?}",
        before[1]
    );
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(count(&app, table).await);
    }
    assert!(
        counts.iter().all(|&n| n > 0),
        "every table has rows: {counts:?}"
    );

    // Back to customers of users, then forward again.
    Migrator::down(&app.db, Some(1)).await.expect("down");
    assert!(
        sea_orm::ConnectionTrait::execute_unprepared(&app.db, "SELECT COUNT(*) FROM organizations")
            .await
            .is_err(),
        "no organisations before the move"
    );
    Migrator::up(&app.db, None).await.expect("the move");

    for (table, was) in TABLES.into_iter().zip(&counts) {
        assert_eq!(count(&app, table).await, *was, "{table} keeps its rows");
    }
    assert_eq!(
        count(&app, "organizations").await,
        counts[0],
        "one per account"
    );
    assert_eq!(count(&app, "memberships").await, counts[0], "its owner");
    for (email, client, customer) in &people {
        let user: i64 = scalar(
            &app,
            &format!("SELECT id FROM users WHERE email = '{email}'"),
        )
        .await
        .expect("user")
        .parse()
        .expect("id");
        let org = scalar(
            &app,
            &format!("SELECT id FROM organizations WHERE personal_of = {user}"),
        )
        .await
        .expect("a personal organisation");
        assert_eq!(
            scalar(
                &app,
                &format!(
                    "SELECT organization_id FROM stripe_customers WHERE customer_id = '{customer}'"
                )
            )
            .await,
            Some(org.clone()),
            "{email}'s customer is their organisation's"
        );
        assert_eq!(
            scalar(
                &app,
                &format!(
                    "SELECT role FROM memberships WHERE organization_id = {org} AND user_id = {user}"
                )
            )
            .await
            .as_deref(),
            Some("owner")
        );
        let _ = client;
    }
    for ((email, client, _), was) in people.iter().zip(&before) {
        assert_eq!(&state_of(&app, client).await, was, "{email}'s billing");
    }
    app.stop().await;
}

crate::support::on_both_databases!(the_move_to_organisations_keeps_every_users_billing);
