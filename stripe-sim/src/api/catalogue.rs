//! The catalogue: products (`/v1/products`) and their prices (`/v1/prices`).

use serde_json::{json, Value};

use super::{allow_list, page};
use crate::{
    clock,
    error::{ApiError, ApiResult},
    events::Changes,
    model::{new_id, Price, Product, State},
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
    if st.prices.iter().any(|x| x.product == id && !x.deleted) {
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
        .filter(|x| !x.deleted)
        .map(|x| st.price_json(x))
        .ok_or_else(|| ApiError::no_such("price", id, "price"))
}

/// `POST /v1/prices`: a recurring price of an existing product (the double sells nothing
/// else); emits `price.created`. A `lookup_key` another price holds is refused unless
/// `transfer_lookup_key=true`, which moves it (that price's `price.updated` says so).
pub(super) fn create_price(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "product",
        "unit_amount",
        "currency",
        "recurring",
        "lookup_key",
        "transfer_lookup_key",
        "nickname",
        "active",
        "metadata",
        "expand",
    ])?;
    let product = p.required("product")?.to_owned();
    if st.product(&product).is_none() {
        return Err(ApiError::no_such("product", &product, "product"));
    }
    let unit_amount = amount(p, "unit_amount")?;
    let currency = currency(p)?;
    // Without `recurring`, a one-time price (no interval): Checkout in payment mode and
    // invoice items take it; subscriptions refuse it.
    let recurring = p.child("recurring")?;
    let (interval, interval_count, trial_period_days) = match &recurring {
        None => (String::new(), 0, None),
        Some(recurring) => {
            recurring.allow(&[
                "interval",
                "interval_count",
                "trial_period_days",
                "usage_type",
            ])?;
            let interval = interval(recurring.required("interval")?, "recurring[interval]")?;
            let count = recurring.uint::<u32>("interval_count")?.unwrap_or(1).max(1);
            (interval, count, recurring.uint::<u32>("trial_period_days")?)
        }
    };
    let lookup_key = p.text("lookup_key")?.filter(|k| !k.is_empty());
    let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
    let now = clock::now();
    if let Some(key) = &lookup_key {
        take_lookup_key(st, key, transfer, None, now)?;
    }
    let price = Price {
        id: new_id("price_", 24),
        created: now,
        product,
        active: p.bool("active")?.unwrap_or(true),
        currency,
        unit_amount,
        interval,
        interval_count,
        lookup_key,
        nickname: p.text("nickname")?.filter(|n| !n.is_empty()),
        trial_period_days,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        deleted: false,
    };
    let json = st.price_json(&price);
    st.prices.push(price);
    st.emit("price.created", json.clone(), None, now);
    Ok(json)
}

/// A price's amount in the currency's smallest unit (`param`), within Stripe's bounds.
pub(super) fn amount(p: &Params, param: &str) -> ApiResult<i64> {
    let amount = p
        .int(param)?
        .ok_or_else(|| ApiError::missing_param(param))?;
    if !(0..=99_999_999).contains(&amount) {
        return Err(ApiError::invalid_param(
            param,
            format!("{param} must be between 0 and 99999999."),
        ));
    }
    Ok(amount)
}

/// `currency`: three lowercase letters.
pub(super) fn currency(p: &Params) -> ApiResult<String> {
    let currency = p.required("currency")?.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::invalid_param(
            "currency",
            format!("Invalid currency: {currency}."),
        ));
    }
    Ok(currency)
}

/// A billing interval (`param` names it): `day`, `week`, `month` or `year`.
pub(super) fn interval(value: &str, param: &str) -> ApiResult<String> {
    if !matches!(value, "day" | "week" | "month" | "year") {
        return Err(ApiError::invalid_param(
            param,
            format!("Invalid {param}: must be one of day, week, month, or year ({value})."),
        ));
    }
    Ok(value.to_owned())
}

/// Frees `key` for the price `for_price` (or a new one): refused while another price holds it,
/// unless `transfer`, which takes it from that price (emitting its `price.updated`).
fn take_lookup_key(
    st: &mut State,
    key: &str,
    transfer: bool,
    for_price: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    let Some(holder) = st
        .prices
        .iter_mut()
        .find(|x| x.lookup_key.as_deref() == Some(key) && Some(x.id.as_str()) != for_price)
    else {
        return Ok(());
    };
    if !transfer {
        return Err(ApiError::invalid_param(
            "lookup_key",
            format!(
                "A price (`{}`) already uses that lookup key. Pass transfer_lookup_key=true to move it.",
                holder.id
            ),
        ));
    }
    let mut changes = Changes::default();
    changes.set("lookup_key", &mut holder.lookup_key, Some(None));
    let holder = holder.clone();
    let json = st.price_json(&holder);
    st.emit_changes("price.updated", json, changes, now);
    Ok(())
}

/// `POST /v1/prices/{id}`: archive (`active=false`) or restore a price, rename it, change its
/// lookup key (`transfer_lookup_key` as on create) or metadata; emits `price.updated` with the
/// changed fields' old values. Subscriptions on an archived price go on; it can no longer be
/// chosen. Its amount, like Stripe's, never changes.
pub(super) fn update_price(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "active",
        "metadata",
        "nickname",
        "lookup_key",
        "transfer_lookup_key",
        "expand",
    ])?;
    let active = p.bool("active")?;
    let nickname = p.nullable("nickname")?;
    let metadata = p.metadata("metadata")?;
    let lookup_key = p.nullable("lookup_key")?;
    if st.price(id).is_none_or(|x| x.deleted) {
        return Err(ApiError::no_such("price", id, "price"));
    }
    let now = clock::now();
    if let Some(Some(key)) = &lookup_key {
        let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
        take_lookup_key(st, key, transfer, Some(id), now)?;
    }
    let price = st
        .prices
        .iter_mut()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::no_such("price", id, "price"))?;
    let mut changes = Changes::default();
    changes.set("active", &mut price.active, active);
    changes.set("nickname", &mut price.nickname, nickname);
    changes.set("lookup_key", &mut price.lookup_key, lookup_key);
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
        .filter(|x| !x.deleted)
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
