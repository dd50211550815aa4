//! The app state every handler and server function reads: settings, the database, the
//! Stripe client and the rate limiters. A leaf: it imports no feature.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::{
    config::Config,
    db::{cache::Cached, entities::price},
    limits::Limiter,
    mail::Mailer,
};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    /// This installation's id (`db::installation`): part of every Stripe idempotency key
    /// Billfold makes, so installations sharing a Stripe account never share a key.
    pub installation_id: Arc<str>,
    /// Every rate limit's counts (log-ins, sign-ups, billing sessions, the Stripe budget of
    /// user-triggered calls, re-syncs): shared by all replicas on PostgreSQL, in this process
    /// on SQLite. The rules live with the features that enforce them.
    pub limits: Arc<Limiter>,
    /// How mail leaves (SMTP or the log), and the bell that wakes this process's sender.
    pub mail: Arc<Mailer>,
    /// The one Stripe API client (Stripe, a standalone double, or the mounted one).
    pub stripe: ::stripe::Client,
    /// Wakes this process's Stripe updates task when a change for Stripe is queued
    /// (`billing::stripe_outbox`; other replicas find it on their next poll).
    pub stripe_updates: Arc<tokio::sync::Notify>,
    /// The plans the billing pages offer (active recurring prices of this mode), kept for a
    /// second at most.
    pub plans: Arc<Cached<Vec<price::Model>>>,
    /// Held while this process runs a reconciler cycle, so it never runs two at once.
    pub reconcile_running: Arc<tokio::sync::Mutex<()>>,
    /// The Stripe test double mounted at `/_stripe-sim` (simulated mode only).
    #[cfg(feature = "stripe-sim")]
    pub sim: Option<stripe_sim::StripeSim>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// The state over an open, migrated database.
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        installation_id: String,
    ) -> anyhow::Result<Self> {
        let stripe = crate::stripe_api::client(&config)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("billfold")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.bind_addr)
            .build();
        let limits = Arc::new(Limiter::for_database(&db));
        let mail = Mailer::new(
            &config.mail,
            config.app_url.host_str().unwrap_or("localhost"),
        )?;
        Ok(AppState {
            limits,
            mail,
            leptos_options,
            db,
            config: Arc::new(config),
            installation_id: installation_id.into(),
            stripe,
            stripe_updates: Arc::default(),
            plans: Arc::new(Cached::catalogue()),
            reconcile_running: Arc::default(),
            #[cfg(feature = "stripe-sim")]
            sim: None,
        })
    }
}
