//! The hosted Customer Portal: current plan and renewal, switching plan, cancelling at period
//! end and renewing, the payment method, billing details and invoice history. A session with
//! `flow_data` opens on its screen and, once done, follows `after_completion`.

use axum::{
    extract::{Path, Query, State as AxumState},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    amount_with_interval, card_fields, escape, field, message_page, mount_path, page, parse_form,
    read_card, safe_redirect, see_other,
};
use crate::{
    clock,
    form::FormValue,
    model::{
        Address, InvoiceStatus, PortalConfiguration, PortalSession, State, SubStatus, Subscription,
        SubscriptionSchedule, OPENED_PORTAL_SESSION_LIFETIME,
    },
    plan_change::{PlanChange, ProrationBehavior, Timing},
    state::{money, CustomerFields, SubscriptionPatch},
    StripeSim,
};

pub fn routes() -> Router<StripeSim> {
    Router::new()
        .route("/portal/{sid}", get(home))
        .route("/portal/{sid}/return", get(go_back))
        .route("/portal/{sid}/done", get(done))
        .route(
            "/portal/{sid}/payment-method",
            get(payment_method_form).post(payment_method_save),
        )
        .route(
            "/portal/{sid}/billing-details",
            get(details_form).post(details_save),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/update",
            get(update_choose).post(update_chosen),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/update/confirm",
            get(update_confirm_form).post(update_confirm),
        )
        .route(
            "/portal/{sid}/subscriptions/{sub}/cancel",
            get(cancel_form).post(cancel_confirm),
        )
        .route("/portal/{sid}/subscriptions/{sub}/renew", post(renew))
        .route(
            "/portal/{sid}/subscriptions/{sub}/schedule/release",
            post(release_scheduled),
        )
}

/// What a flow is about; matched against the session's `flow.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    PaymentMethod,
    Cancel,
    Update,
    /// A switch that waits for the end of the period.
    ScheduledUpdate,
}

impl Action {
    fn flow_types(self) -> &'static [&'static str] {
        match self {
            Action::PaymentMethod => &["payment_method_update"],
            Action::Cancel => &["subscription_cancel"],
            Action::Update | Action::ScheduledUpdate => {
                &["subscription_update", "subscription_update_confirm"]
            }
        }
    }

    fn done_message(self) -> &'static str {
        match self {
            Action::PaymentMethod => "Your payment method has been updated.",
            Action::Cancel => "Your subscription has been canceled. It stays active until the end of the billing period.",
            Action::Update => "Your subscription has been updated.",
            Action::ScheduledUpdate => {
                "Your plan change is scheduled: it takes effect at the end of your billing period."
            }
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Action::PaymentMethod => "payment_method",
            Action::Cancel => "cancel",
            Action::Update => "update",
            Action::ScheduledUpdate => "update_scheduled",
        }
    }
}

/// Everything a portal screen needs, checked: the session is usable, its customer exists.
struct Ctx {
    session: PortalSession,
    config: PortalConfiguration,
    mount: String,
}

impl Ctx {
    fn url(&self, rest: &str) -> String {
        format!("{}/portal/{}{rest}", self.mount, self.session.id)
    }

    fn flow_type(&self) -> Option<&str> {
        self.session.flow.as_ref().and_then(|f| f["type"].as_str())
    }

    /// In a flow (other than one that ends on the portal's home page), "back" leaves the portal.
    fn in_closed_flow(&self) -> bool {
        let home = self
            .session
            .flow
            .as_ref()
            .and_then(|f| f["after_completion"]["type"].as_str())
            == Some("portal_homepage");
        self.flow_type().is_some() && !home
    }

    fn back_link(&self) -> String {
        if self.in_closed_flow() {
            self.url("/return")
        } else if self.flow_type().is_some() {
            self.url("?home=1")
        } else {
            self.url("")
        }
    }

    fn brand(&self) -> String {
        self.config
            .headline
            .clone()
            .unwrap_or_else(|| "Billfold (test mode)".into())
    }
}

/// Runs a portal screen about one of the session customer's own subscriptions (or answers
/// why it cannot), then saves the double's state.
async fn on_own_subscription(
    sim: &StripeSim,
    sid: &str,
    sub: &str,
    screen: impl FnOnce(&mut State, &Ctx, Subscription) -> Response,
) -> Response {
    let response = {
        let mut st = sim.lock();
        match context(&mut st, sid) {
            Err(r) => *r,
            Ok(ctx) => match own_subscription(&st, &ctx, sub) {
                Err(r) => *r,
                Ok(s) => screen(&mut st, &ctx, s),
            },
        }
    };
    sim.changed().await;
    response
}

/// Opens the session (first visit) or explains why it cannot be used.
fn context(st: &mut State, sid: &str) -> Result<Ctx, Box<Response>> {
    let now = clock::now();
    let Some(session) = st.portal_session(sid).cloned() else {
        return Err(Box::new(message_page(
            "Portal session not found",
            "This billing portal link is not valid.",
            None,
            StatusCode::NOT_FOUND,
        )));
    };
    if !session.usable(now) {
        let back = session.return_url.as_deref().and_then(safe_redirect);
        return Err(Box::new(message_page(
            "This session has expired",
            "Billing portal links work for a few minutes and only until you leave. Go back and open the billing portal again.",
            back.as_deref().map(|u| (u, "Return")),
            StatusCode::GONE,
        )));
    }
    if st.live_customer(&session.customer).is_none() {
        return Err(Box::new(message_page(
            "Account not found",
            "The customer for this session no longer exists.",
            None,
            StatusCode::NOT_FOUND,
        )));
    }
    if session.opened_at.is_none() {
        if let Some(s) = st.portal_session_mut(sid) {
            s.opened_at = Some(now);
        }
    }
    let config = st
        .portal_configuration(&session.configuration)
        .cloned()
        .or_else(|| st.default_portal_configuration().cloned())
        .ok_or_else(|| {
            Box::new(message_page(
                "Portal not configured",
                "There is no portal configuration.",
                None,
                StatusCode::NOT_FOUND,
            ))
        })?;
    Ok(Ctx {
        session,
        config,
        mount: mount_path(st),
    })
}

/// The customer's subscription `sub`, if it is theirs and still running.
fn own_subscription(st: &State, ctx: &Ctx, sub: &str) -> Result<Subscription, Box<Response>> {
    st.subscription(sub)
        .filter(|s| s.customer == ctx.session.customer && !s.status.is_ended())
        .cloned()
        .ok_or_else(|| {
            Box::new(message_page(
                "Subscription not found",
                "This subscription is not available here.",
                Some((&ctx.url(""), "Back")),
                StatusCode::NOT_FOUND,
            ))
        })
}

fn screen(ctx: &Ctx, title: &str, body: &str) -> Response {
    let back = format!(
        r#"<p><a href="{}">← {}</a></p>"#,
        escape(&ctx.back_link()),
        if ctx.in_closed_flow() {
            "Cancel and return"
        } else {
            "Back"
        }
    );
    page(
        title,
        &ctx.brand(),
        &format!(r#"<div style="max-width:620px;margin:0 auto">{back}{body}</div>"#),
        StatusCode::OK,
    )
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!(r#"<div class="error" role="alert">{}</div>"#, escape(e)))
        .unwrap_or_default()
}

/// After an action: what `after_completion` says if this was the session's flow, else home.
fn finish(st: &mut State, ctx: &Ctx, action: Action) -> Response {
    let flow = ctx.session.flow.clone().unwrap_or(Value::Null);
    let is_this_flow = ctx
        .flow_type()
        .is_some_and(|t| action.flow_types().contains(&t));
    if is_this_flow {
        match flow["after_completion"]["type"].as_str() {
            Some("redirect") => {
                if let Some(url) = flow["after_completion"]["redirect"]["return_url"]
                    .as_str()
                    .and_then(safe_redirect)
                {
                    if let Some(s) = st.portal_session_mut(&ctx.session.id) {
                        s.returned = true;
                    }
                    return see_other(&url);
                }
            }
            Some("hosted_confirmation") => {
                return see_other(&ctx.url(&format!("/done?action={}", action.slug())));
            }
            _ => {}
        }
    }
    see_other(&ctx.url(&format!("?notice={}", action.slug())))
}

// ----- home ------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct HomeQuery {
    notice: Option<String>,
    /// Set by "Back" inside a flow that ends on the home page: show it, do not re-enter the flow.
    home: Option<String>,
}

async fn home(
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
async fn go_back(AxumState(sim): AxumState<StripeSim>, Path(sid): Path<String>) -> Response {
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
async fn done(
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

// ----- payment method --------------------------------------------------------------------

async fn payment_method_form(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
) -> Response {
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) => payment_method_page(&ctx, &FormValue::empty(), None),
        }
    };
    sim.changed().await;
    response
}

fn payment_method_page(ctx: &Ctx, values: &FormValue, error: Option<&str>) -> Response {
    if !ctx.config.payment_method_update_enabled {
        return message_page(
            "Not available",
            "Updating the payment method is turned off.",
            Some((&ctx.url(""), "Back")),
            StatusCode::FORBIDDEN,
        );
    }
    let body = format!(
        r#"<section class="card"><h1>Update payment method</h1>
<p class="muted">The new card becomes the default for your subscription and future invoices.</p>
<form method="post" action="{action}">{error}{fields}<button class="wide" type="submit">Save card</button></form></section>"#,
        action = escape(&ctx.url("/payment-method")),
        error = error_box(error),
        fields = card_fields(values),
    );
    screen(ctx, "Update payment method", &body)
}

async fn payment_method_save(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) if !ctx.config.payment_method_update_enabled => {
                payment_method_page(&ctx, &values, None)
            }
            Ok(ctx) => match read_card(&values, clock::now()) {
                Err(e) => payment_method_page(&ctx, &values, Some(&e)),
                Ok(card) => {
                    if let Some(decline) = card
                        .card
                        .outcome
                        .declined_at_attach()
                        .then(|| card.card.outcome.decline())
                        .flatten()
                    {
                        payment_method_page(&ctx, &values, Some(decline.message))
                    } else {
                        let customer = ctx.session.customer.clone();
                        let email = st.customer(&customer).and_then(|c| c.email.clone());
                        let pm =
                            st.create_card(card.card, Some(card.expiry), Some(card.name), email);
                        let saved = st
                            .attach_payment_method(&pm, &customer)
                            .and_then(|pm| st.make_default_card(&customer, &pm));
                        match saved {
                            Ok(()) => finish(&mut st, &ctx, Action::PaymentMethod),
                            Err(e) => payment_method_page(&ctx, &values, Some(&e.message)),
                        }
                    }
                }
            },
        }
    };
    sim.changed().await;
    response
}

// ----- billing details -------------------------------------------------------------------

async fn details_form(AxumState(sim): AxumState<StripeSim>, Path(sid): Path<String>) -> Response {
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) => details_page(&st, &ctx, None, None),
        }
    };
    sim.changed().await;
    response
}

fn details_page(
    st: &State,
    ctx: &Ctx,
    values: Option<&FormValue>,
    error: Option<&str>,
) -> Response {
    if !ctx.config.customer_update_enabled {
        return message_page(
            "Not available",
            "Updating billing information is turned off.",
            Some((&ctx.url(""), "Back")),
            StatusCode::FORBIDDEN,
        );
    }
    let customer = st.customer(&ctx.session.customer);
    let address = customer.and_then(|c| c.address.clone()).unwrap_or_default();
    let current = |name: &str, stored: Option<&str>| -> String {
        match values {
            Some(v) => field(v, name),
            None => stored.unwrap_or_default().to_string(),
        }
    };
    let allowed = &ctx.config.customer_update_allowed;
    let input = |id: &str, label: &str, kind: &str, value: String, auto: &str| {
        format!(
            r#"<label for="{id}">{label}</label><input id="{id}" name="{id}" type="{kind}" autocomplete="{auto}" value="{}">"#,
            escape(&value)
        )
    };
    let mut fields = String::new();
    if allowed.iter().any(|a| a == "name") {
        fields.push_str(&input(
            "name",
            "Name",
            "text",
            current("name", customer.and_then(|c| c.name.as_deref())),
            "name",
        ));
    }
    if allowed.iter().any(|a| a == "email") {
        fields.push_str(&input(
            "email",
            "Email",
            "email",
            current("email", customer.and_then(|c| c.email.as_deref())),
            "email",
        ));
    }
    if allowed.iter().any(|a| a == "address") {
        fields.push_str(&input(
            "line1",
            "Address line 1",
            "text",
            current("line1", address.line1.as_deref()),
            "address-line1",
        ));
        fields.push_str(&input(
            "line2",
            "Address line 2",
            "text",
            current("line2", address.line2.as_deref()),
            "address-line2",
        ));
        fields.push_str(&input(
            "city",
            "City",
            "text",
            current("city", address.city.as_deref()),
            "address-level2",
        ));
        fields.push_str(&input(
            "postal_code",
            "Postal code",
            "text",
            current("postal_code", address.postal_code.as_deref()),
            "postal-code",
        ));
        fields.push_str(&input(
            "state",
            "State or region",
            "text",
            current("state", address.state.as_deref()),
            "address-level1",
        ));
        fields.push_str(&input(
            "country",
            "Country (two-letter code)",
            "text",
            current("country", address.country.as_deref()),
            "country",
        ));
    }
    let body = format!(
        r#"<section class="card"><h1>Billing information</h1>
<form method="post" action="{action}">{error}{fields}<button class="wide" type="submit">Save</button></form></section>"#,
        action = escape(&ctx.url("/billing-details")),
        error = error_box(error),
    );
    screen(ctx, "Billing information", &body)
}

async fn details_save(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    let response = {
        let mut st = sim.lock();
        match context(&mut st, &sid) {
            Err(r) => *r,
            Ok(ctx) if !ctx.config.customer_update_enabled => details_page(&st, &ctx, None, None),
            Ok(ctx) => {
                let allowed = ctx.config.customer_update_allowed.clone();
                let allows = |k: &str| allowed.iter().any(|a| a == k);
                let opt = |k: &str| Some(field(&values, k)).filter(|v| !v.is_empty());
                let email = field(&values, "email");
                let country = field(&values, "country").to_uppercase();
                let error = if allows("email") && !email.contains('@') {
                    Some("Enter a valid email address.")
                } else if allows("address")
                    && !country.is_empty()
                    && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()))
                {
                    Some("Use a two-letter country code, such as US or DE.")
                } else {
                    None
                };
                match error {
                    Some(e) => details_page(&st, &ctx, Some(&values), Some(e)),
                    None => {
                        let fields = CustomerFields {
                            name: allows("name").then(|| opt("name")),
                            email: allows("email").then(|| opt("email")),
                            address: allows("address").then(|| {
                                Some(Address {
                                    line1: opt("line1"),
                                    line2: opt("line2"),
                                    city: opt("city"),
                                    state: opt("state"),
                                    postal_code: opt("postal_code"),
                                    country: Some(country).filter(|c| !c.is_empty()),
                                })
                            }),
                            ..Default::default()
                        };
                        match st.update_customer(&ctx.session.customer, fields) {
                            Ok(()) => see_other(&ctx.url("?notice=details")),
                            Err(e) => details_page(&st, &ctx, Some(&values), Some(&e.message)),
                        }
                    }
                }
            }
        }
    };
    sim.changed().await;
    response
}

// ----- plan changes ----------------------------------------------------------------------

async fn update_choose(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
) -> Response {
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        choose_page(st, ctx, &s, None)
    })
    .await
}

fn update_disabled(ctx: &Ctx) -> Response {
    message_page(
        "Not available",
        "Changing plans is turned off.",
        Some((&ctx.url(""), "Back")),
        StatusCode::FORBIDDEN,
    )
}

fn choose_page(st: &State, ctx: &Ctx, sub: &Subscription, error: Option<&str>) -> Response {
    if !ctx.config.subscription_update_enabled {
        return update_disabled(ctx);
    }
    let current = sub
        .items
        .first()
        .map(|i| i.price.clone())
        .unwrap_or_default();
    let options: String = st
        .portal_prices(&ctx.config)
        .iter()
        .map(|price| {
            let label = format!(
                "{} — {}{}",
                st.product_name(price),
                amount_with_interval(st, price),
                if *price == current { " (current plan)" } else { "" }
            );
            format!(
                r#"<div class="choice"><input type="radio" id="price-{id}" name="price" value="{id}"{checked}{disabled}><label for="price-{id}">{label}</label></div>"#,
                id = escape(price),
                checked = if *price == current { " checked" } else { "" },
                disabled = if *price == current { " disabled" } else { "" },
                label = escape(&label),
            )
        })
        .collect();
    let body = format!(
        r#"<section class="card"><h1>Update your plan</h1>
<form method="post" action="{action}">{error}<fieldset><legend>Choose a plan</legend>{options}</fieldset>
<button class="wide" type="submit">Continue</button></form></section>"#,
        action = escape(&ctx.url(&format!("/subscriptions/{}/update", sub.id))),
        error = error_box(error),
    );
    screen(ctx, "Update your plan", &body)
}

async fn update_chosen(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        let price = field(&values, "price");
        if st.portal_prices(&ctx.config).contains(&price) {
            see_other(&ctx.url(&format!(
                "/subscriptions/{}/update/confirm?price={price}",
                s.id
            )))
        } else {
            choose_page(st, ctx, &s, Some("Choose one of the plans."))
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    price: Option<String>,
    quantity: Option<String>,
}

/// The switch the confirmation page is about, as the portal makes it: the configuration's
/// proration behaviour, and its `schedule_at_period_end` conditions for when it happens.
fn portal_change(
    st: &State,
    ctx: &Ctx,
    sub: &Subscription,
    price: &str,
    quantity: Option<u64>,
    proration_date: Option<i64>,
) -> Result<PlanChange, String> {
    let allowed = st.portal_prices(&ctx.config).contains(&price.to_string())
        || flow_confirms_price(ctx, price);
    if !allowed || st.price(price).is_none_or(|p| !p.active) {
        return Err("Choose one of the plans.".into());
    }
    let Some(item) = sub.items.first() else {
        return Err("This subscription has nothing to change.".into());
    };
    let quantity = quantity.filter(|q| *q > 0).unwrap_or(item.quantity);
    if item.price == price && item.quantity == quantity {
        return Err("That is your current plan; choose another one.".into());
    }
    Ok(PlanChange {
        subscription: sub.id.clone(),
        item: item.id.clone(),
        price: price.to_string(),
        quantity,
        behavior: ProrationBehavior::parse(&ctx.config.proration_behavior)
            .unwrap_or(ProrationBehavior::None),
        proration_date,
        timing: st.portal_timing(&ctx.config, sub, &item.id, price, quantity),
    })
}

async fn update_confirm_form(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        let quantity = q.quantity.as_deref().and_then(|v| v.parse().ok());
        confirm_page(
            st,
            ctx,
            &s,
            q.price.as_deref().unwrap_or_default(),
            quantity,
            None,
            None,
        )
    })
    .await
}

fn amount_cell(id: &str, amount: i64, currency: &str) -> String {
    format!(
        r#"<td id="{id}" data-amount="{amount}">{}</td>"#,
        escape(&money(amount, currency))
    )
}

fn confirm_page(
    st: &State,
    ctx: &Ctx,
    sub: &Subscription,
    price: &str,
    quantity: Option<u64>,
    proration_date: Option<i64>,
    error: Option<&str>,
) -> Response {
    if !ctx.config.subscription_update_enabled {
        return update_disabled(ctx);
    }
    let quote = portal_change(st, ctx, sub, price, quantity, proration_date)
        .and_then(|change| st.quote_change(&change).map_err(|e| e.message));
    let quote = match quote {
        Ok(q) => q,
        Err(e) => return choose_page(st, ctx, sub, Some(&e)),
    };
    let currency = quote.currency.as_str();
    let current_name = st.product_name(&quote.old_price);
    let new_name = st.product_name(price);
    let period_end = quote.period.1;
    let mut rows = String::new();
    for line in &quote.prorations {
        rows.push_str(&format!(
            r#"<tr><td>{}</td><td data-amount="{}">{}</td></tr>"#,
            escape(&line.description),
            line.amount,
            escape(&money(line.amount, currency))
        ));
    }
    // An interval change bills the new period today: show what that is.
    for line in quote
        .due_now
        .iter()
        .flat_map(|d| d.lines.iter())
        .filter(|l| !l.proration && l.invoice_item.is_none())
    {
        rows.push_str(&format!(
            r#"<tr><td>{} ({} – {})</td><td data-amount="{}">{}</td></tr>"#,
            escape(&line.description),
            escape(&clock::long_date(line.period_start)),
            escape(&clock::long_date(line.period_end)),
            line.amount,
            escape(&money(line.amount, currency))
        ));
    }
    if !quote.prorations.is_empty() {
        rows.push_str(&format!(
            r#"<tr><th scope="row">Prorated amount</th>{}</tr>"#,
            amount_cell("proration-total", quote.proration_total(), currency)
        ));
    }
    rows.push_str(&format!(
        r#"<tr><th scope="row">Due today</th>{}</tr>"#,
        amount_cell("due-today", quote.due_now_amount(), currency)
    ));
    let next = &quote.next_invoice;
    rows.push_str(&format!(
        r#"<tr><th scope="row">Next invoice, <span id="next-invoice-date" data-date="{at}">{date}</span></th>{cell}</tr>"#,
        at = next.at,
        date = escape(&clock::long_date(next.at)),
        cell = amount_cell("next-invoice", next.amount_due(), currency),
    ));
    let credit_left = quote
        .due_now
        .as_ref()
        .map_or(0, |d| d.ending_balance())
        .min(0);
    let when = match (quote.change.timing, quote.trialing) {
        (Timing::PeriodEnd, _) => format!(
            "Your plan changes to {new_name} on {}. Until then you keep {current_name}; nothing is charged today.",
            clock::long_date(period_end)
        ),
        (Timing::Now, true) => format!(
            "Your trial goes on; {new_name} is billed when it ends on {}.",
            clock::long_date(period_end)
        ),
        (Timing::Now, false) if quote.interval_change => format!(
            "A new billing period starts today and is charged now{}.",
            if quote.prorations.is_empty() {
                String::new()
            } else {
                format!(", less a credit for the unused time on {current_name}")
            }
        ),
        (Timing::Now, false) => match quote.change.behavior {
            ProrationBehavior::AlwaysInvoice if credit_left < 0 => format!(
                "{new_name} applies at once; the credit of {} for the unused time goes to your account balance and pays toward your next invoices.",
                money(-credit_left, currency)
            ),
            ProrationBehavior::AlwaysInvoice => format!(
                "{new_name} applies at once; the prorated amount is charged today to your payment method on file."
            ),
            ProrationBehavior::CreateProrations => format!(
                "{new_name} applies at once; the prorated amount is added to your next invoice on {}.",
                clock::long_date(next.at)
            ),
            ProrationBehavior::None => format!(
                "{new_name} applies at once, without proration; your next invoice on {} is for the new plan.",
                clock::long_date(next.at)
            ),
        },
    };
    let back = if ctx.in_closed_flow() {
        (ctx.url("/return"), "Cancel and return")
    } else {
        (
            ctx.url(&format!("/subscriptions/{}/update", sub.id)),
            "Choose another plan",
        )
    };
    let body = format!(
        r#"<section class="card"><h1>Confirm your updated subscription</h1>{error}
<table><tbody>
<tr><th scope="row">Current plan</th><td>{current_name} — {current_amount}</td></tr>
<tr><th scope="row">New plan</th><td>{new_name} — {new_amount}</td></tr>
</tbody></table>
<h2 style="margin-top:1.25rem">Amount</h2>
<table><tbody>{rows}</tbody></table>
<p class="muted">{when}</p>
<form method="post" action="{action}"><input type="hidden" name="price" value="{price}"><input type="hidden" name="quantity" value="{quantity}"><input type="hidden" name="proration_date" value="{proration_date}"><button class="wide" type="submit">Confirm</button></form>
<p><a class="button secondary" href="{back_href}">{back_text}</a></p></section>"#,
        error = error_box(error),
        current_name = escape(&current_name),
        current_amount = escape(&amount_with_interval(st, &quote.old_price)),
        new_name = escape(&new_name),
        new_amount = escape(&amount_with_interval(st, price)),
        when = escape(&when),
        action = escape(&ctx.url(&format!("/subscriptions/{}/update/confirm", sub.id))),
        price = escape(price),
        quantity = quote.change.quantity,
        proration_date = quote.at,
        back_href = escape(&back.0),
        back_text = back.1,
    );
    screen(ctx, "Confirm your updated subscription", &body)
}

/// The proration date the confirmation page showed, if it is still fair to charge by: in
/// the current period, not in the future, and no older than an opened session lasts.
fn shown_proration_date(st: &State, sub: &Subscription, values: &FormValue) -> Option<i64> {
    let at: i64 = field(values, "proration_date").parse().ok()?;
    let now = st.customer_now(&sub.customer);
    let recent = at <= now && now - at <= OPENED_PORTAL_SESSION_LIFETIME;
    (recent && st.check_proration_date(sub, at, "proration_date").is_ok()).then_some(at)
}

async fn update_confirm(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        if !ctx.config.subscription_update_enabled {
            return update_disabled(ctx);
        }
        let price = field(&values, "price");
        let quantity = field(&values, "quantity").parse().ok();
        let proration_date = shown_proration_date(st, &s, &values);
        let change = match portal_change(st, ctx, &s, &price, quantity, proration_date) {
            Ok(c) => c,
            Err(e) => return choose_page(st, ctx, &s, Some(&e)),
        };
        let applied = st
            .quote_change(&change)
            .and_then(|quote| st.apply_change(&quote, None, true).map(|()| quote));
        match applied {
            Ok(quote) if quote.change.timing == Timing::PeriodEnd => {
                finish(st, ctx, Action::ScheduledUpdate)
            }
            Ok(_) => finish(st, ctx, Action::Update),
            Err(e) => confirm_page(st, ctx, &s, &price, quantity, None, Some(&e.message)),
        }
    })
    .await
}

/// A `subscription_update_confirm` flow names its price; it was checked against the
/// configuration when the session was made.
fn flow_confirms_price(ctx: &Ctx, price: &str) -> bool {
    ctx.session.flow.as_ref().is_some_and(|f| {
        f["subscription_update_confirm"]["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["price"].as_str() == Some(price)))
    })
}

/// "Keep my plan": drops a change scheduled for the period's end.
async fn release_scheduled(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
) -> Response {
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        let released = match s.schedule.as_deref() {
            Some(schedule) => st.release_schedule(schedule),
            None => Ok(()),
        };
        match released {
            Ok(()) => see_other(&ctx.url("?notice=kept")),
            Err(e) => message_page(
                "Could not keep your plan",
                &e.message,
                Some((&ctx.url(""), "Back")),
                StatusCode::BAD_REQUEST,
            ),
        }
    })
    .await
}

// ----- cancel and renew ------------------------------------------------------------------

async fn cancel_form(
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

async fn cancel_confirm(
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

async fn renew(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_unopened_after_minutes_and_once_left() {
        let mut s = PortalSession {
            id: "bps_1".into(),
            created: 1000,
            customer: "cus_1".into(),
            configuration: "bpc_1".into(),
            return_url: None,
            locale: None,
            flow: None,
            expires_at: 1300,
            opened_at: None,
            returned: false,
        };
        assert!(s.usable(1300));
        assert!(!s.usable(1301));
        s.opened_at = Some(1200);
        assert!(s.usable(1200 + 3600));
        assert!(!s.usable(1200 + 3601));
        s.returned = true;
        assert!(!s.usable(1201));
    }
}
