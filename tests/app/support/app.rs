//! The app under test: [`TestApp`] starts the real router on a free port, on a throw-away
//! database of its own (a temporary SQLite file, or a fresh PostgreSQL database removed when
//! the test ends, even when it fails), in simulated mode (the Stripe double mounted in the app)
//! unless the test hands it a Stripe of its own. [`on_both_databases!`] runs a test body on
//! both databases; [`browser_client`] is a client that keeps cookies and does not follow
//! redirects, as a browser's navigation looks to the server.
//!
//! Every story starts here. For another Stripe than the mounted double, see
//! [`super::standalone_stripe`], [`super::stripe_stand_in`] and [`super::stripe_stub`].

use std::collections::HashMap;

use billfold::{config::Config, server};
use sea_orm::{Database, DatabaseConnection};
use tokio::{net::TcpListener, sync::oneshot};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one async test body against SQLite and against PostgreSQL: for each `name`, a module
/// `name` with the tests `sqlite` and `postgres` calling `name(backend)`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::app::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::app::Backend::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use on_both_databases;

/// `BILLFOLD_TEST_LOG=billfold=debug` (a tracing filter): the apps under test log to the test's
/// output (shown for a failing test, or with `--nocapture`).
fn log_when_asked() {
    if let Ok(filter) = std::env::var("BILLFOLD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The environment variable naming the PostgreSQL server the tests make databases on.
const PG_ADMIN_VAR: &str = "BILLFOLD_TEST_PG_URL";

/// A throw-away database, removed when the test ends (even when it fails).
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Another app's database: that app removes it.
    Shared,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            // A `Drop` may run outside any runtime: this drops the database on a thread with
            // a runtime of its own.
            billfold_test_support::drop_database_blocking(admin_url, name);
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub db: DatabaseConnection,
    /// The running app's state (for driving a reconciler cycle, say).
    pub state: billfold::state::AppState,
    /// A browser-like client: keeps cookies, does not follow redirects.
    pub client: reqwest::Client,
    /// The database's URL, for a second replica on it.
    database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
    _sim_dir: tempfile::TempDir,
}

async fn database_for(backend: Backend) -> (String, TestDb) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/billfold.db?mode=rwc", dir.path().display());
            (url, TestDb::Sqlite(dir))
        }
        Backend::Postgres => {
            let admin_url = billfold_test_support::pg_admin_url(PG_ADMIN_VAR);
            // Never a silent pass: without PostgreSQL this test fails. scripts/test leaves
            // the PostgreSQL variants out by name (and says so) when none answers, except in CI.
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({e}). Start it or set \
                     BILLFOLD_TEST_PG_URL; scripts/test skips the PostgreSQL tests, loudly, \
                     when none answers outside CI"
                )
            });
            let name = format!("billfold_test_{:016x}", rand_u64());
            let url = billfold_test_support::create_database(&admin, &admin_url, &name)
                .await
                .expect("create test database");
            (url, TestDb::Postgres { admin_url, name })
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

impl TestApp {
    /// Starts the app on a free port (in simulated mode unless `extra_env` sets a key).
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra_env: &[(&str, &str)]) -> TestApp {
        let (database_url, guard) = database_for(backend).await;
        Self::spawn_on(database_url, guard, extra_env).await
    }

    /// Another replica of the app on this app's database (its own process state, limits and
    /// Stripe double).
    pub async fn spawn_replica(&self, extra_env: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(self.database_url.clone(), TestDb::Shared, extra_env).await
    }

    async fn spawn_on(database_url: String, guard: TestDb, extra_env: &[(&str, &str)]) -> TestApp {
        log_when_asked();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");

        // The mounted Stripe double keeps its state in a directory of this test's own.
        let sim_dir = tempfile::tempdir().expect("temp dir");
        let mut env: HashMap<String, String> = HashMap::from([
            (
                "STRIPE_SIM_STATE".into(),
                sim_dir.path().join("stripe-sim.json").display().to_string(),
            ),
            ("APP_URL".into(), base.clone()),
            ("BIND_ADDR".into(), addr.to_string()),
            ("DATABASE_URL".into(), database_url.clone()),
            ("LOG_LEVEL".into(), "warn".into()),
            // Tests run reconciler cycles themselves, when they mean to.
            ("RECONCILE_EVERY".into(), "0".into()),
        ]);
        // The mounted double unless the test points the app at a Stripe of its own.
        if !extra_env.iter().any(|(k, _)| *k == "STRIPE_SECRET_KEY") {
            env.insert("STRIPE_MODE".into(), "simulated".into());
        }
        // Mail goes to the log unless the test brings an SMTP server.
        if !extra_env.iter().any(|(k, _)| *k == "SMTP_URL") {
            env.insert("MAIL_DELIVERY".into(), "log".into());
        }
        for (k, v) in extra_env {
            env.insert((*k).into(), (*v).into());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid test config");
        let state = server::build_state(config).await.expect("app state");
        let db = state.db.clone();
        let app_state = state.clone();

        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            server::serve_on(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });

        TestApp {
            base,
            db,
            state: app_state,
            client: browser_client(),
            database_url,
            shutdown: Some(tx),
            server: Some(server),
            _db: guard,
            _sim_dir: sim_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Submits a form the way a browser without JavaScript does.
    pub async fn post_form(
        &self,
        path: &str,
        from_page: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Accept", "text/html,application/xhtml+xml")
            .header("Origin", &self.base)
            .header("Referer", self.url(from_page))
            .form(fields)
            .send()
            .await
            .expect("request")
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form(
            "/api/signup",
            "/signup",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Accept", "text/html")
            .send()
            .await
            .expect("request")
    }

    /// Runs the `billfold` binary on this app's database, as an operator would on the
    /// server: whether it succeeded, and what it printed (stdout, then stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_billfold"))
            .env_clear()
            .current_dir(dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("STRIPE_MODE", "simulated")
            .env("STRIPE_SIM_STATE", dir.path().join("stripe-sim.json"))
            .env("LOG_LEVEL", "warn")
            .env(
                "BILLING_FILE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/billing.toml"),
            )
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run billfold");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// This app stopped (its requests finished, nothing of its memory kept) and started again
    /// on the same database, with `extra_env`: a restart.
    pub async fn restart(mut self, extra_env: &[(&str, &str)]) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        let guard = std::mem::replace(&mut self._db, TestDb::Shared);
        Self::spawn_on(self.database_url.clone(), guard, extra_env).await
    }

    /// The account with this address, as its row has it.
    pub async fn user_by_email(&self, email: &str) -> Option<billfold::db::entities::user::Model> {
        use billfold::db::entities::user;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await
            .expect("query")
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        // A hung request fails its test quickly instead of stalling the whole run.
        .timeout(std::time::Duration::from_secs(90))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// A unique email per call, so tests never collide.
pub fn unique_email() -> String {
    format!("user{:x}@example.com", rand_u64())
}
