//! Cancelling (at the period's end or at once, with a reason) and renewing a subscription
//! whose cancellation is scheduled.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::Response,
};

use super::{context, finish, on_own_subscription, own_subscription, screen, Action, Ctx};
use crate::{
    clock,
    hosted::{amount_with_interval, escape, field, message_page, parse_form, see_other},
    model::{State, SubStatus, Subscription},
    state::SubscriptionPatch,
    StripeSim,
};

pub(super) async fn cancel_form(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
) -> Response {
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| cancel_page(st, ctx, &s)).await
}

fn reason_label(reason: &str) -> &str {
    match reason {
        "too_expensive" => "It's too expensive",
        "missing_features" => "Some features are missing",
        "switched_service" => "I'm switching to a different service",
        "unused" => "I don't use the service enough",
        "customer_service" => "Customer service was less than expected",
        "too_complex" => "Ease of use was less than expected",
        "low_quality" => "Quality was less than expected",
        _ => "Other reason",
    }
}

fn cancel_page(st: &State, ctx: &Ctx, sub: &Subscription) -> Response {
    if !ctx.config.subscription_cancel_enabled {
        return message_page(
            "Not available",
            "Cancelling here is turned off.",
            Some((&ctx.url(""), "Back")),
            StatusCode::FORBIDDEN,
        );
    }
    if sub.cancel_at.is_some() {
        return see_other(&ctx.url(""));
    }
    let price = sub
        .items
        .first()
        .map(|i| i.price.clone())
        .unwrap_or_default();
    let (_, period_end) = sub.period();
    let end = sub
        .trial_end
        .filter(|_| sub.status == SubStatus::Trialing)
        .unwrap_or(period_end);
    let what = if ctx.config.subscription_cancel_mode == "immediately" {
        "Your subscription will be canceled immediately.".to_string()
    } else {
        format!(
            "Your subscription will be canceled, but is still available until the end of your billing period on {}.",
            clock::long_date(end)
        )
    };
    let reasons = if ctx.config.cancellation_reason_enabled {
        let options: String = ctx
            .config
            .cancellation_reason_options
            .iter()
            .map(|r| {
                format!(
                    r#"<option value="{}">{}</option>"#,
                    escape(r),
                    escape(reason_label(r))
                )
            })
            .collect();
        format!(
            r#"<label for="reason">Reason for cancelling (optional)</label><select id="reason" name="reason"><option value="">Prefer not to say</option>{options}</select>"#
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<section class="card"><h1>Cancel your plan</h1>
<p><strong>{plan}</strong> — {amount}</p>
<p>{what}</p>
<form method="post" action="{action}">{reasons}<button class="wide danger" type="submit">Cancel plan</button></form></section>"#,
        plan = escape(&st.product_name(&price)),
        amount = escape(&amount_with_interval(st, &price)),
        what = escape(&what),
        action = escape(&ctx.url(&format!("/subscriptions/{}/cancel", sub.id))),
    );
    screen(ctx, "Cancel your plan", &body)
}

pub(super) async fn cancel_confirm(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) => match own_subscription(&st, &ctx, &sub) {
                Err(r) => *r,
                Ok(s) if !ctx.config.subscription_cancel_enabled => cancel_page(&st, &ctx, &s),
                Ok(s) => {
                    let reason = field(&values, "reason");
                    let feedback = ctx
                        .config
                        .cancellation_reason_options
                        .contains(&reason)
                        .then_some(reason);
                    if ctx.config.subscription_cancel_mode == "immediately" {
                        let now = st.customer_now(&s.customer);
                        if let Some(sub) = st.subscription_mut(&s.id) {
                            sub.cancellation_feedback = feedback;
                        }
                        st.cancel_subscription_now(&s.id, Some("cancellation_requested"), now);
                        finish(&mut st, &ctx, Action::Cancel)
                    } else {
                        // Canceling replaces a change scheduled for the period's end.
                        if let Some(schedule) = s.schedule.as_deref() {
                            let _ = st.release_schedule(schedule);
                        }
                        let patch = SubscriptionPatch {
                            cancel_at_period_end: Some(true),
                            cancellation_feedback: feedback,
                            ..Default::default()
                        };
                        match st.update_subscription(&s.id, patch) {
                            Ok(()) => finish(&mut st, &ctx, Action::Cancel),
                            Err(e) => message_page(
                                "Could not cancel",
                                &e.message,
                                Some((&ctx.url(""), "Back")),
                                StatusCode::BAD_REQUEST,
                            ),
                        }
                    }
                }
            },
        }
    };
    sim.changed().await;
    response
}

pub(super) async fn renew(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
) -> Response {
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        let patch = SubscriptionPatch {
            cancel_at_period_end: Some(false),
            cancel_at: Some(None),
            ..Default::default()
        };
        match st.update_subscription(&s.id, patch) {
            Ok(()) => see_other(&ctx.url("?notice=renew")),
            Err(e) => message_page(
                "Could not renew",
                &e.message,
                Some((&ctx.url(""), "Back")),
                StatusCode::BAD_REQUEST,
            ),
        }
    })
    .await
}
