//! Failures come back in Stripe's envelope with Stripe's statuses; idempotency keys replay.

use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::customer::{CreateCustomer, RetrieveCustomer};

use crate::helpers::*;

async fn raw(
    sim: &Sim,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

fn assert_envelope(body: &serde_json::Value) {
    let error = &body["error"];
    assert!(error["type"].is_string(), "no error.type in {body}");
    assert!(error["message"].is_string(), "no error.message in {body}");
    // async-stripe's own error type parses it.
    let parsed: Result<stripe_shared::ApiErrors, _> = miniserde::json::from_str(&error.to_string());
    assert!(parsed.is_ok(), "async-stripe cannot parse {error}");
}

#[tokio::test]
async fn the_admin_routes_need_a_key_like_the_api() {
    let sim = start().await;
    let cus = customer(&sim, "admin@example.com").await;
    let admin = [
        (reqwest::Method::GET, "/_admin/deliveries".to_string(), ""),
        (
            reqwest::Method::POST,
            format!("/_admin/customers/{cus}/advance"),
            "days=40",
        ),
        (
            reqwest::Method::POST,
            "/_admin/settings".to_string(),
            "retries_exhausted=cancel",
        ),
    ];
    for (method, path, body) in &admin {
        for (auth, refused) in [
            (None, 401),
            (Some("Token x"), 401),
            (Some("Bearer sk_live_x"), 403),
        ] {
            let (status, json) = raw(&sim, method.clone(), path, auth, body).await;
            assert_eq!(status, refused, "{method} {path} with {auth:?}: {json}");
            assert_envelope(&json);
        }
    }
    // Nothing happened: the clock did not move, so there is no renewal and nothing new to deliver.
    let (_, deliveries) = get_json(&sim, "/_admin/deliveries").await;
    assert!(
        deliveries["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|r| !r.to_string().contains("invoice."))),
        "{deliveries}"
    );
}

#[tokio::test]
async fn missing_or_malformed_keys_are_401() {
    let sim = start().await;
    for auth in [
        None,
        Some("Bearer "),
        Some("Bearer pk_test_123"),
        Some("Token sk_test_1"),
    ] {
        let (status, body) = raw(&sim, reqwest::Method::GET, "/v1/customers", auth, "").await;
        assert_eq!(status, 401, "{auth:?}");
        assert_envelope(&body);
    }
    // HTTP basic with the key as the user name works, as with Stripe.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/customers", sim.base))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn live_keys_are_refused() {
    let sim = start().await;
    let live = client_for(&sim.base, "sk_live_realmoney");
    match CreateCustomer::new().send(&live).await {
        Err(StripeError::Stripe(e, status)) => {
            assert_eq!(status, 403);
            assert!(e.message.as_deref().is_some_and(|m| m.contains("live")));
        }
        other => panic!("a live key must be refused, got {other:?}"),
    }
    let (status, body) = raw(
        &sim,
        reqwest::Method::GET,
        "/v1/customers",
        Some("Bearer rk_live_x"),
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert_envelope(&body);
}

#[tokio::test]
async fn unknown_ids_are_404_resource_missing_with_param() {
    let sim = start().await;
    match RetrieveCustomer::new("cus_missing").send(&sim.client).await {
        Err(StripeError::Stripe(e, 404)) => {
            assert_eq!(e.type_.as_str(), "invalid_request_error");
            assert_eq!(
                e.code.as_ref().map(|c| c.as_str()),
                Some("resource_missing")
            );
            assert_eq!(e.param.as_deref(), Some("id"));
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
    item.price = Some("price_missing".into());
    let cus = customer(&sim, "x@example.com").await;
    match stripe_billing::subscription::CreateSubscription::new()
        .customer(&cus)
        .items(vec![item])
        .send(&sim.client)
        .await
    {
        Err(StripeError::Stripe(e, 404)) => assert_eq!(e.param.as_deref(), Some("items[0][price]")),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_and_unknown_routes_answer_in_json() {
    let sim = start().await;
    let auth = Some("Bearer sk_test_123");
    let cases = [
        (reqwest::Method::POST, "/v1/customers", "a[b=1", 400),
        (reqwest::Method::POST, "/v1/customers", "nonsense=1", 400),
        (
            reqwest::Method::POST,
            "/v1/customers",
            "email=not-an-email",
            400,
        ),
        (reqwest::Method::POST, "/v1/subscriptions", "customer=", 400),
        (reqwest::Method::GET, "/v1/customers?limit=1000", "", 400),
        (reqwest::Method::GET, "/v1/nothing/here", "", 404),
        (reqwest::Method::PUT, "/v1/customers", "", 404),
        (reqwest::Method::GET, "/v1", "", 404),
    ];
    for (method, path, body, want) in cases {
        let (status, json) = raw(&sim, method.clone(), path, auth, body).await;
        assert_eq!(status, want, "{method} {path} {body}: {json}");
        assert_envelope(&json);
    }
    let (_, json) = raw(
        &sim,
        reqwest::Method::POST,
        "/v1/customers",
        auth,
        "nonsense=1",
    )
    .await;
    assert_eq!(json["error"]["param"], "nonsense");
    let (_, json) = raw(
        &sim,
        reqwest::Method::POST,
        "/v1/subscriptions",
        auth,
        "customer=",
    )
    .await;
    assert_eq!(json["error"]["code"], "parameter_missing");
}

async fn create_with_key(
    sim: &Sim,
    key: &IdempotencyKey,
    email: &str,
) -> Result<stripe_shared::Customer, StripeError> {
    CreateCustomer::new()
        .email(email)
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&sim.client)
        .await
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    let sim = start().await;
    let key = IdempotencyKey::new("create-customer-user-42").expect("key");
    let first = create_with_key(&sim, &key, "same@example.com")
        .await
        .expect("first");
    let second = create_with_key(&sim, &key, "same@example.com")
        .await
        .expect("replay");
    assert_eq!(first.id, second.id, "the first response is replayed");
    let customers = stripe_core::customer::ListCustomer::new()
        .send(&sim.client)
        .await
        .expect("list");
    assert_eq!(customers.data.len(), 1, "and nothing new was created");
    match create_with_key(&sim, &key, "other@example.com").await {
        Err(StripeError::Stripe(e, 400)) => assert_eq!(e.type_.as_str(), "idempotency_error"),
        other => panic!("expected an idempotency error, got {other:?}"),
    }
    let r = reqwest::Client::new()
        .post(format!("{}/v1/customers", sim.base))
        .bearer_auth(KEY)
        .header("idempotency-key", "create-customer-user-42")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=same%40example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
}

#[tokio::test]
async fn bracket_forms_reach_the_handlers_intact() {
    let sim = start().await;
    let starter = price(&sim, "starter_monthly").await;
    let cus = customer(&sim, "brackets@example.com").await;
    // Raw bracket syntax, including `expand[]` and percent-encoded brackets.
    let (status, cs) = post_form(
        &sim,
        "/v1/checkout/sessions",
        &format!(
            "mode=subscription&customer={cus}&line_items%5B0%5D%5Bprice%5D={starter}&line_items[0][quantity]=2\
             &subscription_data[trial_period_days]=5&subscription_data[metadata][team]=a%26b\
             &metadata[source]=pricing+page&success_url=https://app.example/ok&expand[]=customer"
        ),
    )
    .await;
    assert_eq!(status, 200, "{cs}");
    assert_eq!(cs["amount_total"], 1800);
    assert_eq!(cs["metadata"]["source"], "pricing page");
    assert_eq!(
        cs["customer"]["id"],
        cus.as_str(),
        "expand[] expanded the customer"
    );
    // GET with a trailing `?` and no parameters, as async-stripe sends it.
    let (status, _) = get_json(&sim, &format!("/v1/customers/{cus}?")).await;
    assert_eq!(status, 200);
}

/// The check above every contract test can fail: a value of an older API version (Checkout's
/// `ui_mode: "hosted"`, before `2026-03-25.dahlia` spelled it `hosted_page`) fails the test.
#[test]
#[should_panic(expected = "Unknown value 'hosted' for enum 'CheckoutSessionUiMode'")]
fn an_older_versions_spelling_fails_the_contract() {
    crate::helpers::refuse_unknown_enum_values();
    let _: stripe_shared::CheckoutSessionUiMode = "hosted".parse().expect("infallible");
}
