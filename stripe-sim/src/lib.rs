//! The Stripe test double: the part of Stripe Billfold uses, over Stripe's own wire format,
//! so the app, its tests and its demo run the real client path with no Stripe account.
//!
//! - `/v1/...`: customers, products, prices, subscriptions, payment methods, invoices
//!   (and `create_preview`), subscription schedules, Checkout sessions, portal configurations
//!   and sessions, events, webhook endpoints.
//! - Plan switches are prorated to the second (`proration`); one quote (`plan_change`)
//!   drives the portal's confirmation page, invoice previews and the change itself, and a
//!   downgrade the portal configuration defers waits in a subscription schedule.
//! - Hosted pages: Checkout (`/checkout/{id}`), the Customer Portal (`/portal/{id}`),
//!   invoices (`/invoice/{id}`).
//! - Webhooks: every change emits Stripe's events, signed and delivered with retries.
//! - A test clock per customer (`/_admin/customers/{id}/advance`), a delivery log
//!   (`/_admin/deliveries`).
//! - For tests: refusals it answers instead of running a request ([`Fault`], e.g. the 403 a
//!   restricted key without a permission gets), and a log of the API requests it received.
//!
//! It refuses live keys and listens on loopback unless told otherwise. All routes are relative:
//! an app may nest the router (Billfold mounts it at `/_stripe-sim` in simulated mode);
//! standalone it sits at the root. It depends on no app: it signs its webhooks with its own
//! [`signature`] module.

mod api;
mod cards;
mod cli;
mod clock;
mod error;
mod events;
mod faults;
pub mod form;
mod hosted;
mod model;
mod params;
mod plan_change;
mod proration;
mod render;
mod sample;
pub mod signature;
mod state;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use anyhow::Context;
use axum::{
    routing::{any, get, post},
    Router,
};
use tokio::sync::Notify;

pub use cli::{
    run_standalone, trigger, trigger_and_report, trigger_event_types, ServeArgs, TriggerArgs,
};
pub use events::DeliveryOptions;
pub use faults::{ApiRequest, Fault};
pub use model::{DeliveryAttempt, DeliveryRecord, RetriesExhausted};
pub use render::API_VERSION;

use model::{new_id, State, WebhookEndpoint};

/// How often real time is checked for renewals, trial ends and expired sessions.
const CLOCK_TICK: Duration = Duration::from_secs(30);

/// How to run the double.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Public base URL where the double's router is reachable, without trailing slash,
    /// e.g. `http://127.0.0.1:3000/_stripe-sim` (mounted in the app) or
    /// `http://127.0.0.1:12111` (standalone). Hosted page URLs are built from it.
    pub public_base: String,
    /// JSON file the state persists to; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// Webhook retry schedule, timeouts and chaos.
    pub delivery: DeliveryOptions,
    /// Whether a fresh state starts with the demo catalogue (true) or an empty account.
    pub seed: bool,
}

impl SimOptions {
    /// In-memory state, Stripe's default delivery schedule.
    pub fn new(public_base: impl Into<String>) -> Self {
        SimOptions {
            public_base: public_base.into(),
            state_file: None,
            delivery: DeliveryOptions::default(),
            seed: true,
        }
    }
}

/// A running double: cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct StripeSim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    state_file: Option<PathBuf>,
    delivery: DeliveryOptions,
    http: reqwest::Client,
    /// Wakes the delivery worker when something new is queued.
    wake: Notify,
    /// Serialises saves; holds the version last written.
    saved_version: tokio::sync::Mutex<u64>,
    version: std::sync::atomic::AtomicU64,
    /// Refusals set up by a test, and the requests seen (never saved).
    faults: Mutex<faults::Faults>,
}

impl StripeSim {
    /// Loads the state file (or seeds the catalogue) and starts the delivery worker and the clock.
    pub async fn open(opts: SimOptions) -> anyhow::Result<StripeSim> {
        let public_base = opts.public_base.trim_end_matches('/').to_string();
        url::Url::parse(&public_base)
            .with_context(|| format!("public_base is not a URL: {public_base}"))?;
        let mut state = match &opts.state_file {
            Some(path) => load_state(path).await?,
            None => None,
        };
        let fresh = state.is_none();
        let mut st = state.take().unwrap_or_default();
        st.env = model::Env {
            public_base,
            chaos: events::chaos_from(&opts.delivery),
        };
        if fresh && opts.seed {
            st.seed();
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the webhook HTTP client")?;
        let sim = StripeSim {
            inner: Arc::new(Inner {
                state: Mutex::new(st),
                state_file: opts.state_file,
                delivery: opts.delivery,
                http,
                wake: Notify::new(),
                saved_version: tokio::sync::Mutex::new(0),
                version: std::sync::atomic::AtomicU64::new(0),
                faults: Mutex::default(),
            }),
        };
        sim.changed().await;
        sim.spawn_workers();
        Ok(sim)
    }

    /// Every route, relative to the base: `/v1/...`, the hosted pages and `/_admin/...`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(hosted::index))
            .route("/v1", any(api::handle))
            .route("/v1/", any(api::handle))
            .route("/v1/{*rest}", any(api::handle))
            .merge(hosted::routes())
            .route("/_admin/deliveries", get(api::admin::deliveries))
            .route(
                "/_admin/customers/{id}/advance",
                post(api::admin::advance_customer_clock),
            )
            .route("/_admin/settings", post(api::admin::settings))
            .with_state(self.clone())
    }

    /// Registers a webhook endpoint (all event types) unless one with this URL exists;
    /// returns its id. The secret of an existing endpoint is replaced by `secret`.
    pub fn add_webhook_endpoint(&self, url: &str, secret: &str) -> String {
        let id = {
            let mut st = self.lock();
            if let Some(existing) = st.webhook_endpoints.iter_mut().find(|e| e.url == url) {
                existing.secret = secret.to_string();
                existing.status = "enabled".into();
                existing.id.clone()
            } else {
                let endpoint = WebhookEndpoint {
                    id: new_id("we_", 24),
                    created: clock::now(),
                    url: url.to_string(),
                    secret: secret.to_string(),
                    enabled_events: vec!["*".into()],
                    description: Some("Registered by Billfold".into()),
                    metadata: Default::default(),
                    status: "enabled".into(),
                    api_version: None,
                };
                let id = endpoint.id.clone();
                st.webhook_endpoints.push(endpoint);
                id
            }
        };
        self.changed_in_background();
        id
    }

    /// Moves one customer's test clock forward by `by` and runs what fell due: renewals,
    /// trial ends, payment retries, scheduled cancellations.
    pub async fn advance_customer_clock(&self, customer: &str, by: Duration) -> anyhow::Result<()> {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.lock()
            .advance_clock(customer, seconds)
            .map_err(|e| anyhow::anyhow!(e.message))?;
        self.changed().await;
        Ok(())
    }

    /// The webhook delivery log, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().deliveries.clone()
    }

    /// What happens once every retry of a failed renewal is spent.
    pub async fn set_retries_exhausted(&self, outcome: RetriesExhausted) {
        self.lock().settings.retries_exhausted = outcome;
        self.changed().await;
    }

    /// From now on, answers every API request `fault` matches with its refusal instead of
    /// running it (until [`StripeSim::clear_faults`]).
    pub fn add_fault(&self, fault: Fault) {
        self.faults().refusals.push(fault);
    }

    /// Runs every request again.
    pub fn clear_faults(&self) {
        self.faults().refusals.clear();
    }

    /// The API requests received (the latest thousand), oldest first.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.faults().log.iter().cloned().collect()
    }

    fn faults(&self) -> MutexGuard<'_, faults::Faults> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than stopping the double would; carry on with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a change: save the state and wake the delivery worker.
    async fn changed(&self) {
        self.inner
            .version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake.notify_one();
        if let Err(e) = self.persist().await {
            tracing::error!("stripe_sim: could not save its state: {e:#}");
        }
    }

    /// For synchronous callers: saves in the background when a runtime is there to do it
    /// (the next change saves it otherwise).
    fn changed_in_background(&self) {
        self.inner
            .version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let sim = self.clone();
            runtime.spawn(async move { sim.changed().await });
        }
    }

    async fn persist(&self) -> anyhow::Result<()> {
        let Some(path) = self.inner.state_file.clone() else {
            return Ok(());
        };
        let mut saved = self.inner.saved_version.lock().await;
        let (version, bytes) = {
            let st = self.lock();
            let version = self.inner.version.load(std::sync::atomic::Ordering::SeqCst);
            (version, serde_json::to_vec(&*st)?)
        };
        if version <= *saved {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await??;
        *saved = version;
        Ok(())
    }

    fn spawn_workers(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(delivery_loop(weak.clone()));
        tokio::spawn(clock_loop(weak));
    }

    async fn attempt_delivery(&self, delivery_id: String) {
        let request = self.lock().delivery_request(&delivery_id);
        let started = clock::now_millis();
        let (status, error) = match request {
            None => (
                None,
                Some("the endpoint or event no longer exists".to_string()),
            ),
            Some((url, secret, payload)) => {
                match events::send_signed(
                    &self.inner.http,
                    &url,
                    &secret,
                    payload,
                    self.inner.delivery.attempt_timeout,
                )
                .await
                {
                    Ok(status) => (Some(status), None),
                    Err(e) => (None, Some(e)),
                }
            }
        };
        self.lock().finish_attempt(
            &delivery_id,
            started,
            status,
            error,
            &self.inner.delivery.retry_schedule,
        );
        self.changed().await;
    }
}

async fn delivery_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let sim = StripeSim { inner };
        let (due, next) = sim.lock().take_due_deliveries(clock::now_millis());
        for id in due {
            let sim = sim.clone();
            tokio::spawn(async move { sim.attempt_delivery(id).await });
        }
        let wait_millis = next
            .map(|at| (at - clock::now_millis()).clamp(1, 1000))
            .unwrap_or(1000);
        let wait = Duration::from_millis(u64::try_from(wait_millis).unwrap_or(1000));
        tokio::select! {
            _ = sim.inner.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn clock_loop(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(CLOCK_TICK).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let sim = StripeSim { inner };
        sim.lock().run_all_clocks();
        sim.changed().await;
    }
}

async fn load_state(path: &Path) -> anyhow::Result<Option<State>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "the Stripe double's state file {} is not valid",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    })
    .await?
}

/// Writes to a temporary file beside the target, then renames it over: a crash leaves the
/// old state or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
