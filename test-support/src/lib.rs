//! Throw-away databases for Billfold's integration tests, benchmarks and proof: a SQLite file
//! in a directory the caller owns, or a fresh PostgreSQL database on a server it names, dropped
//! afterwards.
//!
//! Use [`Scratch`] for a run that owns one database from start to end (a benchmark, a proof
//! lifecycle) and drops it when done; use [`create_database`] with
//! [`drop_database_blocking`] where the database must go in a `Drop` (a test's app, removed
//! even when the test fails).
//!
//! A dev-only crate (`publish = false`): it knows nothing of Billfold (the app runs its own
//! migrations on the URL it is given), so the app never depends on it and it never depends on
//! the app.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr};

/// The PostgreSQL server used when the environment names none: the machine's own, as
/// `scripts/test` and CI expect it.
pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL in the environment variable `var` (e.g. `BILLFOLD_TEST_PG_URL`), or
/// [`DEFAULT_PG_ADMIN_URL`].
pub fn pg_admin_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.into())
}

/// Creates the database `name` on the server `admin` is connected to (through `admin_url`)
/// and returns its URL: `admin_url` with its database replaced.
pub async fn create_database(
    admin: &DatabaseConnection,
    admin_url: &str,
    name: &str,
) -> anyhow::Result<String> {
    let (prefix, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("no database in {admin_url}"))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops the database `name`, if it exists, cutting its open connections (`WITH (FORCE)`).
pub async fn drop_database(admin: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map(|_| ())
}

/// [`drop_database`] from synchronous code such as a `Drop`, which may run outside any
/// runtime or inside one that is shutting down: a thread with a runtime of its own connects
/// afresh to `admin_url`. Best effort: a server that does not answer leaves the database.
pub fn drop_database_blocking(admin_url: &str, name: &str) {
    let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(admin) = Database::connect(admin_url).await {
                let _ = drop_database(&admin, &name).await;
            }
        });
    })
    .join();
}

/// A fresh database for one run: a SQLite file in `dir`, or a new PostgreSQL database on
/// the admin URL in `admin_var` (default [`DEFAULT_PG_ADMIN_URL`]), dropped by
/// [`Scratch::drop_database`].
pub struct Scratch {
    pub url: String,
    postgres: Option<(DatabaseConnection, String)>,
}

impl Scratch {
    /// `db` is `sqlite` or `postgres`; `name` names the SQLite file or (with this process's
    /// id appended) the PostgreSQL database.
    pub async fn create(
        db: &str,
        dir: &std::path::Path,
        admin_var: &str,
        name: &str,
    ) -> anyhow::Result<Scratch> {
        if db != "postgres" {
            return Ok(Scratch {
                url: format!("sqlite://{}/{name}.db?mode=rwc", dir.display()),
                postgres: None,
            });
        }
        Scratch::create_on(&pg_admin_url(admin_var), name).await
    }

    /// A new PostgreSQL database on the server `admin_url` connects to.
    pub async fn create_on(admin_url: &str, name: &str) -> anyhow::Result<Scratch> {
        let name = format!("{name}_{}", std::process::id());
        let admin = Database::connect(admin_url).await?;
        let url = create_database(&admin, admin_url, &name).await?;
        Ok(Scratch {
            url,
            postgres: Some((admin, name)),
        })
    }

    /// Drops the PostgreSQL database (nothing to do for SQLite: the caller owns the directory).
    pub async fn drop_database(self) {
        if let Some((admin, name)) = self.postgres {
            let _ = drop_database(&admin, &name).await;
        }
    }
}
