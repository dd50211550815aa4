//! Stripe webhooks: the route (limit → verify → parse once), signature checking, group
//! commit ([`batch`]) and the pipeline that applies each event exactly once and in order
//! through `billing::sync`.

pub mod batch;
pub mod event;
pub mod history;
pub mod payload;
pub mod pipeline;
pub mod route;
pub mod signature;

/// The webhook endpoint's route: `POST /api/webhooks/stripe`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    axum::Router::new().route(
        "/api/webhooks/stripe",
        axum::routing::post(route::stripe_webhook),
    )
}
