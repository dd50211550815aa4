//! Starting the double on port 0 and talking to it: through async-stripe's client (the
//! contract), raw HTTP (wire details the client hides), and a local webhook receiver.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use stripe_sim::{DeliveryOptions, SimOptions, StripeSim};
use tokio::net::TcpListener;

pub const KEY: &str = "sk_test_billfold_contract";

/// A double listening on 127.0.0.1, and an async-stripe client pointed at it.
pub struct Sim {
    pub sim: StripeSim,
    /// Public base without trailing slash.
    pub base: String,
    pub client: stripe::Client,
}

pub async fn start() -> Sim {
    start_with(
        DeliveryOptions::exponential(Duration::from_millis(100), 3),
        None,
    )
    .await
}

/// Fails the test that makes async-stripe read a value its enum does not know: the double
/// spelled something as another API version does (as `ui_mode: "hosted"` once was). Async-stripe
/// only logs such a value (`Unknown value '…' for enum '…'`) and carries on; here the log is a
/// panic in the test that parsed it.
pub fn refuse_unknown_enum_values() {
    use tracing_subscriber::layer::SubscriberExt;

    struct UnknownEnumValues;
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for UnknownEnumValues {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() != tracing::Level::WARN {
                return;
            }
            let mut message = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    if field.name() == "message" {
                        message = format!("{value:?}");
                    }
                },
            );
            if message.starts_with("Unknown value") {
                panic!("the double spoke another API version than the pinned one: {message}");
            }
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(UnknownEnumValues);
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

pub async fn start_with(delivery: DeliveryOptions, state_file: Option<std::path::PathBuf>) -> Sim {
    refuse_unknown_enum_values();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let sim = StripeSim::open(SimOptions {
        public_base: base.clone(),
        state_file,
        delivery,
        seed: true,
    })
    .await
    .expect("open the double");
    let router = sim.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = client_for(&base, KEY);
    Sim { sim, base, client }
}

/// The double mounted under a path, as the app mounts it.
pub async fn start_nested(prefix: &str) -> Sim {
    refuse_unknown_enum_values();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}{prefix}");
    let sim = StripeSim::open(SimOptions::new(base.clone()))
        .await
        .expect("open the double");
    let router = Router::new().nest(prefix, sim.router());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = client_for(&base, KEY);
    Sim { sim, base, client }
}

pub fn client_for(base: &str, key: &str) -> stripe::Client {
    stripe::ClientBuilder::new(key)
        .url(format!("{base}/"))
        .build()
        .expect("client")
}

/// A browser-like client that does not follow redirects, so tests can read `Location`.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("reqwest")
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Makes a relative `Location` absolute against the double's origin.
pub fn absolute(sim: &Sim, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        let origin = url::Url::parse(&sim.base).expect("base");
        format!(
            "{}://{}{location}",
            origin.scheme(),
            origin
                .host_str()
                .map_or(String::new(), |h| match origin.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
        )
    }
}

pub async fn price(sim: &Sim, lookup_key: &str) -> String {
    let prices = stripe_product::price::ListPrice::new()
        .lookup_keys(vec![lookup_key.to_string()])
        .send(&sim.client)
        .await
        .expect("list prices");
    prices.data[0].id.to_string()
}

pub async fn customer(sim: &Sim, email: &str) -> String {
    stripe_core::customer::CreateCustomer::new()
        .email(email)
        .send(&sim.client)
        .await
        .expect("create customer")
        .id
        .to_string()
}

pub async fn attach(sim: &Sim, card: &str, customer: &str) -> String {
    stripe_payment::payment_method::AttachPaymentMethod::new(card)
        .customer(customer)
        .send(&sim.client)
        .await
        .expect("attach")
        .id
        .to_string()
}

/// A customer with `card` attached and a subscription to `lookup_key` paid with it.
pub async fn subscribed(
    sim: &Sim,
    card: &str,
    lookup_key: &str,
) -> (String, stripe_shared::Subscription) {
    let customer = customer(sim, "subscriber@example.com").await;
    let pm = attach(sim, card, &customer).await;
    let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
    item.price = Some(price(sim, lookup_key).await);
    let sub = stripe_billing::subscription::CreateSubscription::new()
        .customer(&customer)
        .items(vec![item])
        .default_payment_method(&pm)
        .send(&sim.client)
        .await
        .expect("create subscription");
    (customer, sub)
}

/// A subscription as the API has it now.
pub async fn retrieve_subscription(
    sim: &Sim,
    id: &stripe_shared::SubscriptionId,
) -> stripe_shared::Subscription {
    stripe_billing::subscription::RetrieveSubscription::new(id.clone())
        .send(&sim.client)
        .await
        .expect("retrieve the subscription")
}

/// GETs a double URL with the test key (admin endpoints, raw wire checks).
pub async fn get_json(sim: &Sim, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sim.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

pub async fn post_form(sim: &Sim, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sim.base))
        .bearer_auth(KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// DELETEs a double URL with the test key.
pub async fn delete(sim: &Sim, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .delete(format!("{}{path}", sim.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// Every event the double has recorded, oldest first, as raw JSON.
pub async fn all_events(sim: &Sim) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/events?limit=100&starting_after={a}"),
            None => "/v1/events?limit=100".to_string(),
        };
        let (_, page) = get_json(sim, &path).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data
            .last()
            .and_then(|e| e["id"].as_str())
            .map(str::to_string);
        events.extend(data);
        if page["has_more"] != true {
            break;
        }
    }
    events.reverse();
    events
}

pub async fn events_of(sim: &Sim, event_type: &str) -> Vec<serde_json::Value> {
    all_events(sim)
        .await
        .into_iter()
        .filter(|e| e["type"] == event_type)
        .collect()
}

/// One webhook delivery as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub signature: Option<String>,
    pub body: String,
    pub at: std::time::Instant,
    pub answered: u16,
}

/// A local webhook endpoint that fails the first `fail_first` deliveries with a 500.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn all(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for what was received (up to `timeout`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let all = self.all();
            if pred(&all) || std::time::Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: usize,
    seen: Arc<AtomicUsize>,
}

async fn receive(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = s.seen.fetch_add(1, Ordering::SeqCst);
    let status = if n < s.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    s.received.lock().expect("lock").push(Received {
        signature: headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
        answered: status.as_u16(),
    });
    status
}

pub async fn receiver(fail_first: usize) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let received = Arc::new(Mutex::new(Vec::new()));
    let state = ReceiverState {
        received: received.clone(),
        fail_first,
        seen: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        received,
    }
}
