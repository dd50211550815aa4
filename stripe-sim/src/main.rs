//! The Stripe test double on its own port, and `trigger`, which sends one signed sample event.

use std::process::ExitCode;

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
    Serve(stripe_sim::ServeArgs),
    /// Send one signed sample event to a webhook endpoint, like `stripe trigger`.
    Trigger(stripe_sim::TriggerArgs),
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
        Command::Serve(args) => stripe_sim::run_standalone(args).await,
        Command::Trigger(args) => stripe_sim::trigger_and_report(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stripe-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
