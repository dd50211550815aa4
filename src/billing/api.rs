//! The billing server functions, at fixed endpoints under `/api/billing/`. Each checks the
//! session first; none takes a customer or subscription id from the request.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::summary::{BillingSummary, ProReport, Projects};
use crate::error::AppError;

/// A Customer Portal deep link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortalFlow {
    PaymentMethodUpdate,
    SubscriptionCancel,
    SubscriptionUpdate,
    /// Straight to Stripe's confirmation of a switch to one price (with what it costs).
    SubscriptionUpdateConfirm,
}

impl PortalFlow {
    pub fn parse(s: &str) -> Option<PortalFlow> {
        match s {
            "payment_method_update" => Some(PortalFlow::PaymentMethodUpdate),
            "subscription_cancel" => Some(PortalFlow::SubscriptionCancel),
            "subscription_update" => Some(PortalFlow::SubscriptionUpdate),
            "subscription_update_confirm" => Some(PortalFlow::SubscriptionUpdateConfirm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PortalFlow::PaymentMethodUpdate => "payment_method_update",
            PortalFlow::SubscriptionCancel => "subscription_cancel",
            PortalFlow::SubscriptionUpdate => "subscription_update",
            PortalFlow::SubscriptionUpdateConfirm => "subscription_update_confirm",
        }
    }
}

/// The demo app's Pro feature, behind the access guard: without access it answers 403 with
/// the reason and the billing page, never the report.
#[server(name = GetProReport, prefix = "/api", endpoint = "pro/report")]
pub async fn get_pro_report() -> Result<ProReport, AppError> {
    let paid = super::guard::require_access().await?;
    super::pro_report::pro_report(&crate::web::app_state()?, &paid).await
}

/// The demo app's projects and how many the plan allows.
#[server(name = GetProjects, prefix = "/api", endpoint = "app/projects")]
pub async fn get_projects() -> Result<Projects, AppError> {
    use crate::web::{app_state, require_user};
    let user = require_user()?.user;
    super::projects::list(&app_state()?, &user).await
}

/// Adds a project when the plan's `projects` limit allows one more (403 naming the plans that
/// allow more otherwise); back to `/app`.
#[server(name = CreateProject, prefix = "/api", endpoint = "app/projects/create")]
pub async fn create_project(#[server(default)] name: String) -> Result<(), AppError> {
    use crate::web::{app_state, require_user};
    let user = require_user()?.user;
    super::projects::create(&app_state()?, &user, &name).await?;
    leptos_axum::redirect("/app");
    Ok(())
}

/// What the billing page renders. `from=portal|checkout` first re-syncs from Stripe.
#[server(name = GetBillingSummary, prefix = "/api", endpoint = "billing/summary")]
pub async fn get_billing_summary(from: Option<String>) -> Result<BillingSummary, AppError> {
    use crate::web::{app_state, require_user};
    let signed_in = require_user()?;
    let state = app_state()?;
    if matches!(from.as_deref(), Some("portal" | "checkout")) {
        super::summary_load::resync_on_return(&state, &signed_in.user).await?;
    }
    super::summary_load::load_summary(&state, &signed_in).await
}

/// Opens the Stripe Customer Portal, or one of its flows (`flow`). Answers with the portal
/// URL; a plain form post (no JavaScript) is redirected there.
#[server(name = OpenBillingPortal, prefix = "/api", endpoint = "billing/portal")]
pub async fn open_billing_portal(
    flow: Option<String>,
    #[server(default)] price_id: Option<String>,
) -> Result<String, AppError> {
    use crate::web::{app_state, require_user};
    let user = require_user()?.user;
    let flow = match flow.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(raw) => Some(PortalFlow::parse(raw).ok_or_else(|| {
            AppError::invalid(
                "flow",
                "flow must be payment_method_update, subscription_cancel, subscription_update or \
                 subscription_update_confirm.",
            )
        })?),
    };
    let price_id = price_id.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let url = super::portal::open_portal(&app_state()?, &user, flow, price_id).await?;
    redirect_plain_form(&url);
    Ok(url)
}

/// Starts Stripe Checkout for a plan (`price_id`). Answers with the Checkout URL; a plain
/// form post is redirected there.
#[server(name = StartCheckout, prefix = "/api", endpoint = "billing/checkout")]
pub async fn start_checkout(#[server(default)] price_id: String) -> Result<String, AppError> {
    use crate::web::{app_state, require_user};
    let user = require_user()?.user;
    let price_id = price_id.trim();
    if price_id.is_empty() {
        return Err(AppError::invalid("price_id", "Choose a plan."));
    }
    let url = super::checkout::start_checkout(&app_state()?, &user, price_id).await?;
    redirect_plain_form(&url);
    Ok(url)
}

/// Creates the user's Stripe customer when sign-up could not (Stripe was unreachable).
#[server(name = CreateBillingAccount, prefix = "/api", endpoint = "billing/account")]
pub async fn create_billing_account() -> Result<(), AppError> {
    use crate::web::{app_state, require_user};
    let user = require_user()?.user;
    let state = app_state()?;
    super::roles::require_billing_manager(&state, &user).await?;
    super::customer::ensure_customer(&state, &user).await?;
    leptos_axum::redirect("/settings/billing");
    Ok(())
}

/// Sends a browser that posted a plain HTML form on to `url`. Hydrated pages get the URL in
/// the answer and leave themselves, so the page can keep the button disabled meanwhile.
#[cfg(feature = "ssr")]
fn redirect_plain_form(url: &str) {
    use axum::http::header::ACCEPT;
    let plain_form = use_context::<axum::http::request::Parts>().is_some_and(|p| {
        p.headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    });
    if plain_form {
        leptos_axum::redirect(url);
    }
}
