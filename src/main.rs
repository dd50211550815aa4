use std::process::ExitCode;

use billfold::config::{Config, LogFormat};
use clap::{Parser, Subcommand};

/// Billfold: billing self-service for a SaaS's end users.
#[derive(Parser)]
#[command(name = "billfold", version, about)]
struct Cli {
    /// Run against the built-in Stripe test double: the same as STRIPE_MODE=simulated.
    #[arg(long, global = true)]
    simulated: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Stripe webhook events received: list them, replay them.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Re-read customers from the Stripe API and bring the billing tables in line.
    Sync {
        /// One customer (`cus_…`).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        customer: Option<String>,
        /// Every customer Billfold knows in the current mode.
        #[arg(long)]
        all: bool,
    },
    /// What the reconciler found different from Stripe (and healed), newest first.
    Drift {
        /// Found since: unix seconds, RFC 3339, or an age like `1h` or `2d`.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Run one reconciler cycle now: missed events, then a slice of customers compared.
    Reconcile,
    /// Check this deployment against its Stripe account: key, clock, webhook endpoint, portal,
    /// prices, migrations, reconciler. Exits non-zero if a check fails.
    Doctor,
    /// The Customer Portal configured from billing.toml (BILLING_FILE).
    Portal {
        #[command(subcommand)]
        command: PortalCommand,
    },
    /// The plans for sale (billing.toml's [catalog]) made real in the Stripe account.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// The operators: the accounts that may open /admin/billing. Granted only here, on the
    /// server, to an account that exists.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Run the Stripe test double on its own port (loopback by default).
    #[cfg(feature = "stripe-sim")]
    StripeSim(stripe_sim::ServeArgs),
    /// Send one signed sample event to a webhook endpoint, like `stripe trigger`.
    #[cfg(feature = "stripe-sim")]
    Trigger(stripe_sim::TriggerArgs),
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

#[global_allocator]
static ALLOCATOR: billfold::alloc::Allocator = billfold::alloc::ALLOCATOR;

fn main() -> ExitCode {
    billfold::alloc::run("billfold", run())
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        // The double's own tools read no app settings.
        #[cfg(feature = "stripe-sim")]
        Command::StripeSim(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .init();
            stripe_sim::run_standalone(args).await
        }
        #[cfg(feature = "stripe-sim")]
        Command::Trigger(args) => stripe_sim::trigger_and_report(args).await,
        command => {
            let config = match Config::from_env_or_simulated(cli.simulated) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("billfold: configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_tracing(&config);
            app_command(&config, command).await
        }
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Grant the account with this email the operators' pages.
    Add { email: String },
    /// Take the operators' pages from the account with this email.
    Remove { email: String },
    /// Every operator, with when they were granted.
    List,
}

async fn admin_command(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    use billfold::admin::operators;
    let db = billfold::db::connect_and_migrate(config.database_url.expose()).await?;
    match command {
        AdminCommand::Add { email } => {
            if operators::grant(&db, &email, "cli").await? {
                println!("{} is now an operator", email.trim().to_lowercase());
            } else {
                println!("{} was already an operator", email.trim().to_lowercase());
            }
        }
        AdminCommand::Remove { email } => {
            if operators::revoke(&db, &email).await? {
                println!("{} is no longer an operator", email.trim().to_lowercase());
            } else {
                println!("{} was not an operator", email.trim().to_lowercase());
            }
        }
        AdminCommand::List => print!("{}", operators::format_table(&operators::list(&db).await?)),
    }
    Ok(())
}

#[derive(Subcommand)]
enum PortalCommand {
    /// Create or update the portal configuration so it says what billing.toml says; prints
    /// the field-by-field diff. Running it again changes nothing.
    Apply {
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Create or update the products and prices so the account sells what billing.toml's
    /// catalogue says (a changed amount: a new price, the old one archived); prints each
    /// change. Running it again changes nothing.
    Apply {
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

async fn catalog_apply_command(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    use billfold::{commands::catalog, stripe_api::raw::Rest};
    let rest = Rest::new(config)?;
    let steps = if dry_run {
        let account = catalog::read_account(&rest, &config.catalog).await?;
        catalog::plan(&config.catalog, &account)
    } else {
        catalog::apply(&rest, &config.catalog).await?
    };
    if !dry_run && !steps.is_empty() {
        // The app learns of the new prices from their webhooks too; reading them now means
        // `billfold portal apply`, run next, already sees them.
        let state = billfold::server::build_state(config.clone()).await?;
        billfold::billing::plans::sync_catalogue(&state).await?;
    }
    print!("{}", catalog::format(&steps, dry_run));
    Ok(())
}

async fn doctor_command(config: &Config) -> anyhow::Result<()> {
    use billfold::{commands::doctor, stripe_api::raw::Rest};
    // Not migrated here: pending migrations are one of the things it reports.
    let db = billfold::db::connect(config.database_url.expose()).await?;
    let rest = Rest::new(config)?;
    let checks = doctor::run(config, &db, &rest, billfold::db::clock::now).await;
    print!("{}", doctor::format(&checks));
    if doctor::failed(&checks) {
        anyhow::bail!("the deployment has problems (see FAIL above)");
    }
    Ok(())
}

async fn portal_apply_command(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    use billfold::{commands::portal, stripe_api::raw::Rest};
    let spec = billfold::billing_file::BillingFile::load(&config.billing_file)?.portal;
    let db = billfold::db::connect_and_migrate(config.database_url.expose()).await?;
    if !portal::catalogue_is_loaded(&db).await? {
        let state = billfold::server::build_state(config.clone()).await?;
        billfold::billing::plans::sync_catalogue(&state).await?;
    }
    let rest = Rest::new(config)?;
    let applied = portal::apply(&rest, config, &db, &spec, dry_run).await?;
    print!(
        "{}",
        portal::format_applied(
            &applied,
            dry_run,
            config.stripe.portal_configuration_id.is_some()
        )
    );
    Ok(())
}

/// The commands that run the app or act on its database.
async fn app_command(config: &Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => billfold::server::run(config.clone()).await,
        Command::Migrate => billfold::db::connect_and_migrate(config.database_url.expose())
            .await
            .map(|_| tracing::info!("database is up to date")),
        Command::Webhooks { command } => webhooks_command(config, command).await,
        Command::Sync { customer, all: _ } => sync_command(config, customer).await,
        Command::Drift { since, limit } => drift_command(config, since, limit).await,
        Command::Reconcile => reconcile_command(config).await,
        Command::Doctor => doctor_command(config).await,
        Command::Admin { command } => admin_command(config, command).await,
        Command::Portal {
            command: PortalCommand::Apply { dry_run },
        } => portal_apply_command(config, dry_run).await,
        Command::Catalog {
            command: CatalogCommand::Apply { dry_run },
        } => catalog_apply_command(config, dry_run).await,
        #[cfg(feature = "stripe-sim")]
        Command::StripeSim(_) | Command::Trigger(_) => {
            anyhow::bail!("this command reads no app settings and is run on its own")
        }
    }
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Received events, newest first.
    List {
        /// applied, duplicate, stale, ignored, failed or mode_mismatch.
        #[arg(long)]
        outcome: Option<billfold::webhooks::pipeline::Outcome>,
        /// An event type, e.g. `invoice.payment_failed`.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Received since: unix seconds, RFC 3339, or an age like `1h` or `2d`.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Apply recorded events again (the ordering rules still decide what they change).
    Replay {
        /// One event (`evt_…`).
        #[arg(conflicts_with = "outcome", required_unless_present = "outcome")]
        event_id: Option<String>,
        /// Every event with this outcome, e.g. `failed`.
        #[arg(long)]
        outcome: Option<billfold::webhooks::pipeline::Outcome>,
        /// With --outcome: only events received since (as for `list`).
        #[arg(long, requires = "outcome")]
        since: Option<String>,
    },
}

async fn webhooks_command(config: &Config, command: WebhooksCommand) -> anyhow::Result<()> {
    use billfold::webhooks::{history, pipeline::Pipeline};
    let since = |raw: Option<String>| -> anyhow::Result<Option<i64>> {
        raw.map(|r| history::parse_since(&r, billfold::db::clock::now()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--since: {e}"))
    };
    let db = billfold::db::connect_and_migrate(config.database_url.expose()).await?;
    match command {
        WebhooksCommand::List {
            outcome,
            event_type,
            since: raw_since,
            limit,
        } => {
            let filter = history::Filter {
                outcome,
                event_type,
                since: since(raw_since)?,
                limit: Some(limit),
            };
            print!(
                "{}",
                history::format_table(&history::list(&db, &filter).await?)
            );
            Ok(())
        }
        WebhooksCommand::Replay {
            event_id,
            outcome,
            since: raw_since,
        } => {
            let stripe = billfold::stripe_api::client(config)?;
            let p = Pipeline {
                db: &db,
                stripe: &stripe,
                livemode: config.stripe.mode.livemode(),
            };
            if let Some(id) = event_id {
                let done = history::replay(p, &id).await?;
                println!("{} {}: {}", done.event_id, done.event_type, done.outcome);
                return Ok(());
            }
            let filter = history::Filter {
                outcome,
                since: since(raw_since)?,
                ..Default::default()
            };
            let results = history::replay_matching(p, &filter).await?;
            let failed = results.iter().filter(|(_, r)| r.is_err()).count();
            for (id, result) in &results {
                match result {
                    Ok(outcome) => println!("{id}: {outcome}"),
                    Err(e) => println!("{id}: failed: {e}"),
                }
            }
            println!("{} replayed, {failed} failed", results.len());
            if failed > 0 {
                anyhow::bail!("{failed} event(s) failed again");
            }
            Ok(())
        }
    }
}

async fn sync_command(config: &Config, customer: Option<String>) -> anyhow::Result<()> {
    use billfold::billing::sync;
    let db = billfold::db::connect_and_migrate(config.database_url.expose()).await?;
    let stripe = billfold::stripe_api::client(config)?;
    let report = match customer {
        Some(id) => sync::sync_customer(&db, &stripe, &id).await?,
        None => sync::sync_all(&db, &stripe, config.stripe.mode.livemode()).await?,
    };
    println!(
        "synced: {} customer(s), {} subscription(s), {} payment method(s), {} invoice(s), {} price(s)",
        report.customers, report.subscriptions, report.payment_methods, report.invoices, report.prices
    );
    for (id, error) in &report.failed {
        println!("{id}: failed: {error}");
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} customer(s) could not be synced", report.failed.len());
    }
    Ok(())
}

async fn drift_command(config: &Config, since: Option<String>, limit: u64) -> anyhow::Result<()> {
    use billfold::{reconcile::drift, webhooks::history::parse_since};
    let since = since
        .map(|raw| parse_since(&raw, billfold::db::clock::now()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let db = billfold::db::connect_and_migrate(config.database_url.expose()).await?;
    print!(
        "{}",
        drift::format_table(&drift::list(&db, since, limit).await?)
    );
    Ok(())
}

async fn reconcile_command(config: &Config) -> anyhow::Result<()> {
    let state = billfold::server::build_state(config.clone()).await?;
    let report = billfold::reconcile::run_cycle(&state).await?;
    if !report.ran {
        println!("another replica is running a cycle; nothing done");
        return Ok(());
    }
    println!(
        "events: {} listed, {} processed, {} failed; customers compared: {}; drift: {} field(s); {} ms",
        report.events_listed,
        report.events_processed,
        report.events_failed,
        report.customers_compared,
        report.drift,
        report.elapsed.as_millis()
    );
    for (id, error) in &report.failed_customers {
        println!("{id}: failed: {error}");
    }
    if !report.succeeded() {
        anyhow::bail!("the cycle did not get through everything; run it again");
    }
    Ok(())
}
