//! Updating billing details: name, email and address, as far as the configuration allows.

use axum::{
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::Response,
};

use super::{context, error_box, screen, Ctx};
use crate::{
    form::FormValue,
    hosted::{escape, field, message_page, parse_form, see_other},
    model::{Address, State},
    state::CustomerFields,
    StripeSim,
};

pub(super) async fn details_form(
    AxumState(sim): AxumState<StripeSim>,
    Path(sid): Path<String>,
) -> Response {
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

pub(super) async fn details_save(
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
