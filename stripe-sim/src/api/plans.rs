//! The legacy Plans API (`/v1/plans`): a plan is a recurring price in an older shape
//! (`amount`, `interval` at the top level), and Stripe keeps one list of both: a plan made
//! here is a price at `/v1/prices` under the same id, and every recurring price is a plan.
//! Older integrations, Stripe's own CLI fixtures of earlier years and third-party test suites
//! still call it.

use serde_json::{json, Value};

use super::{allow_list, catalogue, page};
use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::{new_id, Price, Product, State},
    params::Params,
};

/// A plan that exists: a recurring price not deleted.
fn plan<'a>(st: &'a State, id: &str) -> ApiResult<&'a Price> {
    st.price(id)
        .filter(|x| !x.deleted && !x.one_time())
        .ok_or_else(|| ApiError::no_such("plan", id, "plan"))
}

/// `GET /v1/plans/{id}`.
pub(super) fn retrieve_plan(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    plan(st, id).map(|x| st.plan_json(x))
}

/// `POST /v1/plans`: `amount`, `currency`, `interval` (and `interval_count`,
/// `trial_period_days`, `nickname`, `active`, `metadata`, an `id` of one's own), for an
/// existing `product` or one made with it (`product[name]`). Emits `plan.created` and
/// `price.created` (and `product.created` for a new product), as Stripe does.
pub(super) fn create_plan(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "id",
        "amount",
        "currency",
        "interval",
        "interval_count",
        "product",
        "nickname",
        "trial_period_days",
        "active",
        "metadata",
        "billing_scheme",
        "usage_type",
        "expand",
    ])?;
    if let Some(scheme) = p.text("billing_scheme")?.filter(|s| s != "per_unit") {
        return Err(ApiError::invalid_param(
            "billing_scheme",
            format!("The double bills per unit only (got {scheme})."),
        ));
    }
    if let Some(usage) = p.text("usage_type")?.filter(|s| s != "licensed") {
        return Err(ApiError::invalid_param(
            "usage_type",
            format!("The double bills licensed plans only (got {usage})."),
        ));
    }
    let amount = catalogue::amount(p, "amount")?;
    let currency = catalogue::currency(p)?;
    let interval = catalogue::interval(p.required("interval")?, "interval")?;
    let interval_count = p.uint::<u32>("interval_count")?.unwrap_or(1).max(1);
    let id = match p.text("id")? {
        Some(id) if st.price(&id).is_some() => {
            return Err(ApiError::invalid_param(
                "id",
                format!("Plan already exists: {id}"),
            ))
        }
        Some(id) => id,
        None => new_id("price_", 24),
    };
    let now = clock::now();
    let product = if p.str("product").is_ok() {
        let product = p.required("product")?.to_owned();
        if st.product(&product).is_none() {
            return Err(ApiError::no_such("product", &product, "product"));
        }
        product
    } else {
        // `product[name]=…`: a product made for this plan.
        let inline = p
            .child("product")?
            .ok_or_else(|| ApiError::missing_param("product"))?;
        inline.allow(&["id", "name", "active", "metadata"])?;
        let name = inline
            .text("name")?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::missing_param("product[name]"))?;
        let product_id = inline.text("id")?.unwrap_or_else(|| new_id("prod_", 14));
        if st.product(&product_id).is_some() {
            return Err(ApiError::invalid_param(
                "product[id]",
                format!("Product already exists: {product_id}"),
            ));
        }
        let product = Product {
            id: product_id.clone(),
            created: now,
            updated: now,
            name,
            description: None,
            active: inline.bool("active")?.unwrap_or(true),
            default_price: None,
            metadata: inline.metadata("metadata")?.unwrap_or_default().into_new(),
        };
        let json = st.product_json(&product);
        st.products.push(product);
        st.emit("product.created", json, None, now);
        product_id
    };
    let price = Price {
        id,
        created: now,
        product,
        active: p.bool("active")?.unwrap_or(true),
        currency,
        unit_amount: amount,
        interval,
        interval_count,
        lookup_key: None,
        nickname: p.text("nickname")?.filter(|n| !n.is_empty()),
        trial_period_days: p.uint::<u32>("trial_period_days")?,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        deleted: false,
    };
    let (as_plan, as_price) = (st.plan_json(&price), st.price_json(&price));
    st.prices.push(price);
    st.emit("plan.created", as_plan.clone(), None, now);
    st.emit("price.created", as_price, None, now);
    Ok(as_plan)
}

/// `POST /v1/plans/{id}`: rename, archive or restore, change the trial days a new
/// subscription gets, or the metadata; `plan.updated` and `price.updated` with the changed
/// fields' old values. Like a price's, a plan's amount and interval never change.
pub(super) fn update_plan(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "active",
        "nickname",
        "metadata",
        "trial_period_days",
        "product",
        "expand",
    ])?;
    let active = p.bool("active")?;
    let nickname = p.nullable("nickname")?;
    let metadata = p.metadata("metadata")?;
    let trial = p.uint::<u32>("trial_period_days")?;
    let product = p.text("product")?;
    if let Some(product) = &product {
        if st.product(product).is_none() {
            return Err(ApiError::no_such("product", product, "product"));
        }
    }
    let now = clock::now();
    let before = plan(st, id)?.clone();
    let (plan_before, price_before) = (st.plan_json(&before), st.price_json(&before));
    let price = st
        .prices
        .iter_mut()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::no_such("plan", id, "plan"))?;
    if let Some(active) = active {
        price.active = active;
    }
    if let Some(nickname) = nickname {
        price.nickname = nickname;
    }
    if let Some(product) = product {
        price.product = product;
    }
    if let Some(days) = trial {
        price.trial_period_days = Some(days);
    }
    if let Some(patch) = metadata {
        patch.apply(&mut price.metadata);
    }
    let price = price.clone();
    let (as_plan, as_price) = (st.plan_json(&price), st.price_json(&price));
    st.emit_update("plan.updated", &plan_before, as_plan.clone(), now);
    st.emit_update("price.updated", &price_before, as_price, now);
    Ok(as_plan)
}

/// `DELETE /v1/plans/{id}`: the plan (and the price it is) is gone from the API; the
/// subscriptions on it go on, and no new one can choose it. `plan.deleted` and
/// `price.deleted`.
pub(super) fn delete_plan(st: &mut State, id: &str) -> ApiResult<Value> {
    plan(st, id)?;
    let now = clock::now();
    let Some(price) = st.prices.iter_mut().find(|x| x.id == id) else {
        return Err(ApiError::no_such("plan", id, "plan"));
    };
    price.active = false;
    price.deleted = true;
    let price = price.clone();
    let (as_plan, as_price) = (st.plan_json(&price), st.price_json(&price));
    st.emit("plan.deleted", as_plan, None, now);
    st.emit("price.deleted", as_price, None, now);
    Ok(json!({"id": id, "object": "plan", "deleted": true}))
}

/// `GET /v1/plans`: every recurring price, newest first, in the plan shape; `active` and
/// `product` filter it.
pub(super) fn list_plans(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["active", "product"])?;
    let active = p.bool("active")?;
    let product = p.text("product")?;
    let items = st
        .prices
        .iter()
        .rev()
        .filter(|x| !x.deleted && !x.one_time())
        .filter(|x| active.is_none_or(|a| x.active == a))
        .filter(|x| product.as_ref().is_none_or(|pr| &x.product == pr))
        .map(|x| (x.id.clone(), st.plan_json(x)))
        .collect();
    page(p, "/v1/plans", items)
}
