//! `/v1/...`: authentication, request parsing, idempotency, and one handler per endpoint.
//! Every request is answered in JSON; every failure in Stripe's error envelope.

mod catalogue;
mod customers;
mod invoices;
mod payment_methods;
mod subscription_schedules;
mod subscriptions;

use axum::{
    body::Body,
    extract::State as AxumState,
    http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{json, Value};

use super::{
    billing::{CHECKOUT_SESSION_LIFETIME, PORTAL_SESSION_LIFETIME},
    clock,
    error::{ApiError, ApiResult},
    form::{self, FormValue},
    model::*,
    params::Params,
    render::list_page,
    StripeSim,
};
use subscriptions::proration_behavior;

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
        ("GET", ["prices"]) => catalogue::list_prices(st, &p),
        ("GET", ["prices", id]) => catalogue::retrieve_price(st, id, &p),
        ("POST", ["prices", id]) => catalogue::update_price(st, id, &p),
        ("POST", ["subscriptions"]) => subscriptions::create_subscription(st, &p),
        ("GET", ["subscriptions"]) => subscriptions::list_subscriptions(st, &p),
        ("GET", ["subscriptions", id]) => subscriptions::retrieve_subscription(st, id, &p),
        ("POST", ["subscriptions", id]) => subscriptions::update_subscription(st, id, &p),
        ("DELETE", ["subscriptions", id]) => subscriptions::cancel_subscription(st, id, &p),
        ("GET", ["payment_methods"]) => payment_methods::list_all_payment_methods(st, &p),
        ("GET", ["payment_methods", id]) => payment_methods::retrieve_payment_method(st, id, &p),
        ("POST", ["payment_methods", id, "attach"]) => {
            payment_methods::attach_payment_method(st, id, &p)
        }
        ("POST", ["payment_methods", id, "detach"]) => {
            payment_methods::detach_payment_method(st, id, &p)
        }
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
        ("POST", ["checkout", "sessions"]) => create_checkout_session(st, &p),
        ("GET", ["checkout", "sessions"]) => list_checkout_sessions(st, &p),
        ("GET", ["checkout", "sessions", id]) => {
            p.allow(&["expand"])?;
            checkout_view(st, id)
        }
        ("GET", ["checkout", "sessions", id, "line_items"]) => {
            p.allow(&["expand", "limit", "starting_after", "ending_before"])?;
            st.checkout_session(id)
                .map(|cs| st.checkout_line_items_json(cs))
                .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))
        }
        ("POST", ["checkout", "sessions", id, "expire"]) => {
            p.allow(&["expand"])?;
            let status = st
                .checkout_session(id)
                .map(|c| c.status)
                .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))?;
            if status != CheckoutStatus::Open {
                return Err(ApiError::state(format!(
                    "Only Checkout Sessions with a status of `open` can be expired; this one is `{}`.",
                    status.as_str()
                )));
            }
            st.expire_checkout_session(id);
            checkout_view(st, id)
        }
        ("GET", ["billing_portal", "configurations"]) => list_portal_configurations(st, &p),
        ("POST", ["billing_portal", "configurations"]) => save_portal_configuration(st, None, &p),
        ("GET", ["billing_portal", "configurations", id]) => {
            p.allow(&["expand"])?;
            st.portal_configuration(id)
                .map(|c| st.portal_configuration_json(c))
                .ok_or_else(|| {
                    ApiError::no_such("billing portal configuration", id, "configuration")
                })
        }
        ("POST", ["billing_portal", "configurations", id]) => {
            save_portal_configuration(st, Some(id), &p)
        }
        ("POST", ["billing_portal", "sessions"]) => create_portal_session(st, &p),
        ("GET", ["events"]) => list_events(st, &p),
        ("GET", ["events", id]) => {
            p.allow(&["expand"])?;
            st.event(id)
                .map(|e| st.event_json(e))
                .ok_or_else(|| ApiError::no_such("event", id, "id"))
        }
        ("POST", ["webhook_endpoints"]) => create_webhook_endpoint(st, &p),
        ("GET", ["webhook_endpoints"]) => {
            p.allow(&["expand", "limit", "starting_after", "ending_before"])?;
            let (limit, after, before) = p.paging()?;
            let items = st
                .webhook_endpoints
                .iter()
                .rev()
                .map(|e| (e.id.clone(), st.webhook_endpoint_json(e, false)))
                .collect();
            Ok(list_page(
                "/v1/webhook_endpoints",
                items,
                limit,
                after,
                before,
            ))
        }
        ("POST", ["webhook_endpoints", id]) => update_webhook_endpoint(st, id, &p),
        ("GET", ["webhook_endpoints", id]) => {
            p.allow(&["expand"])?;
            st.webhook_endpoint(id)
                .map(|e| st.webhook_endpoint_json(e, false))
                .ok_or_else(|| ApiError::no_such("webhook endpoint", id, "id"))
        }
        ("DELETE", ["webhook_endpoints", id]) => {
            p.allow(&[])?;
            let before = st.webhook_endpoints.len();
            st.webhook_endpoints.retain(|e| e.id != *id);
            if st.webhook_endpoints.len() == before {
                return Err(ApiError::no_such("webhook endpoint", id, "id"));
            }
            Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
        }
        _ => Err(ApiError::unrecognized_url(m, path)),
    }?;
    let mut value = value;
    // `expand` is accepted by every endpoint (each `allow` list names it).
    let expand = p.expand().unwrap_or_default();
    st.expand(&mut value, &expand);
    Ok(value)
}

const LIST: &[&str] = &[
    "expand",
    "limit",
    "starting_after",
    "ending_before",
    "created",
];

fn allow_list(p: &Params, extra: &[&str]) -> ApiResult<()> {
    let all: Vec<&str> = LIST.iter().chain(extra.iter()).copied().collect();
    p.allow(&all)
}

fn page(p: &Params, url: &str, items: Vec<(String, Value)>) -> ApiResult<Value> {
    let (limit, after, before) = p.paging()?;
    Ok(list_page(url, items, limit, after, before))
}

// ----- checkout --------------------------------------------------------------------------

fn checkout_view(st: &State, id: &str) -> ApiResult<Value> {
    st.checkout_session(id)
        .map(|x| st.checkout_session_json(x))
        .ok_or_else(|| ApiError::no_such("checkout.session", id, "session"))
}

fn create_checkout_session(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "mode",
        "line_items",
        "customer",
        "customer_email",
        "success_url",
        "cancel_url",
        "client_reference_id",
        "subscription_data",
        "metadata",
        "expand",
        "locale",
        "payment_method_types",
        "allow_promotion_codes",
        "billing_address_collection",
        "customer_update",
        "ui_mode",
        "automatic_tax",
        "tax_id_collection",
        "consent_collection",
        "custom_text",
        "expires_at",
        "payment_method_collection",
        "currency",
        "phone_number_collection",
        "saved_payment_method_options",
        "submit_type",
        "customer_creation",
        "adaptive_pricing",
    ])?;
    match p.required("mode")? {
        "subscription" => {}
        other => {
            return Err(ApiError::invalid_param(
                "mode",
                format!("This Stripe test double supports Checkout in `subscription` mode only, not `{other}`."),
            ))
        }
    }
    let customer = p.text("customer")?;
    if let Some(c) = &customer {
        st.require_customer(c, "customer")?;
    }
    let customer_email = p.text("customer_email")?;
    if customer.is_some() && customer_email.is_some() {
        return Err(ApiError::invalid_param(
            "customer_email",
            "You may only specify one of these parameters: customer, customer_email.",
        ));
    }
    let mut lines = Vec::new();
    let mut shape: Option<(String, String)> = None;
    let mut total = 0i64;
    for (i, item) in p.list("line_items")?.iter().enumerate() {
        item.allow(&[
            "price",
            "quantity",
            "adjustable_quantity",
            "tax_rates",
            "dynamic_tax_rates",
        ])?;
        let price_id = item.required("price")?;
        let param = format!("line_items[{i}][price]");
        let price = st
            .price(price_id)
            .ok_or_else(|| ApiError::no_such("price", price_id, &param))?;
        if !price.active {
            return Err(ApiError::invalid_param(
                &param,
                format!("The price `{price_id}` is not active."),
            ));
        }
        let this = (price.currency.clone(), price.interval.clone());
        if shape.as_ref().is_some_and(|s| *s != this) {
            return Err(ApiError::invalid_param(
                &param,
                "All prices must share one currency and billing interval.",
            ));
        }
        shape = Some(this);
        let quantity = item.uint::<u64>("quantity")?.unwrap_or(1).max(1);
        total += price.unit_amount * i64::try_from(quantity).unwrap_or(1);
        lines.push(CheckoutLine {
            id: new_id("li_", 24),
            price: price_id.to_string(),
            quantity,
        });
    }
    let Some((currency, _)) = shape else {
        return Err(ApiError::missing_param("line_items"));
    };
    for key in ["success_url", "cancel_url"] {
        if let Some(url) = p.text(key)? {
            if url::Url::parse(&url.replace("{CHECKOUT_SESSION_ID}", "cs")).is_err() {
                return Err(ApiError::invalid_param(
                    key,
                    format!("Not a valid URL: {url}"),
                ));
            }
        }
    }
    let (mut trial_days, mut trial_from_plan, mut sub_metadata, mut sub_description) =
        (None, None, Metadata::new(), None);
    if let Some(data) = p.child("subscription_data")? {
        data.allow(&[
            "trial_period_days",
            "trial_from_plan",
            "metadata",
            "description",
            "trial_settings",
            "billing_cycle_anchor",
            "default_tax_rates",
            "proration_behavior",
        ])?;
        trial_days = data.uint::<u32>("trial_period_days")?;
        trial_from_plan = data.bool("trial_from_plan")?;
        sub_metadata = data.metadata("metadata")?.unwrap_or_default().into_new();
        sub_description = data.text("description")?;
    }
    let now = clock::now();
    let expires_at = match p.int("expires_at")? {
        Some(t) if t > now + 1800 && t <= now + CHECKOUT_SESSION_LIFETIME => t,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "expires_at",
                "expires_at must be between 30 minutes and 24 hours from now.",
            ))
        }
        None => now + CHECKOUT_SESSION_LIFETIME,
    };
    let id = new_id("cs_test_", 58);
    st.checkout_sessions.push(CheckoutSession {
        id: id.clone(),
        created: now,
        expires_at,
        status: CheckoutStatus::Open,
        payment_status: "unpaid".into(),
        customer,
        customer_email,
        customer_name: None,
        line_items: lines,
        success_url: p.text("success_url")?,
        cancel_url: p.text("cancel_url")?,
        client_reference_id: p.text("client_reference_id")?,
        trial_period_days: trial_days,
        trial_from_plan,
        subscription_metadata: sub_metadata,
        subscription_description: sub_description,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        locale: p.text("locale")?,
        subscription: None,
        invoice: None,
        amount_total: total,
        currency,
    });
    checkout_view(st, &id)
}

fn list_checkout_sessions(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(
        p,
        &[
            "customer",
            "subscription",
            "status",
            "payment_intent",
            "payment_link",
            "customer_details",
        ],
    )?;
    let customer = p.text("customer")?;
    let subscription = p.text("subscription")?;
    let status = p.text("status")?;
    let items = st
        .checkout_sessions
        .iter()
        .rev()
        .filter(|c| customer.is_none() || c.customer == customer)
        .filter(|c| subscription.is_none() || c.subscription == subscription)
        .filter(|c| status.as_deref().is_none_or(|s| c.status.as_str() == s))
        .map(|c| (c.id.clone(), st.checkout_session_json(c)))
        .collect();
    page(p, "/v1/checkout/sessions", items)
}

// ----- billing portal --------------------------------------------------------------------

fn list_portal_configurations(st: &State, p: &Params) -> ApiResult<Value> {
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

fn save_portal_configuration(st: &mut State, id: Option<&str>, p: &Params) -> ApiResult<Value> {
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
                    products.push(PortalProduct { product, prices });
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

fn create_portal_session(st: &mut State, p: &Params) -> ApiResult<Value> {
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

// ----- events and endpoints --------------------------------------------------------------

fn list_events(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["type", "types", "delivery_success"])?;
    let kind = p.text("type")?;
    let types = p.strings("types")?;
    if kind.is_some() && !types.is_empty() {
        return Err(ApiError::invalid_param(
            "types",
            "You may not specify both `type` and `types`.",
        ));
    }
    if types.len() > 20 {
        return Err(ApiError::invalid_param(
            "types",
            "You may not specify more than 20 types.",
        ));
    }
    let created = CreatedRange::read(p)?;
    let delivery_success = p.bool("delivery_success")?;
    // Events some endpoint has not (yet) taken: pending, or given up on. Duplicates sent
    // on purpose by the chaos options do not count.
    let undelivered: std::collections::HashSet<&str> = match delivery_success {
        None => Default::default(),
        Some(_) => st
            .deliveries
            .iter()
            .filter(|d| !d.delivered && !d.duplicate)
            .map(|d| d.event_id.as_str())
            .collect(),
    };
    let matches = |t: &str| match &kind {
        // `type` may end in `.*` to match a family, as Stripe allows.
        Some(k) => match k.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == k,
        },
        None => types.is_empty() || types.iter().any(|x| x == t),
    };
    // `starting_after` is a place in the list, as Stripe's cursors are: it holds even when
    // that event no longer matches the filters (delivered meanwhile, say).
    let (limit, after, before) = p.paging()?;
    let newest_first = st.events.iter().rev();
    let skip = match after {
        Some(id) => match st.events.iter().rev().position(|e| e.id == id) {
            Some(i) => i + 1,
            None => return Err(ApiError::no_such("event", id, "starting_after")),
        },
        None => 0,
    };
    let items = newest_first
        .skip(skip)
        .filter(|e| matches(&e.type_))
        .filter(|e| created.contains(e.created))
        .filter(|e| delivery_success.is_none_or(|ok| ok != undelivered.contains(e.id.as_str())))
        .map(|e| (e.id.clone(), st.event_json(e)))
        .collect();
    Ok(list_page("/v1/events", items, limit, None, before))
}

/// `created=…` or `created[gt|gte|lt|lte]=…`, as Stripe's list filters take it.
#[derive(Debug, Default, Clone, Copy)]
struct CreatedRange {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl CreatedRange {
    fn read(p: &Params) -> ApiResult<CreatedRange> {
        if p.child("created").is_err() {
            // A plain `created=<ts>`: exactly that second.
            let at = p.int("created")?;
            return Ok(CreatedRange {
                gte: at,
                lte: at,
                ..CreatedRange::default()
            });
        }
        let Some(range) = p.child("created")? else {
            return Ok(CreatedRange::default());
        };
        range.allow(&["gt", "gte", "lt", "lte"])?;
        Ok(CreatedRange {
            gt: range.int("gt")?,
            gte: range.int("gte")?,
            lt: range.int("lt")?,
            lte: range.int("lte")?,
        })
    }

    fn contains(&self, t: i64) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}

/// `POST /v1/webhook_endpoints/{id}`: URL, events, description, metadata, and `disabled`.
/// Like Stripe, an endpoint's API version cannot be changed.
fn update_webhook_endpoint(st: &mut State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "disabled",
        "expand",
    ])?;
    let url = p.text("url")?;
    if let Some(url) = &url {
        if url::Url::parse(url).is_err() {
            return Err(ApiError::invalid_param(
                "url",
                format!("Invalid URL: {url}"),
            ));
        }
    }
    let events = if p.has("enabled_events") {
        let events = p.strings("enabled_events")?;
        if events.is_empty() {
            return Err(ApiError::invalid_param(
                "enabled_events",
                "enabled_events must name at least one event type.",
            ));
        }
        Some(events)
    } else {
        None
    };
    let description = p.nullable("description")?;
    let metadata = p.metadata("metadata")?;
    let disabled = p.bool("disabled")?;
    let endpoint = st
        .webhook_endpoints
        .iter_mut()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::no_such("webhook endpoint", id, "id"))?;
    if let Some(url) = url {
        endpoint.url = url;
    }
    if let Some(events) = events {
        endpoint.enabled_events = events;
    }
    if let Some(d) = description {
        endpoint.description = d;
    }
    if let Some(m) = metadata {
        m.apply(&mut endpoint.metadata);
    }
    if let Some(disabled) = disabled {
        endpoint.status = if disabled { "disabled" } else { "enabled" }.into();
    }
    let endpoint = endpoint.clone();
    Ok(st.webhook_endpoint_json(&endpoint, false))
}

fn create_webhook_endpoint(st: &mut State, p: &Params) -> ApiResult<Value> {
    p.allow(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
        "connect",
        "expand",
    ])?;
    let url = p.required("url")?;
    if url::Url::parse(url).is_err() {
        return Err(ApiError::invalid_param(
            "url",
            format!("Invalid URL: {url}"),
        ));
    }
    let enabled_events = p.strings("enabled_events")?;
    if enabled_events.is_empty() {
        return Err(ApiError::missing_param("enabled_events"));
    }
    let endpoint = WebhookEndpoint {
        id: new_id("we_", 24),
        created: clock::now(),
        url: url.to_string(),
        secret: new_id("whsec_", 32),
        enabled_events,
        description: p.text("description")?,
        metadata: p.metadata("metadata")?.unwrap_or_default().into_new(),
        status: "enabled".into(),
        api_version: p.text("api_version")?,
    };
    let json = st.webhook_endpoint_json(&endpoint, true);
    st.webhook_endpoints.push(endpoint);
    Ok(json)
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
