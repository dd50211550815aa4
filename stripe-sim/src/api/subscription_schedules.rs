//! Subscription schedules (`/v1/subscription_schedules`): create (phases of one price each),
//! update (metadata, end behavior), retrieve, list, release, cancel. The portal makes them
//! for a plan change that waits for the period's end.

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

/// `POST /v1/subscription_schedules`: from `phases` (each `items[0]` with a `price` and a
/// `quantity`, and `iterations`), starting `now` or at `start_date`.
pub(super) fn create_subscription_schedule(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "start_date",
        "end_behavior",
        "phases",
        "metadata",
        "default_settings",
        "expand",
        "from_subscription",
    ])?;
    if p.has("from_subscription") {
        return Err(ApiError::invalid_param(
            "from_subscription",
            "The double makes schedules from phases only; it does not take from_subscription.",
        ));
    }
    let customer = p
        .text("customer")?
        .ok_or_else(|| ApiError::missing_param("customer"))?;
    let start = match p.text("start_date")?.as_deref() {
        None | Some("now") => None,
        Some(_) => Some(
            p.int("start_date")?
                .ok_or_else(|| ApiError::missing_param("start_date"))?,
        ),
    };
    let end_behavior = p.text("end_behavior")?.unwrap_or_else(|| "release".into());
    if !matches!(end_behavior.as_str(), "release" | "cancel") {
        return Err(ApiError::invalid_param(
            "end_behavior",
            format!("Invalid end_behavior: must be one of release or cancel (got {end_behavior})"),
        ));
    }
    let mut phases = Vec::new();
    for phase in p.list("phases")? {
        let items = phase.list("items")?;
        let [item] = items.as_slice() else {
            return Err(ApiError::invalid_param(
                &phase.name("items"),
                "The double's schedules take exactly one item per phase.",
            ));
        };
        let price = item
            .text("price")?
            .ok_or_else(|| ApiError::missing_param(&item.name("price")))?;
        let quantity = item.uint::<u64>("quantity")?.unwrap_or(1);
        let iterations = phase.uint::<u32>("iterations")?.unwrap_or(1);
        phases.push((price, quantity, iterations));
    }
    if phases.is_empty() {
        return Err(ApiError::missing_param("phases"));
    }
    let mut metadata = crate::model::Metadata::new();
    if let Some(patch) = p.metadata("metadata")? {
        patch.apply(&mut metadata);
    }
    let id = st.create_schedule(&customer, start, phases, end_behavior, metadata)?;
    subscription_schedule_view(st, &id)
}

/// `POST /v1/subscription_schedules/{id}`: metadata and `end_behavior`.
pub(super) fn update_subscription_schedule(
    st: &mut State,
    id: &str,
    p: &Params,
) -> ApiResult<Value> {
    p.allow(&["metadata", "end_behavior", "expand"])?;
    st.update_schedule(id, p.metadata("metadata")?, p.text("end_behavior")?)?;
    subscription_schedule_view(st, id)
}
