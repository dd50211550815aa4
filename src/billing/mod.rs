//! Billing: what a user sees of their subscription, and the ways into Stripe.
//!
//! Shared (both sides): the access rules, the page's summary DTO, the server function
//! signatures and the components. Server only: the queries behind the page, Checkout and
//! Customer Portal sessions, and [`sync`], the single writer of the billing tables.

pub mod access;
pub mod api;
pub mod model;
pub mod page;
pub mod summary;

pub use api::PortalFlow;

#[cfg(feature = "ssr")]
pub mod checkout;
#[cfg(feature = "ssr")]
pub mod customer;
#[cfg(feature = "ssr")]
pub mod entitlement;
#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod guard;
#[cfg(feature = "ssr")]
pub mod limits;
#[cfg(feature = "ssr")]
pub mod notices;
#[cfg(feature = "ssr")]
pub mod plans;
#[cfg(feature = "ssr")]
pub mod portal;
#[cfg(feature = "ssr")]
pub mod pro_report;
#[cfg(feature = "ssr")]
pub mod projects;
#[cfg(feature = "ssr")]
pub mod roles;
#[cfg(feature = "ssr")]
pub mod seats;
#[cfg(feature = "ssr")]
pub mod state_api;
#[cfg(feature = "ssr")]
pub mod stripe_errors;
#[cfg(feature = "ssr")]
pub mod stripe_outbox;
#[cfg(feature = "ssr")]
pub mod summary_load;
#[cfg(feature = "ssr")]
pub mod sync;

/// Billing's plain Axum routes (its pages and server functions come through the app's route
/// list): `GET /app/pro-report`, the paid-only report behind the access guard, and
/// `GET /app/export.csv`, behind the `export` feature; and `GET /api/billing/state`, the
/// billing page's summary as JSON.
#[cfg(feature = "ssr")]
pub fn routes() -> axum::Router<crate::state::AppState> {
    axum::Router::new()
        .route(
            "/app/pro-report",
            axum::routing::get(pro_report::pro_report_route),
        )
        .route("/app/export.csv", axum::routing::get(export::export_csv))
        .route(
            "/api/billing/state",
            axum::routing::get(state_api::billing_state),
        )
}
