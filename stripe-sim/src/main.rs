//! The Stripe test double on its own port, and `trigger`, which sends one signed sample event.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// A Stripe test double: Stripe's wire format for the API subset Billfold uses.
#[derive(Parser)]
#[command(name = "stripe-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the double (loopback by default) until Ctrl-C.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:12111")]
        addr: SocketAddr,
        /// A webhook endpoint to deliver every event to.
        #[arg(long, requires = "webhook_secret")]
        webhook_url: Option<String>,
        /// The signing secret for that endpoint (`whsec_…`).
        #[arg(long)]
        webhook_secret: Option<String>,
        /// JSON file that keeps the double's state across restarts.
        #[arg(long = "state")]
        state: Option<PathBuf>,
    },
    /// Send one signed sample event to a webhook endpoint, like `stripe trigger`.
    Trigger {
        /// The event type, e.g. `customer.subscription.updated`.
        event_type: String,
        /// The webhook endpoint URL.
        #[arg(long)]
        url: String,
        /// The endpoint's signing secret.
        #[arg(long)]
        secret: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve {
            addr,
            webhook_url,
            webhook_secret,
            state,
        } => stripe_sim::run_standalone(addr, webhook_url, webhook_secret, state).await,
        Command::Trigger {
            event_type,
            url,
            secret,
        } => stripe_sim::trigger_and_report(&event_type, &url, &secret).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stripe-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
