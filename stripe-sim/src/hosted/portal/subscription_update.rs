//! Switching plan: choosing a price, the confirmation page with the quoted prorations, the
//! switch now or at the period's end, and keeping the current plan instead.

use axum::{
    extract::{Path, Query, State as AxumState},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;

use super::{error_box, finish, on_own_subscription, screen, Action, Ctx};
use crate::{
    clock,
    form::FormValue,
    hosted::{amount_with_interval, escape, field, message_page, parse_form, see_other},
    model::{State, Subscription, OPENED_PORTAL_SESSION_LIFETIME},
    plan_change::{PlanChange, ProrationBehavior, Timing},
    state::money,
    StripeSim,
};

pub(super) async fn update_choose(
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
    let current_quantity = sub.items.first().map_or(1, |i| i.quantity);
    // A per-seat plan's quantity is a step of its own: the current plan stays choosable.
    let seats = st.portal_quantity(&ctx.config, &current);
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
                disabled = if *price == current && seats.is_none() { " disabled" } else { "" },
                label = escape(&label),
            )
        })
        .collect();
    let quantity = seats
        .map(|q| {
            format!(
                r#"<p><label for="quantity">Seats</label> <input type="number" id="quantity" name="quantity" inputmode="numeric" min="{min}"{max} value="{current_quantity}"></p>"#,
                min = q.minimum,
                max = q.maximum.map(|m| format!(r#" max="{m}""#)).unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<section class="card"><h1>Update your plan</h1>
<form method="post" action="{action}">{error}<fieldset><legend>Choose a plan</legend>{options}</fieldset>{quantity}
<button class="wide" type="submit">Continue</button></form></section>"#,
        action = escape(&ctx.url(&format!("/subscriptions/{}/update", sub.id))),
        error = error_box(error),
    );
    screen(ctx, "Update your plan", &body)
}

pub(super) async fn update_chosen(
    AxumState(sim): AxumState<StripeSim>,
    Path((sid, sub)): Path<(String, String)>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    on_own_subscription(&sim, &sid, &sub, |st, ctx, s| {
        let price = field(&values, "price");
        if !st.portal_prices(&ctx.config).contains(&price) {
            return choose_page(st, ctx, &s, Some("Choose one of the plans."));
        }
        let quantity = match field(&values, "quantity").as_str() {
            "" => String::new(),
            q => match q.parse::<u64>() {
                Ok(n) => format!("&quantity={n}"),
                Err(_) => {
                    return choose_page(st, ctx, &s, Some("Enter the number of seats."));
                }
            },
        };
        see_other(&ctx.url(&format!(
            "/subscriptions/{}/update/confirm?price={price}{quantity}",
            s.id
        )))
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
    let quantity = quantity.unwrap_or(item.quantity);
    if item.price == price && item.quantity == quantity {
        return Err("That is your current plan; choose another one.".into());
    }
    if quantity != item.quantity && !flow_confirms_price(ctx, price) {
        match st.portal_quantity(&ctx.config, price) {
            Some(q) if q.allows(quantity) => {}
            Some(q) => {
                return Err(match q.maximum {
                    Some(max) => format!("Choose between {} and {max} seats.", q.minimum),
                    None => format!("Choose at least {} seats.", q.minimum),
                })
            }
            None => return Err("This plan's quantity cannot be changed here.".into()),
        }
    }
    if quantity == 0 {
        return Err("Choose at least one seat.".into());
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

pub(super) async fn update_confirm_form(
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
<tr><th scope="row">New plan</th><td>{new_name} — {new_amount}{seats}</td></tr>
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
        seats = if quote.change.quantity == 1 && st.portal_quantity(&ctx.config, price).is_none() {
            String::new()
        } else {
            format!(
                r#" × <span id="new-quantity">{}</span>"#,
                quote.change.quantity
            )
        },
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

pub(super) async fn update_confirm(
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
pub(super) async fn release_scheduled(
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
