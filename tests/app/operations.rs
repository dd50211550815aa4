use crate::support::app::{Backend, TestApp};
use sea_orm::ConnectionTrait;

async fn healthz_reports_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({ "status": "ok", "reconciled_at": null })
    );

    // It also tells when the reconciler last got through a whole cycle.
    let before = billfold::db::clock::now();
    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert!(report.succeeded(), "{report:?}");
    let body: serde_json::Value = app.get("/healthz").await.json().await.expect("json");
    assert!(
        body["reconciled_at"].as_i64().expect("a time") >= before,
        "{body}"
    );

    // With the database gone, the health check says so instead of pretending.
    app.db.clone().close().await.expect("close pool");
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 503);
    app.stop().await;
}

async fn migrations_are_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Running the migrator again on a migrated database changes nothing and fails nothing.
    use migration::MigratorTrait;
    migration::Migrator::up(&app.db, None)
        .await
        .expect("second run");
    let tables = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type='table' AND name IN ('users','sessions')"
        }
        Backend::Postgres => {
            "SELECT tablename FROM pg_tables WHERE tablename IN ('users','sessions')"
        }
    };
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            tables,
        ))
        .await
        .expect("query");
    assert_eq!(rows.len(), 2);
    app.stop().await;
}

async fn unknown_pages_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.expect("body").contains("Page not found"));
    app.stop().await;
}

crate::support::on_both_databases!(
    healthz_reports_the_database,
    migrations_are_idempotent,
    unknown_pages_are_404
);

/// Two transactions that lock two rows in opposite orders: PostgreSQL ends one of them with
/// a deadlock, and Billfold must know that error as "run the transaction again" (it answered
/// Stripe 5xx for it before: found by the proof with two replicas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_deadlock_is_a_transaction_to_run_again() {
    use sea_orm::TransactionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    app.db
        .execute_unprepared(
            "CREATE TABLE lock_order (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); \
             INSERT INTO lock_order VALUES (1, 0), (2, 0)",
        )
        .await
        .expect("table");
    let update = |id: i32| format!("UPDATE lock_order SET v = v + 1 WHERE id = {id}");
    let a = app.db.begin().await.expect("begin a");
    let b = app.db.begin().await.expect("begin b");
    a.execute_unprepared(&update(1)).await.expect("a takes 1");
    b.execute_unprepared(&update(2)).await.expect("b takes 2");
    let (two, one) = (update(2), update(1));
    let (a_then, b_then) = tokio::join!(a.execute_unprepared(&two), b.execute_unprepared(&one));
    let lost: Vec<sea_orm::DbErr> = [a_then.err(), b_then.err()].into_iter().flatten().collect();
    assert_eq!(lost.len(), 1, "PostgreSQL ends exactly one: {lost:?}");
    assert!(billfold::db::lost_to_concurrency(&lost[0]), "{:?}", lost[0]);
    // Any other failure is not one to run again.
    let other = app
        .db
        .execute_unprepared("SELECT * FROM no_such_table")
        .await
        .expect_err("no such table");
    assert!(!billfold::db::lost_to_concurrency(&other), "{other:?}");
    drop((a, b));
    app.stop().await;
}

const METRICS_TOKEN: &str = "metrics-token-for-the-tests-0123456789";

/// The value of one series in a Prometheus text exposition (0 when absent).
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let res = crate::support::app::browser_client()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    res.text().await.expect("text")
}

/// `/metrics` is not there by default; with `METRICS_TOKEN` it answers only to that token,
/// and counts webhook events, Stripe calls and the sessions users open.
async fn metrics_are_private_and_count_what_happens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/metrics").await.status(), 404, "off by default");
    app.stop().await;

    let app = TestApp::spawn_with(backend, &[("METRICS_TOKEN", METRICS_TOKEN)]).await;
    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = crate::support::app::browser_client()
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-for-the-tests-0123456780")
        .send()
        .await
        .expect("scrape");
    assert_eq!(wrong.status(), 401);

    let before = scrape(&app).await;
    let portal = r#"billfold_billing_sessions_total{kind="portal"}"#;
    let customers = r#"billfold_stripe_requests_total{endpoint="customers.create",result="ok"}"#;
    let email = crate::support::app::unique_email();
    assert_eq!(
        app.sign_up(&email, "correct horse battery").await.status(),
        302
    );
    let res = app
        .client
        .post(app.url("/api/billing/portal"))
        .header("Origin", &app.base)
        .send()
        .await
        .expect("portal");
    assert_eq!(res.status(), 200);
    // The double delivers `customer.created` for the new customer by webhook.
    let created = r#"billfold_webhook_events_total{type="customer.created",outcome="ignored"}"#;
    let mut after = String::new();
    let mut patience =
        crate::support::patience::Patience::every(std::time::Duration::from_millis(100));
    while patience.another_try().await {
        after = scrape(&app).await;
        if series(&after, created) > series(&before, created) {
            break;
        }
    }
    assert!(
        series(&after, created) > series(&before, created),
        "{after}"
    );
    assert!(series(&after, customers) > series(&before, customers));
    assert!(series(&after, portal) > series(&before, portal));
    assert!(
        after.contains(
            "billfold_webhook_processing_seconds_bucket{outcome=\"ignored\",le=\"0.005\"}"
        ),
        "{after}"
    );
    // That delivery went through group commit, which says where its time went.
    for summary in [
        "billfold_webhook_batch_events_count",
        "billfold_webhook_batch_seconds_count{step=\"apply\"}",
        "billfold_webhook_batch_seconds_count{step=\"commit\"}",
        "billfold_webhook_queue_seconds_count",
    ] {
        assert!(
            series(&after, summary) > series(&before, summary),
            "{summary}: {after}"
        );
    }
    assert!(!after.contains(METRICS_TOKEN));

    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert!(report.succeeded());
    let cycles = r#"billfold_reconcile_cycles_total{result="ok"}"#;
    assert!(series(&scrape(&app).await, cycles) > series(&after, cycles));
    app.stop().await;
}

/// With `METRICS_ADDR`, the metrics have a listener of their own, and none on the app's.
async fn metrics_can_have_an_address_of_their_own(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let app = TestApp::spawn_with(backend, &[("METRICS_ADDR", addr.as_str())]).await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let email = crate::support::app::unique_email();
    assert_eq!(
        app.sign_up(&email, "correct horse battery").await.status(),
        302
    );
    let res = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");
    assert!(
        text.contains(r#"billfold_stripe_requests_total{endpoint="customers.create""#),
        "{text}"
    );
    app.stop().await;
}

crate::support::on_both_databases!(
    metrics_are_private_and_count_what_happens,
    metrics_can_have_an_address_of_their_own
);

/// A page served while another app in the same process starts still answers. Leptos holds
/// back every resource first polled while any app in the process lists its routes (one switch
/// for the whole process), and such a page waited for the 60-second request timeout; the
/// route list is now made once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answer_while_another_app_starts() {
    use std::time::Duration;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = crate::support::app::unique_email();
    assert_eq!(
        app.sign_up(&email, "correct horse battery").await.status(),
        302
    );
    let started = std::sync::atomic::AtomicBool::new(false);
    let starts = async {
        for _ in 0..10 {
            TestApp::spawn(Backend::Sqlite).await.stop().await;
        }
        started.store(true, std::sync::atomic::Ordering::Release);
    };
    // Four pages at a time, for as long as apps are starting.
    let pages = |lane: usize| {
        let (app, started) = (&app, &started);
        async move {
            let mut i = 0;
            while !started.load(std::sync::atomic::Ordering::Acquire) {
                let answer =
                    tokio::time::timeout(Duration::from_secs(15), app.get("/settings/billing"))
                        .await;
                let res = answer
                    .unwrap_or_else(|_| panic!("page {i} of lane {lane} did not answer in 15 s"));
                assert_eq!(res.status(), 200, "page {i} of lane {lane}");
                i += 1;
            }
        }
    };
    tokio::join!(starts, pages(0), pages(1), pages(2), pages(3));
    app.stop().await;
}
