//! Test Clocks (`/v1/test_helpers/test_clocks`): create, retrieve, list, advance, delete, as
//! Stripe documents them. Customers made with `test_clock` live in its frozen time; advancing
//! it runs what falls due for them (trial notices and ends, renewals, retries, scheduled
//! cancellations and phases, incomplete subscriptions expiring) in time order, each event
//! stamped with the clock's time when it happened.

use serde_json::Value;

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
};

/// Stripe refuses a `frozen_time` this far or farther from now.
const FURTHEST: i64 = 100 * 365 * 86_400;

fn frozen_time(p: &Params) -> ApiResult<i64> {
    let at = p
        .int("frozen_time")?
        .ok_or_else(|| ApiError::missing_param("frozen_time"))?;
    if at <= 0 || (at - crate::clock::now()).abs() >= FURTHEST {
        return Err(ApiError::invalid_param(
            "frozen_time",
            format!("Invalid timestamp: {at}"),
        ));
    }
    Ok(at)
}

fn view(st: &State, id: &str, status: &str) -> ApiResult<Value> {
    Ok(st.test_clock_json(st.live_test_clock(id, "test_clock")?, status))
}

pub(super) fn create_test_clock(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&["frozen_time", "name", "expand"])?;
    let at = frozen_time(p)?;
    let name = p.text("name")?;
    if name.as_ref().is_some_and(|n| n.chars().count() > 300) {
        return Err(ApiError::invalid_param(
            "name",
            "The name is longer than 300 characters.",
        ));
    }
    let id = st.create_test_clock(at, name);
    view(st, &id, "ready")
}

pub(super) fn retrieve_test_clock(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    view(st, id, "ready")
}

pub(super) fn list_test_clocks(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &[])?;
    let items = st
        .test_clocks
        .iter()
        .rev()
        .filter(|c| !c.deleted)
        .map(|c| (c.id.clone(), st.test_clock_json(c, "ready")))
        .collect();
    page(p, "/v1/test_helpers/test_clocks", items)
}

/// Answers the clock as Stripe does when the advance starts (`advancing`); by the time the
/// answer is read the work is done, and a retrieve says `ready`.
pub(super) fn advance_test_clock(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["frozen_time", "expand"])?;
    let to = frozen_time(p)?;
    st.advance_test_clock(id, to)?;
    view(st, id, "advancing")
}

pub(super) fn delete_test_clock(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[])?;
    st.delete_test_clock(id)
}
