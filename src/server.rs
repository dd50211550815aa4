//! The server: app state, the Axum router (Leptos pages, server functions, health check)
//! and serving with graceful shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    body::Body,
    extract::{FromRef, State},
    http::{Request, StatusCode},
    middleware::{from_fn, from_fn_with_state, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

/// The longest any request may take, Stripe calls (10 s each) included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

use crate::{
    app::{shell, App},
    auth::ssr::{origin_guard, session_layer, RateLimiter},
    config::{Config, Secret, StripeMode},
    db,
    error::AppError,
    stripe::SIM_MOUNT,
    stripe_sim::{SimOptions, StripeSim},
};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub login_limiter: Arc<RateLimiter>,
    /// Portal and Checkout sessions per user (10 a minute).
    pub portal_limiter: Arc<RateLimiter>,
    /// Re-syncs from Stripe on return from Checkout or the Portal (one per user per 3 s).
    pub resync_throttle: Arc<RateLimiter>,
    /// The one Stripe API client (Stripe, a standalone double, or the mounted one).
    pub stripe: ::stripe::Client,
    /// The Stripe test double mounted at `/_stripe-sim` (simulated mode only).
    pub sim: Option<StripeSim>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Connects to the database and migrates it; fails (and the app stops) if either fails.
    /// In simulated mode it also opens the Stripe test double and registers this app's
    /// webhook endpoint with it under a fresh signing secret.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let db = db::connect_and_migrate(config.database_url.expose()).await?;
        let sim = match config.stripe.mode {
            StripeMode::Simulated => Some(open_simulated_stripe(&mut config).await?),
            _ => None,
        };
        Self::with_db(config, db, sim)
    }

    pub fn with_db(
        config: Config,
        db: DatabaseConnection,
        sim: Option<StripeSim>,
    ) -> anyhow::Result<Self> {
        let stripe = crate::stripe::client(&config)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("billfold")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.bind_addr)
            .build();
        Ok(AppState {
            leptos_options,
            db,
            config: Arc::new(config),
            login_limiter: Arc::new(RateLimiter::new(10, Duration::from_secs(60))),
            portal_limiter: Arc::new(RateLimiter::new(10, Duration::from_secs(60))),
            resync_throttle: Arc::new(RateLimiter::new(1, Duration::from_secs(3))),
            stripe,
            sim,
        })
    }
}

/// Opens the mounted double and points its webhooks at this app's own listener.
async fn open_simulated_stripe(config: &mut Config) -> anyhow::Result<StripeSim> {
    let mut options = SimOptions::new(config.url_for(SIM_MOUNT));
    options.state_file = Some(config.stripe_sim_state.clone());
    // Quicker than Stripe's three days, so a demo converges while someone watches.
    options.delivery.retry_schedule = [1, 5, 30, 120, 600, 3600]
        .into_iter()
        .map(Duration::from_secs)
        .collect();
    let sim = StripeSim::open(options)
        .await
        .context("cannot open the Stripe test double's state (STRIPE_SIM_STATE)")?;
    let secret = format!(
        "whsec_{}",
        crate::auth::ssr::SessionToken::generate().as_str()
    );
    let api_base = crate::stripe::api_base(config).unwrap_or_default();
    let endpoint = format!(
        "{}/api/webhooks/stripe",
        api_base.trim_end_matches('/').trim_end_matches(SIM_MOUNT)
    );
    sim.add_webhook_endpoint(&endpoint, &secret);
    config.stripe.webhook_secrets = vec![Secret::new(secret)];
    Ok(sim)
}

/// Loads Stripe's active prices into the `prices` table through the sync writer, so the plan
/// picker has plans before any price event arrives.
pub async fn sync_catalogue(state: &AppState) -> anyhow::Result<usize> {
    crate::billing::ssr::sync_catalogue(state).await
}

/// The whole HTTP surface of Billfold.
pub fn router(state: AppState) -> Router {
    // Server functions are routed too, at their fixed endpoints, with the same context.
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let provide_state = move || provide_context(context_state.clone());

    let mut app = Router::new().route("/healthz", get(healthz)).route(
        "/api/webhooks/stripe",
        axum::routing::post(crate::webhooks::route::stripe_webhook),
    );
    if let Some(sim) = &state.sim {
        app = app.nest_service(SIM_MOUNT, sim.router());
    }
    app.leptos_routes_with_context(&state, routes, provide_state, {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    })
    .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
    .layer(from_fn(server_fn_error_status))
    .layer(from_fn_with_state(state.clone(), session_layer))
    .layer(from_fn_with_state(state.clone(), origin_guard))
    // Nothing a user or Stripe sends should ever wait forever on us.
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ))
    .layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            // The path only: queries and headers (cookies!) stay out of the logs.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }),
    )
    .with_state(state)
}

/// Middleware: a failed server function answers with its [`AppError`]'s own status. The
/// framework says 500 for every error, including a user's bad input.
async fn server_fn_error_status(req: Request<Body>, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res.headers().contains_key("serverfnerror")
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return (parts, Body::empty()).into_response(),
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = StatusCode::from_u16(err.status()).unwrap_or(parts.status);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// 200 when the database answers, 503 when it does not.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if db::ping(&state.db).await {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": "database unreachable" })),
        )
    }
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // In simulated mode "Stripe" is this very listener, so this must not block serving.
    tokio::spawn({
        let state = state.clone();
        async move {
            match sync_catalogue(&state).await {
                Ok(n) => tracing::debug!(prices = n, "plan catalogue loaded from Stripe"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not load the plan catalogue from Stripe")
                }
            }
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server error")
}

/// Runs the app from its config: database, migrations, router, graceful shutdown.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.bind_addr;
    let state = AppState::build(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set BIND_ADDR)"))?;
    tracing::info!(%addr, mode = ?state.config.stripe.mode, "Billfold is listening on http://{addr}");
    if state.sim.is_some() {
        // Through the API like any client, so only once the listener (the double) is up.
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::demo::seed(&state).await {
                tracing::warn!(error = %format!("{e:#}"), "could not seed the demo account");
            }
        });
    }
    serve_on(listener, state, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
