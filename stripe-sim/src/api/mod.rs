//! `/v1/...`: authentication, request parsing, idempotency, and the route table. The endpoints
//! are in one module per resource, grouped as Stripe's API reference groups them.
//! Every request is answered in JSON; every failure in Stripe's error envelope.

pub(crate) mod admin;
mod billing_portal_configurations;
mod billing_portal_sessions;
mod catalogue;
mod checkout;
mod customers;
mod entitlements;
mod events;
mod invoice_items;
mod invoices;
mod payment_methods;
mod plans;
mod subscription_schedules;
mod subscriptions;
mod test_clocks;
mod webhook_endpoints;

use axum::{
    body::Body,
    extract::State as AxumState,
    http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::Value;

use super::{
    clock,
    error::{ApiError, ApiResult},
    form::{self, FormValue},
    model::{new_id, IdempotentResponse, InvoiceStatus, RequestTag, State},
    params::Params,
    render::list_page,
    StripeSim,
};

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 1 << 20;
/// Idempotency keys are remembered this long, as Stripe does.
const IDEMPOTENCY_TTL: i64 = 24 * 3600;

/// Checks the API key: a well-formed test key passes; live keys are refused outright.
pub fn authenticate(headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    let key = if let Some(k) = value.strip_prefix("Bearer ") {
        k.trim().to_string()
    } else if let Some(b) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        decoded.split(':').next().unwrap_or_default().to_string()
    } else {
        return Err(ApiError::unauthorized(
            "Invalid Authorization header: use 'Bearer sk_test_…' or HTTP basic with the key as the user name.",
        ));
    };
    check_key(&key)
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        return Err(ApiError::live_key_refused());
    }
    let well_formed = (key.starts_with("sk_test_") || key.starts_with("rk_test_"))
        && key.len() > "sk_test_".len()
        && key.len() <= 255
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if well_formed {
        return Ok(());
    }
    let shown: String = key.chars().take(8).collect();
    Err(ApiError::unauthorized(format!(
        "Invalid API Key provided: {shown}****. The Stripe test double accepts any test key (sk_test_…)."
    )))
}

/// The axum handler for everything under `/v1`.
pub async fn handle(AxumState(sim): AxumState<StripeSim>, req: Request<Body>) -> Response {
    let request_id = new_id("req_", 14);
    let refusal = {
        let mut faults = sim.faults();
        let uri = req.uri();
        faults.record(req.method(), uri.path(), uri.query().unwrap_or(""));
        faults.refusal(req.method(), uri.path())
    };
    let mut response = match refusal {
        Some(fault) => fault.response(),
        None => respond(&sim, req, &request_id).await,
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", v);
    }
    response.headers_mut().insert(
        "stripe-version",
        HeaderValue::from_static(super::render::API_VERSION),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(status: u16, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

async fn respond(sim: &StripeSim, req: Request<Body>, request_id: &str) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = authenticate(&parts.headers) {
        return e.into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError::invalid_request("The request body is too large or could not be read.")
            .into_response();
    };
    let body = String::from_utf8_lossy(&bytes);
    let query = parts.uri.query().unwrap_or("");
    let input = match (query.is_empty(), body.trim().is_empty()) {
        (true, _) => body.to_string(),
        (false, true) => query.to_string(),
        (false, false) => format!("{query}&{body}"),
    };
    let form = match form::parse(&input) {
        Ok(f) => f,
        Err(e) => return ApiError::invalid_request(e.to_string()).into_response(),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let idempotency_key = (method == Method::POST)
        .then(|| {
            parts
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .flatten()
        .filter(|k| !k.is_empty());
    let fingerprint = format!("{method} {path} {}", form.to_json());

    let outcome = {
        let mut st = sim.lock();
        if let Some(key) = &idempotency_key {
            let now = clock::now();
            st.idempotency.retain(|r| r.created + IDEMPOTENCY_TTL > now);
            if let Some(previous) = st.idempotency.iter().find(|r| &r.key == key) {
                if previous.fingerprint == fingerprint {
                    return json_response(previous.status, previous.body.clone(), true);
                }
                return ApiError::idempotency_mismatch(key).into_response();
            }
        }
        st.request = RequestTag {
            id: Some(request_id.to_string()),
            idempotency_key: idempotency_key.clone(),
        };
        let result = route(&mut st, &method, &path, &form);
        st.request = RequestTag::default();
        let (status, body) = match &result {
            Ok(v) => (200u16, v.to_string()),
            Err(e) => (e.status.as_u16(), e.body().to_string()),
        };
        // Stripe keeps the outcome of any request that ran (successes and declines), not
        // of ones refused before running.
        let ran = result.is_ok() || result.as_ref().is_err_and(|e| e.kind == "card_error");
        if let (Some(key), true) = (&idempotency_key, ran) {
            st.idempotency.push(IdempotentResponse {
                key: key.clone(),
                fingerprint,
                status,
                body: body.clone(),
                created: clock::now(),
            });
        }
        (status, body)
    };
    if method != Method::GET {
        sim.changed().await;
    }
    json_response(outcome.0, outcome.1, false)
}

/// Finds the endpoint for a method and path and runs it.
pub(super) fn route(
    st: &mut State,
    method: &Method,
    path: &str,
    form: &FormValue,
) -> ApiResult<Value> {
    let p = Params::root(form);
    let rest = path.strip_prefix("/v1/").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = method.as_str();
    let value = match (m, segments.as_slice()) {
        ("POST", ["customers"]) => customers::create_customer(st, &p),
        ("GET", ["customers"]) => customers::list_customers(st, &p),
        ("GET", ["customers", id]) => customers::retrieve_customer(st, id, &p),
        ("POST", ["customers", id]) => customers::update_customer(st, id, &p),
        ("DELETE", ["customers", id]) => customers::delete_customer(st, id, &p),
        ("GET", ["customers", id, "payment_methods"]) => {
            payment_methods::list_customer_payment_methods(st, id, &p)
        }
        ("GET", ["products"]) => catalogue::list_products(st, &p),
        ("GET", ["products", id]) => catalogue::retrieve_product(st, id, &p),
        ("POST", ["products"]) => catalogue::create_product(st, &p),
        ("POST", ["products", id]) => catalogue::update_product(st, id, &p),
        ("DELETE", ["products", id]) => catalogue::delete_product(st, id),
        ("POST", ["products", id, "features"]) => entitlements::attach_feature(st, id, &p),
        ("GET", ["products", id, "features"]) => entitlements::list_product_features(st, id, &p),
        ("DELETE", ["products", product, "features", id]) => {
            entitlements::detach_feature(st, product, id)
        }
        ("POST", ["entitlements", "features"]) => entitlements::create_feature(st, &p),
        ("GET", ["entitlements", "features"]) => entitlements::list_features(st, &p),
        ("GET", ["entitlements", "features", id]) => entitlements::retrieve_feature(st, id, &p),
        ("POST", ["entitlements", "features", id]) => entitlements::update_feature(st, id, &p),
        ("GET", ["entitlements", "active_entitlements"]) => {
            entitlements::list_active_entitlements(st, &p)
        }
        ("GET", ["entitlements", "active_entitlements", id]) => {
            entitlements::retrieve_active_entitlement(st, id, &p)
        }
        ("GET", ["prices"]) => catalogue::list_prices(st, &p),
        ("POST", ["prices"]) => catalogue::create_price(st, &p),
        ("GET", ["prices", id]) => catalogue::retrieve_price(st, id, &p),
        ("POST", ["prices", id]) => catalogue::update_price(st, id, &p),
        ("GET", ["plans"]) => plans::list_plans(st, &p),
        ("POST", ["plans"]) => plans::create_plan(st, &p),
        ("GET", ["plans", id]) => plans::retrieve_plan(st, id, &p),
        ("POST", ["plans", id]) => plans::update_plan(st, id, &p),
        ("DELETE", ["plans", id]) => plans::delete_plan(st, id),
        ("POST", ["subscriptions"]) => subscriptions::create_subscription(st, &p),
        ("GET", ["subscriptions"]) => subscriptions::list_subscriptions(st, &p),
        ("GET", ["subscriptions", id]) => subscriptions::retrieve_subscription(st, id, &p),
        ("POST", ["subscriptions", id]) => subscriptions::update_subscription(st, id, &p),
        ("DELETE", ["subscriptions", id]) => subscriptions::cancel_subscription(st, id, &p),
        ("POST", ["subscriptions", id, "resume"]) => subscriptions::resume_subscription(st, id, &p),
        ("POST", ["payment_methods"]) => payment_methods::create_payment_method(st, &p),
        ("POST", ["payment_methods", id]) => payment_methods::update_payment_method(st, id, &p),
        ("POST", ["setup_intents"]) => payment_methods::create_setup_intent(st, &p),
        ("GET", ["payment_methods"]) => payment_methods::list_all_payment_methods(st, &p),
        ("GET", ["payment_methods", id]) => payment_methods::retrieve_payment_method(st, id, &p),
        ("POST", ["payment_methods", id, "attach"]) => {
            payment_methods::attach_payment_method(st, id, &p)
        }
        ("POST", ["payment_methods", id, "detach"]) => {
            payment_methods::detach_payment_method(st, id, &p)
        }
        ("POST", ["invoiceitems"]) => invoice_items::create_invoice_item(st, &p),
        ("GET", ["invoiceitems"]) => invoice_items::list_invoice_items(st, &p),
        ("GET", ["invoiceitems", id]) => invoice_items::retrieve_invoice_item(st, id, &p),
        ("DELETE", ["invoiceitems", id]) => invoice_items::delete_invoice_item(st, id, &p),
        ("POST", ["invoices"]) => invoices::create_invoice(st, &p),
        ("POST", ["invoices", id]) if *id != "create_preview" => {
            invoices::update_invoice(st, id, &p)
        }
        ("DELETE", ["invoices", id]) => invoices::delete_invoice(st, id, &p),
        ("POST", ["invoices", id, "finalize"]) => invoices::finalize_invoice(st, id, &p),
        ("GET", ["invoices"]) => invoices::list_invoices(st, &p),
        ("GET", ["invoices", id]) => invoices::retrieve_invoice(st, id, &p),
        ("POST", ["invoices", "create_preview"]) => invoices::create_preview(st, &p),
        ("POST", ["invoices", id, "pay"]) => invoices::pay_invoice(st, id, &p),
        ("POST", ["invoices", id, "void"]) => {
            invoices::close_invoice(st, id, &p, InvoiceStatus::Void)
        }
        ("POST", ["invoices", id, "mark_uncollectible"]) => {
            invoices::close_invoice(st, id, &p, InvoiceStatus::Uncollectible)
        }
        ("POST", ["subscription_schedules"]) => {
            subscription_schedules::create_subscription_schedule(st, &p)
        }
        ("POST", ["subscription_schedules", id]) => {
            subscription_schedules::update_subscription_schedule(st, id, &p)
        }
        ("GET", ["subscription_schedules"]) => {
            subscription_schedules::list_subscription_schedules(st, &p)
        }
        ("GET", ["subscription_schedules", id]) => {
            subscription_schedules::retrieve_subscription_schedule(st, id, &p)
        }
        ("POST", ["subscription_schedules", id, "release"]) => {
            subscription_schedules::release_subscription_schedule(st, id, &p)
        }
        ("POST", ["subscription_schedules", id, "cancel"]) => {
            subscription_schedules::cancel_subscription_schedule(st, id, &p)
        }
        ("POST", ["checkout", "sessions"]) => checkout::create_checkout_session(st, &p),
        ("GET", ["checkout", "sessions"]) => checkout::list_checkout_sessions(st, &p),
        ("GET", ["checkout", "sessions", id]) => checkout::retrieve_checkout_session(st, id, &p),
        ("GET", ["checkout", "sessions", id, "line_items"]) => {
            checkout::list_checkout_line_items(st, id, &p)
        }
        ("POST", ["checkout", "sessions", id, "expire"]) => {
            checkout::expire_checkout_session(st, id, &p)
        }
        ("GET", ["payment_pages", id]) => checkout::retrieve_payment_page(st, id, &p),
        ("POST", ["payment_pages", id, "confirm"]) => checkout::confirm_payment_page(st, id, &p),
        ("GET", ["billing_portal", "configurations"]) => {
            billing_portal_configurations::list_portal_configurations(st, &p)
        }
        ("POST", ["billing_portal", "configurations"]) => {
            billing_portal_configurations::save_portal_configuration(st, None, &p)
        }
        ("GET", ["billing_portal", "configurations", id]) => {
            billing_portal_configurations::retrieve_portal_configuration(st, id, &p)
        }
        ("POST", ["billing_portal", "configurations", id]) => {
            billing_portal_configurations::save_portal_configuration(st, Some(id), &p)
        }
        ("POST", ["billing_portal", "sessions"]) => {
            billing_portal_sessions::create_portal_session(st, &p)
        }
        ("GET", ["events"]) => events::list_events(st, &p),
        ("GET", ["events", id]) => events::retrieve_event(st, id, &p),
        ("POST", ["webhook_endpoints"]) => webhook_endpoints::create_webhook_endpoint(st, &p),
        ("GET", ["webhook_endpoints"]) => webhook_endpoints::list_webhook_endpoints(st, &p),
        ("POST", ["webhook_endpoints", id]) => {
            webhook_endpoints::update_webhook_endpoint(st, id, &p)
        }
        ("GET", ["webhook_endpoints", id]) => {
            webhook_endpoints::retrieve_webhook_endpoint(st, id, &p)
        }
        ("DELETE", ["webhook_endpoints", id]) => {
            webhook_endpoints::delete_webhook_endpoint(st, id, &p)
        }
        ("POST", ["test_helpers", "test_clocks"]) => test_clocks::create_test_clock(st, &p),
        ("GET", ["test_helpers", "test_clocks"]) => test_clocks::list_test_clocks(st, &p),
        ("GET", ["test_helpers", "test_clocks", id]) => {
            test_clocks::retrieve_test_clock(st, id, &p)
        }
        ("DELETE", ["test_helpers", "test_clocks", id]) => {
            test_clocks::delete_test_clock(st, id, &p)
        }
        ("POST", ["test_helpers", "test_clocks", id, "advance"]) => {
            test_clocks::advance_test_clock(st, id, &p)
        }
        _ => Err(ApiError::unrecognized_url(m, path)),
    }?;
    let mut value = value;
    // `expand` is accepted by every endpoint (each `allow` list names it).
    let expand = p.expand().unwrap_or_default();
    st.expand(&mut value, &expand);
    Ok(value)
}

/// The parameters every list endpoint takes.
const LIST: &[&str] = &[
    "expand",
    "limit",
    "starting_after",
    "ending_before",
    "created",
];

/// Refuses parameters a list endpoint does not know: [`LIST`] and its own `extra` filters.
fn allow_list(p: &Params, extra: &[&str]) -> ApiResult<()> {
    let all: Vec<&str> = LIST.iter().chain(extra.iter()).copied().collect();
    p.allow(&all)
}

/// The page of `items` (newest first) that `limit`, `starting_after` and `ending_before` ask for.
fn page(p: &Params, url: &str, items: Vec<(String, Value)>) -> ApiResult<Value> {
    let (limit, after, before) = p.paging()?;
    Ok(list_page(url, items, limit, after, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn keys() {
        assert!(authenticate(&auth("Bearer sk_test_123")).is_ok());
        assert!(authenticate(&auth("Bearer rk_test_abc_DEF")).is_ok());
        let basic = base64::engine::general_purpose::STANDARD.encode("sk_test_42:");
        assert!(authenticate(&auth(&format!("Basic {basic}"))).is_ok());
        let live = authenticate(&auth("Bearer sk_live_123")).expect_err("live");
        assert_eq!(live.status, StatusCode::FORBIDDEN);
        for bad in [
            "",
            "Bearer ",
            "Bearer sk_test_",
            "Bearer pk_test_1",
            "Token sk_test_1",
            "Bearer sk_test_a b",
        ] {
            let e = authenticate(&auth(bad)).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        assert_eq!(
            authenticate(&HeaderMap::new()).map_err(|e| e.status),
            Err(StatusCode::UNAUTHORIZED)
        );
    }
}
