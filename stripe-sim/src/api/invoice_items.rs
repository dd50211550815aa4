//! Invoice items (`/v1/invoiceitems`): create, retrieve, list, delete. An item waits for the
//! customer's next invoice: a subscription's (with `subscription`) or a one-off one.

use serde_json::{json, Value};

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
};

fn view(st: &State, id: &str) -> ApiResult<Value> {
    st.invoice_item(id)
        .map(|i| st.invoice_item_json(i))
        .ok_or_else(|| ApiError::no_such("invoiceitem", id, "id"))
}

pub(super) fn create_invoice_item(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "amount",
        "currency",
        "description",
        "price",
        "pricing",
        "quantity",
        "subscription",
        "metadata",
        "period",
        "discountable",
        "invoice",
        "expand",
    ])?;
    let customer = p
        .text("customer")?
        .ok_or_else(|| ApiError::missing_param("customer"))?;
    st.require_customer(&customer, "customer")?;
    let subscription = p.text("subscription")?;
    if let Some(sub) = &subscription {
        if st.subscription(sub).is_none_or(|s| s.customer != customer) {
            return Err(ApiError::no_such("subscription", sub, "subscription"));
        }
    }
    let quantity = p.uint::<u64>("quantity")?.unwrap_or(1);
    let price = match p.text("price")? {
        Some(id) => Some(
            st.price(&id)
                .cloned()
                .ok_or_else(|| ApiError::no_such("price", &id, "price"))?,
        ),
        None => None,
    };
    let (amount, currency) = match (&price, p.int("amount")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "amount",
                "You may only specify one of these parameters: amount, price.",
            ))
        }
        (Some(price), None) => (
            price.unit_amount * i64::try_from(quantity).unwrap_or(1),
            price.currency.clone(),
        ),
        (None, Some(amount)) => (
            amount,
            p.text("currency")?
                .ok_or_else(|| ApiError::missing_param("currency"))?
                .to_lowercase(),
        ),
        (None, None) => return Err(ApiError::missing_param("amount")),
    };
    let description = p
        .text("description")?
        .or_else(|| price.as_ref().map(|pr| st.product_name(&pr.id)))
        .unwrap_or_default();
    let at = st.customer_now(&customer);
    let id = st.create_invoice_item(
        &customer,
        subscription,
        price.map(|pr| pr.id),
        quantity,
        amount,
        &currency,
        description,
        at,
    );
    view(st, &id)
}

pub(super) fn retrieve_invoice_item(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    view(st, id)
}

pub(super) fn list_invoice_items(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["customer", "invoice", "pending"])?;
    let customer = p.text("customer")?;
    let invoice = p.text("invoice")?;
    let pending = p.bool("pending")?;
    let items = st
        .invoice_items
        .iter()
        .rev()
        .filter(|i| customer.as_ref().is_none_or(|c| &i.customer == c))
        .filter(|i| invoice.is_none() || i.invoice == invoice)
        .filter(|i| pending.is_none_or(|want| want == i.invoice.is_none()))
        .map(|i| (i.id.clone(), st.invoice_item_json(i)))
        .collect();
    page(p, "/v1/invoiceitems", items)
}

/// Only an item not yet on a finalized invoice can go (`invoiceitem.deleted`).
pub(super) fn delete_invoice_item(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[])?;
    let item = st
        .invoice_item(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoiceitem", id, "id"))?;
    if let Some(inv) = item.invoice.as_deref().and_then(|i| st.invoice(i)) {
        if inv.status != crate::model::InvoiceStatus::Draft {
            return Err(ApiError::state(format!(
                "The invoice item {id} is on invoice {}, which is no longer a draft.",
                inv.id
            )));
        }
        let (inv_id, line_of) = (inv.id.clone(), id.to_owned());
        if let Some(inv) = st.invoice_mut(&inv_id) {
            inv.lines
                .retain(|l| l.invoice_item.as_deref() != Some(line_of.as_str()));
            inv.amount_due = inv.lines.iter().map(|l| l.amount).sum();
        }
    }
    let json = st.invoice_item_json(&item);
    st.invoice_items.retain(|i| i.id != id);
    let at = st.customer_now(&item.customer);
    st.emit("invoiceitem.deleted", json, None, at);
    Ok(json!({"id": id, "object": "invoiceitem", "deleted": true}))
}
