//! The portal's home page (current plan, payment method, billing details, invoice history),
//! where a flow session opens, leaving the portal, and the hosted confirmation after a flow.

use axum::{
    extract::{Path, Query, State as AxumState},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;

use super::{context, Action, Ctx};
use crate::{
    clock,
    hosted::{amount_with_interval, escape, message_page, page, safe_redirect, see_other},
    model::{Address, InvoiceStatus, State, SubStatus, Subscription, SubscriptionSchedule},
    state::money,
    StripeSim,
};

#[derive(Deserialize)]
pub struct HomeQuery {
    notice: Option<String>,
    /// Set by "Back" inside a flow that ends on the home page: show it, do not re-enter the flow.
    home: Option<String>,
}

pub(super) async fn home(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
    Query(q): Query<HomeQuery>,
) -> Response {
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) => match flow_entry(&st, &ctx) {
                Some(url) if q.notice.is_none() && q.home.is_none() => see_other(&url),
                _ => home_page(&st, &ctx, q.notice.as_deref()),
            },
        }
    };
    sim.changed().await;
    response
}

/// Where a flow session opens, if it is a flow.
fn flow_entry(st: &State, ctx: &Ctx) -> Option<String> {
    let flow = ctx.session.flow.as_ref()?;
    match flow["type"].as_str()? {
        "payment_method_update" => Some(ctx.url("/payment-method")),
        "subscription_cancel" => {
            let sub = flow["subscription_cancel"]["subscription"].as_str()?;
            Some(ctx.url(&format!("/subscriptions/{sub}/cancel")))
        }
        "subscription_update" => {
            let sub = flow["subscription_update"]["subscription"].as_str()?;
            Some(ctx.url(&format!("/subscriptions/{sub}/update")))
        }
        "subscription_update_confirm" => {
            let confirm = &flow["subscription_update_confirm"];
            let sub = confirm["subscription"].as_str()?;
            let item = &confirm["items"][0];
            let price = item["price"].as_str().map(str::to_string).or_else(|| {
                let item_id = item["id"].as_str()?;
                st.subscription(sub)?
                    .items
                    .iter()
                    .find(|i| i.id == item_id)
                    .map(|i| i.price.clone())
            })?;
            let quantity = item["quantity"]
                .as_u64()
                .map(|q| format!("&quantity={q}"))
                .unwrap_or_default();
            Some(ctx.url(&format!(
                "/subscriptions/{sub}/update/confirm?price={price}{quantity}"
            )))
        }
        _ => None,
    }
}

fn status_badge(status: SubStatus) -> String {
    let (class, text) = match status {
        SubStatus::Active => ("ok", "Active"),
        SubStatus::Trialing => ("ok", "Trial"),
        SubStatus::PastDue => ("warn", "Past due"),
        SubStatus::Unpaid => ("bad", "Unpaid"),
        SubStatus::Incomplete => ("warn", "Incomplete"),
        SubStatus::IncompleteExpired => ("bad", "Expired"),
        SubStatus::Canceled => ("bad", "Canceled"),
        SubStatus::Paused => ("warn", "Paused"),
    };
    format!(r#"<span class="status {class}">{text}</span>"#)
}

fn home_page(st: &State, ctx: &Ctx, notice: Option<&str>) -> Response {
    let customer = st.customer(&ctx.session.customer);
    let notice_html = notice
        .map(|n| {
            let text = match n {
                "cancel" => Action::Cancel.done_message(),
                "update" => Action::Update.done_message(),
                "update_scheduled" => Action::ScheduledUpdate.done_message(),
                "kept" => "Your plan stays as it is; the scheduled change was canceled.",
                "payment_method" => Action::PaymentMethod.done_message(),
                "details" => "Your billing information has been updated.",
                "renew" => "Your subscription will continue; the cancellation was removed.",
                _ => "Done.",
            };
            format!(
                r#"<div class="notice" role="status">{}</div>"#,
                escape(text)
            )
        })
        .unwrap_or_default();

    let subs: Vec<&Subscription> = st
        .subscriptions
        .iter()
        .rev()
        .filter(|s| s.customer == ctx.session.customer && !s.status.is_ended())
        .collect();
    let mut plans = String::new();
    for s in &subs {
        let price = s.items.first().map(|i| i.price.clone()).unwrap_or_default();
        let (_, period_end) = s.period();
        let scheduled = s
            .schedule
            .as_deref()
            .and_then(|id| st.subscription_schedule(id))
            .and_then(SubscriptionSchedule::next_phase);
        let timing = if let Some(phase) = scheduled {
            format!(
                "Your plan changes to {} ({}) on {}.",
                st.product_name(&phase.price),
                amount_with_interval(st, &phase.price),
                clock::long_date(phase.start_date)
            )
        } else if let Some(at) = s.cancel_at {
            format!("Your plan will be canceled on {}.", clock::long_date(at))
        } else if s.status == SubStatus::Trialing {
            format!(
                "Your trial ends on {}; then {}.",
                clock::long_date(s.trial_end.unwrap_or(period_end)),
                amount_with_interval(st, &price)
            )
        } else {
            format!("Your plan renews on {}.", clock::long_date(period_end))
        };
        let mut actions = String::new();
        if scheduled.is_some() {
            actions.push_str(&format!(
                r#"<form method="post" action="{}"><button type="submit" class="secondary">Keep {}</button></form>"#,
                escape(&ctx.url(&format!("/subscriptions/{}/schedule/release", s.id))),
                escape(&st.product_name(&price)),
            ));
        }
        if ctx.config.subscription_update_enabled && s.cancel_at.is_none() && scheduled.is_none() {
            actions.push_str(&format!(
                r#"<a class="button" href="{}">Update plan</a>"#,
                escape(&ctx.url(&format!("/subscriptions/{}/update", s.id)))
            ));
        }
        if ctx.config.subscription_cancel_enabled && s.cancel_at.is_none() {
            actions.push_str(&format!(
                r#"<a class="button secondary" href="{}">Cancel plan</a>"#,
                escape(&ctx.url(&format!("/subscriptions/{}/cancel", s.id)))
            ));
        }
        if s.cancel_at.is_some() {
            actions.push_str(&format!(
                r#"<form method="post" action="{}"><button type="submit">Renew plan</button></form>"#,
                escape(&ctx.url(&format!("/subscriptions/{}/renew", s.id)))
            ));
        }
        plans.push_str(&format!(
            r#"<div class="plan"><h3>{name} {badge}</h3><p class="price">{amount}</p><p>{timing}</p><div class="actions">{actions}</div></div>"#,
            name = escape(&st.product_name(&price)),
            badge = status_badge(s.status),
            amount = escape(&amount_with_interval(st, &price)),
            timing = escape(&timing),
        ));
    }
    if subs.is_empty() {
        plans.push_str(r#"<p class="muted">No current subscription.</p>"#);
    }

    let default_pm = customer
        .and_then(|c| c.default_payment_method.clone())
        .or_else(|| subs.iter().find_map(|s| s.default_payment_method.clone()));
    let pm_text = default_pm
        .as_deref()
        .and_then(|id| st.payment_method(id))
        .map(|pm| {
            format!(
                "{} •••• {} — expires {:02}/{}",
                capitalise(&pm.brand),
                pm.last4,
                pm.exp_month,
                pm.exp_year
            )
        })
        .unwrap_or_else(|| "No payment method on file.".into());
    let pm_section = if ctx.config.payment_method_update_enabled {
        format!(
            r#"<section class="card" aria-labelledby="pm-title"><h2 id="pm-title">Payment method</h2><p>{}</p><a class="button secondary" href="{}">Update payment method</a></section>"#,
            escape(&pm_text),
            escape(&ctx.url("/payment-method"))
        )
    } else {
        String::new()
    };

    let details_section = if ctx.config.customer_update_enabled {
        let c = customer;
        let address = c
            .and_then(|c| c.address.clone())
            .map(|a| format_address(&a))
            .unwrap_or_default();
        format!(
            r#"<section class="card" aria-labelledby="details-title"><h2 id="details-title">Billing information</h2>
<p>{name}<br>{email}<br>{address}</p><a class="button secondary" href="{href}">Update information</a></section>"#,
            name = escape(c.and_then(|c| c.name.as_deref()).unwrap_or("No name")),
            email = escape(c.and_then(|c| c.email.as_deref()).unwrap_or("No email")),
            address = escape(&address),
            href = escape(&ctx.url("/billing-details")),
        )
    } else {
        String::new()
    };

    let invoices_section = if ctx.config.invoice_history_enabled {
        let rows: String = st
            .invoices
            .iter()
            .rev()
            .filter(|i| i.customer == ctx.session.customer && i.status != InvoiceStatus::Draft)
            .take(24)
            .map(|i| {
                format!(
                    r#"<tr><td>{date}</td><td>{amount}</td><td>{status}</td><td><a href="{href}">View invoice {number}</a></td></tr>"#,
                    date = escape(&clock::long_date(i.created)),
                    amount = escape(&money(i.amount_due, &i.currency)),
                    status = escape(i.status.as_str()),
                    href = escape(&format!("{}/invoice/{}", ctx.mount, i.id)),
                    number = escape(&i.number),
                )
            })
            .collect();
        let table = if rows.is_empty() {
            r#"<p class="muted">No invoices yet.</p>"#.to_string()
        } else {
            format!("<table><thead><tr><th>Date</th><th>Amount</th><th>Status</th><th>Invoice</th></tr></thead><tbody>{rows}</tbody></table>")
        };
        format!(
            r#"<section class="card" aria-labelledby="invoices-title"><h2 id="invoices-title">Invoice history</h2>{table}</section>"#
        )
    } else {
        String::new()
    };

    let return_link = if ctx.session.return_url.is_some() {
        format!(
            r#"<p><a href="{}">← Return to {}</a></p>"#,
            escape(&ctx.url("/return")),
            escape(&ctx.brand())
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<div style="max-width:720px;margin:0 auto">{return_link}{notice_html}
<section class="card" aria-labelledby="plan-title"><h2 id="plan-title">Current plan</h2>{plans}</section>
{pm_section}{details_section}{invoices_section}</div>"#
    );
    page("Billing", &ctx.brand(), &body, StatusCode::OK)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn format_address(a: &Address) -> String {
    [
        &a.line1,
        &a.line2,
        &a.city,
        &a.postal_code,
        &a.state,
        &a.country,
    ]
    .iter()
    .filter_map(|p| p.as_deref())
    .collect::<Vec<_>>()
    .join(", ")
}

/// Leaving the portal: the session is spent, the browser goes to `return_url`.
pub(super) async fn go_back(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
) -> Response {
    let response = {
        let mut st = sim.lock();
        match st.portal_session(&sid).cloned() {
            None => message_page(
                "Portal session not found",
                "This billing portal link is not valid.",
                None,
                StatusCode::NOT_FOUND,
            ),
            Some(s) => {
                if let Some(session) = st.portal_session_mut(&sid) {
                    session.returned = true;
                }
                match s.return_url.as_deref().and_then(safe_redirect) {
                    Some(url) => see_other(&url),
                    None => message_page(
                        "You're all set",
                        "You can close this window.",
                        None,
                        StatusCode::OK,
                    ),
                }
            }
        }
    };
    sim.changed().await;
    response
}

#[derive(Deserialize)]
pub struct DoneQuery {
    action: Option<String>,
}

/// The hosted confirmation after a flow.
pub(super) async fn done(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let mut st = sim.lock();
    let ctx = match context(&mut st, &sid) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let custom = ctx
        .session
        .flow
        .as_ref()
        .and_then(|f| f["after_completion"]["hosted_confirmation"]["custom_message"].as_str())
        .map(str::to_string);
    let action = match q.action.as_deref() {
        Some("cancel") => Action::Cancel,
        Some("update") => Action::Update,
        Some("update_scheduled") => Action::ScheduledUpdate,
        _ => Action::PaymentMethod,
    };
    let message = custom.unwrap_or_else(|| action.done_message().to_string());
    let link = if ctx.session.return_url.is_some() {
        format!(
            r#"<p><a class="button" href="{}">Return to {}</a></p>"#,
            escape(&ctx.url("/return")),
            escape(&ctx.brand())
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<section class="card" style="max-width:560px;margin:3rem auto"><h1>All done</h1><p role="status">{}</p>{link}</section>"#,
        escape(&message)
    );
    page("All done", &ctx.brand(), &body, StatusCode::OK)
}
