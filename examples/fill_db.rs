//! Fills a Billfold database with a big population, in bulk, and optionally times this round's
//! migrations on it: the benchmarks' `--rows` and the migration figures of docs/PERFORMANCE.md.
//!
//! `cargo run --release --example fill_db --features ssr,stripe-sim -- --database-url URL
//!  [--rows N] [--invoices K] [--events E] [--time-migrations M]`
//!
//! - `--rows N`: N customers, each with an account, its personal organisation and membership,
//!   a Stripe customer, a subscription, a default card, K invoices (`--invoices`, default 3)
//!   and its entitlement row; plus E recorded webhook events (`--events`, default 10 × N).
//! - `--time-migrations M`: afterwards, rolls the newest M migrations back and applies them
//!   again one by one, printing each one's time and, on PostgreSQL, the tables it held an
//!   `ACCESS EXCLUSIVE` lock on (sampled every 20 ms from another connection).
//!
//! The database is migrated first (as `billfold migrate` does).

#[path = "common/fill.rs"]
mod fill;

use std::{
    collections::BTreeSet,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

struct Options {
    database_url: String,
    rows: u64,
    invoices: u64,
    events: Option<u64>,
    time_migrations: u32,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        rows: 0,
        invoices: 3,
        events: None,
        time_migrations: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--database-url" => o.database_url = value()?,
            "--rows" => o.rows = number(value()?)?,
            "--invoices" => o.invoices = number(value()?)?,
            "--events" => o.events = Some(number(value()?)?),
            "--time-migrations" => {
                o.time_migrations =
                    u32::try_from(number(value()?)?).map_err(|_| format!("{flag}: too large"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.database_url.is_empty() {
        return Err("--database-url (or DATABASE_URL) is required".into());
    }
    Ok(o)
}

/// The tables other sessions hold `ACCESS EXCLUSIVE` locks on, sampled until `done`.
async fn watch_locks(
    db: DatabaseConnection,
    seen: Arc<Mutex<BTreeSet<String>>>,
    done: Arc<std::sync::atomic::AtomicBool>,
) {
    let sql = "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
               WHERE l.mode = 'AccessExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid() \
               AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace";
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(rows) = db
            .query_all_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
            .await
        {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            for row in rows {
                if let Ok(name) = row.try_get_by_index::<String>(0) {
                    seen.insert(name);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn time_migrations(db: &DatabaseConnection, url: &str, newest: u32) -> Result<(), String> {
    let started = Instant::now();
    Migrator::down(db, Some(newest))
        .await
        .map_err(|e| format!("rolling back: {e}"))?;
    println!(
        "rolled back the newest {newest} migrations in {:.1} s; applying them one by one:",
        started.elapsed().as_secs_f64()
    );
    let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
    loop {
        let pending = Migrator::get_pending_migrations(db)
            .await
            .map_err(|e| e.to_string())?;
        let Some(next) = pending.first() else { break };
        let name = next.name().to_owned();
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = if postgres {
            let watcher_db = billfold::db::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            Some(tokio::spawn(watch_locks(
                watcher_db,
                seen.clone(),
                done.clone(),
            )))
        } else {
            None
        };
        let t = Instant::now();
        Migrator::up(db, Some(1))
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = watcher {
            let _ = w.await;
        }
        let locks = if postgres {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.is_empty() {
                "no ACCESS EXCLUSIVE lock seen".to_owned()
            } else {
                format!(
                    "ACCESS EXCLUSIVE on {}",
                    seen.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        } else {
            "the database's one writer".to_owned()
        };
        println!("  {name:<58} {secs:>8.2} s   {locks}");
    }
    Ok(())
}

async fn counts(db: &DatabaseConnection) -> Result<(), String> {
    for table in [
        "users",
        "organizations",
        "stripe_customers",
        "subscriptions",
        "payment_methods",
        "invoices",
        "webhook_events",
    ] {
        let n = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
            ))
            .await
            .map_err(|e| e.to_string())?
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .unwrap_or(-1);
        println!("  {table:<22} {n:>11} rows");
    }
    Ok(())
}

async fn run(o: Options) -> Result<(), String> {
    let db = billfold::db::connect_and_migrate(&o.database_url)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if o.rows > 0 {
        let started = Instant::now();
        fill::fill(
            &db,
            &fill::Fill {
                customers: o.rows,
                invoices_per_customer: o.invoices,
                events: o.events.unwrap_or(o.rows * 10),
            },
        )
        .await?;
        println!(
            "filled in {:.1} s; the database now holds:",
            started.elapsed().as_secs_f64()
        );
        counts(&db).await?;
    }
    if o.time_migrations > 0 {
        time_migrations(&db, &o.database_url, o.time_migrations).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    billfold::alloc::run("fill_db", main_async())
}

async fn main_async() -> ExitCode {
    let result = match options() {
        Ok(o) => run(o).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fill_db: {e}");
            ExitCode::FAILURE
        }
    }
}
