//! Updating the payment method: a new test card becomes the customer's default, and pays
//! what is still open.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::Response,
};

use super::{context, error_box, finish, screen, Action, Ctx};
use crate::{
    clock,
    form::FormValue,
    hosted::{card_fields, escape, message_page, parse_form, read_card},
    StripeSim,
};

pub(super) async fn payment_method_form(
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

pub(super) async fn payment_method_save(
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
