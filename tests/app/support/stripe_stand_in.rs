//! [`StripeStandIn`]: a standalone Stripe double with a recording proxy in front of it, which
//! can also play a broken Stripe (every request, the next n, or the next n to a path answered
//! with a status and Stripe's error envelope, [`stripe_error`]). The app runs in test mode with
//! the proxy as its `STRIPE_API_BASE`.
//!
//! Use it when the test asserts what the app sends to Stripe (a form field, an idempotency
//! key, which customer a session is for) or what the app does when Stripe is down, rate
//! limiting or refusing. For a user's story through a Stripe that works, the mounted double
//! ([`super::app::TestApp::spawn`]) is enough.

use std::sync::{Arc, Mutex};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use stripe_sim::{SimOptions, StripeSim};
use tokio::net::TcpListener;

use crate::support::app::{Backend, TestApp};

pub const KEY: &str = "sk_test_billfold_billing_tests";

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub body: String,
}

impl Recorded {
    /// The decoded form fields, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the proxy does with the next requests.
#[derive(Debug, Clone)]
pub enum Mode {
    Forward,
    /// Answers every request with this status and Stripe error body.
    Fail(StatusCode, serde_json::Value),
    /// Answers the next `n` requests so, then forwards again.
    FailTimes(usize, StatusCode, serde_json::Value),
    /// Answers the next `n` requests whose path contains the text so; forwards the rest.
    FailTimesTo(String, usize, StatusCode, serde_json::Value),
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    mode: Arc<Mutex<Mode>>,
    http: reqwest::Client,
}

pub struct StripeStandIn {
    /// Kept alive for as long as the stand-in is.
    _sim: StripeSim,
    /// The double's own base (no trailing slash).
    pub sim_base: String,
    /// The proxy's base, which the app uses as STRIPE_API_BASE.
    pub proxy_base: String,
    pub client: stripe::Client,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    mode: Arc<Mutex<Mode>>,
}

impl StripeStandIn {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sim_base = format!("http://{}", listener.local_addr().expect("addr"));
        let sim = StripeSim::open(SimOptions::new(sim_base.clone()))
            .await
            .expect("open the double");
        let router = sim.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let recorded = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let state = ProxyState {
            upstream: sim_base.clone(),
            recorded: recorded.clone(),
            mode: mode.clone(),
            http: reqwest::Client::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new().fallback(proxy).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = stripe::ClientBuilder::new(KEY)
            .url(format!("{sim_base}/"))
            .build()
            .expect("client");
        StripeStandIn {
            _sim: sim,
            sim_base,
            proxy_base,
            client,
            recorded,
            mode,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    /// Requests seen so far whose path contains `path_part`.
    pub fn requests_to(&self, path_part: &str) -> Vec<Recorded> {
        self.recorded
            .lock()
            .expect("recorded")
            .iter()
            .filter(|r| r.path.contains(path_part))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.recorded.lock().expect("recorded").clear();
    }

    /// The app, configured with a test key against this stand-in.
    pub async fn app(&self, backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let mut env = vec![
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_WEBHOOK_SECRET", "whsec_billing_tests"),
            ("STRIPE_API_BASE", self.proxy_base.as_str()),
        ];
        env.extend_from_slice(extra);
        TestApp::spawn_with(backend, &env).await
    }
}

async fn proxy(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    state.recorded.lock().expect("recorded").push(Recorded {
        method: method.clone(),
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let failure = {
        let mut mode = state.mode.lock().expect("mode");
        match &mut *mode {
            Mode::Fail(status, body) => Some((*status, body.clone())),
            Mode::FailTimes(n, status, body) if *n > 0 => {
                *n -= 1;
                Some((*status, body.clone()))
            }
            Mode::FailTimesTo(part, n, status, body) if *n > 0 && path.contains(part.as_str()) => {
                *n -= 1;
                Some((*status, body.clone()))
            }
            _ => None,
        }
    };
    if let Some((status, body)) = failure {
        return (status, axum::Json(body)).into_response();
    }
    let mut upstream = state
        .http
        .request(method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(res) => {
            let status = res.status();
            let bytes = res.bytes().await.unwrap_or_default();
            Response::builder()
                .status(status.as_u16())
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .expect("response")
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Stripe's error envelope.
pub fn stripe_error(kind: &str, message: &str, param: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "error": { "type": kind, "message": message, "param": param } })
}
