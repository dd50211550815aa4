//! The database read and written by hand around webhook stories: a raw query's first column
//! as text ([`scalar`]), the subscription and event rows tests assert on, and a signed-up user
//! linked to the customer the test's events name ([`user_with_customer`]), and an invoice of
//! the page tests' subscription ([`invoice_row`]).
//!
//! Use them to assert what a delivery or a re-sync left in the tables, or to set up the one
//! row an event needs. Billing stories that go through the pages read the page instead.

use billfold::db::entities::{invoice, stripe_customer};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::support::{
    app::{unique_email, TestApp},
    stripe_stub::now,
};

/// A raw query's first column, as text, for assertions.
pub async fn scalar(app: &TestApp, sql: &str) -> Option<String> {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .expect("query")?;
    row.try_get_by_index::<Option<String>>(0)
        .ok()
        .flatten()
        .or_else(|| row.try_get_by_index::<i64>(0).ok().map(|n| n.to_string()))
        .or_else(|| row.try_get_by_index::<i32>(0).ok().map(|n| n.to_string()))
        .or_else(|| row.try_get_by_index::<bool>(0).ok().map(|b| b.to_string()))
}

/// A raw query's text columns, every row (a NULL reads as the empty string).
pub async fn rows(app: &TestApp, sql: &str) -> Vec<Vec<String>> {
    let backend = app.db.get_database_backend();
    app.db
        .query_all_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .expect("query")
        .into_iter()
        .map(|row| {
            (0..)
                .map_while(|i| row.try_get_by_index::<Option<String>>(i).ok())
                .map(Option::unwrap_or_default)
                .collect()
        })
        .collect()
}

pub async fn subscription_row(
    app: &TestApp,
    id: &str,
) -> Option<billfold::db::entities::subscription::Model> {
    billfold::db::entities::subscription::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
}

pub async fn event_row(app: &TestApp, id: &str) -> billfold::db::entities::webhook_event::Model {
    billfold::db::entities::webhook_event::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("event recorded")
}

/// A user with a Stripe customer in test mode (their personal organisation's), the way
/// sign-up records one.
pub async fn user_with_customer(app: &TestApp, customer_id: &str) -> i64 {
    let email = unique_email();
    let res = app.sign_up(&email, "correct horse battery staple").await;
    assert!(
        res.status().is_redirection() || res.status().is_success(),
        "{}",
        res.status()
    );
    let user_id: i64 = scalar(
        app,
        &format!("SELECT id FROM users WHERE email = '{email}'"),
    )
    .await
    .expect("user")
    .parse()
    .expect("id");
    // Sign-up may already have made a customer for the user; this test wants its own.
    let _ = sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!("DELETE FROM stripe_customers WHERE user_id = {user_id}"),
    )
    .await;
    if !customer_id.is_empty() {
        let org: i64 = scalar(
            app,
            &format!("SELECT id FROM organizations WHERE personal_of = {user_id}"),
        )
        .await
        .expect("the personal organisation")
        .parse()
        .expect("id");
        stripe_customer::Entity::insert(stripe_customer::ActiveModel {
            user_id: Set(user_id),
            organization_id: Set(Some(org)),
            livemode: Set(false),
            customer_id: Set(customer_id.to_owned()),
            email: Set(Some(email)),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec(&app.db)
        .await
        .expect("customer row");
    }
    user_id
}

/// An invoice of the page test's subscription, finalized (first attempted) at `finalized`.
pub async fn invoice_row(app: &TestApp, customer: &str, id: &str, status: &str, finalized: i64) {
    invoice::Entity::insert(invoice::ActiveModel {
        id: Set(id.into()),
        customer_id: Set(customer.into()),
        subscription_id: Set(Some("sub_page_test".into())),
        status: Set(status.into()),
        amount_due: Set(900),
        amount_paid: Set(if status == "paid" { 900 } else { 0 }),
        currency: Set("usd".into()),
        hosted_invoice_url: Set(Some(format!("https://invoice.example/{id}"))),
        period_start: Set(None),
        period_end: Set(None),
        created: Set(finalized - 60),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
        attempt_count: Set(i32::from(status != "paid")),
        next_payment_attempt: Set((status == "open").then(|| now() + 86_400)),
        finalized_at: Set(Some(finalized)),
    })
    .exec(&app.db)
    .await
    .expect("invoice");
}

/// Marks the account's address proven, as following the link mailed at sign-up does.
pub async fn prove_address(app: &TestApp, email: &str) {
    let proven = app
        .db
        .execute_unprepared(&format!(
            "UPDATE users SET email_verified_at = 1 WHERE email = '{}'",
            email.trim().to_lowercase().replace('\'', "")
        ))
        .await
        .expect("prove the address");
    assert_eq!(proven.rows_affected(), 1, "{email} has an account");
}
