//! The database: one SeaORM pool, migrations at boot, entities, and hand-written queries.

pub mod cache;
pub mod clock;
pub mod entities;
pub mod installation;
pub mod write;

pub use write::{begin_write, WriteTxn};

use std::{path::Path, time::Duration};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// This process, as `host:pid`: who ran a reconciler cycle, who is sending a mail.
pub fn process_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned());
        format!("{host}:{}", std::process::id())
    })
}

/// Opens the pool and brings the schema up to date. A failed migration is an error the
/// caller must stop on: the app never runs against a half-migrated schema.
pub async fn connect_and_migrate(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = connect(database_url).await?;
    Migrator::up(&db, None)
        .await
        .context("database migration failed")?;
    Ok(db)
}

/// SQLite's pool: one writer at a time, and readers that rarely wait on the disk.
const SQLITE_CONNECTIONS: u32 = 4;

/// Opens the pool. SQLite gets WAL, foreign keys and a busy timeout; its directory is created.
///
/// SQLite syncs the log on every commit (`synchronous=FULL`): a webhook is answered 2xx only
/// after its commit, and with `NORMAL` a power cut could lose a commit already answered.
pub async fn connect(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_file_path(database_url) {
        if let Some(dir) = Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the database directory {}", dir.display())
            })?;
        }
    }

    // SQLite runs each connection on a thread of its own and every query is handed to it and
    // back: on a few cores, more threads than that only take turns. PostgreSQL connections
    // wait on the network, so more of them overlap.
    let max_connections = if database_url.starts_with("sqlite:") {
        SQLITE_CONNECTIONS
    } else {
        16
    };
    let mut opts = ConnectOptions::new(database_url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // A connection in steady use is handed out as it is: pinging it on every checkout
        // costs a round trip per query (on SQLite, two thread hand-overs), about half of a
        // page's database time. One idle long enough to have been dropped is pinged first.
        .test_before_acquire_if_idle_for(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    let db = Database::connect(opts)
        .await
        .context("cannot connect to the database (check DATABASE_URL)")?;
    Ok(db)
}

/// Whether the database answers a trivial query within two seconds (for `/healthz`): a
/// health check must answer quickly, and while the database is away the pool would
/// otherwise keep it waiting for its whole acquire timeout, behind every queued request.
pub async fn ping(db: &DatabaseConnection) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), db.execute_unprepared("SELECT 1")).await,
        Ok(Ok(_))
    )
}

/// Whether no connection could be had in time: the database is away (or swamped), and any
/// other statement now would wait as long to fail the same way.
pub fn unreachable(e: &sea_orm::DbErr) -> bool {
    matches!(e, sea_orm::DbErr::ConnectionAcquire(_))
}

/// Whether a statement lost to a concurrent transaction and the whole transaction may
/// simply run again: a PostgreSQL deadlock (`40P01`) or serialization failure (`40001`).
pub fn lost_to_concurrency(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001"),
        _ => false,
    }
}

/// The file behind a `sqlite:` URL, if it names one (not `:memory:`).
fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_file_path;

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_file_path("sqlite://data/billfold.db?mode=rwc").as_deref(),
            Some("data/billfold.db")
        );
        assert_eq!(
            sqlite_file_path("sqlite:///tmp/x.db").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://localhost/test"), None);
    }
}
