//! The catalogue: products (`/v1/products`) and their prices (`/v1/prices`).

use serde_json::{json, Value};

use super::{allow_list, page};
use crate::{
    clock,
    error::{ApiError, ApiResult},
    events::Changes,
    model::{new_id, Product, State},
    params::Params,
};

/// `GET /v1/products/{id}`.
pub(super) fn retrieve_product(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.product(id)
        .map(|x| st.product_json(x))
        .ok_or_else(|| ApiError::no_such("product", id, "id"))
}

/// `POST /v1/products`: a product of its own (prices are made separately); emits
/// `product.created`.
pub(super) fn create_product(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&["id", "name", "active", "description", "metadata", "expand"])?;
    let name = p
        .text("name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing_param("name"))?;
    let id = p.text("id")?.unwrap_or_else(|| new_id("prod_", 14));
    if st.products.iter().any(|x| x.id == id) {
        return Err(ApiError::invalid_param(
            "id",
            format!("Product already exists: {id}"),
        ));
    }
    let now = clock::now();
    let product = Product {
        id,
        created: now,
        updated: now,
        name,
        description: p.text("description")?.filter(|d| !d.is_empty()),
        active: p.bool("active")?.unwrap_or(true),
        default_price: None,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
    };
    let json = st.product_json(&product);
    st.products.push(product);
    st.emit("product.created", json.clone(), None, now);
    Ok(json)
}

/// `POST /v1/products/{id}`: rename, describe, archive (`active=false`) or restore; emits
/// `product.updated` with the changed fields' old values.
pub(super) fn update_product(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["name", "active", "description", "metadata", "expand"])?;
    let name = p.text("name")?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid_param(
            "name",
            "A product's name cannot be empty.",
        ));
    }
    let active = p.bool("active")?;
    let description = p.text("description")?;
    let metadata = p.metadata("metadata")?;
    let now = clock::now();
    let product = st
        .products
        .iter_mut()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::no_such("product", id, "id"))?;
    let mut changes = Changes::default();
    changes.set("name", &mut product.name, name);
    changes.set("active", &mut product.active, active);
    // An empty description removes it.
    let description = description.map(|d| (!d.is_empty()).then_some(d));
    changes.set("description", &mut product.description, description);
    changes.metadata(&mut product.metadata, metadata);
    product.updated = now;
    let product = product.clone();
    let json = st.product_json(&product);
    st.emit_changes("product.updated", json.clone(), changes, now);
    Ok(json)
}

/// `DELETE /v1/products/{id}`: like Stripe, only a product without prices can be deleted
/// (archive one with prices instead); emits `product.deleted`.
pub(super) fn delete_product(st: &mut State, id: &str) -> ApiResult<Value> {
    let Some(at) = st.products.iter().position(|x| x.id == id) else {
        return Err(ApiError::no_such("product", id, "id"));
    };
    if st.prices.iter().any(|x| x.product == id) {
        return Err(ApiError::state(
            "This product cannot be deleted because it has one or more user-created prices.",
        ));
    }
    let product = st.products.remove(at);
    let json = st.product_json(&product);
    st.emit("product.deleted", json, None, clock::now());
    Ok(json!({"id": id, "object": "product", "deleted": true}))
}

pub(super) fn list_products(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["active", "ids", "shippable", "url", "type"])?;
    let active = p.bool("active")?;
    let ids = p.strings("ids")?;
    let items = st
        .products
        .iter()
        .rev()
        .filter(|x| active.is_none_or(|a| x.active == a))
        .filter(|x| ids.is_empty() || ids.contains(&x.id))
        .map(|x| (x.id.clone(), st.product_json(x)))
        .collect();
    page(p, "/v1/products", items)
}

/// `GET /v1/prices/{id}`.
pub(super) fn retrieve_price(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.price(id)
        .map(|x| st.price_json(x))
        .ok_or_else(|| ApiError::no_such("price", id, "price"))
}

/// `POST /v1/prices/{id}`: archive (`active=false`) or restore a price, rename it, change
/// its metadata; emits `price.updated` with the changed fields' old values. Subscriptions on
/// an archived price go on; it can no longer be chosen.
pub(super) fn update_price(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["active", "metadata", "nickname", "expand"])?;
    let active = p.bool("active")?;
    let nickname = p.nullable("nickname")?;
    let metadata = p.metadata("metadata")?;
    let price = st
        .prices
        .iter_mut()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::no_such("price", id, "price"))?;
    let mut changes = Changes::default();
    changes.set("active", &mut price.active, active);
    changes.set("nickname", &mut price.nickname, nickname);
    changes.metadata(&mut price.metadata, metadata);
    let price = price.clone();
    let json = st.price_json(&price);
    st.emit_changes("price.updated", json.clone(), changes, clock::now());
    Ok(json)
}

pub(super) fn list_prices(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "active",
            "product",
            "lookup_keys",
            "type",
            "currency",
            "recurring",
        ],
    )?;
    let active = p.bool("active")?;
    let product = p.text("product")?;
    let lookup_keys = p.strings("lookup_keys")?;
    let currency = p.text("currency")?;
    let kind = p.text("type")?;
    let interval = p
        .child("recurring")?
        .map(|r| r.text("interval"))
        .transpose()?
        .flatten();
    let items = st
        .prices
        .iter()
        .rev()
        .filter(|x| active.is_none_or(|a| x.active == a))
        .filter(|x| product.as_ref().is_none_or(|pr| &x.product == pr))
        .filter(|x| {
            lookup_keys.is_empty()
                || x.lookup_key
                    .as_ref()
                    .is_some_and(|k| lookup_keys.contains(k))
        })
        .filter(|x| currency.as_ref().is_none_or(|c| &x.currency == c))
        .filter(|_| kind.as_deref().is_none_or(|k| k == "recurring"))
        .filter(|x| interval.as_ref().is_none_or(|i| &x.interval == i))
        .map(|x| (x.id.clone(), st.price_json(x)))
        .collect();
    page(p, "/v1/prices", items)
}
