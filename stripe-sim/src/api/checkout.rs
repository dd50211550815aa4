//! Checkout sessions (`/v1/checkout/sessions`), `subscription` mode: create, retrieve, list,
//! line items, expire. The session is paid on the hosted Checkout page.

use serde_json::Value;

use super::{allow_list, page};
use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::{new_id, CheckoutLine, CheckoutSession, CheckoutStatus, Metadata, State},
    params::Params,
    state::CHECKOUT_SESSION_LIFETIME,
};

fn checkout_view(st: &State, id: &str) -> ApiResult<Value> {
    st.checkout_session(id)
        .map(|x| st.checkout_session_json(x))
        .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))
}

pub(super) fn create_checkout_session(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "mode",
        "line_items",
        "customer",
        "customer_email",
        "success_url",
        "cancel_url",
        "client_reference_id",
        "subscription_data",
        "metadata",
        "expand",
        "locale",
        "payment_method_types",
        "allow_promotion_codes",
        "billing_address_collection",
        "customer_update",
        "ui_mode",
        "automatic_tax",
        "tax_id_collection",
        "consent_collection",
        "custom_text",
        "expires_at",
        "payment_method_collection",
        "currency",
        "phone_number_collection",
        "saved_payment_method_options",
        "submit_type",
        "customer_creation",
        "adaptive_pricing",
        "payment_intent_data",
    ])?;
    if let Some(data) = p.child("payment_intent_data")? {
        // Kept by Stripe on the payment it makes; the double records no payment intents.
        data.allow(&[
            "shipping",
            "description",
            "metadata",
            "receipt_email",
            "setup_future_usage",
            "capture_method",
            "statement_descriptor",
        ])?;
    }
    let mode = match p.required("mode")? {
        m @ ("subscription" | "payment") => m.to_owned(),
        other => {
            return Err(ApiError::invalid_param(
                "mode",
                format!("This Stripe test double supports Checkout in `subscription` and `payment` modes, not `{other}`."),
            ))
        }
    };
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        st.require_customer(c, "customer")?;
    }
    let customer_email = p.text("customer_email")?;
    if customer.is_some() && customer_email.is_some() {
        return Err(ApiError::invalid_param(
            "customer_email",
            "You may only specify one of these parameters: customer, customer_email.",
        ));
    }
    let mut lines = Vec::new();
    let mut shape: Option<(String, String)> = None;
    let mut total = 0i64;
    for (i, item) in p.list("line_items")?.iter().enumerate() {
        item.allow(&[
            "price",
            "quantity",
            "adjustable_quantity",
            "tax_rates",
            "dynamic_tax_rates",
        ])?;
        let price_id = item.required("price")?;
        let param = format!("line_items[{i}][price]");
        let price = st
            .price(price_id)
            .ok_or_else(|| ApiError::no_such("price", price_id, &param))?;
        if !price.active {
            return Err(ApiError::invalid_param(
                &param,
                format!("The price `{price_id}` is not active."),
            ));
        }
        if price.one_time() != (mode == "payment") {
            return Err(ApiError::invalid_param(
                &param,
                if mode == "payment" {
                    "You must provide one-time prices in `payment` mode (this one recurs)."
                } else {
                    "You must provide at least one recurring price in `subscription` mode."
                },
            ));
        }
        let this = (price.currency.clone(), price.interval.clone());
        if shape.as_ref().is_some_and(|s| *s != this) {
            return Err(ApiError::invalid_param(
                &param,
                "All prices must share one currency and billing interval.",
            ));
        }
        shape = Some(this);
        let quantity = item.uint::<u64>("quantity")?.unwrap_or(1).max(1);
        total += price.unit_amount * i64::try_from(quantity).unwrap_or(1);
        lines.push(CheckoutLine {
            id: new_id("li_", 24),
            price: price_id.to_string(),
            quantity,
        });
    }
    let Some((currency, _)) = shape else {
        return Err(ApiError::missing_param("line_items"));
    };
    for key in ["success_url", "cancel_url"] {
        if let Some(url) = p.text(key)? {
            if url::Url::parse(&url.replace("{CHECKOUT_SESSION_ID}", "cs")).is_err() {
                return Err(ApiError::invalid_param(
                    key,
                    format!("Not a valid URL: {url}"),
                ));
            }
        }
    }
    let (mut trial_days, mut trial_from_plan, mut sub_metadata, mut sub_description) =
        (None, None, Metadata::new(), None);
    if let Some(data) = p.child("subscription_data")? {
        data.allow(&[
            "trial_period_days",
            "trial_from_plan",
            "metadata",
            "description",
            "trial_settings",
            "billing_cycle_anchor",
            "default_tax_rates",
            "proration_behavior",
        ])?;
        trial_days = data.uint::<u32>("trial_period_days")?;
        trial_from_plan = data.bool("trial_from_plan")?;
        sub_metadata = data.metadata("metadata")?.unwrap_or_default().into_new();
        sub_description = data.text("description")?;
    }
    let now = clock::now();
    let expires_at = match p.int("expires_at")? {
        Some(t) if t > now + 1800 && t <= now + CHECKOUT_SESSION_LIFETIME => t,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "expires_at",
                "expires_at must be between 30 minutes and 24 hours from now.",
            ))
        }
        None => now + CHECKOUT_SESSION_LIFETIME,
    };
    let id = new_id("cs_test_", 58);
    st.checkout_sessions.push(CheckoutSession {
        id: id.clone(),
        created: now,
        expires_at,
        status: CheckoutStatus::Open,
        payment_status: "unpaid".into(),
        customer,
        customer_email,
        customer_name: None,
        line_items: lines,
        success_url: p.text("success_url")?,
        cancel_url: p.text("cancel_url")?,
        client_reference_id: p.text("client_reference_id")?,
        trial_period_days: trial_days,
        trial_from_plan,
        subscription_metadata: sub_metadata,
        subscription_description: sub_description,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        locale: p.text("locale")?,
        subscription: None,
        invoice: None,
        amount_total: total,
        currency,
        mode,
        payment_intent: None,
    });
    checkout_view(st, &id)
}

/// `GET /v1/payment_pages/{id}`: what Stripe's own hosted page (and its CLI's
/// `checkout.session.completed` fixture) reads of an open session: the session.
pub(super) fn retrieve_payment_page(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand", "key"])?;
    checkout_view(st, id)
}

/// `POST /v1/payment_pages/{id}/confirm` with a saved card (`payment_method`) and the amount
/// the page showed (`expected_amount`): the session is paid as the hosted page pays it.
pub(super) fn confirm_payment_page(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["payment_method", "expected_amount", "expand", "key"])?;
    let cs = st
        .checkout_session(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))?;
    if cs.status != CheckoutStatus::Open {
        return Err(ApiError::state(format!(
            "This Checkout Session is `{}`; only an open one can be paid.",
            cs.status.as_str()
        )));
    }
    let pm = p
        .text("payment_method")?
        .ok_or_else(|| ApiError::missing_param("payment_method"))?;
    let expected = p.int("expected_amount")?;
    let (amount, _) = st.checkout_terms(&cs);
    if expected.is_some_and(|e| e != amount) {
        return Err(ApiError::invalid_param(
            "expected_amount",
            format!(
                "The amount due is {amount}, not {}.",
                expected.unwrap_or_default()
            ),
        ));
    }
    st.pay_checkout_with(id, &pm)
        .map_err(|d| ApiError::card_declined(d.decline_code, d.message))?;
    checkout_view(st, id)
}

pub(super) fn list_checkout_sessions(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "customer",
            "subscription",
            "status",
            "payment_intent",
            "payment_link",
            "customer_details",
        ],
    )?;
    let customer = p.text("customer")?;
    let subscription = p.text("subscription")?;
    let status = p.text("status")?;
    let items = st
        .checkout_sessions
        .iter()
        .rev()
        .filter(|c| customer.is_none() || c.customer == customer)
        .filter(|c| subscription.is_none() || c.subscription == subscription)
        .filter(|c| status.as_deref().is_none_or(|s| c.status.as_str() == s))
        .map(|c| (c.id.clone(), st.checkout_session_json(c)))
        .collect();
    page(p, "/v1/checkout/sessions", items)
}

/// `GET /v1/checkout/sessions/{id}`.
pub(super) fn retrieve_checkout_session(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    checkout_view(st, id)
}

/// `GET /v1/checkout/sessions/{id}/line_items`.
pub(super) fn list_checkout_line_items(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand", "limit", "starting_after", "ending_before"])?;
    st.checkout_session(id)
        .map(|cs| st.checkout_line_items_json(cs))
        .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))
}

/// `POST /v1/checkout/sessions/{id}/expire`: only an open session can be expired.
pub(super) fn expire_checkout_session(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    let status = st
        .checkout_session(id)
        .map(|c| c.status)
        .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))?;
    if status != CheckoutStatus::Open {
        return Err(ApiError::state(format!(
            "Only Checkout Sessions with a status of `open` can be expired; this one is `{}`.",
            status.as_str()
        )));
    }
    st.expire_checkout_session(id);
    checkout_view(st, id)
}
