//! The proof: Billfold's database ends equal to Stripe's whatever Stripe, the process and
//! the database do.
//!
//! A seeded lifecycle generator drives the Stripe test double through its API as users and
//! Stripe would (subscriptions with and without trials, plan switches, cancellations and
//! resumptions, failing cards and new ones, test-clock renewals, voided invoices, detached
//! cards, product renames). The double's state at the end is the truth, and its event log is
//! what Stripe would have delivered. Each schedule then delivers those events, signed, over
//! HTTP to real `billfold` processes, adversarially:
//! - shuffled, duplicated (some concurrently), delayed past later events, some dropped;
//! - some schedules SIGKILL the app mid-burst and start it again;
//! - some fail a share of the database's statements for part of the burst;
//! - with `--replicas N`, N processes on one database each receive every event, in their
//!   own order, at once, while each runs reconciler cycles;
//! - with `--outage SECS`, the database is a private PostgreSQL cluster, stopped for SECS
//!   seconds mid-burst and started again.
//!
//! Whatever was not answered 2xx is redelivered, as Stripe would. Where events were dropped,
//! one reconciler cycle runs. Then every stored subscription, payment method (and which is
//! the default), invoice, and price and product name is compared with the double's; every
//! event must be recorded once and applied by exactly one committed transaction; every
//! event answered 2xx before a kill or an outage must still be recorded after it; and no two
//! reconciler cycles may have overlapped.
//!
//! `cargo run --release -p billfold-proof -- [--schedules N]
//!  [--per-lifecycle N] [--customers N] [--db sqlite|postgres] [--seed N] [--only SEED]
//!  [--replicas N] [--outage SECS] [--app-bin PATH]`
//!
//! The app under test is the `billfold` binary (`--app-bin`, default `target/debug/billfold`,
//! or `target/release/billfold` for a release build of this runner). A failing schedule
//! prints its seed; `--only SEED` replays that one alone. Exits non-zero if any schedule did
//! not converge.

mod apps;
mod cluster;
mod compare;
mod faults;
mod schedule;
mod world;

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use world::World;

pub const KEY: &str = "sk_test_proof";
pub const SECRET: &str = "whsec_proof";

pub struct Options {
    schedules: u64,
    per_lifecycle: u64,
    pub customers: usize,
    pub db: String,
    seed: u64,
    only: Option<u64>,
    pub replicas: usize,
    pub outage: Option<u64>,
    pub app_bin: PathBuf,
}

fn options() -> Result<Options, String> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut o = Options {
        schedules: 200,
        per_lifecycle: 25,
        customers: 4,
        db: "sqlite".into(),
        seed: 1,
        only: None,
        replicas: 1,
        outage: None,
        // This crate sits one level below the workspace, whose target directory it reads.
        app_bin: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join(profile)
            .join("billfold"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--schedules" => o.schedules = number(&value)?,
            "--per-lifecycle" => o.per_lifecycle = number(&value)?.max(1),
            "--customers" => o.customers = number(&value)?.max(1) as usize,
            "--db" => o.db = value,
            "--seed" => o.seed = number(&value)?,
            "--only" => o.only = Some(number(&value)?),
            "--replicas" => o.replicas = number(&value)?.clamp(1, 8) as usize,
            "--outage" => o.outage = Some(number(&value)?.max(1)),
            "--app-bin" => o.app_bin = PathBuf::from(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(o.db.as_str(), "sqlite" | "postgres") {
        return Err("--db must be sqlite or postgres".into());
    }
    if o.db == "sqlite" && (o.replicas > 1 || o.outage.is_some()) {
        return Err("--replicas and --outage need --db postgres".into());
    }
    Ok(o)
}

/// What the runs added up to.
#[derive(Default)]
pub struct Tally {
    schedules: u64,
    converged: u64,
    pub events: u64,
    pub deliveries: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub dropped: u64,
    pub drops_healed: u64,
    pub crashes: u64,
    pub fault_windows: u64,
    pub outages: u64,
    pub outage_5xx: u64,
    /// The longest an event waited between its first delivery and its 2xx, in an outage.
    pub longest_outage_wait: f64,
    /// The longest the database was down (at least the outage asked for: a retry pass under
    /// way finishes first).
    pub longest_outage: f64,
    /// The longest from the database's return until every replica reported healthy.
    pub longest_recovery: f64,
    pub reconcile_runs: u64,
    pub runners: u64,
    /// Why deliveries were answered 5xx, as the replicas logged it.
    causes: BTreeMap<String, u64>,
    failed_seeds: Vec<(u64, String)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("proof: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&o).await {
        Ok(tally) if tally.failed_seeds.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("proof: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: &Options) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let mut tally = Tally::default();
    // Schedule seeds are `seed * 1_000_000 + n`; a lifecycle serves `per_lifecycle` of them.
    let seeds: Vec<u64> = match o.only {
        Some(s) => vec![s],
        None => (0..o.schedules).map(|n| o.seed * 1_000_000 + n).collect(),
    };
    let mut by_lifecycle: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for s in seeds {
        by_lifecycle.entry(s / o.per_lifecycle).or_default().push(s);
    }
    for (lifecycle, schedules) in by_lifecycle {
        let world = World::start(o, lifecycle).await?;
        for seed in schedules {
            tally.schedules += 1;
            match world.schedule(seed, &mut tally).await {
                Ok(()) => tally.converged += 1,
                Err(e) => {
                    eprintln!("seed {seed}: did not converge: {e:#}");
                    tally.failed_seeds.push((seed, format!("{e:#}")));
                }
            }
        }
        // No two reconciler cycles overlapped, whichever replica ran them.
        if let Err(e) = world.check_reconcile_runs(&mut tally).await {
            eprintln!("lifecycle {lifecycle}: {e:#}");
            tally
                .failed_seeds
                .push((lifecycle * o.per_lifecycle, format!("{e:#}")));
        }
        for (cause, n) in world.apps.failure_causes() {
            *tally.causes.entry(cause).or_default() += n;
        }
        world.stop().await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "schedules run: {}, converged: {}, events: {}, deliveries: {} ({:.0}/s), duplicates: {}, \
         redelivered after a non-2xx: {}, events dropped: {}, drops healed by the reconciler: {}, \
         crashes survived (SIGKILL mid-burst): {}, statement-fault windows: {}, \
         in {:.1} s on {} with {} replica(s)",
        tally.schedules,
        tally.converged,
        tally.events,
        tally.deliveries,
        tally.deliveries as f64 / secs.max(0.001),
        tally.duplicates,
        tally.redelivered,
        tally.dropped,
        tally.drops_healed,
        tally.crashes,
        tally.fault_windows,
        secs,
        o.db,
        o.replicas,
    );
    if o.replicas > 1 {
        println!(
            "reconciler cycles: {} (replica processes that ran some: {}), checked for overlap in \
             every lifecycle",
            tally.reconcile_runs, tally.runners
        );
    }
    if let Some(secs) = o.outage {
        println!(
            "database outages (at least {secs} s each, longest {:.1} s): {}, deliveries answered \
             5xx or unanswered while down: {}, every replica healthy again at most {:.1} s after \
             the database returned, longest wait from an event's first delivery to its 2xx: {:.1} s",
            tally.longest_outage,
            tally.outages,
            tally.outage_5xx,
            tally.longest_recovery,
            tally.longest_outage_wait
        );
    }
    for (cause, n) in &tally.causes {
        println!("answered 5xx {n} times: {cause}");
    }
    for (seed, why) in &tally.failed_seeds {
        println!(
            "FAILED seed {seed} (replay: --only {seed} --per-lifecycle {}): {why}",
            o.per_lifecycle
        );
    }
    Ok(tally)
}
