//! The app state every handler and server function reads: settings, the database, the
//! Stripe client and the rate limiters. A leaf: it imports no feature.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::{
    config::Config,
    db::{cache::Cached, entities::price},
    web::limit::RateLimiter,
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
    /// Log-ins per email and per client address (10 a minute). This and the next two are
    /// shared by all replicas on PostgreSQL.
    pub login_limiter: Arc<RateLimiter>,
    /// Sign-ups per client address (20 an hour): each costs an argon2 hash and a Stripe
    /// customer.
    pub signup_limiter: Arc<RateLimiter>,
    /// Portal and Checkout sessions per user (10 a minute).
    pub portal_limiter: Arc<RateLimiter>,
    /// Re-syncs from Stripe on return from Checkout or the Portal: three in a row per user,
    /// then one every ~3 s (a Checkout and a portal return close together are both right).
    pub resync_throttle: Arc<RateLimiter>,
    /// The one Stripe API client (Stripe, a standalone double, or the mounted one).
    pub stripe: ::stripe::Client,
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
        let stripe = crate::stripe::client(&config)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("billfold")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.bind_addr)
            .build();
        // Log-in, sign-up and session limits are shared by replicas on PostgreSQL.
        let login_limiter = Arc::new(RateLimiter::for_database(
            "login",
            10,
            Duration::from_secs(60),
            &db,
        ));
        let signup_limiter = Arc::new(RateLimiter::for_database(
            "signup",
            20,
            Duration::from_secs(3600),
            &db,
        ));
        let portal_limiter = Arc::new(RateLimiter::for_database(
            "sessions",
            10,
            Duration::from_secs(60),
            &db,
        ));
        Ok(AppState {
            login_limiter,
            signup_limiter,
            portal_limiter,
            leptos_options,
            db,
            config: Arc::new(config),
            installation_id: installation_id.into(),
            // Only spares Stripe repeated reads; per process is enough.
            resync_throttle: Arc::new(RateLimiter::local("resync", 3, Duration::from_secs(10))),
            stripe,
            plans: Arc::new(Cached::catalogue()),
            reconcile_running: Arc::default(),
            #[cfg(feature = "stripe-sim")]
            sim: None,
        })
    }
}
