//! The command line: `serve` runs the double on its own port, `trigger` sends one signed
//! sample event to a webhook endpoint (the `stripe-sim` binary and `billfold stripe-sim`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;

use super::{events, model::new_id, sample, DeliveryOptions, SimOptions, StripeSim};

/// What `serve` takes on the command line (the `stripe-sim` binary, or `billfold stripe-sim`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:12111")]
    pub addr: SocketAddr,
    /// A webhook endpoint to deliver every event to.
    #[arg(long, requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// The signing secret for that endpoint (`whsec_…`).
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// JSON file that keeps the double's state across restarts.
    #[arg(long = "state")]
    pub state: Option<PathBuf>,
    /// Start an empty account (no demo catalogue), e.g. to try `billfold catalog apply`.
    #[arg(long)]
    pub empty: bool,
}

/// What `trigger` takes on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct TriggerArgs {
    /// The event type, e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// The webhook endpoint URL.
    #[arg(long)]
    pub url: String,
    /// The endpoint's signing secret.
    #[arg(long)]
    pub secret: String,
}

/// Runs the double on its own port until Ctrl-C, optionally with one webhook endpoint
/// registered and its state in a file.
pub async fn run_standalone(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        addr,
        webhook_url,
        webhook_secret,
        state: state_file,
        empty,
    } = args;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the Stripe test double is listening on {addr}, which is not a loopback address; \
             anyone who can reach it can read and change its data"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let sim = StripeSim::open(SimOptions {
        public_base: format!("http://{local}"),
        state_file,
        delivery: DeliveryOptions::default(),
        seed: !empty,
    })
    .await?;
    if let Some(url) = webhook_url {
        let secret = webhook_secret.unwrap_or_else(|| new_id("whsec_", 32));
        let id = sim.add_webhook_endpoint(&url, &secret);
        tracing::info!("webhook endpoint {id} → {url}");
    }
    tracing::info!("Stripe test double listening on http://{local} (API base http://{local}/)");
    println!("Stripe test double: http://{local}/  (use STRIPE_API_BASE=http://{local}/ and any sk_test_ key)");
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the Stripe test double")?;
    Ok(())
}

/// Sends one realistic, signed sample event of `event_type` to `url` (like `stripe trigger`);
/// returns the HTTP status the endpoint answered with.
pub async fn trigger(event_type: &str, url: &str, secret: &str) -> anyhow::Result<u16> {
    let payload = sample::event_payload(event_type)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    events::send_signed(&http, url, secret, payload, Duration::from_secs(20))
        .await
        .map_err(|e| anyhow::anyhow!("delivering {event_type} to {url}: {e}"))
}

/// The event types `trigger` can send.
pub fn trigger_event_types() -> Vec<&'static str> {
    sample::EVENT_TYPES.to_vec()
}

/// [`trigger`], printing what the endpoint answered; an answer other than 2xx is an error.
pub async fn trigger_and_report(args: TriggerArgs) -> anyhow::Result<()> {
    let TriggerArgs {
        event_type,
        url,
        secret,
    } = args;
    let status = trigger(&event_type, &url, &secret).await?;
    println!("{event_type} → {url}: HTTP {status}");
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(anyhow::anyhow!("the endpoint answered HTTP {status}"))
    }
}
