//! The changes Billfold owes Stripe go through an outbox: retried with back-off while Stripe
//! fails, coalesced when the same target changes again, and recorded when Stripe refuses.

use std::time::Duration;

use billfold::{
    billing::stripe_outbox,
    db::{begin_write, entities::stripe_outbox as row, entities::user},
};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use stripe_sim::Fault;

use crate::support::{
    app::{browser_client, unique_email, Backend, TestApp},
    billing::{sign_up_with_customer, PASSWORD},
    rows::prove_address,
};

/// The account's address changed as the confirmation link changes it, with the update for
/// Stripe queued in the same transaction.
async fn change_address(app: &TestApp, from: &str, to: &str) {
    let txn = begin_write(&app.db).await.expect("begin");
    let account = user::Entity::find()
        .filter(user::Column::Email.eq(from))
        .one(&*txn)
        .await
        .expect("query")
        .expect("the account");
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(to))
        .filter(user::Column::Id.eq(account.id))
        .exec(&*txn)
        .await
        .expect("update");
    stripe_outbox::queue_customer_email(&*txn, account.id)
        .await
        .expect("queue");
    txn.commit().await.expect("commit");
    app.state.stripe_updates.notify_one();
}

async fn the_row(app: &TestApp) -> row::Model {
    let rows = row::Entity::find().all(&app.db).await.expect("rows");
    assert_eq!(rows.len(), 1, "one row per target: {rows:?}");
    rows.into_iter().next().expect("a row")
}

/// Waits (a bounded while) until the row satisfies `done`.
async fn row_until(app: &TestApp, what: &str, done: impl Fn(&row::Model) -> bool) -> row::Model {
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        let r = the_row(app).await;
        if done(&r) {
            return r;
        }
    }
    panic!("the row never became {what}: {:?}", the_row(app).await);
}

async fn stripe_email(app: &TestApp, customer: &str) -> Option<String> {
    let object: Value = reqwest::Client::new()
        .get(app.url(&format!("/_stripe-sim/v1/customers/{customer}")))
        .bearer_auth("sk_test_through_the_double")
        .send()
        .await
        .expect("customer")
        .json()
        .await
        .expect("json");
    object["email"].as_str().map(str::to_owned)
}

/// `/admin/billing` as a new operator sees it.
async fn operators_page(app: &TestApp) -> String {
    let ops = browser_client();
    let email = unique_email();
    let res = ops
        .post(app.url("/api/signup"))
        .header("Accept", "text/html")
        .header("Origin", &app.base)
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(res.status(), 302);
    prove_address(app, &email).await;
    let (ok, out) = app.cli(&["admin", "add", &email]);
    assert!(ok, "{out}");
    let res = ops
        .get(app.url("/admin/billing"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), 200);
    res.text().await.expect("html")
}

fn fault(customer: &str, status: u16, kind: &str, message: &str) -> Fault {
    Fault {
        method: Some("POST".into()),
        path_prefix: format!("/v1/customers/{customer}"),
        status,
        kind: kind.into(),
        message: message.into(),
    }
}

async fn stripe_updates_wait_out_failures_coalesce_and_record_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sim = app.state.sim.clone().expect("the mounted double");
    let (first, customer) = sign_up_with_customer(&app).await;

    // Stripe failing: the change waits, with what Stripe said, and is tried again later.
    sim.add_fault(fault(
        &customer,
        500,
        "api_error",
        "Something went wrong on Stripe's end.",
    ));
    let second = unique_email();
    change_address(&app, &first, &second).await;
    let waiting = row_until(&app, "tried once", |r| r.attempts >= 1).await;
    assert_eq!(waiting.status, "queued");
    assert!(
        waiting
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{waiting:?}"
    );
    assert!(
        waiting.next_attempt_at > billfold::db::clock::now(),
        "backs off"
    );
    assert_eq!(
        stripe_email(&app, &customer).await.as_deref(),
        Some(first.as_str())
    );

    // Another change meanwhile: the same row, queued again at once with the newest value;
    // Stripe is back, and gets the newest address in one request.
    sim.clear_faults();
    let third = unique_email();
    change_address(&app, &second, &third).await;
    let done = row_until(&app, "done", |r| r.status == "done").await;
    assert_eq!(done.generation, 2);
    assert_eq!(done.last_error, None);
    assert_eq!(
        stripe_email(&app, &customer).await.as_deref(),
        Some(third.as_str())
    );

    // Stripe refusing: recorded as failed with Stripe's words, not retried.
    sim.add_fault(fault(
        &customer,
        400,
        "invalid_request_error",
        "Invalid email address: the address is on a suppression list.",
    ));
    let fourth = unique_email();
    change_address(&app, &third, &fourth).await;
    let refused = row_until(&app, "failed", |r| r.status == "failed").await;
    assert_eq!(refused.generation, 3);
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("suppression list")),
        "{refused:?}"
    );
    tokio::time::sleep(stripe_outbox::POLL * 2).await;
    assert_eq!(
        the_row(&app).await.attempts,
        refused.attempts,
        "not retried"
    );
    let admin = operators_page(&app).await;
    assert!(
        admin.contains("data-testid=\"stripe-update-row\" data-status=\"failed\"")
            && admin.contains("suppression list"),
        "the operators' page lists it: {admin}"
    );
    app.stop().await;
}

crate::support::on_both_databases!(stripe_updates_wait_out_failures_coalesce_and_record_refusals);
