//! A customer's list from the API read as raw JSON, page by page, for objects read by hand
//! (schedules, active entitlements): async-stripe has no type for them, or one whose shape
//! varies by API version.

use miniserde::json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

/// Every item of `GET /v1{path}?customer=…`, following `has_more` with `starting_after`.
/// `unreadable` is the error for a page that is not a list.
pub(super) async fn list_for_customer(
    stripe: &::stripe::Client,
    path: &str,
    customer: &str,
    unreadable: fn() -> ::stripe::StripeError,
) -> Result<Vec<Value>, ::stripe::StripeError> {
    #[derive(serde::Serialize)]
    struct Query<'a> {
        customer: &'a str,
        limit: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        starting_after: Option<String>,
    }
    let mut all: Vec<Value> = Vec::new();
    let mut after = None;
    loop {
        let query = Query {
            customer,
            limit: 100,
            starting_after: after.take(),
        };
        let page: Value = RequestBuilder::new(StripeMethod::Get, path)
            .query(&query)
            .customize::<Value>()
            .send(stripe)
            .await?;
        let Value::Object(page) = page else {
            return Err(unreadable());
        };
        let Some(Value::Array(data)) = page.get("data") else {
            return Err(unreadable());
        };
        let last = match data.last() {
            Some(Value::Object(o)) => match o.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                _ => None,
            },
            _ => None,
        };
        all.extend(data.iter().cloned());
        let more = matches!(page.get("has_more"), Some(Value::Bool(true)));
        match last {
            Some(last) if more => after = Some(last),
            _ => return Ok(all),
        }
    }
}
