//! Subscription schedules (`/v1/subscription_schedules`): retrieve, list, release, cancel.
//! The portal makes them for a plan change that waits for the period's end.

use serde_json::Value;

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
};

fn subscription_schedule_view(st: &State, id: &str) -> ApiResult<Value> {
    st.subscription_schedule(id)
        .map(|s| st.subscription_schedule_json(s))
        .ok_or_else(|| ApiError::no_such("subscription_schedule", id, "schedule"))
}

pub(super) fn list_subscription_schedules(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "customer",
            "canceled_at",
            "completed_at",
            "released_at",
            "scheduled",
        ],
    )?;
    let customer = p.text("customer")?;
    let items = st
        .subscription_schedules
        .iter()
        .rev()
        .filter(|s| customer.as_ref().is_none_or(|c| &s.customer == c))
        .map(|s| (s.id.clone(), st.subscription_schedule_json(s)))
        .collect();
    page(p, "/v1/subscription_schedules", items)
}

/// `GET /v1/subscription_schedules/{id}`.
pub(super) fn retrieve_subscription_schedule(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    subscription_schedule_view(st, id)
}

/// `POST /v1/subscription_schedules/{id}/release`.
pub(super) fn release_subscription_schedule(
    st: &mut State,
    id: &str,
    p: &Params,
) -> ApiResult<Value> {
    p.allow(&["expand", "preserve_cancel_date"])?;
    st.release_schedule(id)?;
    subscription_schedule_view(st, id)
}

/// `POST /v1/subscription_schedules/{id}/cancel`.
pub(super) fn cancel_subscription_schedule(
    st: &mut State,
    id: &str,
    p: &Params,
) -> ApiResult<Value> {
    p.allow(&["expand", "invoice_now", "prorate"])?;
    st.cancel_schedule(id)?;
    subscription_schedule_view(st, id)
}
