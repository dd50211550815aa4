//! Entitlements: features (`/v1/entitlements/features`), the features a product includes
//! (`/v1/products/{id}/features`) and a customer's active entitlements
//! (`/v1/entitlements/active_entitlements`).

use serde_json::{json, Value};

use super::{allow_list, page};
use crate::{
    error::{ApiError, ApiResult},
    events::Changes,
    model::{new_id, Feature, ProductFeature, State},
    params::Params,
};

/// Stripe's longest feature lookup key.
const MAX_LOOKUP_KEY: usize = 80;

/// `POST /v1/entitlements/features`: a feature with a unique `lookup_key`.
pub(super) fn create_feature(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&["name", "lookup_key", "metadata", "expand"])?;
    let name = p
        .text("name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing_param("name"))?;
    let lookup_key = p
        .text("lookup_key")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::missing_param("lookup_key"))?;
    if lookup_key.chars().count() > MAX_LOOKUP_KEY {
        return Err(ApiError::invalid_param(
            "lookup_key",
            format!("lookup_key must be at most {MAX_LOOKUP_KEY} characters."),
        ));
    }
    if st.features.iter().any(|f| f.lookup_key == lookup_key) {
        return Err(ApiError::invalid_param(
            "lookup_key",
            format!("A feature with the lookup_key `{lookup_key}` already exists."),
        ));
    }
    let feature = Feature {
        id: new_id("feat_", 24),
        lookup_key,
        name,
        active: true,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
    };
    let json = st.feature_json(&feature);
    st.features.push(feature);
    Ok(json)
}

/// `GET /v1/entitlements/features/{id}`.
pub(super) fn retrieve_feature(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.feature(id)
        .map(|f| st.feature_json(f))
        .ok_or_else(|| ApiError::no_such("feature", id, "id"))
}

/// `POST /v1/entitlements/features/{id}`: rename, archive (`active=false`) or restore.
pub(super) fn update_feature(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["name", "active", "metadata", "expand"])?;
    let name = p.text("name")?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid_param(
            "name",
            "A feature's name cannot be empty.",
        ));
    }
    let active = p.bool("active")?;
    let metadata = p.metadata("metadata")?;
    let feature = st
        .features
        .iter_mut()
        .find(|f| f.id == id)
        .ok_or_else(|| ApiError::no_such("feature", id, "id"))?;
    let mut changes = Changes::default();
    changes.set("name", &mut feature.name, name);
    changes.set("active", &mut feature.active, active);
    changes.metadata(&mut feature.metadata, metadata);
    let feature = feature.clone();
    Ok(st.feature_json(&feature))
}

/// `GET /v1/entitlements/features`: newest first; `lookup_key` and `archived` filter.
pub(super) fn list_features(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["lookup_key", "archived"])?;
    let lookup_key = p.text("lookup_key")?;
    let archived = p.bool("archived")?;
    let items = st
        .features
        .iter()
        .rev()
        .filter(|f| lookup_key.as_ref().is_none_or(|k| &f.lookup_key == k))
        .filter(|f| archived.is_none_or(|a| f.active != a))
        .map(|f| (f.id.clone(), st.feature_json(f)))
        .collect();
    page(p, "/v1/entitlements/features", items)
}

/// `POST /v1/products/{id}/features`: the product includes the feature from now on (existing
/// subscriptions get it at their next change, as at Stripe at the next period).
pub(super) fn attach_feature(st: &mut State, product: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["entitlement_feature", "expand"])?;
    if st.product(product).is_none() {
        return Err(ApiError::no_such("product", product, "id"));
    }
    let feature = p.required("entitlement_feature")?.to_owned();
    if st.feature(&feature).is_none() {
        return Err(ApiError::no_such(
            "feature",
            &feature,
            "entitlement_feature",
        ));
    }
    if st
        .product_features
        .iter()
        .any(|pf| pf.product == product && pf.feature == feature)
    {
        return Err(ApiError::invalid_param(
            "entitlement_feature",
            format!("The feature {feature} is already attached to the product {product}."),
        ));
    }
    let pf = ProductFeature {
        id: new_id("prodft_", 24),
        product: product.to_owned(),
        feature,
    };
    let json = st.product_feature_json(&pf);
    st.product_features.push(pf);
    Ok(json)
}

/// `GET /v1/products/{id}/features`.
pub(super) fn list_product_features(st: &State, product: &str, p: &Params) -> ApiResult<Value> {
    allow_list(p, &[])?;
    if st.product(product).is_none() {
        return Err(ApiError::no_such("product", product, "id"));
    }
    let items = st
        .product_features
        .iter()
        .rev()
        .filter(|pf| pf.product == product)
        .map(|pf| (pf.id.clone(), st.product_feature_json(pf)))
        .collect();
    page(p, &format!("/v1/products/{product}/features"), items)
}

/// `DELETE /v1/products/{id}/features/{id}`.
pub(super) fn detach_feature(st: &mut State, product: &str, id: &str) -> ApiResult<Value> {
    let Some(at) = st
        .product_features
        .iter()
        .position(|pf| pf.product == product && pf.id == id)
    else {
        return Err(ApiError::no_such("product_feature", id, "id"));
    };
    st.product_features.remove(at);
    Ok(json!({"id": id, "object": "product_feature", "deleted": true}))
}

/// `GET /v1/entitlements/active_entitlements?customer=…`.
pub(super) fn list_active_entitlements(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["customer"])?;
    let customer = p.required("customer")?;
    if st.customer(customer).is_none() {
        return Err(ApiError::no_such("customer", customer, "customer"));
    }
    let items = st
        .active_entitlements(customer)
        .iter()
        .rev()
        .map(|(id, feature)| (id.clone(), st.active_entitlement_json(id, feature)))
        .collect();
    page(p, "/v1/entitlements/active_entitlements", items)
}

/// `GET /v1/entitlements/active_entitlements/{id}`.
pub(super) fn retrieve_active_entitlement(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.entitlements
        .iter()
        .flat_map(|e| e.active.iter())
        .find(|(ent, _)| ent == id)
        .map(|(ent, feature)| st.active_entitlement_json(ent, feature))
        .ok_or_else(|| ApiError::no_such("active_entitlement", id, "id"))
}
