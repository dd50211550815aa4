//! Subscriptions (`/v1/subscriptions`): create, retrieve, update (items, cancellation,
//! trial end, plan switches with their proration), cancel, list.

use serde_json::Value;

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    model::{State, SubStatus},
    params::Params,
    plan_change::ProrationBehavior,
    state::{ItemPatch, NewSubscription, PaymentBehavior, SubscriptionPatch, TrialRequest},
};

fn payment_behavior(p: &Params) -> ApiResult<PaymentBehavior> {
    match p.text("payment_behavior")?.as_deref() {
        None | Some("allow_incomplete") | Some("pending_if_incomplete") => {
            Ok(PaymentBehavior::AllowIncomplete)
        }
        Some("error_if_incomplete") => Ok(PaymentBehavior::ErrorIfIncomplete),
        Some("default_incomplete") => Ok(PaymentBehavior::DefaultIncomplete),
        Some(other) => Err(ApiError::invalid_param(
            "payment_behavior",
            format!("Invalid payment_behavior: {other}"),
        )),
    }
}

/// `GET /v1/subscriptions/{id}`.
pub(super) fn retrieve_subscription(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.subscription_view(id, "id")
}

pub(super) fn create_subscription(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "items",
        "default_payment_method",
        "trial_period_days",
        "trial_end",
        "trial_from_plan",
        "metadata",
        "description",
        "payment_behavior",
        "cancel_at_period_end",
        "expand",
        "collection_method",
        "proration_behavior",
        "off_session",
        "payment_settings",
        "automatic_tax",
        "currency",
        "default_tax_rates",
        "trial_settings",
        "billing_mode",
    ])?;
    let customer = p.required("customer")?.to_string();
    st.require_customer(&customer, "customer")?;
    let mut pause = false;
    if let Some(settings) = p.child("trial_settings")? {
        settings.allow(&["end_behavior"])?;
        if let Some(end) = settings.child("end_behavior")? {
            end.allow(&["missing_payment_method"])?;
            match end.text("missing_payment_method")?.as_deref() {
                None | Some("create_invoice") => {}
                Some("pause") => pause = true,
                Some("cancel") => {
                    return Err(ApiError::invalid_param(
                        "trial_settings[end_behavior][missing_payment_method]",
                        "The double does not simulate `cancel` at a trial's end; use pause or create_invoice.",
                    ))
                }
                Some(other) => {
                    return Err(ApiError::invalid_param(
                        "trial_settings[end_behavior][missing_payment_method]",
                        format!("Invalid missing_payment_method: {other}"),
                    ))
                }
            }
        }
    }
    let mut items = Vec::new();
    for item in p.list("items")? {
        item.allow(&["price", "quantity", "metadata", "tax_rates", "discounts"])?;
        let price = item.required("price")?.to_string();
        let quantity = item.uint::<u64>("quantity")?.unwrap_or(1).max(1);
        items.push((price, quantity));
    }
    if items.is_empty() {
        return Err(ApiError::missing_param("items"));
    }
    let trial = match (
        p.uint::<u32>("trial_period_days")?,
        p.str("trial_end")?,
        p.bool("trial_from_plan")?,
    ) {
        (Some(days), _, _) => TrialRequest::Days(days),
        (None, Some("now"), _) => TrialRequest::None,
        (None, Some(ts), _) => TrialRequest::Until(ts.parse().map_err(|_| {
            ApiError::invalid_param("trial_end", format!("Invalid timestamp: {ts}"))
        })?),
        (None, None, Some(false)) => TrialRequest::None,
        (None, None, _) => TrialRequest::FromPrice,
    };
    let id = st.create_subscription(NewSubscription {
        customer,
        items,
        default_payment_method: p.text("default_payment_method")?,
        trial,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        description: p.text("description")?,
        payment_behavior: payment_behavior(p)?,
        cancel_at_period_end: p.bool("cancel_at_period_end")?.unwrap_or(false),
    })?;
    if pause {
        if let Some(s) = st.subscription_mut(&id) {
            s.pause_without_payment_method = true;
        }
    }
    st.subscription_view(&id, "id")
}

pub(super) fn update_subscription(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "cancel_at_period_end",
        "cancel_at",
        "items",
        "default_payment_method",
        "metadata",
        "description",
        "proration_behavior",
        "proration_date",
        "payment_behavior",
        "trial_end",
        "trial_from_plan",
        "expand",
        "cancellation_details",
        "collection_method",
        "off_session",
        "payment_settings",
        "automatic_tax",
        "default_tax_rates",
        "billing_cycle_anchor",
    ])?;
    let sub = st
        .subscription(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
    let mut patch = SubscriptionPatch {
        cancel_at_period_end: p.bool("cancel_at_period_end")?,
        default_payment_method: p.nullable("default_payment_method")?,
        metadata: p.metadata("metadata")?,
        description: p.nullable("description")?,
        proration_behavior: proration_behavior(p, "proration_behavior")?,
        proration_date: p.int("proration_date")?,
        ..Default::default()
    };
    patch.cancel_at = match p.str("cancel_at")? {
        None => None,
        Some("") => Some(None),
        Some("min_period_end" | "max_period_end" | "max_billed_until") => {
            Some(Some(sub.period().1))
        }
        Some(ts) => {
            let ts: i64 = ts.parse().map_err(|_| {
                ApiError::invalid_param("cancel_at", format!("Invalid timestamp: {ts}"))
            })?;
            if ts <= st.customer_now(&sub.customer) {
                return Err(ApiError::invalid_param(
                    "cancel_at",
                    "cancel_at must be in the future.",
                ));
            }
            Some(Some(ts))
        }
    };
    if p.has("items") {
        let mut items = Vec::new();
        for item in p.list("items")? {
            item.allow(&[
                "id",
                "price",
                "quantity",
                "deleted",
                "metadata",
                "clear_usage",
                "discounts",
                "tax_rates",
            ])?;
            items.push(ItemPatch {
                id: item.text("id")?,
                price: item.text("price")?,
                quantity: item.uint::<u64>("quantity")?,
                deleted: item.bool("deleted")?.unwrap_or(false),
            });
        }
        patch.items = Some(items);
    }
    match p.str("trial_end")? {
        None => {}
        Some("now") => patch.end_trial_now = true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "trial_end",
                format!("This test double only supports trial_end=now on update, not {other}."),
            ))
        }
    }
    if let Some(details) = p.child("cancellation_details")? {
        details.allow(&["comment", "feedback"])?;
        patch.cancellation_comment = details.text("comment")?;
        patch.cancellation_feedback = details.text("feedback")?;
    }
    st.update_subscription(id, patch)?;
    st.subscription_view(id, "id")
}

/// `proration_behavior`: `create_prorations`, `always_invoice` or `none`.
pub(super) fn proration_behavior(p: &Params, key: &str) -> ApiResult<Option<ProrationBehavior>> {
    match p.text(key)? {
        None => Ok(None),
        Some(b) => ProrationBehavior::parse(&b).map(Some).ok_or_else(|| {
            ApiError::invalid_param(
                &p.name(key),
                format!("Invalid proration_behavior: must be one of create_prorations, always_invoice, or none (not `{b}`)."),
            )
        }),
    }
}

/// `POST /v1/subscriptions/{id}/resume`: a paused subscription, resumed with a new period
/// from now (`billing_cycle_anchor=now`, Stripe's default).
pub(super) fn resume_subscription(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "billing_cycle_anchor",
        "proration_behavior",
        "proration_date",
        "expand",
    ])?;
    match p.text("billing_cycle_anchor")?.as_deref() {
        None | Some("now") => {}
        Some(other) => {
            return Err(ApiError::invalid_param(
                "billing_cycle_anchor",
                format!("The double resumes with billing_cycle_anchor=now only (got {other})."),
            ))
        }
    }
    st.resume_subscription(id)?;
    st.subscription_view(id, "subscription")
}

pub(super) fn cancel_subscription(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["invoice_now", "prorate", "cancellation_details", "expand"])?;
    let sub = st
        .subscription(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
    if sub.status.is_ended() {
        return Err(ApiError::no_such("subscription", id, "id"));
    }
    if let Some(details) = p.child("cancellation_details")? {
        details.allow(&["comment", "feedback"])?;
        let comment = details.text("comment")?;
        let feedback = details.text("feedback")?;
        if let Some(s) = st.subscription_mut(id) {
            s.cancellation_comment = comment;
            s.cancellation_feedback = feedback;
        }
    }
    let now = st.customer_now(&sub.customer);
    if let Some(s) = st.subscription_mut(id) {
        s.canceled_at = Some(now);
        s.cancellation_reason = Some("cancellation_requested".into());
    }
    st.cancel_subscription_now(id, None, now);
    st.subscription_view(id, "id")
}

pub(super) fn list_subscriptions(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "customer",
            "status",
            "price",
            "current_period_end",
            "current_period_start",
            "collection_method",
            "test_clock",
            "automatic_tax",
        ],
    )?;
    let customer = p.text("customer")?;
    let price = p.text("price")?;
    let status = p.text("status")?;
    let items = st
        .subscriptions
        .iter()
        .rev()
        .filter(|s| customer.as_ref().is_none_or(|c| &s.customer == c))
        .filter(|s| {
            price
                .as_ref()
                .is_none_or(|pr| s.items.iter().any(|i| &i.price == pr))
        })
        .filter(|s| match status.as_deref() {
            None => s.status != SubStatus::Canceled && s.status != SubStatus::IncompleteExpired,
            Some("all") => true,
            Some("ended") => s.status.is_ended(),
            Some(other) => s.status.as_str() == other,
        })
        .map(|s| (s.id.clone(), st.subscription_json(s)))
        .collect();
    page(p, "/v1/subscriptions", items)
}
