//! Hosted Checkout: the plan summary and a card form; paying creates the customer (if the
//! session has none), the card, the subscription and its first invoice, then redirects to
//! `success_url`. A declined card shows the decline and changes nothing.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::Response,
};

use super::{
    amount_with_interval, card_fields, escape, field, message_page, mount_path, page, parse_form,
    read_card, safe_redirect, see_other,
};
use crate::{
    clock,
    form::FormValue,
    model::{CheckoutSession, CheckoutStatus, State},
    state::money,
    StripeSim,
};

fn not_found() -> Response {
    message_page(
        "Checkout session not found",
        "This checkout link is not valid.",
        None,
        StatusCode::NOT_FOUND,
    )
}

pub async fn show(AxumState(sim): AxumState<StripeSim>, Path(id): Path<String>) -> Response {
    let st = sim.lock();
    let Some(cs) = st.checkout_session(&id).cloned() else {
        drop(st);
        return not_found();
    };
    match status_now(&cs) {
        CheckoutStatus::Complete => complete_page(&cs),
        CheckoutStatus::Expired => expired_page(&cs),
        CheckoutStatus::Open => form_page(&st, &cs, &FormValue::empty(), None, StatusCode::OK),
    }
}

pub async fn pay(
    AxumState(sim): AxumState<StripeSim>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    let outcome = {
        let mut st = sim.lock();
        let Some(cs) = st.checkout_session(&id).cloned() else {
            drop(st);
            return not_found();
        };
        match status_now(&cs) {
            CheckoutStatus::Complete => return complete_page(&cs),
            CheckoutStatus::Expired => return expired_page(&cs),
            CheckoutStatus::Open => {}
        }
        let email = field(&values, "email");
        let needs_email = cs.customer.is_none() && cs.customer_email.is_none();
        let entered = if needs_email && !email.contains('@') {
            Err("Enter a valid email address.".to_string())
        } else {
            read_card(&values, clock::now())
        };
        match entered {
            Err(message) => Err(form_page(
                &st,
                &cs,
                &values,
                Some(&message),
                StatusCode::BAD_REQUEST,
            )),
            Ok(card) => {
                let email = Some(email).filter(|e| !e.is_empty());
                match st.complete_checkout(&id, card.card, card.expiry, &card.name, email) {
                    Err(decline) => Err(form_page(
                        &st,
                        &cs,
                        &values,
                        Some(decline.message),
                        StatusCode::PAYMENT_REQUIRED,
                    )),
                    Ok(()) => Ok(st.checkout_session(&id).cloned()),
                }
            }
        }
    };
    match outcome {
        Err(page) => page,
        Ok(cs) => {
            sim.changed().await;
            match cs {
                Some(cs) => complete_page(&cs),
                None => not_found(),
            }
        }
    }
}

/// Open sessions past their expiry count as expired even before the clock notices.
fn status_now(cs: &CheckoutSession) -> CheckoutStatus {
    if cs.status == CheckoutStatus::Open && cs.expires_at <= clock::now() {
        CheckoutStatus::Expired
    } else {
        cs.status
    }
}

/// After paying: straight on to `success_url`, or a page saying it is done.
fn complete_page(cs: &CheckoutSession) -> Response {
    if let Some(url) = cs
        .success_url
        .as_ref()
        .map(|u| u.replace("{CHECKOUT_SESSION_ID}", &cs.id))
        .and_then(|u| safe_redirect(&u))
    {
        return see_other(&url);
    }
    message_page(
        "Payment complete",
        "Thanks: your subscription is active. You can close this page.",
        None,
        StatusCode::OK,
    )
}

fn expired_page(cs: &CheckoutSession) -> Response {
    let back = cs.cancel_url.as_deref().and_then(safe_redirect);
    message_page(
        "This checkout session has expired",
        "Go back and start again to get a fresh checkout page.",
        back.as_deref().map(|u| (u, "Go back")),
        StatusCode::GONE,
    )
}

/// The plan summary and card form; `status` tells a re-shown form (400, 402) from the first view.
fn form_page(
    st: &State,
    cs: &CheckoutSession,
    values: &FormValue,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (due_today, trial) = st.checkout_terms(cs);
    let first = cs.line_items.first();
    let plan_name = first.map(|l| st.product_name(&l.price)).unwrap_or_default();
    let recurring = first
        .map(|l| amount_with_interval(st, &l.price))
        .unwrap_or_default();
    let lines: String = cs
        .line_items
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{} × {}</td><td>{}</td></tr>",
                l.quantity,
                escape(&st.product_name(&l.price)),
                escape(&amount_with_interval(st, &l.price))
            )
        })
        .collect();
    let trial_note = trial
        .map(|d| {
            format!(
                r#"<p class="notice">{d} days free, then {}. You will not be charged today.</p>"#,
                escape(&recurring)
            )
        })
        .unwrap_or_default();
    let error_html = error
        .map(|e| format!(r#"<div class="error" role="alert">{}</div>"#, escape(e)))
        .unwrap_or_default();
    let customer_email = cs
        .customer
        .as_ref()
        .and_then(|c| st.customer(c))
        .and_then(|c| c.email.clone())
        .or_else(|| cs.customer_email.clone());
    let email_html = match customer_email {
        Some(email) => format!(
            r#"<p class="muted">Paying as <strong>{}</strong></p>"#,
            escape(&email)
        ),
        None => format!(
            r#"<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required value="{}">"#,
            escape(&field(values, "email"))
        ),
    };
    let cancel = cs
        .cancel_url
        .as_deref()
        .and_then(safe_redirect)
        .map(|u| format!(r#"<p><a href="{}">Cancel and return</a></p>"#, escape(&u)))
        .unwrap_or_default();
    let button = if trial.is_some() {
        "Start trial"
    } else {
        "Subscribe"
    };
    let body = format!(
        r#"<div class="grid">
<section class="card" aria-labelledby="summary-title">
  <p class="muted">Subscribe to</p>
  <h1 id="summary-title">{plan}</h1>
  <p class="price">{recurring_html}</p>
  {trial_note}
  <table><tbody>{lines}</tbody></table>
  <p><strong>Total due today: {due}</strong></p>
  {cancel}
</section>
<section class="card" aria-labelledby="pay-title">
  <h2 id="pay-title">Pay with card</h2>
  <form method="post" action="{mount}/checkout/{id}">
    {error_html}
    {email_html}
    {card}
    <button class="wide" type="submit">{button}</button>
  </form>
</section>
</div>"#,
        plan = escape(&plan_name),
        recurring_html = escape(&recurring),
        due = escape(&money(due_today, &cs.currency)),
        mount = escape(&mount_path(st)),
        id = escape(&cs.id),
        card = card_fields(values),
    );
    page(
        &format!("Subscribe to {plan_name}"),
        "Billfold (test mode)",
        &body,
        status,
    )
}
