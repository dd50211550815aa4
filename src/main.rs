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
