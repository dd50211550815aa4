//! Customer Portal configurations (`/v1/billing_portal/configurations`): create, retrieve,
//! update, list. What the hosted portal lets a customer do.

use serde_json::Value;

use super::{allow_list, page, subscriptions::proration_behavior};
use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::{new_id, AdjustableQuantity, Metadata, PortalConfiguration, PortalProduct, State},
    params::Params,
};

pub(super) fn list_portal_configurations(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["active", "is_default"])?;
    let active = p.bool("active")?;
    let is_default = p.bool("is_default")?;
    let items = st
        .portal_configurations
        .iter()
        .rev()
        .filter(|c| active.is_none_or(|a| c.active == a))
        .filter(|c| is_default.is_none_or(|d| c.is_default == d))
        .map(|c| (c.id.clone(), st.portal_configuration_json(c)))
        .collect();
    page(p, "/v1/billing_portal/configurations", items)
}

pub(super) fn save_portal_configuration(
    st: &mut State,
    id: Option<&str>,
    p: &Params,
) -> ApiResult<Value> {
    p.allow(&[
        "features",
        "business_profile",
        "default_return_url",
        "metadata",
        "name",
        "login_page",
        "active",
        "expand",
    ])?;
    let now = clock::now();
    let mut config = match id {
        Some(id) => st.portal_configuration(id).cloned().ok_or_else(|| {
            ApiError::no_such("billing portal configuration", id, "configuration")
        })?,
        None => {
            if p.child("features")?.is_none() {
                return Err(ApiError::missing_param("features"));
            }
            PortalConfiguration {
                id: new_id("bpc_", 24),
                created: now,
                updated: now,
                active: true,
                is_default: false,
                name: None,
                headline: None,
                privacy_policy_url: None,
                terms_of_service_url: None,
                default_return_url: None,
                customer_update_enabled: false,
                customer_update_allowed: Vec::new(),
                invoice_history_enabled: false,
                payment_method_update_enabled: false,
                subscription_cancel_enabled: false,
                subscription_cancel_mode: "at_period_end".into(),
                cancellation_reason_enabled: false,
                cancellation_reason_options: Vec::new(),
                subscription_update_enabled: false,
                subscription_update_allowed: Vec::new(),
                subscription_update_products: Vec::new(),
                proration_behavior: "none".into(),
                schedule_at_period_end: Vec::new(),
                metadata: Metadata::new(),
            }
        }
    };
    let before = st.portal_configuration_json(&config);
    if let Some(b) = p.child("business_profile")? {
        b.allow(&["headline", "privacy_policy_url", "terms_of_service_url"])?;
        config.headline = b.nullable("headline")?.unwrap_or(config.headline);
        config.privacy_policy_url = b
            .nullable("privacy_policy_url")?
            .unwrap_or(config.privacy_policy_url);
        config.terms_of_service_url = b
            .nullable("terms_of_service_url")?
            .unwrap_or(config.terms_of_service_url);
    }
    if let Some(v) = p.nullable("default_return_url")? {
        config.default_return_url = v;
    }
    if let Some(v) = p.nullable("name")? {
        config.name = v;
    }
    if let Some(v) = p.bool("active")? {
        config.active = v;
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut config.metadata);
    }
    if let Some(f) = p.child("features")? {
        f.allow(&[
            "customer_update",
            "invoice_history",
            "payment_method_update",
            "subscription_cancel",
            "subscription_update",
        ])?;
        if let Some(c) = f.child("customer_update")? {
            c.allow(&["enabled", "allowed_updates"])?;
            config.customer_update_enabled =
                c.bool("enabled")?.unwrap_or(config.customer_update_enabled);
            if c.has("allowed_updates") {
                config.customer_update_allowed = c.strings("allowed_updates")?;
            }
        }
        if let Some(c) = f.child("invoice_history")? {
            c.allow(&["enabled"])?;
            config.invoice_history_enabled =
                c.bool("enabled")?.unwrap_or(config.invoice_history_enabled);
        }
        if let Some(c) = f.child("payment_method_update")? {
            c.allow(&["enabled", "payment_method_configuration"])?;
            config.payment_method_update_enabled = c
                .bool("enabled")?
                .unwrap_or(config.payment_method_update_enabled);
        }
        if let Some(c) = f.child("subscription_cancel")? {
            c.allow(&[
                "enabled",
                "mode",
                "proration_behavior",
                "cancellation_reason",
            ])?;
            config.subscription_cancel_enabled = c
                .bool("enabled")?
                .unwrap_or(config.subscription_cancel_enabled);
            if let Some(mode) = c.text("mode")? {
                if mode != "at_period_end" && mode != "immediately" {
                    return Err(ApiError::invalid_param(
                        "features[subscription_cancel][mode]",
                        format!("Invalid mode: {mode}"),
                    ));
                }
                config.subscription_cancel_mode = mode;
            }
            if let Some(r) = c.child("cancellation_reason")? {
                r.allow(&["enabled", "options"])?;
                config.cancellation_reason_enabled = r
                    .bool("enabled")?
                    .unwrap_or(config.cancellation_reason_enabled);
                if r.has("options") {
                    config.cancellation_reason_options = r.strings("options")?;
                }
            }
        }
        if let Some(c) = f.child("subscription_update")? {
            c.allow(&[
                "enabled",
                "default_allowed_updates",
                "products",
                "proration_behavior",
                "schedule_at_period_end",
                "billing_cycle_anchor",
                "trial_update_behavior",
            ])?;
            config.subscription_update_enabled = c
                .bool("enabled")?
                .unwrap_or(config.subscription_update_enabled);
            if c.has("default_allowed_updates") {
                config.subscription_update_allowed = c.strings("default_allowed_updates")?;
            }
            if proration_behavior(&c, "proration_behavior")?.is_some() {
                config.proration_behavior = c.text("proration_behavior")?.unwrap_or_default();
            }
            if let Some(s) = c.child("schedule_at_period_end")? {
                s.allow(&["conditions"])?;
                if s.has("conditions") {
                    let mut conditions = Vec::new();
                    for condition in s.list("conditions")? {
                        condition.allow(&["type"])?;
                        let kind = condition.required("type")?.to_string();
                        if kind != "decreasing_item_amount" && kind != "shortening_interval" {
                            return Err(ApiError::invalid_param(
                                &condition.name("type"),
                                format!("Invalid type: {kind}"),
                            ));
                        }
                        conditions.push(kind);
                    }
                    config.schedule_at_period_end = conditions;
                }
            }
            if c.has("products") {
                let mut products = Vec::new();
                for prod in c.list("products")? {
                    prod.allow(&["product", "prices", "adjustable_quantity"])?;
                    let product = prod.required("product")?.to_string();
                    if st.product(&product).is_none() {
                        return Err(ApiError::no_such(
                            "product",
                            &product,
                            &prod.name("product"),
                        ));
                    }
                    let prices = prod.strings("prices")?;
                    for price in &prices {
                        if st.price(price).is_none_or(|x| x.product != product) {
                            return Err(ApiError::invalid_param(
                                &prod.name("prices"),
                                format!("The price {price} does not belong to product {product}."),
                            ));
                        }
                    }
                    let mut adjustable_quantity = AdjustableQuantity::default();
                    if let Some(q) = prod.child("adjustable_quantity")? {
                        q.allow(&["enabled", "minimum", "maximum"])?;
                        adjustable_quantity.enabled = q
                            .bool("enabled")?
                            .ok_or_else(|| ApiError::missing_param(&q.name("enabled")))?;
                        let count = |key: &str| -> ApiResult<Option<u64>> {
                            q.int(key)?
                                .map(|n| {
                                    u64::try_from(n).map_err(|_| {
                                        ApiError::invalid_param(
                                            &q.name(key),
                                            format!("This value must be greater than or equal to 0 (it currently is '{n}')."),
                                        )
                                    })
                                })
                                .transpose()
                        };
                        if let Some(min) = count("minimum")? {
                            adjustable_quantity.minimum = min;
                        }
                        adjustable_quantity.maximum = count("maximum")?;
                        if adjustable_quantity
                            .maximum
                            .is_some_and(|max| max < adjustable_quantity.minimum.max(1))
                        {
                            return Err(ApiError::invalid_param(
                                &q.name("maximum"),
                                "The maximum must be at least 1 and at least the minimum.",
                            ));
                        }
                    }
                    products.push(PortalProduct {
                        product,
                        prices,
                        adjustable_quantity,
                    });
                }
                config.subscription_update_products = products;
            }
        }
    }
    config.updated = now;
    let after = st.portal_configuration_json(&config);
    match id {
        Some(id) => {
            if let Some(slot) = st.portal_configuration_mut(id) {
                *slot = config;
            }
            st.emit_update(
                "billing_portal.configuration.updated",
                &before,
                after.clone(),
                now,
            );
        }
        None => {
            st.portal_configurations.push(config);
            st.emit(
                "billing_portal.configuration.created",
                after.clone(),
                None,
                now,
            );
        }
    }
    Ok(after)
}

/// `GET /v1/billing_portal/configurations/{id}`.
pub(super) fn retrieve_portal_configuration(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.portal_configuration(id)
        .map(|c| st.portal_configuration_json(c))
        .ok_or_else(|| ApiError::no_such("billing portal configuration", id, "configuration"))
}
