use crate::helpers::{Backend, TestApp};
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

crate::on_both_databases!(
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
