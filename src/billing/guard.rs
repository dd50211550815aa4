//! Paid access enforced on the server, in one line, for the host app's own code.
//!
//! - An Axum handler takes [`Paid`] as an argument: it runs only for a signed-in user whose
//!   plan grants access; anyone else gets 401 (not signed in) or 403 with the reason and the
//!   way to fix it (a link to the billing page), never the feature.
//! - A server function calls [`require_access`] first, which answers the same refusal as an
//!   [`AppError`].
//!
//! Both read the pure [`access`](super::access) rule over the database's copy of Stripe's
//! state, with the same clock as the pages: no Stripe call on the request's path.

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{access::Access, entitlement};
use crate::{
    error::AppError,
    state::AppState,
    web::{CurrentUser, SignedIn},
};

/// Where a user without access fixes it.
pub const BILLING_PAGE: &str = "/settings/billing";

/// A signed-in user whose plan grants access now, and why it does.
#[derive(Debug, Clone)]
pub struct Paid {
    pub user: CurrentUser,
    pub access: Access,
}

/// The user's access now, by the entitlement loader (the rule the page reads too).
pub async fn access_of(state: &AppState, user: &CurrentUser) -> Result<Access, AppError> {
    Ok(entitlement::load(state, user.id).await?.access)
}

/// Why a request was refused the feature: no session, or no access.
#[derive(Debug)]
pub enum Refused {
    SignedOut,
    NoAccess(Access),
    Failed(AppError),
}

impl Refused {
    /// The refusal as the error every server function answers with.
    pub fn into_app_error(self) -> AppError {
        match self {
            Refused::SignedOut => AppError::Unauthorized,
            Refused::NoAccess(access) => AppError::Forbidden(refusal_message(&access)),
            Refused::Failed(e) => e,
        }
    }
}

/// "This needs a plan: &lt;why&gt;. Choose or fix your plan at /settings/billing."
pub fn refusal_message(access: &Access) -> String {
    format!(
        "This needs an active plan. {} Choose or fix your plan on the billing page: {BILLING_PAGE}",
        access.reason.describe()
    )
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignedOut => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": AppError::Unauthorized.to_string(), "login_url": "/login" })),
            )
                .into_response(),
            Refused::NoAccess(access) => (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": refusal_message(&access),
                    "reason": access.reason,
                    "billing_url": BILLING_PAGE,
                })),
            )
                .into_response(),
            Refused::Failed(e) => e.into_response(),
        }
    }
}

async fn check(state: &AppState, signed_in: Option<&SignedIn>) -> Result<Paid, Refused> {
    let user = signed_in.ok_or(Refused::SignedOut)?.user.clone();
    let access = access_of(state, &user).await.map_err(Refused::Failed)?;
    if access.granted {
        Ok(Paid { user, access })
    } else {
        Err(Refused::NoAccess(access))
    }
}

impl FromRequestParts<AppState> for Paid {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        check(state, parts.extensions.get::<SignedIn>()).await
    }
}

/// For a server function: the signed-in user with access, or the refusal as an [`AppError`]
/// (401, or 403 with the reason and the billing page).
pub async fn require_access() -> Result<Paid, AppError> {
    let state = crate::web::app_state()?;
    check(&state, crate::web::signed_in().as_ref())
        .await
        .map_err(Refused::into_app_error)
}
