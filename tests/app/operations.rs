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
