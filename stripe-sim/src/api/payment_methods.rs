//! Payment methods (`/v1/payment_methods`, `/v1/customers/{id}/payment_methods`): create (a
//! card from a test token), update, retrieve, list, attach, detach; and setup intents
//! (`/v1/setup_intents`) as far as saving a card for a customer goes. Cards are made on the
//! hosted pages, from `pm_card_*` test ids or from `tok_*` test tokens.

use serde_json::Value;

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
    render::list_page,
};

fn payment_method_view(st: &State, id: &str) -> ApiResult<Value> {
    st.payment_method(id)
        .map(|x| st.payment_method_json(x))
        .ok_or_else(|| ApiError::no_such("PaymentMethod", id, "payment_method"))
}

fn list_payment_methods(
    st: &State,
    p: &Params,
    customer: Option<&str>,
    url: &str,
) -> ApiResult<Value> {
    allow_list(p, &["customer", "type", "allow_redisplay"])?;
    let kind = p.text("type")?;
    if kind.as_deref().is_some_and(|k| k != "card") {
        return Ok(list_page(url, Vec::new(), 10, None, None));
    }
    let items = st
        .payment_methods
        .iter()
        .rev()
        .filter(|x| x.customer.is_some())
        .filter(|x| customer.is_none_or(|c| x.customer.as_deref() == Some(c)))
        .map(|x| (x.id.clone(), st.payment_method_json(x)))
        .collect();
    page(p, url, items)
}

/// `GET /v1/customers/{id}/payment_methods`.
pub(super) fn list_customer_payment_methods(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    st.require_customer(id, "customer")?;
    list_payment_methods(
        st,
        p,
        Some(id),
        &format!("/v1/customers/{id}/payment_methods"),
    )
}

/// `GET /v1/payment_methods`.
pub(super) fn list_all_payment_methods(st: &State, p: &Params) -> ApiResult<Value> {
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        st.require_customer(c, "customer")?;
    }
    list_payment_methods(st, p, customer.as_deref(), "/v1/payment_methods")
}

/// `GET /v1/payment_methods/{id}`.
pub(super) fn retrieve_payment_method(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    payment_method_view(st, id)
}

/// `POST /v1/payment_methods/{id}/attach`.
pub(super) fn attach_payment_method(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["customer", "expand"])?;
    let customer = p.required("customer")?;
    let pm = st.attach_payment_method(id, customer)?;
    payment_method_view(st, &pm)
}

/// `POST /v1/payment_methods/{id}/detach`.
pub(super) fn detach_payment_method(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.detach_payment_method(id)?;
    payment_method_view(st, id)
}

/// The test card a `card[token]` (or `card[number]`) names.
fn card_of(p: &Params) -> ApiResult<&'static crate::cards::TestCard> {
    let card = p
        .child("card")?
        .ok_or_else(|| ApiError::missing_param("card"))?;
    card.allow(&["token", "number", "exp_month", "exp_year", "cvc"])?;
    if let Some(token) = card.text("token")? {
        return crate::cards::by_token(&token)
            .ok_or_else(|| ApiError::no_such("token", &token, "card[token]"));
    }
    let number = card
        .text("number")?
        .ok_or_else(|| ApiError::missing_param("card[number]"))?;
    crate::cards::by_number(&number).ok_or_else(|| {
        ApiError::invalid_param(
            "card[number]",
            "Your card number is not one of the test cards the double knows.",
        )
    })
}

/// `POST /v1/payment_methods`: a card from a test token or a test card number, not attached.
pub(super) fn create_payment_method(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "type",
        "card",
        "billing_details",
        "metadata",
        "expand",
        "allow_redisplay",
    ])?;
    if p.text("type")?.as_deref() != Some("card") {
        return Err(ApiError::invalid_param(
            "type",
            "The double makes payment methods of type card only.",
        ));
    }
    let card = card_of(p)?;
    let (name, email) = match p.child("billing_details")? {
        Some(b) => {
            b.allow(&["name", "email", "address", "phone", "tax_id"])?;
            (b.text("name")?, b.text("email")?)
        }
        None => (None, None),
    };
    let id = st.create_card(card, None, name, email);
    if let Some(patch) = p.metadata("metadata")? {
        if let Some(pm) = st.payment_method_mut(&id) {
            patch.apply(&mut pm.metadata);
        }
    }
    payment_method_view(st, &id)
}

/// `POST /v1/payment_methods/{id}`: metadata and billing details; `payment_method.updated`
/// when it belongs to a customer and something changed.
pub(super) fn update_payment_method(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "metadata",
        "billing_details",
        "card",
        "expand",
        "allow_redisplay",
    ])?;
    let before = payment_method_view(st, id)?;
    let metadata = p.metadata("metadata")?;
    let (name, email) = match p.child("billing_details")? {
        Some(b) => {
            b.allow(&["name", "email", "address", "phone", "tax_id"])?;
            (b.nullable("name")?, b.nullable("email")?)
        }
        None => (None, None),
    };
    let (exp_month, exp_year) = match p.child("card")? {
        Some(c) => {
            c.allow(&["exp_month", "exp_year"])?;
            (c.uint::<u32>("exp_month")?, c.int("exp_year")?)
        }
        None => (None, None),
    };
    // As Stripe refuses them: a month outside 1–12, a year not of four digits.
    if exp_month.is_some_and(|m| !(1..=12).contains(&m)) {
        return Err(ApiError::invalid_param(
            "card[exp_month]",
            "Your card's expiration month is invalid.",
        ));
    }
    let exp_year = match exp_year {
        Some(y) if (1000..=9999).contains(&y) => i32::try_from(y).ok(),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "card[exp_year]",
                "Your card's expiration year is invalid.",
            ))
        }
        None => None,
    };
    let pm = st
        .payment_method_mut(id)
        .ok_or_else(|| ApiError::no_such("PaymentMethod", id, "payment_method"))?;
    if let Some(patch) = metadata {
        patch.apply(&mut pm.metadata);
    }
    if let Some(n) = name {
        pm.billing_name = n;
    }
    if let Some(e) = email {
        pm.billing_email = e;
    }
    if let Some(m) = exp_month {
        pm.exp_month = m;
    }
    if let Some(y) = exp_year {
        pm.exp_year = y;
    }
    let customer = pm.customer.clone();
    let after = payment_method_view(st, id)?;
    if let Some(c) = customer {
        let at = st.customer_now(&c);
        st.emit_update("payment_method.updated", &before, after.clone(), at);
    }
    Ok(after)
}

/// `POST /v1/setup_intents` with `payment_method` (and `confirm=true`): the card is saved to
/// the customer (`payment_method.attached`), and the intent `succeeded`; a card that needs
/// 3-D Secure leaves it `requires_action`. Without `confirm`, it waits
/// (`requires_confirmation`) and nothing is saved.
pub(super) fn create_setup_intent(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "payment_method",
        "confirm",
        "description",
        "usage",
        "metadata",
        "payment_method_types",
        "automatic_payment_methods",
        "return_url",
        "expand",
    ])?;
    let customer = p.text("customer")?;
    let metadata = p.metadata("metadata")?.unwrap_or_default().into_new();
    let confirm = p.bool("confirm")?.unwrap_or(false);
    let mut payment_method = p.text("payment_method")?;
    let mut status = if payment_method.is_some() {
        "requires_confirmation"
    } else {
        "requires_payment_method"
    };
    let created = customer
        .as_deref()
        .map_or_else(crate::clock::now, |c| st.customer_now(c));
    if confirm {
        let pm = payment_method
            .clone()
            .ok_or_else(|| ApiError::missing_param("payment_method"))?;
        let saved = match &customer {
            Some(c) => st.attach_payment_method(&pm, c)?,
            None => pm,
        };
        let needs_action = st
            .payment_method(&saved)
            .is_some_and(|x| x.outcome == crate::cards::CardOutcome::RequiresAction);
        status = if needs_action {
            "requires_action"
        } else {
            "succeeded"
        };
        payment_method = Some(saved);
    }
    let id = crate::model::new_id("seti_", 24);
    Ok(serde_json::json!({
        "id": id,
        "object": "setup_intent",
        "application": null,
        "automatic_payment_methods": null,
        "cancellation_reason": null,
        "client_secret": format!("{id}_secret_{}", crate::model::new_id("", 24)),
        "created": created,
        "customer": customer,
        "description": p.text("description")?,
        "flow_directions": null,
        "last_setup_error": null,
        "latest_attempt": null,
        "livemode": false,
        "mandate": null,
        "metadata": metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": payment_method,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "single_use_mandate": null,
        "status": status,
        "usage": p.text("usage")?.unwrap_or_else(|| "off_session".into()),
    }))
}
