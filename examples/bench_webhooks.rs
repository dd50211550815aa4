//! Webhook throughput: starts the real server (a child process, so its memory is measured
//! alone) on loopback with a fresh SQLite or PostgreSQL database, sends signed ~5 KB
//! `customer.subscription.updated` events for distinct subscriptions over concurrent
//! keep-alive connections, and prints events/s, latency percentiles and the server's peak
//! RSS.
//!
//! `cargo run --release --example bench_webhooks --features ssr,stripe-sim -- --db sqlite|postgres
//!  [--events N] [--subscriptions N] [--concurrency N] [--max-secs N] [--rows N]`
//!
//! `--rows N` first fills the database with N customers (each with its account, organisation,
//! subscription, card and three invoices) and 10 × N recorded events (`examples/common/fill.rs`),
//! so ingest is measured on a big database.
//!
//! PostgreSQL: an admin URL in `BILLFOLD_BENCH_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a throw-away database is created on it.

use std::{
    process::{Child, Command, ExitCode},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[path = "common/fill.rs"]
mod fill;

use billfold_test_support::Scratch;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use stripe_sim::signature;

const SECRET: &str = "whsec_bench_secret";
/// The server's metrics token for this run (it only listens on loopback).
const METRICS_TOKEN: &str = "bench-metrics-token-0123456789abcdef";

struct Options {
    db: String,
    events: usize,
    subscriptions: usize,
    concurrency: usize,
    max_secs: u64,
    rows: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        db: "sqlite".into(),
        events: 30_000,
        subscriptions: 10_000,
        concurrency: 32,
        max_secs: 60,
        rows: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--db" => o.db = value()?,
            "--events" => o.events = number(value()?)?,
            "--subscriptions" => o.subscriptions = number(value()?)?.max(1),
            "--concurrency" => o.concurrency = number(value()?)?.max(1),
            "--max-secs" => o.max_secs = number(value()?)? as u64,
            "--rows" => o.rows = number(value()?)? as u64,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(o.db.as_str(), "sqlite" | "postgres") {
        return Err("--db must be sqlite or postgres".into());
    }
    Ok(o)
}

fn now() -> i64 {
    billfold::db::clock::now()
}

/// A subscription the way Stripe sends it, padded with metadata to a realistic ~5 KB.
fn subscription(id: &str, round: i64) -> Value {
    let price = json!({
        "id": "price_bench", "object": "price", "active": true, "billing_scheme": "per_unit",
        "created": 1_700_000_000, "currency": "usd", "custom_unit_amount": null, "livemode": false,
        "lookup_key": "pro_monthly", "metadata": {}, "nickname": "Pro monthly", "product": "prod_bench",
        "recurring": {"interval": "month", "interval_count": 1, "meter": null, "usage_type": "licensed", "trial_period_days": null},
        "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null, "type": "recurring",
        "unit_amount": 2000, "unit_amount_decimal": "2000",
    });
    let plan = json!({
        "id": "price_bench", "object": "plan", "active": true, "amount": 2000, "amount_decimal": "2000",
        "billing_scheme": "per_unit", "created": 1_700_000_000, "currency": "usd", "interval": "month",
        "interval_count": 1, "livemode": false, "metadata": {}, "meter": null, "nickname": null,
        "product": "prod_bench", "tiers_mode": null, "transform_usage": null, "trial_period_days": null,
        "usage_type": "licensed",
    });
    let start = 1_700_000_000 + round * 2_592_000;
    let item = json!({
        "id": format!("si_{id}"), "object": "subscription_item", "billing_thresholds": null,
        "created": 1_700_000_000, "current_period_start": start, "current_period_end": start + 2_592_000,
        "discounts": [], "metadata": {}, "plan": plan, "price": price, "quantity": 1,
        "subscription": id, "tax_rates": [],
    });
    let metadata: serde_json::Map<String, Value> = (0..24)
        .map(|i| (format!("note_{i:02}"), json!(format!("{:0>64}", i))))
        .collect();
    let mut sub = json!({
        "id": id, "object": "subscription", "application": null, "application_fee_percent": null,
        "automatic_tax": {"enabled": false, "liability": null, "disabled_reason": null},
        "billing_cycle_anchor": 1_700_000_000, "billing_cycle_anchor_config": null,
        "billing_mode": {"type": "classic", "updated_at": null}, "billing_schedules": [],
        "billing_thresholds": null, "cancel_at": null, "cancel_at_period_end": round % 2 == 1,
        "canceled_at": null, "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": "charge_automatically", "created": 1_700_000_000, "currency": "usd",
        "customer": format!("cus_{id}"), "days_until_due": null, "default_payment_method": "pm_bench",
        "default_source": null, "default_tax_rates": [], "description": null, "discounts": [],
        "ended_at": null,
        "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": [item], "has_more": false,
                  "url": format!("/v1/subscription_items?subscription={id}")},
        "latest_invoice": format!("in_{id}_{round}"), "livemode": false,
    });
    let rest = json!({
        "metadata": metadata, "next_pending_invoice_item_invoice": null, "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null, "pending_setup_intent": null, "pending_update": null,
        "schedule": null, "start_date": 1_700_000_000, "status": "active", "test_clock": null,
        "transfer_data": null, "trial_end": null, "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": null,
    });
    if let (Some(sub), Value::Object(rest)) = (sub.as_object_mut(), rest) {
        sub.extend(rest);
    }
    sub
}

fn event(id: &str, event_type: &str, created: i64, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2026-09-30.endive", "created": created,
        "data": {"object": object, "previous_attributes": {"cancel_at_period_end": false}},
        "livemode": false, "pending_webhooks": 1,
        "request": {"id": "req_bench", "idempotency_key": "bench"}, "type": event_type,
    })
    .to_string()
}

/// The server, as a child process running this same binary with `serve`.
fn spawn_server(database_url: &str, addr: &str) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", addr)
        .env("APP_URL", format!("http://{addr}"))
        .env("STRIPE_SECRET_KEY", "sk_test_bench")
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        // No re-fetches happen in this run; nothing listens here.
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .env("LOG_LEVEL", "warn")
        .env("MAIL_DELIVERY", "log")
        .env("METRICS_TOKEN", METRICS_TOKEN)
        // Ingest alone is measured: no reconciler cycles against the address above.
        .env("RECONCILE_EVERY", "0")
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process's CPU time so far (user and system), in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux counts in clock ticks of 1/100 s (sysconf(_SC_CLK_TCK) on every common platform).
    Some(ticks / 100.0)
}

/// One summary of the server's metrics: its count, mean and the quantiles it keeps.
struct Summary {
    count: f64,
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// The summary `name` (with `labels`, as written inside its braces) from a Prometheus text
/// exposition.
fn summary(text: &str, name: &str, labels: &str) -> Option<Summary> {
    let value = |suffix: &str, extra: &str| {
        let mut inside = [labels, extra]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        if !inside.is_empty() {
            inside = format!("{{{inside}}}");
        }
        let key = format!("{name}{suffix}{inside} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let count = value("_count", "")?;
    let sum = value("_sum", "")?;
    Some(Summary {
        count,
        mean: sum / count.max(1.0),
        p50: value("", "quantile=\"0.5\"")?,
        p99: value("", "quantile=\"0.99\"")?,
        max: value("", "quantile=\"1\"")?,
    })
}

/// Where the time went inside the server: group commits' sizes, their statements' time, their
/// commit's time (the disk), and the deliveries' wait for their writer.
async fn print_server_side(client: &reqwest::Client, base: &str) {
    let text = match client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => {
            println!("server side         unknown ({e})");
            return;
        }
    };
    let ms = |s: &Summary| {
        format!(
            "mean {:.2} · p50 {:.2} · p99 {:.2} · max {:.2} ms",
            s.mean * 1e3,
            s.p50 * 1e3,
            s.p99 * 1e3,
            s.max * 1e3
        )
    };
    if let Some(b) = summary(&text, "billfold_webhook_batch_events", "") {
        println!(
            "group commits       {:.0}, events each: mean {:.1} · p50 {:.0} · p99 {:.0} · max {:.0}",
            b.count, b.mean, b.p50, b.p99, b.max
        );
    }
    if let Some(s) = summary(&text, "billfold_webhook_batch_seconds", "step=\"apply\"") {
        println!("  applying a batch  {}", ms(&s));
    }
    if let Some(s) = summary(&text, "billfold_webhook_batch_seconds", "step=\"commit\"") {
        println!("  its commit        {}", ms(&s));
    }
    if let Some(s) = summary(&text, "billfold_webhook_queue_seconds", "") {
        println!("  queued for writer {}", ms(&s));
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn serve() -> Result<(), String> {
    let config = billfold::config::Config::from_env().map_err(|e| e.to_string())?;
    billfold::server::run(config)
        .await
        .map_err(|e| format!("{e:#}"))
}

async fn drive(o: Options) -> Result<(), String> {
    // A throw-away database.
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch = if o.db == "postgres" {
        let admin_url = std::env::var("BILLFOLD_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Scratch::create_on(&admin_url, "billfold_bench").await
    } else {
        Scratch::create(&o.db, tmp.path(), "BILLFOLD_BENCH_PG_URL", "bench").await
    }
    .map_err(|e| format!("{e:#}"))?;
    let database_url = scratch.url.clone();
    if o.rows > 0 {
        let db = billfold::db::connect_and_migrate(&database_url)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let started = Instant::now();
        fill::fill(
            &db,
            &fill::Fill {
                customers: o.rows,
                invoices_per_customer: 3,
                events: o.rows * 10,
            },
        )
        .await?;
        db.close().await.map_err(|e| e.to_string())?;
        // The fill's writes reach the disk before the clock starts, not during the run.
        let _ = Command::new("sync").status();
        println!("filled in {:.1} s", started.elapsed().as_secs_f64());
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let mut child = spawn_server(&database_url, &addr)?;
    let result = run_load(&o, &base, child.id(), &database_url).await;
    let _ = child.kill();
    let _ = child.wait();
    scratch.drop_database().await;
    result
}

async fn run_load(
    o: &Options,
    base: &str,
    server_pid: u32,
    database_url: &str,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the server did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("{base}/api/webhooks/stripe");

    // The plan's name, as Stripe would have sent it before any subscription event.
    let product = json!({
        "id": "prod_bench", "object": "product", "active": true, "created": 1_700_000_000,
        "images": [], "livemode": false, "marketing_features": [], "metadata": {}, "name": "Pro",
        "type": "service", "updated": 1_700_000_000,
    });
    let mut seed_price = subscription("sub_seed", 0)["items"]["data"][0]["price"].clone();
    seed_price["product"] = product;
    let seed = event("evt_bench_seed", "price.created", now() - 3_600, seed_price);
    let status = client
        .post(&url)
        .header(
            "stripe-signature",
            signature::header_value(SECRET, now(), seed.as_bytes()),
        )
        .body(seed)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .status();
    if !status.is_success() {
        return Err(format!("seeding the price failed: HTTP {status}"));
    }

    // Every body is made and signed before the clock starts, so the load generator spends
    // its share of the CPU on sending only.
    let created = now() - 1_000;
    let signed_at = now();
    let bodies: Vec<(String, String)> = (0..o.events)
        .map(|k| {
            let round = (k / o.subscriptions) as i64;
            let sub = format!("sub_bench_{:05}", k % o.subscriptions);
            let body = event(
                &format!("evt_bench_{k:07}"),
                "customer.subscription.updated",
                created + round,
                subscription(&sub, round),
            );
            let header = signature::header_value(SECRET, signed_at, body.as_bytes());
            (header, body)
        })
        .collect();
    let avg_size = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / bodies.len().max(1);
    let bodies = Arc::new(bodies);

    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.max_secs);
    let cpu_before = cpu_secs(server_pid);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..o.concurrency {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        // One client per worker: one keep-alive connection each.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| e.to_string())?;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= bodies.len() || Instant::now() > deadline {
                    break;
                }
                let (header, body) = &bodies[k];
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", header)
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(o.events);
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(server_pid)
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / elapsed);
    let rss = peak_rss_kib(server_pid);
    latencies.sort_unstable();

    let db = Database::connect(database_url)
        .await
        .map_err(|e| e.to_string())?;
    // The benchmark's own events (not those a `--rows` fill recorded).
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(SUM(CASE WHEN outcome = 'applied' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(AVG(LENGTH(payload)) AS BIGINT) FROM webhook_events \
             WHERE id LIKE 'evt_bench_%' AND event_type = 'customer.subscription.updated'",
        ))
        .await
        .map_err(|e| e.to_string())?;
    let scalar = |i| {
        row.as_ref()
            .and_then(|r| r.try_get_by_index::<i64>(i).ok())
            .unwrap_or(-1)
    };
    let (applied, stored) = (scalar(0), scalar(1));

    println!("database            {}", o.db);
    println!(
        "events sent         {} ({} subscriptions, ~{} bytes each)",
        latencies.len(),
        o.subscriptions,
        avg_size
    );
    println!("concurrency         {}", o.concurrency);
    println!("rows filled before  {} customers", o.rows);
    println!("errors (non-2xx)    {errors}");
    println!("applied (in the db) {applied}");
    println!("elapsed             {elapsed:.2} s");
    println!(
        "throughput          {:.0} events/s",
        latencies.len() as f64 / elapsed
    );
    println!("latency p50         {:.2} ms", percentile(&latencies, 0.50));
    println!("latency p99         {:.2} ms", percentile(&latencies, 0.99));
    println!("latency max         {:.2} ms", percentile(&latencies, 1.0));
    println!("payload stored      {stored} bytes per event (average)");
    match cpu {
        Some(cores) => println!("server CPU          {cores:.2} cores"),
        None => println!("server CPU          unknown (no /proc)"),
    }
    match rss {
        Some(kib) => println!("server peak RSS     {:.1} MiB", kib as f64 / 1024.0),
        None => println!("server peak RSS     unknown (no /proc)"),
    }
    print_server_side(&client, base).await;
    Ok(())
}

/// The server it starts is this binary: it allocates as `billfold serve` does.
#[global_allocator]
static ALLOCATOR: billfold::alloc::Allocator = billfold::alloc::ALLOCATOR;

fn main() -> ExitCode {
    billfold::alloc::run("bench_webhooks", run())
}

async fn run() -> ExitCode {
    let result = if std::env::args().nth(1).as_deref() == Some("serve") {
        serve().await
    } else {
        match options() {
            Ok(o) => drive(o).await,
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_webhooks: {e}");
            ExitCode::FAILURE
        }
    }
}
