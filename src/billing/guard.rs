//! Paid access enforced on the server, in one line, for the host app's own code.
//!
//! - An Axum handler takes [`Paid`] as an argument: it runs only for a signed-in user whose
//!   plan grants access; anyone else gets 401 (not signed in) or 403 with the reason and the
//!   way to fix it (a link to the billing page), never the feature.
//! - A server function calls [`require_access`] first, which answers the same refusal as an
//!   [`AppError`].
//!
//! - One feature (by its lookup key in the catalogue, e.g. `export`): a handler takes
//!   [`Entitled<F>`] for a [`FeatureKey`] `F`, a server function calls [`require_feature`]. A
//!   feature is granted when Stripe's Entitlements list it for the user's customer *and* the
//!   access rule grants access; the refusal names the plans that include it.
//!
//! - A limit (e.g. `projects = 10` in the catalogue): a handler takes [`Includes`] and asks
//!   `included.limit("projects")`, a server function calls [`limit`]. `None` is no cap;
//!   without access, or on a plan the catalogue does not know, every limit is 0.
//!
//! Every guard answers for the user's *current organisation* (`CurrentUser::org`, resolved
//! with the session from the organisations the user belongs to): its customer, its plan, its
//! features and limits. A user who left an organisation no longer resolves to it.
//!
//! All read the pure [`access`](super::access) rule over the database's copy of Stripe's
//! state, with the same clock as the pages: no Stripe call on the request's path.

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{access::Access, entitlement, summary::Included};
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
    Ok(entitlement::load(state, user).await?.access)
}

/// Why a request was refused the feature: no session, no access, or a plan without it.
#[derive(Debug)]
pub enum Refused {
    SignedOut,
    NoAccess(Access),
    /// Access, but not to this feature: its message names the plans that include it.
    NotIncluded(String),
    Failed(AppError),
}

impl Refused {
    /// The refusal as the error every server function answers with.
    pub fn into_app_error(self) -> AppError {
        match self {
            Refused::SignedOut => AppError::Unauthorized,
            Refused::NoAccess(access) => AppError::Forbidden(refusal_message(&access)),
            Refused::NotIncluded(message) => AppError::Forbidden(message),
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
            Refused::NotIncluded(message) => (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": message,
                    "reason": "feature_not_included",
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

/// A feature of the catalogue, named by its lookup key, for [`Entitled`].
///
/// ```ignore
/// struct Export;
/// impl FeatureKey for Export {
///     const KEY: &'static str = "export";
/// }
/// async fn export_csv(Entitled(paid, _): Entitled<Export>) -> String {
///     format!("exporting for {}", paid.user.email)
/// }
/// ```
pub trait FeatureKey: Send + Sync + 'static {
    const KEY: &'static str;
}

/// A signed-in user whose plan includes the feature `F` now.
#[derive(Debug, Clone)]
pub struct Entitled<F: FeatureKey>(pub Paid, pub std::marker::PhantomData<F>);

/// "Export to CSV is included in Pro and Team. Choose a plan on the billing page: …"
fn not_included(state: &AppState, key: &str) -> String {
    format!(
        "{} Choose a plan on the billing page: {BILLING_PAGE}",
        state.config.catalog.where_included(key)
    )
}

async fn check_feature(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    key: &str,
) -> Result<Paid, Refused> {
    let user = signed_in.ok_or(Refused::SignedOut)?.user.clone();
    let (access, included) = includes_of(state, &user).await.map_err(Refused::Failed)?;
    if !access.granted {
        return Err(Refused::NoAccess(access));
    }
    if included.has(key) {
        Ok(Paid { user, access })
    } else {
        Err(Refused::NotIncluded(not_included(state, key)))
    }
}

/// The user's access and what the plan includes now, by the one loader.
async fn includes_of(state: &AppState, user: &CurrentUser) -> Result<(Access, Included), AppError> {
    let loaded = entitlement::load_all(state, user).await?;
    let included = entitlement::included(state, &loaded).await?;
    Ok((loaded.entitlement.access, included))
}

impl<F: FeatureKey> FromRequestParts<AppState> for Entitled<F> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        check_feature(state, parts.extensions.get::<SignedIn>(), F::KEY)
            .await
            .map(|paid| Entitled(paid, std::marker::PhantomData))
    }
}

/// For a server function: the signed-in user whose plan includes the feature `key` (a
/// lookup key of the catalogue), or the refusal as an [`AppError`] (401; 403 with the reason
/// and the billing page; or 403 naming the plans that include it).
pub async fn require_feature(key: &str) -> Result<Paid, AppError> {
    let state = crate::web::app_state()?;
    check_feature(&state, crate::web::signed_in().as_ref(), key)
        .await
        .map_err(Refused::into_app_error)
}

/// A signed-in user and what the plan includes now, for a handler that reads a limit (or
/// several features): `Includes(user, included)` then `included.limit("projects")`. Only a
/// signed-out request is refused (401); without access every limit is 0.
#[derive(Debug, Clone)]
pub struct Includes(pub CurrentUser, pub Included);

impl FromRequestParts<AppState> for Includes {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let user = parts
            .extensions
            .get::<SignedIn>()
            .ok_or(Refused::SignedOut)?
            .user
            .clone();
        let (_, included) = includes_of(state, &user).await.map_err(Refused::Failed)?;
        Ok(Includes(user, included))
    }
}

/// For a server function: how many of `name` (a limit of the catalogue, e.g. `projects`) the
/// signed-in user's plan allows now: `None` when it sets no cap, `Some(0)` without access
/// ([`Included::limit`]); 401 when signed out.
pub async fn limit(name: &str) -> Result<Option<u64>, AppError> {
    let state = crate::web::app_state()?;
    let user = crate::web::require_user()?.user;
    Ok(includes_of(&state, &user).await?.1.limit(name))
}
