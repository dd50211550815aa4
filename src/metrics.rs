//! Prometheus metrics: counted through the `metrics` facade where things happen, rendered in
//! Prometheus's text format by `metrics-exporter-prometheus`. Served only where the
//! configuration says (`METRICS_TOKEN` on the app's address, or `METRICS_ADDR`); never by
//! default.
//!
//! What is counted:
//! - `billfold_webhook_events_total{type, outcome}` and `billfold_webhook_processing_seconds`
//!   (a histogram, by outcome) for every verified delivery;
//! - `billfold_stripe_requests_total{endpoint, result}` for the calls users wait on (customer,
//!   portal and Checkout sessions) and every object fetched for a write;
//! - `billfold_billing_sessions_total{kind}`: portal and Checkout sessions opened;
//! - `billfold_reconcile_cycles_total{result}` and `billfold_reconcile_drift_total`;
//! - for webhook group commits (summaries): `billfold_webhook_batch_events` (events per
//!   commit), `billfold_webhook_batch_seconds{step}` (`apply`: the events' statements; `commit`:
//!   the commit, which waits for the disk) and `billfold_webhook_queue_seconds` (a delivery's
//!   wait for its writer): where a webhook's latency goes under load.

use std::{sync::OnceLock, time::Duration};

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: from a millisecond to Stripe's own ten-second patience.
const PROCESSING_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use; `None` if something else installed a
/// global recorder first (then nothing is recorded here).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("billfold_webhook_processing_seconds".into()),
                    PROCESSING_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: no recorder installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder and keeps its histograms tidy while the server runs.
pub fn start() {
    static UPKEEP: OnceLock<()> = OnceLock::new();
    if let Some(handle) = handle() {
        UPKEEP.get_or_init(|| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                loop {
                    every.tick().await;
                    handle.run_upkeep();
                }
            });
        });
    }
}

/// A verified delivery and what became of it.
pub fn webhook_event(event_type: &str, outcome: &str, took: Duration) {
    metrics::counter!(
        "billfold_webhook_events_total",
        "type" => event_type.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
    metrics::histogram!("billfold_webhook_processing_seconds", "outcome" => outcome.to_owned())
        .record(took.as_secs_f64());
}

/// One group commit of webhook deliveries: how many it held, how long applying them took and
/// how long the commit took.
pub fn webhook_batch(events: usize, applying: Duration, committing: Duration) {
    metrics::histogram!("billfold_webhook_batch_events").record(events as f64);
    metrics::histogram!("billfold_webhook_batch_seconds", "step" => "apply")
        .record(applying.as_secs_f64());
    metrics::histogram!("billfold_webhook_batch_seconds", "step" => "commit")
        .record(committing.as_secs_f64());
}

/// How long a delivery waited in its writer's queue before its batch began.
pub fn webhook_queued(waited: Duration) {
    metrics::histogram!("billfold_webhook_queue_seconds").record(waited.as_secs_f64());
}

/// A Stripe API call: `result` is `ok`, Stripe's status code, or `unreachable`.
pub fn stripe_request<T>(endpoint: &'static str, result: &Result<T, ::stripe::StripeError>) {
    let result = match result {
        Ok(_) => "ok".to_owned(),
        Err(::stripe::StripeError::Stripe(_, status)) => status.to_string(),
        Err(_) => "unreachable".to_owned(),
    };
    metrics::counter!("billfold_stripe_requests_total", "endpoint" => endpoint, "result" => result)
        .increment(1);
}

/// A mail attempt: `sent`, `retry` (a temporary refusal) or `failed` (for good).
pub fn mail(kind: &str, result: &'static str) {
    metrics::counter!("billfold_mail_total", "kind" => kind.to_owned(), "result" => result)
        .increment(1);
}

/// An attempt at a change queued for Stripe (`billing::stripe_outbox`): `done`, `retry` or
/// `failed`.
pub fn stripe_update(kind: &str, result: &'static str) {
    metrics::counter!("billfold_stripe_updates_total", "kind" => kind.to_owned(), "result" => result)
        .increment(1);
}

/// A portal or Checkout session handed to a user.
pub fn billing_session(kind: &'static str) {
    metrics::counter!("billfold_billing_sessions_total", "kind" => kind).increment(1);
}

/// A reconciler cycle that ran (not one that found the lock taken), and the drift it found.
pub fn reconcile_cycle(succeeded: bool, drift: usize) {
    let result = if succeeded { "ok" } else { "failed" };
    metrics::counter!("billfold_reconcile_cycles_total", "result" => result).increment(1);
    metrics::counter!("billfold_reconcile_drift_total").increment(drift as u64);
}

/// The text exposition.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// `GET /metrics` on the app's address: only with `Authorization: Bearer <METRICS_TOKEN>`.
pub fn answer_with_token(token: &str, headers: &HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the bearer token (METRICS_TOKEN)\n",
        )
            .into_response();
    }
    exposition()
}

/// The metrics as Prometheus scrapes them.
pub fn exposition() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::Mac;
    // Compared as MACs of a fixed key, so neither length nor content leaks through timing.
    let mac = |bytes: &[u8]| {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"billfold-metrics")
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(bytes);
        m.finalize().into_bytes()
    };
    let (a, b) = (mac(a), mac(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
