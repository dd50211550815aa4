//! The benchmarks' bulk filler (`examples/common/fill.rs`, behind `--rows`) makes the rows the
//! app's own writers make: a filled person, signed in, sees their plan, card and invoices, an
//! ended plan grants nothing, and the filled events are on the operators' record. If the filler
//! drifted from the schema or the readers, the big-database figures would measure nothing.

#[path = "../../examples/common/fill.rs"]
mod fill;

use billfold::auth::ssr::{create_session, session_cookie};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;

use crate::support::app::{on_both_databases, Backend, TestApp};

on_both_databases!(filled_people_see_their_billing);

/// `GET path` as the user with id `user_id` (a session made for them directly).
async fn get_as(app: &TestApp, user_id: i64, path: &str) -> reqwest::Response {
    let token = create_session(&app.db, user_id).await.expect("a session");
    let cookie = session_cookie(&token, false);
    let cookie = cookie.to_str().expect("ascii");
    let pair = cookie.split(';').next().expect("name=value");
    reqwest::Client::new()
        .get(app.url(path))
        .header("cookie", pair)
        .send()
        .await
        .expect("an answer")
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    app.db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("a query")
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .expect("a number")
}

async fn filled_people_see_their_billing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let users_before = scalar(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM users").await;
    let max_before = scalar(
        &app,
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM users",
    )
    .await;
    fill::fill(
        &app.db,
        &fill::Fill {
            customers: 60,
            invoices_per_customer: 2,
            events: 120,
        },
    )
    .await
    .expect("the fill");
    assert_eq!(
        scalar(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM users").await,
        users_before + 60
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_events WHERE id LIKE 'evt_fill_%'"
        )
        .await,
        120
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM invoices WHERE id LIKE 'in_fill_%'"
        )
        .await,
        120
    );

    // Person 1 pays (active); person 30's plan ended.
    let paying = max_before + 1;
    let state: Value = get_as(&app, paying, "/api/billing/state")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(state["access"]["granted"], true, "{state}");
    assert!(state["plan"]["name"].is_string(), "{state}");
    assert_eq!(state["organization"]["personal"], true, "{state}");
    let page = get_as(&app, paying, "/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    assert_eq!(
        page.matches("data-testid=\"invoice-row\"").count(),
        2,
        "two invoices listed"
    );
    assert!(page.contains("1001"), "the card's last four digits");

    let ended = max_before + 30;
    let state: Value = get_as(&app, ended, "/api/billing/state")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(state["access"]["granted"], false, "{state}");

    // A second fill continues after the first: ids do not collide.
    fill::fill(
        &app.db,
        &fill::Fill {
            customers: 5,
            invoices_per_customer: 1,
            events: 0,
        },
    )
    .await
    .expect("a second fill");
    assert_eq!(
        scalar(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM users").await,
        users_before + 65
    );
    app.stop().await;
}
