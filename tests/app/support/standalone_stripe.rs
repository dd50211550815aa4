//! [`StandaloneStripe`]: the Stripe test double on a port of its own (so the app under test,
//! in test mode, is a Stripe client like any other), held by the test, with a client for
//! acting as Stripe's user.
//!
//! Use it when the test needs "Stripe" in its own hands: the delivery schedule (retries,
//! duplicates, reordering, delays), endpoints that nobody answers, injected refusals
//! (`add_fault`), the delivery log, objects read as the API has them, and waiting until every
//! delivery has settled: the reconciler and resilience stories.

use std::time::Duration;

use serde_json::Value;
use stripe_sim::{DeliveryOptions, SimOptions, StripeSim};
use tokio::net::TcpListener;

use crate::support::app::{Backend, TestApp};

pub struct StandaloneStripe {
    pub sim: StripeSim,
    pub base: String,
    pub client: stripe::Client,
    key: &'static str,
    webhook_secret: &'static str,
}

impl StandaloneStripe {
    /// The double, answering to `key`; the app it starts verifies webhooks with
    /// `webhook_secret`.
    pub async fn start(
        key: &'static str,
        webhook_secret: &'static str,
        delivery: DeliveryOptions,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut options = SimOptions::new(base.clone());
        options.delivery = delivery;
        let sim = StripeSim::open(options).await.expect("open the double");
        let router = sim.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let client = stripe::ClientBuilder::new(key)
            .url(format!("{base}/"))
            .build()
            .expect("client");
        StandaloneStripe {
            sim,
            base,
            client,
            key,
            webhook_secret,
        }
    }

    /// The double whose deliveries nobody hears: one attempt each, to an endpoint nobody
    /// listens on, then given up on (what the reconciler must make up for).
    pub async fn unheard(key: &'static str, webhook_secret: &'static str) -> Self {
        let stripe = Self::start(
            key,
            webhook_secret,
            DeliveryOptions::exponential(Duration::from_millis(20), 0),
        )
        .await;
        stripe
            .sim
            .add_webhook_endpoint("http://127.0.0.1:9/webhooks", webhook_secret);
        stripe
    }

    /// The app in test mode against this double.
    pub async fn app(&self, backend: Backend) -> TestApp {
        TestApp::spawn_with(
            backend,
            &[
                ("STRIPE_SECRET_KEY", self.key),
                ("STRIPE_WEBHOOK_SECRET", self.webhook_secret),
                ("STRIPE_API_BASE", self.base.as_str()),
            ],
        )
        .await
    }

    /// An object as the double's API has it, as JSON.
    pub async fn object(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/{path}", self.base))
            .bearer_auth(self.key)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// Waits until every delivery so far has ended, delivered or given up on (a minute at
    /// most: on a loaded machine, with many tests at once, a retry can take a while).
    pub async fn settled(&self) {
        settled(&self.sim).await;
    }
}

/// Waits (a bounded while) until every delivery of this double is done or given up on: its
/// events are in the app's database.
pub async fn settled(sim: &StripeSim) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pending: Vec<_> = sim
            .deliveries()
            .into_iter()
            .filter(|d| !d.delivered && !d.gave_up)
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} deliveries still pending: {:#?}",
            pending.len(),
            pending
                .iter()
                .map(|d| (
                    &d.event_type,
                    d.in_flight,
                    d.next_attempt_millis,
                    &d.attempt_log
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
