//! The web layer every feature stands on: who is asking (the signed-in user, the client's
//! address), the app state, response headers from inside a server function, and the guards
//! that cut across features (the cross-origin check, security headers). Rate limits are
//! their own module ([`crate::limits`]), below this one and the app state.
//!
//! It imports no feature; features import it.

pub mod client;
pub mod headers;
pub mod origin;

use std::net::SocketAddr;

use axum::{
    extract::ConnectInfo,
    http::{header::HeaderName, request::Parts, HeaderValue},
};
use leptos::prelude::use_context;

use crate::{error::AppError, state::AppState};

/// The signed-in user as server code sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    /// The owner followed a link mailed to `email` (until then the address is a claim).
    pub email_verified: bool,
    /// The organisation the user acts for in this request (the one chosen in the header, or
    /// their personal one), checked to be one they belong to, with their role in it.
    pub org: crate::domain::CurrentOrg,
}

/// The signed-in user of this request, put into the request's extensions by the session
/// middleware.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: CurrentUser,
    /// Every organisation the user belongs to, in the order they joined them, the current one
    /// marked (read with the session: the header's switcher lists them).
    pub orgs: Vec<crate::domain::OrgChoice>,
    /// The stored hash of the session token (what log-out deletes).
    pub token_hash: String,
}

/// The app state, from the server function's context.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
}

/// The request being served, from the server function's context.
pub fn request_parts() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| AppError::internal("request parts missing from context"))
}

/// The signed-in user of the current request, if any.
pub fn signed_in() -> Option<SignedIn> {
    use_context::<Parts>().and_then(|parts| parts.extensions.get::<SignedIn>().cloned())
}

/// The signed-in user, or [`AppError::Unauthorized`]: every protected server function starts here.
pub fn require_user() -> Result<SignedIn, AppError> {
    signed_in().ok_or(AppError::Unauthorized)
}

/// What the client's limits are counted under: its address (the TCP peer, or what the
/// trusted proxies' named header says, see [`client::client_ip`]), an IPv6 client's /64.
pub fn client_key(parts: &Parts, config: &crate::config::Config) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| {
            client::limit_key(client::client_ip(
                ci.0.ip(),
                &parts.headers,
                &config.trusted_proxies,
                config.trusted_proxy_header,
            ))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Adds a response header from inside a server function.
pub fn set_response_header(name: HeaderName, value: HeaderValue) {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.append_header(name, value);
    }
}
