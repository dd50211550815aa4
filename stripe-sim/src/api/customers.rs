//! Customers (`/v1/customers`): create, retrieve, update, delete, list.

use serde_json::{json, Value};

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
    state::CustomerFields,
};

const CUSTOMER_FIELDS: &[&str] = &[
    "address",
    "description",
    "email",
    "metadata",
    "name",
    "phone",
    "invoice_settings",
    "preferred_locales",
    "expand",
    "balance",
    "shipping",
    "tax",
    "tax_exempt",
    "test_clock",
    "validate",
    "invoice_prefix",
    "next_invoice_sequence",
    "cash_balance",
];

fn customer_fields(p: &Params) -> ApiResult<(CustomerFields, Option<String>)> {
    let mut default_pm = None;
    if let Some(settings) = p.child("invoice_settings")? {
        settings.allow(&[
            "default_payment_method",
            "custom_fields",
            "footer",
            "rendering_options",
        ])?;
        default_pm = settings.nullable("default_payment_method")?;
    }
    let email = p.nullable("email")?;
    if let Some(Some(e)) = &email {
        if !e.contains('@') || e.len() > 512 {
            return Err(ApiError::invalid_param(
                "email",
                format!("Invalid email address: {e}"),
            ));
        }
    }
    let fields = CustomerFields {
        email,
        name: p.nullable("name")?,
        phone: p.nullable("phone")?,
        description: p.nullable("description")?,
        address: p.address("address")?,
        metadata: p.metadata("metadata")?,
        default_payment_method: None,
        preferred_locales: p
            .has("preferred_locales")
            .then(|| p.strings("preferred_locales"))
            .transpose()?,
    };
    Ok((fields, default_pm.flatten()))
}

pub(super) fn create_customer(st: &mut State, p: &Params) -> ApiResult<Value> {
    let mut known = CUSTOMER_FIELDS.to_vec();
    known.extend(["payment_method", "source"]);
    p.allow(&known)?;
    let (fields, mut default_pm) = customer_fields(p)?;
    let mut payment_method = p.text("payment_method")?;
    // A test token as the customer's `source`: the double has no legacy Card objects, so the
    // card is saved as a payment method and made the default one, which is what charges it.
    if let Some(source) = p.text("source")? {
        if payment_method.is_some() {
            return Err(ApiError::invalid_param(
                "source",
                "You may only specify one of these parameters: payment_method, source.",
            ));
        }
        if crate::cards::by_token(&source).is_none() {
            return Err(ApiError::no_such("token", &source, "source"));
        }
        default_pm = Some(source.clone());
        payment_method = Some(source);
    }
    let id = st.create_customer_on(fields, p.text("test_clock")?)?;
    if let Some(pm) = payment_method {
        let attached = st.attach_payment_method(&pm, &id)?;
        if default_pm
            .as_deref()
            .is_some_and(|d| d == pm || d == attached)
        {
            st.update_customer(
                &id,
                CustomerFields {
                    default_payment_method: Some(Some(attached)),
                    ..Default::default()
                },
            )?;
        }
    } else if let Some(d) = default_pm {
        return Err(ApiError::invalid_param(
            "invoice_settings[default_payment_method]",
            format!("No such PaymentMethod: '{d}'; attach it with `payment_method` first."),
        ));
    }
    st.customer_view(&id, "id")
}

pub(super) fn update_customer(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(CUSTOMER_FIELDS)?;
    st.require_customer(id, "id")?;
    let (mut fields, default_pm) = customer_fields(p)?;
    if p.child("invoice_settings")?.is_some() {
        let cleared = p
            .child("invoice_settings")?
            .map(|s| s.str("default_payment_method"))
            .transpose()?
            .flatten()
            == Some("");
        if default_pm.is_some() || cleared {
            fields.default_payment_method = Some(default_pm);
        }
    }
    st.update_customer(id, fields)?;
    st.customer_view(id, "id")
}

pub(super) fn list_customers(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["email", "test_clock"])?;
    let email = p.text("email")?;
    let clock = p.text("test_clock")?;
    let items = st
        .customers
        .iter()
        .rev()
        .filter(|c| !c.deleted)
        .filter(|c| email.is_none() || c.email == email)
        .filter(|c| clock.is_none() || c.test_clock == clock)
        .map(|c| (c.id.clone(), st.customer_json(c)))
        .collect();
    page(p, "/v1/customers", items)
}

/// `GET /v1/customers/{id}`.
pub(super) fn retrieve_customer(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.customer(id)
        .map(|c| st.customer_json(c))
        .ok_or_else(|| ApiError::no_such("customer", id, "id"))
}

/// `DELETE /v1/customers/{id}`.
pub(super) fn delete_customer(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[])?;
    st.delete_customer(id)?;
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}
