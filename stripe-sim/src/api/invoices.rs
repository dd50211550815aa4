//! Invoices (`/v1/invoices`): retrieve, list, pay, void, mark uncollectible, and
//! `create_preview` (the next invoice, or what a plan switch would bill).

use serde_json::Value;

use super::{allow_list, page, subscriptions::proration_behavior};
use crate::{
    cards::Decline,
    error::{ApiError, ApiResult},
    model::{InvoiceStatus, State},
    params::Params,
    plan_change::{PlanChange, ProrationBehavior, Timing},
};

fn invoice_view(st: &State, id: &str) -> ApiResult<Value> {
    st.invoice(id)
        .map(|x| st.invoice_json(x))
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))
}

pub(super) fn list_invoices(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "customer",
            "subscription",
            "status",
            "collection_method",
            "due_date",
        ],
    )?;
    let customer = p.text("customer")?;
    let subscription = p.text("subscription")?;
    let status = p.text("status")?;
    let items = st
        .invoices
        .iter()
        .rev()
        .filter(|i| customer.as_ref().is_none_or(|c| &i.customer == c))
        .filter(|i| subscription.is_none() || i.subscription == subscription)
        .filter(|i| status.as_deref().is_none_or(|s| i.status.as_str() == s))
        .map(|i| (i.id.clone(), st.invoice_json(i)))
        .collect();
    page(p, "/v1/invoices", items)
}

/// `POST /v1/invoices`: a draft one-off invoice (`billing_reason=manual`). Its pending items
/// come with it under `pending_invoice_items_behavior=include` (Stripe's default leaves them
/// out). It waits for `/finalize` and `/pay` unless `auto_advance=true`.
pub(super) fn create_invoice(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "currency",
        "description",
        "pending_invoice_items_behavior",
        "auto_advance",
        "collection_method",
        "metadata",
        "default_payment_method",
        "days_until_due",
        "expand",
    ])?;
    let customer = p
        .text("customer")?
        .ok_or_else(|| ApiError::missing_param("customer"))?;
    st.require_customer(&customer, "customer")?;
    let include = match p.text("pending_invoice_items_behavior")?.as_deref() {
        None | Some("exclude") => false,
        Some("include") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "pending_invoice_items_behavior",
                format!("Invalid pending_invoice_items_behavior: must be one of exclude or include (got {other})"),
            ))
        }
    };
    let mut metadata = crate::model::Metadata::new();
    if let Some(patch) = p.metadata("metadata")? {
        patch.apply(&mut metadata);
    }
    let at = st.customer_now(&customer);
    let new = crate::state::ManualInvoice {
        currency: p.text("currency")?.map(|c| c.to_lowercase()),
        include_pending: include,
        description: p.text("description")?,
        auto_advance: p.bool("auto_advance")?.unwrap_or(false),
        metadata,
    };
    let id = st.create_manual_invoice(&customer, new, at);
    invoice_view(st, &id)
}

/// `POST /v1/invoices/{id}`: a draft's description, metadata and `auto_advance`; an
/// `invoice.updated` when something changed.
pub(super) fn update_invoice(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["description", "metadata", "auto_advance", "expand"])?;
    let before = invoice_view(st, id)?;
    let description = p.nullable("description")?;
    let metadata = p.metadata("metadata")?;
    let auto_advance = p.bool("auto_advance")?;
    let inv = st
        .invoice_mut(id)
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
    if description.is_some() && inv.status != InvoiceStatus::Draft {
        return Err(ApiError::state(format!(
            "Invoice {id} is {}; its description can only change while it is a draft.",
            inv.status.as_str()
        )));
    }
    if let Some(d) = description {
        inv.description = d;
    }
    if let Some(patch) = metadata {
        patch.apply(&mut inv.metadata);
    }
    if let Some(a) = auto_advance {
        inv.auto_advance = a;
    }
    let customer = inv.customer.clone();
    let after = invoice_view(st, id)?;
    let at = st.customer_now(&customer);
    st.emit_update("invoice.updated", &before, after.clone(), at);
    Ok(after)
}

/// `POST /v1/invoices/{id}/finalize`: drafts only.
pub(super) fn finalize_invoice(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["auto_advance", "expand"])?;
    let inv = st
        .invoice(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
    if inv.status != InvoiceStatus::Draft {
        return Err(ApiError::state(format!(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice. (It is {}.)",
            inv.status.as_str()
        )));
    }
    let at = st.customer_now(&inv.customer);
    if inv.automatically_finalizes_at.is_some() {
        // A subscription's cycle draft finalized before its hour is up is charged as it would
        // have been then.
        st.finalize_cycle_invoice(id, at);
    } else {
        st.finalize_draft(id, at);
    }
    invoice_view(st, id)
}

/// `DELETE /v1/invoices/{id}`: drafts only.
pub(super) fn delete_invoice(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[])?;
    let inv = st
        .invoice(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
    if inv.status != InvoiceStatus::Draft {
        return Err(ApiError::state(format!(
            "You can only delete draft invoices; invoice {id} is {}.",
            inv.status.as_str()
        )));
    }
    if inv.subscription.is_some() {
        return Err(ApiError::state(format!(
            "You can't delete invoice {id}: it was created by a subscription. Void it once it is finalized instead."
        )));
    }
    let at = st.customer_now(&inv.customer);
    st.delete_draft(id, at);
    Ok(serde_json::json!({"id": id, "object": "invoice", "deleted": true}))
}

/// `POST /v1/invoices/{id}/void` and `/mark_uncollectible`, with Stripe's rules: only an
/// open invoice can be marked uncollectible; an open or uncollectible one can be voided.
/// Either stops the retries and emits `invoice.voided` or `invoice.marked_uncollectible`.
pub(super) fn close_invoice(
    st: &mut State,
    id: &str,
    p: &Params,
    to: InvoiceStatus,
) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    let inv = st
        .invoice(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
    let allowed = match to {
        InvoiceStatus::Void => {
            matches!(
                inv.status,
                InvoiceStatus::Open | InvoiceStatus::Uncollectible
            )
        }
        _ => inv.status == InvoiceStatus::Open,
    };
    if !allowed {
        return Err(ApiError::state(format!(
            "Invoice {id} is {}; you can only {} an invoice that is {}.",
            inv.status.as_str(),
            if to == InvoiceStatus::Void {
                "void"
            } else {
                "mark uncollectible"
            },
            if to == InvoiceStatus::Void {
                "open or uncollectible"
            } else {
                "open"
            },
        )));
    }
    let at = st.customer_now(&inv.customer);
    let event_type = match to {
        InvoiceStatus::Void => "invoice.voided",
        _ => "invoice.marked_uncollectible",
    };
    if let Some(i) = st.invoice_mut(id) {
        i.status = to;
        i.next_payment_attempt = None;
        match to {
            InvoiceStatus::Void => i.voided_at = Some(at),
            _ => i.marked_uncollectible_at = Some(at),
        }
    }
    if let Some(json) = st.invoice(id).map(|i| st.invoice_json(i)) {
        st.emit(event_type, json, None, at);
    }
    invoice_view(st, id)
}

pub(super) fn pay_invoice(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "expand",
        "payment_method",
        "off_session",
        "forgive",
        "mandate",
        "paid_out_of_band",
        "source",
    ])?;
    let mut inv = st
        .invoice(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
    // Paying a draft finalizes it first, as Stripe does.
    if inv.status == InvoiceStatus::Draft {
        let at = st.customer_now(&inv.customer);
        st.finalize_draft(id, at);
        inv = st
            .invoice(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("invoice", id, "invoice"))?;
        if inv.status == InvoiceStatus::Paid {
            return invoice_view(st, id);
        }
    }
    if inv.status != InvoiceStatus::Open {
        return Err(ApiError::state(format!(
            "Invoice {id} is already {}; only open invoices can be paid.",
            inv.status.as_str()
        )));
    }
    let now = st.customer_now(&inv.customer);
    let result = match p.text("payment_method")? {
        Some(pm) => {
            let attached = st
                .payment_method(&pm)
                .is_some_and(|x| x.customer.as_deref() == Some(inv.customer.as_str()));
            if !attached {
                return Err(ApiError::invalid_param(
                    "payment_method",
                    format!("The customer does not have a payment method with the ID {pm}."),
                ));
            }
            st.pay_invoice_with(id, &pm, now)
        }
        None => {
            if st.retry_invoice(id, now) {
                Ok(())
            } else {
                Err(Decline::generic())
            }
        }
    };
    if let Err(d) = result {
        return Err(ApiError::card_declined(d.decline_code, d.message));
    }
    invoice_view(st, id)
}

/// `POST /v1/invoices/create_preview`: the next invoice of a subscription, or what it would be
/// after switching one item's price or quantity (`subscription_details[items][0][…]`), with
/// the prorations worked out by the same quote the portal shows and a change charges.
pub(super) fn create_preview(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "subscription",
        "subscription_details",
        "expand",
        "preview_mode",
        "currency",
        "automatic_tax",
    ])?;
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        st.require_customer(c, "customer")?;
    }
    let sub_id = match (p.text("subscription")?, &customer) {
        (Some(s), _) => s,
        (None, Some(c)) => st
            .subscriptions
            .iter()
            .rev()
            .find(|s| &s.customer == c && !s.status.is_ended())
            .map(|s| s.id.clone())
            .ok_or_else(|| ApiError::upcoming_none(c))?,
        (None, None) => return Err(ApiError::missing_param("customer")),
    };
    let sub = st
        .subscription(&sub_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", &sub_id, "subscription"))?;
    if let Some(c) = &customer {
        if &sub.customer != c {
            return Err(ApiError::invalid_param(
                "subscription",
                format!("The subscription {sub_id} does not belong to customer {c}."),
            ));
        }
    }
    if sub.status.is_ended() {
        return Err(ApiError::upcoming_none(&sub.customer));
    }
    let mut change = None;
    if let Some(d) = p.child("subscription_details")? {
        d.allow(&[
            "items",
            "proration_date",
            "proration_behavior",
            "billing_cycle_anchor",
            "billing_mode",
            "cancel_at",
            "cancel_at_period_end",
            "cancel_now",
            "default_tax_rates",
            "resume_at",
            "start_date",
            "trial_end",
        ])?;
        for unsupported in [
            "billing_cycle_anchor",
            "billing_mode",
            "cancel_at",
            "cancel_at_period_end",
            "cancel_now",
            "resume_at",
            "start_date",
            "trial_end",
        ] {
            if d.has(unsupported) {
                return Err(ApiError::invalid_param(
                    &d.name(unsupported),
                    format!("The Stripe test double previews price and quantity changes only; `{unsupported}` is not supported."),
                ));
            }
        }
        let behavior = proration_behavior(&d, "proration_behavior")?
            .unwrap_or(ProrationBehavior::CreateProrations);
        let proration_date = d.int("proration_date")?;
        if let Some(at) = proration_date {
            st.check_proration_date(&sub, at, &d.name("proration_date"))?;
        }
        let items = d.list("items")?;
        match items.as_slice() {
            [] => {}
            [item] => {
                item.allow(&[
                    "id",
                    "price",
                    "quantity",
                    "deleted",
                    "metadata",
                    "discounts",
                    "tax_rates",
                    "clear_usage",
                    "billing_thresholds",
                ])?;
                let item_id = item.required("id")?;
                let current = sub.items.iter().find(|i| i.id == item_id).ok_or_else(|| {
                    ApiError::invalid_param(
                        &item.name("id"),
                        format!("Invalid subscription item: '{item_id}' is not on subscription {sub_id}."),
                    )
                })?;
                if item.bool("deleted")? == Some(true) {
                    return Err(ApiError::invalid_param(
                        &item.name("deleted"),
                        "The Stripe test double previews price and quantity changes only, not removing an item.",
                    ));
                }
                let price = match item.text("price")? {
                    Some(price) => {
                        let found = st.validate_price(&price, &item.name("price"))?;
                        if found.currency != sub.currency {
                            return Err(ApiError::invalid_param(
                                &item.name("price"),
                                format!(
                                    "The price {price} is in {}, but the subscription is billed in {}.",
                                    found.currency, sub.currency
                                ),
                            ));
                        }
                        price
                    }
                    None => current.price.clone(),
                };
                let quantity = match item.uint::<u64>("quantity")? {
                    Some(0) => {
                        return Err(ApiError::invalid_param(
                            &item.name("quantity"),
                            "Quantity must be at least 1.",
                        ))
                    }
                    Some(q) => q,
                    None => current.quantity,
                };
                change = Some(PlanChange {
                    subscription: sub.id.clone(),
                    item: current.id.clone(),
                    price,
                    quantity,
                    behavior,
                    proration_date,
                    timing: Timing::Now,
                });
            }
            _ => {
                return Err(ApiError::invalid_param(
                    &d.name("items"),
                    "The Stripe test double previews a change to one subscription item at a time.",
                ))
            }
        }
    }
    match change {
        Some(change) => {
            let quote = st.quote_change(&change)?;
            Ok(st.preview_invoice_json(&sub, quote.preview(), Some(quote.at)))
        }
        None => {
            if sub.cancel_at.is_some_and(|at| at <= sub.period().1) {
                return Err(ApiError::upcoming_none(&sub.customer));
            }
            let upcoming = st.upcoming_invoice(&sub);
            Ok(st.preview_invoice_json(&sub, &upcoming, None))
        }
    }
}

/// `GET /v1/invoices/{id}`.
pub(super) fn retrieve_invoice(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    invoice_view(st, id)
}
