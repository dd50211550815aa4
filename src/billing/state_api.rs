//! `GET /api/billing/state`: the signed-in user's billing as JSON, for the host app's own
//! front-end. It is the billing page's summary (the same loader, the same rules, the same clock
//! reading) in a stable shape: the plan, its status and state, access and its reason, the
//! features and limits the plan includes now, and the dates that matter. No Stripe call.
//!
//! ```json
//! {
//!   "plan": { "key": "pro", "name": "Pro", "price_id": "price_…", "amount": 2900,
//!             "currency": "usd", "interval": "month" },
//!   "status": "active",
//!   "state": "active",
//!   "access": { "granted": true, "reason": "active",
//!               "message": "Your subscription is active.", "until": 1767225600 },
//!   "features": [ { "lookup_key": "api", "name": "API access" },
//!                 { "lookup_key": "export", "name": "Export to CSV" } ],
//!   "limits": { "projects": 20 },
//!   "dates": { "trial_ends": null, "renews_at": 1767225600, "cancels_at": null,
//!              "ended_at": null, "switches_to": null, "access_ends": null },
//!   "payment_failed": null,
//!   "may_start_plan": false,
//!   "billing_url": "/settings/billing"
//! }
//! ```
//!
//! A limit is `null` when the plan sets no cap, and 0 without access. Signed out: 401 with
//! `login_url`.

use std::collections::BTreeMap;

use axum::{extract::State, response::IntoResponse, Extension, Json};
use serde::Serialize;

use super::{
    access::Reason,
    guard::{Refused, BILLING_PAGE},
    summary::{BillingSummary, FeatureView, PlanState},
    summary_load::load_summary,
};
use crate::{error::AppError, state::AppState, web::SignedIn};

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingState {
    /// The primary subscription's plan; `null` without a subscription.
    pub plan: Option<PlanOut>,
    /// Stripe's status of the primary subscription (`active`, `trialing`, `past_due`, …).
    pub status: Option<String>,
    /// What the billing page says of it: `none`, `trial`, `active`, `cancelling`,
    /// `payment_failed`, `retries_stopped` or `ended`.
    pub state: &'static str,
    pub access: AccessOut,
    /// The features included now (none without access).
    pub features: Vec<FeatureView>,
    /// Every limit the catalogue names: the allowance now (`null`: no cap).
    pub limits: BTreeMap<String, Option<u64>>,
    pub dates: Dates,
    /// When a payment failed: the attempts, the next one, and when access ends.
    pub payment_failed: Option<PaymentFailed>,
    /// Whether Checkout would start a plan (no plan, or only one that ended).
    pub may_start_plan: bool,
    pub billing_url: &'static str,
    /// The organisation this billing is (the user's current one) and what the user may do.
    pub organization: OrganizationOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationOut {
    pub name: String,
    /// The user's personal organisation.
    pub personal: bool,
    /// `owner`, `billing_admin` or `member`.
    pub role: crate::domain::Role,
    /// May open Checkout, switch plans and open the portal.
    pub manages_billing: bool,
    /// Whom a member asks (empty for those who manage billing).
    pub billing_contacts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanOut {
    /// The catalogue's plan key; `null` for a product the catalogue does not sell.
    pub key: Option<String>,
    pub name: Option<String>,
    pub price_id: Option<String>,
    /// In the currency's smallest unit.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessOut {
    pub granted: bool,
    pub reason: Reason,
    /// The reason in the words the pages use.
    pub message: &'static str,
    /// When granted access ends unless renewed.
    pub until: Option<i64>,
}

/// Unix seconds, each `null` when it does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dates {
    pub trial_ends: Option<i64>,
    pub renews_at: Option<i64>,
    pub cancels_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// A switch Stripe has scheduled (a downgrade at the period's end).
    pub switches_to: Option<Switch>,
    /// When a failed payment's grace ends (`PAST_DUE_GRACE`).
    pub access_ends: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Switch {
    pub plan: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentFailed {
    pub attempts: i32,
    pub next_retry: Option<i64>,
    pub retries_stopped: bool,
    pub invoice_url: Option<String>,
}

impl BillingState {
    /// The page's summary in this shape: every value read from it, none decided again.
    pub fn of(s: &BillingSummary) -> BillingState {
        let primary = s.primary();
        let access = s.access();
        let dunning = s.dunning();
        let plan_state = s.plan_state();
        let (state, trial_ends, renews_at, cancels_at, ended_at) = match plan_state {
            PlanState::None => ("none", None, None, None, None),
            PlanState::Trial { ends } => ("trial", ends, None, None, None),
            PlanState::Active { renews } => ("active", None, renews, None, None),
            PlanState::Cancelling { ends } => ("cancelling", None, None, Some(ends), None),
            PlanState::PaymentFailed => ("payment_failed", None, None, None, None),
            PlanState::RetriesStopped => ("retries_stopped", None, None, None, None),
            PlanState::Ended { ended } => ("ended", None, None, None, ended),
        };
        BillingState {
            plan: primary.map(|p| PlanOut {
                key: s.included.plan_key.clone(),
                name: p.plan_name.clone(),
                price_id: p.price_id.clone(),
                amount: p.unit_amount,
                currency: p.currency.clone(),
                interval: p.interval.clone(),
            }),
            status: primary.map(|p| p.subscription.status.as_str().to_owned()),
            state,
            access: AccessOut {
                granted: access.granted,
                message: access.reason.describe(),
                reason: access.reason,
                until: access.until,
            },
            features: s.included.features.clone(),
            limits: s
                .limit_names
                .iter()
                .map(|name| (name.clone(), s.included.limit(name)))
                .collect(),
            dates: Dates {
                trial_ends,
                renews_at,
                cancels_at,
                ended_at,
                switches_to: primary
                    .and_then(|p| p.switches_to.clone())
                    .map(|(plan, at)| Switch { plan, at }),
                access_ends: dunning.as_ref().and_then(|d| d.access_ends),
            },
            payment_failed: dunning.map(|d| PaymentFailed {
                attempts: d.attempts,
                next_retry: d.next_retry,
                retries_stopped: d.retries_stopped,
                invoice_url: d.invoice_url,
            }),
            may_start_plan: plan_state.offers_new_plan(),
            billing_url: BILLING_PAGE,
            organization: OrganizationOut {
                name: s.org.name.clone(),
                personal: s.org.personal,
                role: s.org.role,
                manages_billing: s.org.role.manages_billing(),
                billing_contacts: s.billing_contacts.clone(),
            },
        }
    }
}

/// `GET /api/billing/state`: 401 signed out; else the state.
pub async fn billing_state(
    State(state): State<AppState>,
    signed_in: Option<Extension<SignedIn>>,
) -> Result<Json<BillingState>, axum::response::Response> {
    let Some(Extension(signed_in)) = signed_in else {
        return Err(Refused::SignedOut.into_response());
    };
    let summary = load_summary(&state, &signed_in)
        .await
        .map_err(AppError::into_response)?;
    Ok(Json(BillingState::of(&summary)))
}
