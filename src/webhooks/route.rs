//! `POST /api/webhooks/stripe`: limit → verify → parse, once → [`batch`] (group commit) →
//! [`pipeline`](super::pipeline) (record → apply) → respond.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, Request, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{
    batch,
    event::Envelope,
    pipeline::{Outcome, Pipeline, ProcessError},
    signature::{self, SignatureError},
};
use crate::{db::clock, state::AppState};

/// Stripe's events are far smaller; anything bigger is not from Stripe.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format_args!("body larger than {MAX_BODY_BYTES} bytes"),
    )
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The webhook endpoint. Answers 2xx once an event is safely recorded (applied, or known to
/// need nothing), 400 for a bad signature or a body that is not an event, 413 for an
/// oversized body, and 500 when applying failed, so that Stripe delivers it again, unless
/// Stripe itself refused what applying needs in a way no retry changes: that event is
/// recorded `failed` with the reason and answered 200 (see [`super::pipeline::process`]).
pub async fn stripe_webhook(State(state): State<AppState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    if declared_length(&parts.headers).is_some_and(|n| n > MAX_BODY_BYTES) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return too_large();
    };

    let header = match parts.headers.get("stripe-signature").map(|v| v.to_str()) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, SignatureError::MalformedHeader);
        }
    };
    let stripe_config = &state.config.stripe;
    let secrets: Vec<&str> = stripe_config
        .webhook_secrets
        .iter()
        .map(|s| s.expose())
        .collect();
    let tolerance = i64::try_from(stripe_config.webhook_tolerance.as_secs()).unwrap_or(300);
    if let Err(e) = signature::verify(header, &body, &secrets, clock::now(), tolerance) {
        // The reason only: the header and the secrets stay out of the logs.
        tracing::warn!(reason = %e, "webhook signature rejected");
        return error(StatusCode::BAD_REQUEST, e);
    }

    let envelope = match Envelope::parse(body) {
        Ok(envelope) => envelope,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let p = Pipeline {
        db: &state.db,
        stripe: &state.stripe,
        livemode: stripe_config.mode.livemode(),
    };
    let started = std::time::Instant::now();
    let event_type = envelope.event_type.clone();
    let processed = batch::process(p, envelope).await;
    let outcome = match &processed {
        Ok(done) => done.outcome,
        Err(_) => Outcome::Failed,
    };
    crate::metrics::webhook_event(&event_type, &outcome.to_string(), started.elapsed());
    match processed {
        Ok(done) => {
            tracing::info!(
                event_id = %done.event_id,
                event_type = %done.event_type,
                outcome = %done.outcome,
                "webhook event"
            );
            (
                StatusCode::OK,
                Json(json!({ "received": true, "outcome": done.outcome.to_string() })),
            )
                .into_response()
        }
        Err(ProcessError::Failed { event_id, error }) => {
            tracing::error!(event_id = %event_id, error = %error, "webhook event failed; Stripe will retry");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({
                    "received": true,
                    "outcome": Outcome::Failed.to_string(),
                    "error": "the event could not be applied; it will be applied when Stripe retries",
                })),
            )
                .into_response()
        }
    }
}
