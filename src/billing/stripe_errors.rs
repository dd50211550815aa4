//! Stripe's failures in a user's terms: a refusal or outage mapped to an `AppError` that
//! says what to do, and idempotent requests retried with back-off.

use ::stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};

use crate::{error::AppError, state::AppState};

fn unavailable() -> AppError {
    AppError::Unavailable(
        "Billing is temporarily unavailable. Please try again in a minute.".into(),
    )
}

/// Logs a failed Stripe call with what Stripe said about it and turns it into a user error
/// that says what the user can do: wait a minute (Stripe is down, unreachable or rate
/// limiting), or ask for help (Stripe refused what `action` asked, which a retry will not
/// change; the log has Stripe's request).
pub fn stripe_failure(action: &str, err: StripeError) -> AppError {
    match &err {
        StripeError::Stripe(e, status) => {
            tracing::error!(
                action,
                status,
                error_type = e.type_.as_str(),
                code = e.code.as_ref().map(|c| c.as_str()),
                message = e.message.as_deref(),
                param = e.param.as_deref(),
                request_log_url = e.request_log_url.as_deref(),
                "Stripe refused the request"
            );
            let about_configuration = e.param.as_deref() == Some("configuration")
                || e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("configuration"));
            if action == "portal" && about_configuration {
                return AppError::Unavailable(
                    "The billing portal is not set up yet: create a Customer Portal configuration \
                     in Stripe or set STRIPE_PORTAL_CONFIGURATION_ID."
                        .into(),
                );
            }
            match *status {
                429 => AppError::RateLimited {
                    message: "Stripe is receiving too many requests right now. Please try again \
                              in a minute."
                        .into(),
                    retry_after_secs: 60,
                },
                400..=499 => AppError::Upstream(format!(
                    "Stripe refused to {}. This will not fix itself: please contact support.",
                    describe_action(action)
                )),
                _ => unavailable(),
            }
        }
        other => {
            tracing::error!(action, error = %other, "Stripe could not be reached");
            unavailable()
        }
    }
}

/// What the user was doing, in their words.
fn describe_action(action: &str) -> &'static str {
    match action {
        "portal" => "open the billing portal",
        "checkout" => "start Checkout",
        "create_customer" => "open your billing account",
        _ => "do what was asked",
    }
}

/// How long to wait before retrying a failed idempotent request (the `retry`th retry, from 0)
/// with the same key, if at all. Stripe still working on a request with that key (409) or
/// rate limiting (429) is waited out with back-off, within a request's budget; Stripe
/// unreachable or failing gets one quick retry (sign-up goes on without a customer then).
fn retry_wait(err: &StripeError, retry: usize) -> Option<std::time::Duration> {
    const BACK_OFF_MS: [u64; 3] = [250, 750, 2_000];
    let waits: &[u64] = match err {
        StripeError::Stripe(_, 409 | 429) => &BACK_OFF_MS,
        StripeError::Stripe(_, status) if *status >= 500 => &BACK_OFF_MS[..1],
        StripeError::ClientError(_) | StripeError::Timeout => &BACK_OFF_MS[..1],
        _ => &[],
    };
    waits
        .get(retry)
        .map(|ms| std::time::Duration::from_millis(*ms))
}

/// Sends a request with an idempotency key, retrying as [`retry_wait`] says.
pub(super) async fn send_idempotent<R>(
    state: &AppState,
    request: &R,
    key: &str,
) -> Result<R::Output, StripeError>
where
    R: StripeRequest,
    R::Output: miniserde::Deserialize + Send,
{
    let key = IdempotencyKey::new(key)
        .map_err(|e| StripeError::ClientError(format!("idempotency key: {e:?}")))?;
    let mut retry = 0;
    loop {
        let result = request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key.clone()))
            .send(&state.stripe)
            .await;
        match result {
            Err(e) => match retry_wait(&e, retry) {
                Some(wait) => {
                    tracing::warn!(error = %e, ?wait, "Stripe request failed; retrying with the same key");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}
