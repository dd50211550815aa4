//! Webhook endpoints (`/v1/webhook_endpoints`): create, retrieve, update, delete, list.
//! The secret is shown once, when the endpoint is made.

use serde_json::{json, Value};

use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::{new_id, State, WebhookEndpoint},
    params::Params,
    render::list_page,
};

/// `POST /v1/webhook_endpoints/{id}`: URL, events, description, metadata, and `disabled`.
/// Like Stripe, an endpoint's API version cannot be changed.
pub(super) fn update_webhook_endpoint(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "disabled",
        "expand",
    ])?;
    let url = p.text("url")?;
    if let Some(url) = &url {
        if url::Url::parse(url).is_err() {
            return Err(ApiError::invalid_param(
                "url",
                format!("Invalid URL: {url}"),
            ));
        }
    }
    let events = if p.has("enabled_events") {
        let events = p.strings("enabled_events")?;
        if events.is_empty() {
            return Err(ApiError::invalid_param(
                "enabled_events",
                "enabled_events must name at least one event type.",
            ));
        }
        Some(events)
    } else {
        None
    };
    let description = p.nullable("description")?;
    let metadata = p.metadata("metadata")?;
    let disabled = p.bool("disabled")?;
    let endpoint = st
        .webhook_endpoints
        .iter_mut()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::no_such("webhook endpoint", id, "id"))?;
    if let Some(url) = url {
        endpoint.url = url;
    }
    if let Some(events) = events {
        endpoint.enabled_events = events;
    }
    if let Some(d) = description {
        endpoint.description = d;
    }
    if let Some(m) = metadata {
        m.apply(&mut endpoint.metadata);
    }
    if let Some(disabled) = disabled {
        endpoint.status = if disabled { "disabled" } else { "enabled" }.into();
    }
    let endpoint = endpoint.clone();
    Ok(st.webhook_endpoint_json(&endpoint, false))
}

pub(super) fn create_webhook_endpoint(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
        "connect",
        "expand",
    ])?;
    let url = p.required("url")?;
    if url::Url::parse(url).is_err() {
        return Err(ApiError::invalid_param(
            "url",
            format!("Invalid URL: {url}"),
        ));
    }
    let enabled_events = p.strings("enabled_events")?;
    if enabled_events.is_empty() {
        return Err(ApiError::missing_param("enabled_events"));
    }
    let endpoint = WebhookEndpoint {
        id: new_id("we_", 24),
        created: clock::now(),
        url: url.to_string(),
        secret: new_id("whsec_", 32),
        enabled_events,
        description: p.text("description")?,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        status: "enabled".into(),
        api_version: p.text("api_version")?,
    };
    let json = st.webhook_endpoint_json(&endpoint, true);
    st.webhook_endpoints.push(endpoint);
    Ok(json)
}

/// `GET /v1/webhook_endpoints`.
pub(super) fn list_webhook_endpoints(st: &State, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand", "limit", "starting_after", "ending_before"])?;
    let (limit, after, before) = p.paging()?;
    let items = st
        .webhook_endpoints
        .iter()
        .rev()
        .map(|e| (e.id.clone(), st.webhook_endpoint_json(e, false)))
        .collect();
    Ok(list_page(
        "/v1/webhook_endpoints",
        items,
        limit,
        after,
        before,
    ))
}

/// `GET /v1/webhook_endpoints/{id}`.
pub(super) fn retrieve_webhook_endpoint(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.webhook_endpoint(id)
        .map(|e| st.webhook_endpoint_json(e, false))
        .ok_or_else(|| ApiError::no_such("webhook endpoint", id, "id"))
}

/// `DELETE /v1/webhook_endpoints/{id}`.
pub(super) fn delete_webhook_endpoint(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[])?;
    let before = st.webhook_endpoints.len();
    st.webhook_endpoints.retain(|e| e.id != *id);
    if st.webhook_endpoints.len() == before {
        return Err(ApiError::no_such("webhook endpoint", id, "id"));
    }
    Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
}
