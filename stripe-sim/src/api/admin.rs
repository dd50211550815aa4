//! The double's own test helpers, under `/_admin`: the webhook delivery log, moving a
//! customer's test clock forward, and what happens when a renewal's retries run out.

use axum::{
    extract::{Path as UrlPath, State as AxumState},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::{clock, error::ApiError, form, model::RetriesExhausted, params, StripeSim};

/// `GET /_admin/deliveries`: the webhook delivery log, oldest first.
pub(crate) async fn deliveries(
    AxumState(sim): AxumState<StripeSim>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = super::authenticate(&headers) {
        return e.into_response();
    }
    Json(json!({"object": "list", "data": sim.deliveries()})).into_response()
}

/// The query string and the form body, read as one form.
fn admin_form(query: Option<&str>, body: &str) -> Result<form::FormValue, ApiError> {
    let input = match query {
        Some(q) if !q.is_empty() => format!("{q}&{body}"),
        _ => body.to_string(),
    };
    form::parse(&input).map_err(|e| ApiError::invalid_request(e.to_string()))
}

/// `POST /_admin/customers/{id}/advance` (`seconds`, `days`): moves that customer's test
/// clock forward and runs what fell due.
pub(crate) async fn advance_customer_clock(
    AxumState(sim): AxumState<StripeSim>,
    UrlPath(customer): UrlPath<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: String,
) -> Response {
    let result = async {
        super::authenticate(&headers)?;
        let form = admin_form(uri.query(), &body)?;
        let p = params::Params::root(&form);
        p.allow(&["seconds", "days"])?;
        let seconds = p.uint::<i64>("seconds")?.unwrap_or(0)
            + p.uint::<i64>("days")?
                .unwrap_or(0)
                .saturating_mul(clock::DAY);
        if seconds <= 0 {
            return Err(ApiError::missing_param("seconds"));
        }
        let view = {
            let mut st = sim.lock();
            st.advance_clock(&customer, seconds)?;
            let now = st.customer_now(&customer);
            json!({"customer": customer, "now": now, "advanced_by": seconds})
        };
        sim.changed().await;
        Ok::<_, ApiError>(view)
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /_admin/settings` (`retries_exhausted=cancel|mark_unpaid`): what happens once a
/// renewal's retries are spent; answers the current setting.
pub(crate) async fn settings(
    AxumState(sim): AxumState<StripeSim>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: String,
) -> Response {
    let result = async {
        super::authenticate(&headers)?;
        let form = admin_form(uri.query(), &body)?;
        let p = params::Params::root(&form);
        p.allow(&["retries_exhausted"])?;
        let outcome = match p.text("retries_exhausted")?.as_deref() {
            Some("cancel") => Some(RetriesExhausted::Cancel),
            Some("mark_unpaid") | Some("unpaid") => Some(RetriesExhausted::MarkUnpaid),
            None => None,
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "retries_exhausted",
                    format!("Use `cancel` or `mark_unpaid`, not `{other}`."),
                ))
            }
        };
        if let Some(outcome) = outcome {
            sim.set_retries_exhausted(outcome).await;
        }
        let current = sim.lock().settings.retries_exhausted;
        Ok::<_, ApiError>(json!({"retries_exhausted": current}))
    }
    .await;
    match result {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}
