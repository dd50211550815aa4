use std::process::ExitCode;

use billfold::config::{Config, LogFormat};
use clap::{Parser, Subcommand};

/// Billfold: billing self-service for a SaaS's end users.
#[derive(Parser)]
#[command(name = "billfold", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run the Stripe test double on its own port (loopback by default).
    StripeSim {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:12111")]
        addr: std::net::SocketAddr,
        /// A webhook endpoint to deliver every event to.
        #[arg(long, requires = "webhook_secret")]
        webhook_url: Option<String>,
        /// The signing secret for that endpoint (`whsec_…`).
        #[arg(long)]
        webhook_secret: Option<String>,
        /// JSON file that keeps the double's state across restarts.
        #[arg(long = "state")]
        state: Option<std::path::PathBuf>,
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

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("billfold: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => billfold::server::run(config).await,
        Command::Migrate => billfold::db::connect_and_migrate(config.database_url.expose())
            .await
            .map(|_| tracing::info!("database is up to date")),
        Command::StripeSim {
            addr,
            webhook_url,
            webhook_secret,
            state,
        } => billfold::stripe_sim::run_standalone(addr, webhook_url, webhook_secret, state).await,
        Command::Trigger {
            event_type,
            url,
            secret,
        } => billfold::stripe_sim::trigger(&event_type, &url, &secret)
            .await
            .and_then(|status| {
                println!("{event_type} → {url}: HTTP {status}");
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("the endpoint answered HTTP {status}"))
                }
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("billfold: {e:#}");
            ExitCode::FAILURE
        }
    }
}
