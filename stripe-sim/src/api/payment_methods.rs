//! Payment methods (`/v1/payment_methods`, `/v1/customers/{id}/payment_methods`): retrieve,
//! list, attach, detach. Cards are made on the hosted pages or from `pm_card_*` test ids.

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
