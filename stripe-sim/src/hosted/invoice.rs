//! The hosted invoice page (`hosted_invoice_url`): the invoice, and for an open one a card
//! form to pay it.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::Response,
};

use super::{
    card_fields, escape, message_page, mount_path, page, parse_form, read_card, see_other,
};
use crate::{
    clock,
    form::FormValue,
    model::{Invoice, InvoiceStatus, State},
    state::money,
    StripeSim,
};

fn not_found() -> Response {
    message_page(
        "Invoice not found",
        "This invoice link is not valid.",
        None,
        StatusCode::NOT_FOUND,
    )
}

pub async fn show(AxumState(sim): AxumState<StripeSim>, Path(id): Path<String>) -> Response {
    let st = sim.lock();
    match st.invoice(&id) {
        Some(inv) if inv.status != InvoiceStatus::Draft => {
            invoice_page(&st, inv, &FormValue::empty(), None)
        }
        _ => not_found(),
    }
}

pub async fn pay(
    AxumState(sim): AxumState<StripeSim>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let values = parse_form(&body);
    let response = {
        let mut st = sim.lock();
        let Some(inv) = st.invoice(&id).cloned() else {
            return not_found();
        };
        if inv.status != InvoiceStatus::Open {
            return invoice_page(&st, &inv, &values, None);
        }
        match read_card(&values, clock::now()) {
            Err(e) => invoice_page(&st, &inv, &values, Some(&e)),
            Ok(card) => match card
                .card
                .outcome
                .decline()
                .filter(|_| card.card.outcome != crate::cards::CardOutcome::Succeeds)
            {
                Some(decline) => invoice_page(&st, &inv, &values, Some(decline.message)),
                None => {
                    let email = st.customer(&inv.customer).and_then(|c| c.email.clone());
                    let pm = st.create_card(card.card, Some(card.expiry), Some(card.name), email);
                    let now = st.customer_now(&inv.customer);
                    let attached = st.attach_payment_method(&pm, &inv.customer);
                    match attached.map(|pm| st.pay_invoice_with(&id, &pm, now)) {
                        Ok(Ok(())) => see_other(&format!("{}/invoice/{id}", mount_path(&st))),
                        Ok(Err(d)) => invoice_page(&st, &inv, &values, Some(d.message)),
                        Err(e) => invoice_page(&st, &inv, &values, Some(&e.message)),
                    }
                }
            },
        }
    };
    sim.changed().await;
    response
}

fn invoice_page(st: &State, inv: &Invoice, values: &FormValue, error: Option<&str>) -> Response {
    let (class, label) = match inv.status {
        InvoiceStatus::Paid => ("ok", "Paid"),
        InvoiceStatus::Open => ("warn", "Due"),
        InvoiceStatus::Uncollectible => ("bad", "Uncollectible"),
        InvoiceStatus::Void => ("bad", "Void"),
        InvoiceStatus::Draft => ("", "Draft"),
    };
    let lines: String = inv
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}<br><span class=\"muted\">{} – {}</span></td><td>{}</td></tr>",
                escape(&l.description),
                escape(&clock::long_date(l.period_start)),
                escape(&clock::long_date(l.period_end)),
                escape(&money(l.amount, &inv.currency))
            )
        })
        .collect();
    let pay_form = if inv.status == InvoiceStatus::Open {
        let last = inv
            .last_payment_error
            .as_deref()
            .map(|e| {
                format!(
                    r#"<p class="muted">The last attempt failed: {}</p>"#,
                    escape(e)
                )
            })
            .unwrap_or_default();
        let error = error
            .map(|e| format!(r#"<div class="error" role="alert">{}</div>"#, escape(e)))
            .unwrap_or_default();
        format!(
            r#"<section class="card"><h2>Pay this invoice</h2>{last}
<form method="post" action="{action}">{error}{fields}<button class="wide" type="submit">Pay {amount}</button></form></section>"#,
            action = escape(&format!("{}/invoice/{}", mount_path(st), inv.id)),
            fields = card_fields(values),
            amount = escape(&money(inv.amount_due - inv.amount_paid, &inv.currency)),
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<div style="max-width:640px;margin:0 auto"><section class="card">
<p class="muted">Invoice {number}</p>
<h1>{amount} <span class="status {class}">{label}</span></h1>
<p>Issued {date} to {to}</p>
<table><thead><tr><th>Description</th><th>Amount</th></tr></thead><tbody>{lines}</tbody>
<tfoot><tr><th>Total</th><th>{amount}</th></tr><tr><th>Amount paid</th><th>{paid}</th></tr></tfoot></table>
</section>{pay_form}</div>"#,
        number = escape(&inv.number),
        amount = escape(&money(inv.amount_due, &inv.currency)),
        date = escape(&clock::long_date(inv.created)),
        to = escape(
            inv.customer_email
                .as_deref()
                .or(inv.customer_name.as_deref())
                .unwrap_or(&inv.customer)
        ),
        paid = escape(&money(inv.amount_paid, &inv.currency)),
    );
    let status = if error.is_some() {
        StatusCode::PAYMENT_REQUIRED
    } else {
        StatusCode::OK
    };
    page(
        &format!("Invoice {}", inv.number),
        "Billfold (test mode)",
        &body,
        status,
    )
}
