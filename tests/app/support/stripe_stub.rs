//! [`StripeStub`]: not a double but a canned Stripe API. `GET /v1/{path}` answers what the
//! test `set` there (`404 resource_missing` otherwise) and counts the requests; like Stripe it
//! starts with no subscription schedules. [`spawn`] starts the app in test mode against it, and
//! [`deliver`] / [`deliver_expect`] / [`post_raw`] post signed (or hand-made) webhook events,
//! built from [`super::stripe_objects`].
//!
//! Use it when the test must write the exact event and the exact object a re-fetch gets:
//! signatures, exactly-once, ordering and same-second ties, each event type, other API
//! versions. A test that needs Stripe to behave like Stripe (objects that change as the API is
//! used, deliveries of its own) wants a double instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{extract::State, http::Uri, response::IntoResponse, Router};
use serde_json::{json, Value};
use stripe_sim::signature;
use tokio::net::TcpListener;

use crate::support::{
    app::{Backend, TestApp},
    rows::scalar,
    stripe_objects::{event, price, product, rand_id},
};

pub const SECRET: &str = "whsec_test_secret";

pub fn now() -> i64 {
    billfold::db::clock::now()
}

/// A canned Stripe API: `GET path` answers what `set` put there (404 otherwise) and counts
/// the requests it got.
#[derive(Clone, Default)]
pub struct StripeStub {
    inner: Arc<Mutex<StubState>>,
    pub base: String,
}

#[derive(Default)]
struct StubState {
    answers: HashMap<String, (u16, String)>,
    hits: HashMap<String, usize>,
}

impl StripeStub {
    pub async fn start() -> StripeStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = listener.local_addr().expect("addr");
        let stub = StripeStub {
            inner: Arc::default(),
            base: format!("http://{addr}/"),
        };
        let app = Router::new().fallback(answer).with_state(stub.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // A customer's re-sync lists its schedules and entitlements; like Stripe, the stub has
        // none to begin.
        stub.set_list("subscription_schedules", vec![]);
        // And its active entitlements: none.
        stub.set_list("entitlements/active_entitlements", vec![]);
        stub
    }

    /// What `GET /v1/{path}` answers from now on.
    pub fn set(&self, path: &str, body: Value) {
        self.inner
            .lock()
            .expect("stub lock")
            .answers
            .insert(format!("/v1/{path}"), (200, body.to_string()));
    }

    /// A list answer, the way Stripe pages them.
    pub fn set_list(&self, path: &str, items: Vec<Value>) {
        self.set(
            path,
            json!({"object": "list", "data": items, "has_more": false, "url": format!("/v1/{path}")}),
        );
    }

    pub fn hits(&self, path: &str) -> usize {
        self.inner
            .lock()
            .expect("stub lock")
            .hits
            .get(&format!("/v1/{path}"))
            .copied()
            .unwrap_or(0)
    }
}

async fn answer(State(stub): State<StripeStub>, uri: Uri) -> impl IntoResponse {
    let mut state = stub.inner.lock().expect("stub lock");
    *state.hits.entry(uri.path().to_owned()).or_default() += 1;
    let (status, body) = state.answers.get(uri.path()).cloned().unwrap_or_else(|| {
        (
            404,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object"}})
                .to_string(),
        )
    });
    (
        axum::http::StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json")],
        body,
    )
}

/// The app in test mode with `secrets` for webhooks and `stub` as the Stripe API.
pub async fn spawn(backend: Backend, secrets: &str, stub: &StripeStub) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_webhooks"),
            ("STRIPE_WEBHOOK_SECRET", secrets),
            ("STRIPE_API_BASE", stub.base.as_str()),
        ],
    )
    .await
}

/// Posts `body` to the webhook route with the given `Stripe-Signature` (if any).
pub async fn post_raw(app: &TestApp, body: &[u8], header: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    req.send().await.expect("request")
}

/// Posts a correctly signed delivery; returns the status and the JSON answer.
pub async fn deliver(app: &TestApp, body: &str) -> (u16, Value) {
    let header = signature::header_value(SECRET, now(), body.as_bytes());
    let res = post_raw(app, body.as_bytes(), Some(&header)).await;
    let status = res.status().as_u16();
    let json = res.json().await.unwrap_or(Value::Null);
    (status, json)
}

/// Delivers and expects a 200 with `outcome`.
pub async fn deliver_expect(app: &TestApp, body: &str, outcome: &str) {
    let (status, json) = deliver(app, body).await;
    if status != 200 {
        // The recorded error says why, which the response rightly does not.
        let id = serde_json::from_str::<Value>(body).expect("json")["id"].clone();
        let error = scalar(
            app,
            &format!("SELECT error FROM webhook_events WHERE id = {id}").replace('"', "'"),
        )
        .await;
        panic!("{status} {json}: {error:?}");
    }
    assert_eq!(json["outcome"], outcome, "{json}");
}

/// The app's own kind of client, pointed at the stub.
pub fn stripe_client(stub: &StripeStub) -> ::stripe::Client {
    ::stripe::ClientBuilder::new("sk_test_webhooks")
        .url(stub.base.as_str())
        .build()
        .expect("client")
}

/// Seeds the product name for `price_pro` the way Stripe would: a `price.created` event
/// with the product expanded.
pub async fn seed_price(app: &TestApp) {
    let body = event(
        &format!("evt_seed_{:x}", rand_id()),
        "price.created",
        1_600_000_000,
        price("price_pro", product("prod_pro", "Pro"), 2000, "month"),
    );
    deliver_expect(app, &body, "applied").await;
}
