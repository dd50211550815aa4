//! What the benchmark and proof examples share: a throw-away database.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// A fresh database for one run: a SQLite file in `dir`, or a new PostgreSQL database on
/// the admin URL in `admin_var` (default the machine's `test` database), dropped by
/// [`Scratch::drop_database`].
pub struct Scratch {
    pub url: String,
    postgres: Option<(DatabaseConnection, String)>,
}

impl Scratch {
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
        let admin_url = std::env::var(admin_var)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        Scratch::create_on(&admin_url, name).await
    }

    /// A new PostgreSQL database on the server `admin_url` connects to.
    pub async fn create_on(admin_url: &str, name: &str) -> anyhow::Result<Scratch> {
        let name = format!("{name}_{}", std::process::id());
        let admin = Database::connect(admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let (prefix, _) = admin_url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("no database in {admin_url}"))?;
        Ok(Scratch {
            url: format!("{prefix}/{name}"),
            postgres: Some((admin, name)),
        })
    }

    pub async fn drop_database(self) {
        if let Some((admin, name)) = self.postgres {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}
