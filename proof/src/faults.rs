//! What the proof plants in the database under test, beside Billfold's own schema:
//! - statement faults: triggers that fail a share of the writes to Billfold's tables while
//!   armed, as a database that drops a statement mid-batch would;
//! - the apply audit: a row per committed claim of an event (its first recording, or the
//!   retake of a failed one), so "applied exactly once" is counted, not assumed.
//!
//! Both are plain SQL on SQLite and PostgreSQL; neither needs anything from the app.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

/// The tables whose writes can fail while faults are armed.
const FAULTED: [&str; 6] = [
    "webhook_events",
    "subscriptions",
    "invoices",
    "payment_methods",
    "products",
    "stripe_customers",
];

pub async fn install(db: &DatabaseConnection) -> anyhow::Result<()> {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let mut sql: Vec<String> = vec![
        "CREATE TABLE proof_fault (rate INTEGER NOT NULL)".into(),
        "INSERT INTO proof_fault (rate) VALUES (0)".into(),
        "CREATE TABLE proof_applied (event_id TEXT NOT NULL)".into(),
    ];
    if postgres {
        sql.push(
            "CREATE FUNCTION proof_fault() RETURNS trigger AS $$ BEGIN \
             IF random() * 100 < (SELECT rate FROM proof_fault) THEN \
             RAISE EXCEPTION 'injected fault on %', TG_TABLE_NAME; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql"
                .into(),
        );
        for t in FAULTED {
            sql.push(format!(
                "CREATE TRIGGER proof_fault_{t} BEFORE INSERT OR UPDATE ON {t} \
                 FOR EACH ROW EXECUTE FUNCTION proof_fault()"
            ));
        }
        sql.push(
            "CREATE FUNCTION proof_applied() RETURNS trigger AS $$ BEGIN \
             IF NEW.outcome <> 'failed' AND (TG_OP = 'INSERT' OR OLD.outcome = 'failed') THEN \
             INSERT INTO proof_applied (event_id) VALUES (NEW.id); END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql"
                .into(),
        );
        sql.push(
            "CREATE TRIGGER proof_applied AFTER INSERT OR UPDATE ON webhook_events \
             FOR EACH ROW EXECUTE FUNCTION proof_applied()"
                .into(),
        );
    } else {
        for t in FAULTED {
            for op in ["INSERT", "UPDATE"] {
                sql.push(format!(
                    "CREATE TRIGGER proof_fault_{t}_{op} BEFORE {op} ON {t} \
                     WHEN abs(random() % 100) < (SELECT rate FROM proof_fault) \
                     BEGIN SELECT RAISE(ABORT, 'injected fault on {t}'); END"
                ));
            }
        }
        sql.push(
            "CREATE TRIGGER proof_applied_insert AFTER INSERT ON webhook_events \
             WHEN NEW.outcome <> 'failed' \
             BEGIN INSERT INTO proof_applied (event_id) VALUES (NEW.id); END"
                .into(),
        );
        sql.push(
            "CREATE TRIGGER proof_applied_retake AFTER UPDATE ON webhook_events \
             WHEN OLD.outcome = 'failed' AND NEW.outcome <> 'failed' \
             BEGIN INSERT INTO proof_applied (event_id) VALUES (NEW.id); END"
                .into(),
        );
    }
    for s in sql {
        db.execute_unprepared(&s).await?;
    }
    Ok(())
}

/// Fails `percent` of writes to Billfold's tables from now on (0 turns faults off).
pub async fn arm(db: &DatabaseConnection, percent: u32) -> anyhow::Result<()> {
    db.execute_unprepared(&format!("UPDATE proof_fault SET rate = {percent}"))
        .await?;
    Ok(())
}
