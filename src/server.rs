//! The composition root: builds the app state, mounts every route group under the layers
//! that guard it, and serves with graceful shutdown. Nothing imports this module.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, Request, StatusCode},
    middleware::{from_fn, from_fn_with_state, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use leptos::prelude::*;
use leptos_axum::{
    generate_route_list, generate_route_list_with_exclusions, AxumRouteListing, LeptosRoutes,
};
use tokio::net::TcpListener;
use tower_http::{services::ServeDir, timeout::TimeoutLayer, trace::TraceLayer};

/// The longest any request may take, Stripe calls (10 s each) included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

use crate::{
    app::{shell, App, ADMIN_PAGES, SIGNED_IN_PAGES, SIGNED_OUT_PAGES},
    auth::ssr::{require_sign_in, session_layer, signed_out_only},
    config::{Config, MetricsExposure},
    db,
    error::AppError,
    state::AppState,
    web::{headers::security_headers, origin::origin_guard},
};

/// Connects to the database and migrates it; fails (and the app stops) if either fails.
/// In simulated mode it also opens the Stripe test double and registers this app's
/// webhook endpoint with it under a fresh signing secret.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = db::connect_and_migrate(config.database_url.expose()).await?;
    let installation = db::installation::installation_id(&db)
        .await
        .context("cannot read this installation's id from the database")?;
    #[cfg(feature = "stripe-sim")]
    if config.stripe.mode == crate::config::StripeMode::Simulated {
        let mut config = config;
        let sim = simulated::open(&mut config).await?;
        let mut state = AppState::new(config, db, installation)?;
        state.sim = Some(sim);
        return Ok(state);
    }
    AppState::new(config, db, installation)
}

/// Simulated mode: the Stripe test double mounted in the app, and its demo account.
#[cfg(feature = "stripe-sim")]
mod simulated {
    use std::time::Duration;

    use anyhow::Context;
    use stripe_sim::{SimOptions, StripeSim};

    use crate::{
        config::{Config, Secret},
        stripe_api::SIM_MOUNT,
    };

    /// Opens the mounted double and points its webhooks at this app's own listener.
    pub async fn open(config: &mut Config) -> anyhow::Result<StripeSim> {
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
        sim.add_webhook_endpoint(&crate::stripe_api::webhook_url(config), &secret);
        config.stripe.webhook_secrets = vec![Secret::new(secret)];
        Ok(sim)
    }

    /// `billfold catalog apply` against the double: an edited billing.toml is for sale at the
    /// next start without a command (the double's own seed is the repository's catalogue, so
    /// the demo's first start changes nothing). A failure is logged; the app serves anyway.
    pub async fn apply_catalogue(state: &crate::state::AppState) {
        use crate::{commands::catalog, stripe_api::raw::Rest};
        let applied = async {
            let rest = Rest::new(&state.config)?;
            let steps = catalog::apply(&rest, &state.config.catalog).await?;
            if !steps.is_empty() {
                crate::billing::plans::sync_catalogue(state).await?;
            }
            anyhow::Ok(steps.len())
        };
        match applied.await {
            Ok(0) => tracing::debug!("the double already sells the catalogue"),
            Ok(n) => tracing::info!(
                changes = n,
                "applied billing.toml's catalogue to the double"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not apply the catalogue to the double")
            }
        }
    }
}

/// The app's pages in the groups [`router`] layers differently, each list also excluding
/// every server function (those are routed once, with `everything_else`).
struct RouteLists {
    signed_in: Vec<AxumRouteListing>,
    signed_out: Vec<AxumRouteListing>,
    admin: Vec<AxumRouteListing>,
    everything_else: Vec<AxumRouteListing>,
}

/// The route lists, made once per process. Leptos holds back every resource first polled
/// while anything in the process lists routes (one switch for the whole process, never
/// re-checked by the resource), so listing them again while another app in the process served
/// pages (replicas and restarts in one process, as the tests run them) left those pages
/// waiting for the request timeout.
fn route_lists() -> &'static RouteLists {
    static LISTS: std::sync::OnceLock<RouteLists> = std::sync::OnceLock::new();
    LISTS.get_or_init(|| {
        let all_pages: Vec<String> = generate_route_list(App)
            .iter()
            .map(|r| r.path().to_owned())
            .collect();
        let server_fns: Vec<String> = leptos::server_fn::axum::server_fn_paths()
            .map(|(path, _)| path.to_owned())
            .collect();
        let guarded: Vec<&str> = SIGNED_IN_PAGES
            .iter()
            .chain(SIGNED_OUT_PAGES)
            .chain(ADMIN_PAGES)
            .copied()
            .collect();
        for page in &guarded {
            assert!(
                all_pages.iter().any(|p| p == page),
                "{page} is guarded but is not a route of the app"
            );
        }
        // Only these pages (no server functions) from the app's route list.
        let pages_only = |wanted: &[&str]| {
            let excluded = all_pages
                .iter()
                .filter(|p| !wanted.contains(&p.as_str()))
                .chain(&server_fns)
                .cloned()
                .collect();
            generate_route_list_with_exclusions(App, Some(excluded))
        };
        RouteLists {
            signed_in: pages_only(SIGNED_IN_PAGES),
            signed_out: pages_only(SIGNED_OUT_PAGES),
            admin: pages_only(ADMIN_PAGES),
            everything_else: generate_route_list_with_exclusions(
                App,
                Some(guarded.iter().map(|p| (*p).to_owned()).collect()),
            ),
        }
    })
}

/// The whole HTTP surface of Billfold, as route groups each under its own layers:
/// - machine routes (health check, Stripe's webhooks, the built assets, the mounted double):
///   no session, no cross-origin check;
/// - everything a browser uses for a user (pages, server functions, public files): the
///   session and the cross-origin check, and within it the pages that need a signed-in user,
///   those for signed-out visitors only, and the operators' page and its replay action (the
///   not-found page for anyone else).
pub fn router(state: AppState) -> Router {
    let lists = route_lists();
    let pages = |listed: &Vec<AxumRouteListing>| leptos_pages(&state, listed.clone());

    let for_users = crate::billing::routes()
        .merge(crate::accounts::ssr::routes())
        .merge(pages(&lists.signed_in).route_layer(from_fn(require_sign_in)))
        .merge(pages(&lists.signed_out).route_layer(from_fn(signed_out_only)))
        .merge(crate::admin::ssr::routes(
            pages(&lists.admin),
            &state,
            not_found_page,
        ))
        .merge(pages(&lists.everything_else))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn(server_fn_error_status))
        .layer(from_fn_with_state(state.clone(), session_layer))
        .layer(from_fn_with_state(state.clone(), origin_guard))
        .layer(from_fn_with_state(state.clone(), security_headers));

    #[cfg_attr(not(feature = "stripe-sim"), allow(unused_mut))]
    let mut machines = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_with_token))
        .merge(crate::webhooks::routes())
        .nest_service("/pkg", ServeDir::new(state.config.site_root.join("pkg")));
    #[cfg(feature = "stripe-sim")]
    if let Some(sim) = &state.sim {
        // Also at `/v1`: Stripe's CLI keeps only the host of `--api-base` (it resolves
        // `/v1/…` against it), so `stripe trigger … --api-base http://this-app` reaches the
        // double either way.
        machines = machines
            .nest_service(crate::stripe_api::SIM_MOUNT, sim.router())
            .route_service("/v1/{*rest}", sim.router());
    }

    machines
        .merge(for_users)
        // Nothing a user or Stripe sends should ever wait forever on us. Running out of
        // time is the server's failure, not the client's: 503, which Stripe retries.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
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

/// The Leptos pages (and server functions) of one route listing, with the app state in
/// their context.
fn leptos_pages(state: &AppState, routes: Vec<AxumRouteListing>) -> Router<AppState> {
    let context_state = state.clone();
    let provide_state = move || provide_context(context_state.clone());
    let options = state.leptos_options.clone();
    Router::new()
        .leptos_routes_with_context(state, routes, provide_state, move || shell(options.clone()))
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
        if let Some(secs) = err.retry_after() {
            parts
                .headers
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// 200 when the database answers, 503 when it does not; with when the reconciler last
/// finished a cycle that did everything it tried (unix seconds, on any replica; `null` if
/// none has yet).
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if db::ping(&state.db).await {
        let last = crate::reconcile::last_success(&state.db)
            .await
            .ok()
            .flatten();
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ok", "reconciled_at": last })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": "database unreachable" })),
        )
    }
}

/// `/metrics` on the app's address: behind `METRICS_TOKEN` when that is set; otherwise it
/// is not there (404), whether or not `METRICS_ADDR` serves the metrics elsewhere.
async fn metrics_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.config.metrics {
        MetricsExposure::Token(token) => {
            crate::metrics::answer_with_token(token.expose(), &headers)
        }
        MetricsExposure::Off | MetricsExposure::Addr(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// With `METRICS_ADDR`, a listener of its own that serves `/metrics` and nothing else.
async fn serve_metrics(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics (METRICS_ADDR)"))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    let app = Router::new().route("/metrics", get(|| async { crate::metrics::exposition() }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// A path no route matches.
const NOWHERE: &str = "/.not-found";

/// The app's not-found page (404) for a request, rendered exactly as for any unknown address:
/// what the operators' guard shows everyone who is not an operator.
fn not_found_page(
    state: AppState,
    mut req: Request<Body>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        let nowhere = axum::http::Uri::from_static(NOWHERE);
        *req.uri_mut() = nowhere.clone();
        leptos_axum::file_and_error_handler::<AppState, _>(shell)(nowhere, State(state), req).await
    })
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
            match crate::billing::plans::sync_catalogue(&state).await {
                Ok(n) => tracing::debug!(prices = n, "plan catalogue loaded from Stripe"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not load the plan catalogue from Stripe")
                }
            }
        }
    });
    crate::metrics::start();
    if let MetricsExposure::Addr(addr) = state.config.metrics {
        serve_metrics(addr).await?;
    }
    let (stop_reconciler, stopped) = tokio::sync::watch::channel(false);
    if let Some(every) = state.config.reconcile_every {
        tokio::spawn(crate::reconcile::run_every(
            state.clone(),
            every,
            stopped.clone(),
        ));
    }
    tokio::spawn(crate::billing::stripe_outbox::run(
        state.clone(),
        stopped.clone(),
    ));
    tokio::spawn(crate::mail::sender::run(
        state.db.clone(),
        state.mail.clone(),
        state.config.clone(),
        stopped,
    ));
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server error");
    let _ = stop_reconciler.send(true);
    served
}

/// Runs the app from its config: database, migrations, router, graceful shutdown.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.bind_addr;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set BIND_ADDR)"))?;
    tracing::info!(%addr, mode = ?state.config.stripe.mode, "Billfold is listening on http://{addr}");
    // Simulated mode sells what billing.toml says, and has a demo account.
    #[cfg(feature = "stripe-sim")]
    if state.sim.is_some() {
        // Through the API like any client, so only once the listener (the double) is up.
        let state = state.clone();
        tokio::spawn(async move {
            simulated::apply_catalogue(&state).await;
            if let Err(e) = crate::demo_account::seed(&state).await {
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
