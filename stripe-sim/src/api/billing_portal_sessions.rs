//! Customer Portal sessions (`POST /v1/billing_portal/sessions`), with `flow_data` checked as
//! Stripe checks it: a session opens the hosted portal, or one flow of it.

use serde_json::{json, Value};

use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::{new_id, PortalConfiguration, PortalSession, State, SubStatus},
    params::Params,
    state::PORTAL_SESSION_LIFETIME,
};

pub(super) fn create_portal_session(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "customer",
        "return_url",
        "configuration",
        "locale",
        "flow_data",
        "on_behalf_of",
        "expand",
    ])?;
    let customer = p.required("customer")?.to_string();
    st.require_customer(&customer, "customer")?;
    let config = match p.text("configuration")? {
        Some(id) => st
            .portal_configuration(&id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("billing portal configuration", &id, "configuration"))?,
        None => st.default_portal_configuration().cloned().ok_or_else(|| {
            ApiError::invalid_request(
                "You can't create a portal session in test mode until you save your customer portal settings.",
            )
        })?,
    };
    let return_url = p.text("return_url")?.or(config.default_return_url.clone());
    if let Some(url) = &return_url {
        if url::Url::parse(url).is_err() {
            return Err(ApiError::invalid_param(
                "return_url",
                format!("Not a valid URL: {url}"),
            ));
        }
    }
    let flow = match p.child("flow_data")? {
        Some(f) => Some(portal_flow(st, &customer, &config, &f)?),
        None => None,
    };
    let now = clock::now();
    let session = PortalSession {
        id: new_id("bps_", 24),
        created: now,
        customer: customer.clone(),
        configuration: config.id.clone(),
        return_url,
        locale: p.text("locale")?,
        flow,
        expires_at: now + PORTAL_SESSION_LIFETIME,
        opened_at: None,
        returned: false,
    };
    let json = st.portal_session_json(&session);
    st.portal_sessions.push(session);
    st.emit("billing_portal.session.created", json.clone(), None, now);
    Ok(json)
}

/// Validates `flow_data` and returns the session's `flow` as the API shows it.
fn portal_flow(
    st: &State,
    customer: &str,
    config: &PortalConfiguration,
    f: &Params,
) -> ApiResult<Value> {
    f.allow(&[
        "type",
        "after_completion",
        "subscription_cancel",
        "subscription_update",
        "subscription_update_confirm",
    ])?;
    let kind = f.required("type")?;
    let after = match f.child("after_completion")? {
        None => json!({"type": "portal_homepage", "redirect": null, "hosted_confirmation": null}),
        Some(a) => {
            a.allow(&["type", "redirect", "hosted_confirmation"])?;
            match a.required("type")? {
                "redirect" => {
                    let r = a.child("redirect")?.ok_or_else(|| {
                        ApiError::missing_param("flow_data[after_completion][redirect]")
                    })?;
                    r.allow(&["return_url"])?;
                    let url = r.required("return_url")?;
                    if url::Url::parse(url).is_err() {
                        return Err(ApiError::invalid_param(
                            "flow_data[after_completion][redirect][return_url]",
                            format!("Not a valid URL: {url}"),
                        ));
                    }
                    json!({"type": "redirect", "redirect": {"return_url": url}, "hosted_confirmation": null})
                }
                "hosted_confirmation" => {
                    let message = match a.child("hosted_confirmation")? {
                        Some(h) => {
                            h.allow(&["custom_message"])?;
                            h.text("custom_message")?
                        }
                        None => None,
                    };
                    json!({"type": "hosted_confirmation", "redirect": null, "hosted_confirmation": {"custom_message": message}})
                }
                "portal_homepage" => {
                    json!({"type": "portal_homepage", "redirect": null, "hosted_confirmation": null})
                }
                other => {
                    return Err(ApiError::invalid_param(
                        "flow_data[after_completion][type]",
                        format!("Invalid after_completion type: {other}"),
                    ))
                }
            }
        }
    };
    let mut flow = json!({
        "type": kind,
        "after_completion": after,
        "customer_update": null,
        "subscription_cancel": null,
        "subscription_update": null,
        "subscription_update_confirm": null,
    });
    let own_subscription = |param: &str, id: &str| -> ApiResult<()> {
        let sub = st
            .subscription(id)
            .ok_or_else(|| ApiError::no_such("subscription", id, param))?;
        if sub.customer != customer {
            return Err(ApiError::invalid_param(
                param,
                format!("The subscription {id} does not belong to customer {customer}."),
            ));
        }
        if sub.status.is_ended() {
            return Err(ApiError::invalid_param(
                param,
                format!("The subscription {id} has already been canceled."),
            ));
        }
        Ok(())
    };
    let disabled = |feature: &str| {
        ApiError::invalid_request(format!(
            "The `{feature}` feature is disabled in this portal configuration, so this flow cannot be used."
        ))
    };
    match kind {
        "payment_method_update" => {
            if !config.payment_method_update_enabled {
                return Err(disabled("payment_method_update"));
            }
        }
        "subscription_cancel" => {
            if !config.subscription_cancel_enabled {
                return Err(disabled("subscription_cancel"));
            }
            let c = f
                .child("subscription_cancel")?
                .ok_or_else(|| ApiError::missing_param("flow_data[subscription_cancel]"))?;
            c.allow(&["subscription", "retention"])?;
            let sub = c.required("subscription")?;
            own_subscription("flow_data[subscription_cancel][subscription]", sub)?;
            flow["subscription_cancel"] = json!({"retention": null, "subscription": sub});
        }
        "subscription_update" => {
            if !config.subscription_update_enabled {
                return Err(disabled("subscription_update"));
            }
            let c = f
                .child("subscription_update")?
                .ok_or_else(|| ApiError::missing_param("flow_data[subscription_update]"))?;
            c.allow(&["subscription"])?;
            let sub = c.required("subscription")?;
            own_subscription("flow_data[subscription_update][subscription]", sub)?;
            flow["subscription_update"] = json!({"subscription": sub});
        }
        "subscription_update_confirm" => {
            if !config.subscription_update_enabled {
                return Err(disabled("subscription_update"));
            }
            let c = f
                .child("subscription_update_confirm")?
                .ok_or_else(|| ApiError::missing_param("flow_data[subscription_update_confirm]"))?;
            flow["subscription_update_confirm"] =
                update_confirm_flow(st, config, &c, &own_subscription)?;
        }
        other => {
            return Err(ApiError::invalid_param(
                "flow_data[type]",
                format!("Invalid flow type: {other}"),
            ))
        }
    }
    Ok(flow)
}

/// Validates `flow_data[subscription_update_confirm]` as Stripe does: the customer's own
/// running subscription with one item, that item, and an active recurring price in the
/// subscription's currency that the configuration offers; returns the flow's
/// `subscription_update_confirm` object.
fn update_confirm_flow(
    st: &State,
    config: &PortalConfiguration,
    c: &Params,
    own_subscription: &dyn Fn(&str, &str) -> ApiResult<()>,
) -> ApiResult<Value> {
    c.allow(&["subscription", "items", "discounts"])?;
    let sub_param = c.name("subscription");
    let sub_id = c.required("subscription")?;
    own_subscription(&sub_param, sub_id)?;
    let sub = st
        .subscription(sub_id)
        .ok_or_else(|| ApiError::no_such("subscription", sub_id, &sub_param))?;
    if sub.status == SubStatus::Incomplete {
        return Err(ApiError::invalid_param(
            &sub_param,
            format!("The subscription {sub_id} is incomplete: its first invoice must be paid before it can be updated."),
        ));
    }
    if sub.items.len() != 1 {
        return Err(ApiError::invalid_param(
            &sub_param,
            format!("The subscription {sub_id} has several items; subscriptions with multiple items can't be updated in the portal."),
        ));
    }
    if let Some(schedule) = sub.schedule.as_deref().filter(|id| {
        st.subscription_schedule(id)
            .is_some_and(|s| s.next_phase().is_some())
    }) {
        return Err(ApiError::invalid_param(
            &sub_param,
            format!("The subscription {sub_id} already has an update scheduled by the subscription schedule {schedule}; release the schedule before updating it in the portal."),
        ));
    }
    for discount in c.list("discounts")? {
        discount.allow(&["coupon", "promotion_code"])?;
        if let Some(coupon) = discount.text("coupon")? {
            return Err(ApiError::no_such(
                "coupon",
                &coupon,
                &discount.name("coupon"),
            ));
        }
        if let Some(code) = discount.text("promotion_code")? {
            return Err(ApiError::no_such(
                "promotion code",
                &code,
                &discount.name("promotion_code"),
            ));
        }
    }
    let items = c.list("items")?;
    let item = match items.as_slice() {
        [] => return Err(ApiError::missing_param(&c.name("items"))),
        [item] => item,
        _ => {
            return Err(ApiError::invalid_param(
                &c.name("items"),
                "Only one subscription item can be updated through this flow.",
            ))
        }
    };
    item.allow(&["id", "price", "quantity"])?;
    let id = item.required("id")?;
    let current = sub.items.iter().find(|i| i.id == id).ok_or_else(|| {
        ApiError::invalid_param(
            &item.name("id"),
            format!("The subscription item {id} is not on subscription {sub_id}."),
        )
    })?;
    let price = item.text("price")?;
    let quantity = item.uint::<u64>("quantity")?;
    if quantity == Some(0) {
        return Err(ApiError::invalid_param(
            &item.name("quantity"),
            "Quantity must be at least 1.",
        ));
    }
    if let Some(price) = &price {
        let found = st.validate_price(price, &item.name("price"))?;
        if found.currency != sub.currency {
            return Err(ApiError::invalid_param(
                &item.name("price"),
                format!(
                    "The price {price} is in {}, but the subscription is billed in {}.",
                    found.currency, sub.currency
                ),
            ));
        }
        if !st.portal_prices(config).contains(price) {
            return Err(ApiError::invalid_param(
                &item.name("price"),
                format!(
                    "The price {price} is not one the portal configuration {} lets customers switch to (features.subscription_update.products).",
                    config.id
                ),
            ));
        }
    }
    if quantity.is_some_and(|q| q != current.quantity)
        && !config
            .subscription_update_allowed
            .iter()
            .any(|u| u == "quantity")
    {
        return Err(ApiError::invalid_param(
            &item.name("quantity"),
            format!(
                "The portal configuration {} does not allow quantity updates (features.subscription_update.default_allowed_updates).",
                config.id
            ),
        ));
    }
    let same_price = price.as_deref().is_none_or(|p| p == current.price);
    let same_quantity = quantity.is_none_or(|q| q == current.quantity);
    if same_price && same_quantity {
        return Err(ApiError::invalid_param(
            &item.name("price"),
            format!("The subscription item {id} is already on this price and quantity; name another price or quantity."),
        ));
    }
    Ok(json!({
        "discounts": null,
        "items": [{"id": id, "price": price, "quantity": quantity}],
        "subscription": sub_id,
    }))
}
