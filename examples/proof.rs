//! The proof: Billfold's database ends equal to Stripe's whatever Stripe does with its
//! webhooks.
//!
//! A seeded lifecycle generator drives the Stripe test double through its API as users and
//! Stripe would (subscriptions with and without trials, plan switches, cancellations and
//! resumptions, failing cards and new ones, test-clock renewals, voided invoices, detached
//! cards, product renames). The double's state at the end is the truth, and its event log is
//! what Stripe would have delivered. Each schedule then delivers those events, signed, over
//! HTTP to a real Billfold (the whole router on a loopback port), adversarially: shuffled,
//! duplicated (some concurrently), delayed past later events, some dropped; non-2xx answers
//! are redelivered, as Stripe would. Where events were dropped, one reconciler cycle runs.
//! Then every stored subscription, payment method (and which is the default), invoice, and
//! price and product name is compared with the double's, and every event must be recorded
//! exactly once.
//!
//! `cargo run --release --example proof --features ssr,stripe-sim -- [--schedules N]
//!  [--per-lifecycle N] [--customers N] [--db sqlite|postgres] [--seed N] [--only SEED]`
//!
//! A failing schedule prints its seed; `--only SEED` replays that one alone. Exits non-zero
//! if any schedule did not converge.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::ExitCode,
    time::{Duration, Instant},
};

use billfold::{config::Config, reconcile, state::AppState};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::Value;
use stripe_sim::{signature, SimOptions, StripeSim};
use tokio::{net::TcpListener, sync::oneshot};

#[path = "support/mod.rs"]
mod support;
use support::Scratch;

const KEY: &str = "sk_test_proof";
const SECRET: &str = "whsec_proof";

struct Options {
    schedules: u64,
    per_lifecycle: u64,
    customers: usize,
    db: String,
    seed: u64,
    only: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        schedules: 200,
        per_lifecycle: 25,
        customers: 4,
        db: "sqlite".into(),
        seed: 1,
        only: None,
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
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(o.db.as_str(), "sqlite" | "postgres") {
        return Err("--db must be sqlite or postgres".into());
    }
    Ok(o)
}

/// What the runs added up to.
#[derive(Default)]
struct Tally {
    schedules: u64,
    converged: u64,
    events: u64,
    deliveries: u64,
    duplicates: u64,
    redelivered: u64,
    dropped: u64,
    drops_healed: u64,
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
        world.stop().await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "schedules run: {}, converged: {}, events: {}, deliveries: {} ({:.0}/s), duplicates: {}, \
         redelivered after a non-2xx: {}, events dropped: {}, drops healed by the reconciler: {}, \
         in {:.1} s on {}",
        tally.schedules,
        tally.converged,
        tally.events,
        tally.deliveries,
        tally.deliveries as f64 / secs.max(0.001),
        tally.duplicates,
        tally.redelivered,
        tally.dropped,
        tally.drops_healed,
        secs,
        o.db,
    );
    for (seed, why) in &tally.failed_seeds {
        println!(
            "FAILED seed {seed} (replay: --only {seed} --per-lifecycle {}): {why}",
            o.per_lifecycle
        );
    }
    Ok(tally)
}

/// One lifecycle: a double driven through it, and a Billfold to deliver its events to.
struct World {
    sim_base: String,
    http: reqwest::Client,
    app_base: String,
    state: AppState,
    db: DatabaseConnection,
    customers: Vec<String>,
    /// The double's events, oldest first, as delivered bodies.
    events: Vec<(String, String)>,
    shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    scratch: Scratch,
    _sim: StripeSim,
}

impl World {
    async fn start(o: &Options, lifecycle: u64) -> anyhow::Result<World> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sim_base = format!("http://{}", listener.local_addr()?);
        let sim = StripeSim::open(SimOptions::new(sim_base.clone())).await?;
        let router = sim.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = reqwest::Client::new();
        let mut world_rng = StdRng::seed_from_u64(lifecycle ^ 0x5eed);

        let dir = tempfile::tempdir()?;
        let scratch = Scratch::create(
            &o.db,
            dir.path(),
            "BILLFOLD_TEST_PG_URL",
            &format!("billfold_proof_{lifecycle}"),
        )
        .await?;

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app_base = format!("http://{addr}");
        let vars = [
            ("STRIPE_SECRET_KEY", KEY.to_owned()),
            ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
            ("STRIPE_API_BASE", sim_base.clone()),
            ("DATABASE_URL", scratch.url.clone()),
            ("APP_URL", app_base.clone()),
            ("BIND_ADDR", addr.to_string()),
            ("RECONCILE_EVERY", "0".to_owned()),
            ("LOG_LEVEL", "error".to_owned()),
        ];
        let config = Config::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        })?;
        let state = billfold::server::build_state(config).await?;
        let db = state.db.clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let state = state.clone();
            async move {
                let _ = billfold::server::serve_on(listener, state, async {
                    let _ = stopped.await;
                })
                .await;
            }
        });

        let mut world = World {
            sim_base,
            http,
            app_base,
            state,
            db,
            customers: Vec::new(),
            events: Vec::new(),
            shutdown,
            server,
            _dir: dir,
            scratch,
            _sim: sim.clone(),
        };
        world.live(&sim, &mut world_rng, o.customers).await?;
        world.events = world.recorded_events().await?;
        Ok(world)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        self.db.close().await.ok();
        self.scratch.drop_database().await;
    }

    // ----- the double, driven as a user and Stripe would -----------------------------------

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let res = self
            .http
            .request(method, format!("{}/v1/{path}", self.sim_base))
            .bearer_auth(KEY)
            .form(form)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        anyhow::ensure!(
            status.is_success() || status.as_u16() == 402,
            "{path}: {status} {body}"
        );
        Ok(body)
    }

    async fn post(&self, path: &str, form: &[(&str, String)]) -> anyhow::Result<Value> {
        self.api(reqwest::Method::POST, path, form).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.api(reqwest::Method::GET, path, &[]).await
    }

    /// Every page of a list.
    async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page_path = match &after {
                Some(a) => format!("{path}{sep}limit=100&starting_after={a}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page = self.get(&page_path).await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data
                .last()
                .and_then(|x| x["id"].as_str())
                .map(str::to_owned);
            items.extend(data);
            if page["has_more"] != true {
                return Ok(items);
            }
        }
    }

    /// Drives the lifecycle: `n` customers, each through a random run of what users and
    /// Stripe do.
    async fn live(&mut self, sim: &StripeSim, rng: &mut StdRng, n: usize) -> anyhow::Result<()> {
        let prices: Vec<Value> = self.list("prices?active=true").await?;
        let monthly: Vec<String> = prices
            .iter()
            .filter(|p| p["recurring"]["interval"] == "month")
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        anyhow::ensure!(
            monthly.len() >= 2,
            "the double seeds at least two monthly prices"
        );
        for i in 0..n {
            let email = format!("proof{i}@example.com");
            let customer = self.post("customers", &[("email", email.clone())]).await?;
            let cus = customer["id"].as_str().unwrap_or_default().to_owned();
            self.link(&cus, &email).await?;
            let first_card = if rng.random_bool(0.25) {
                "pm_card_chargeCustomerFail"
            } else {
                "pm_card_visa"
            };
            let pm = self.attach(&cus, first_card).await?;
            if rng.random_bool(0.7) {
                self.set_default(&cus, &pm).await?;
            }
            let price = monthly[rng.random_range(0..monthly.len())].clone();
            let mut form = vec![
                ("customer", cus.clone()),
                ("items[0][price]", price),
                ("default_payment_method", pm.clone()),
            ];
            if rng.random_bool(0.4) {
                form.push(("trial_period_days", "7".to_owned()));
            }
            let mut sub = self.post("subscriptions", &form).await?;
            let steps = rng.random_range(2..7);
            for _ in 0..steps {
                let sub_id = sub["id"].as_str().unwrap_or_default().to_owned();
                let ended = matches!(
                    sub["status"].as_str(),
                    Some("canceled" | "incomplete_expired")
                );
                match rng.random_range(0..10) {
                    0 if !ended => {
                        let flag = !sub["cancel_at_period_end"].as_bool().unwrap_or(false);
                        sub = self
                            .post(
                                &format!("subscriptions/{sub_id}"),
                                &[("cancel_at_period_end", flag.to_string())],
                            )
                            .await?;
                    }
                    1 if !ended => {
                        let item = sub["items"]["data"][0]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let now_price = sub["items"]["data"][0]["price"]["id"]
                            .as_str()
                            .unwrap_or_default();
                        let other = monthly
                            .iter()
                            .find(|p| *p != now_price)
                            .cloned()
                            .unwrap_or_default();
                        sub = self
                            .post(
                                &format!("subscriptions/{sub_id}"),
                                &[("items[0][id]", item), ("items[0][price]", other)],
                            )
                            .await?;
                    }
                    2 if !ended => {
                        sub = self
                            .api(
                                reqwest::Method::DELETE,
                                &format!("subscriptions/{sub_id}"),
                                &[],
                            )
                            .await?;
                    }
                    3 | 4 => {
                        // A renewal, a trial's end, or a failed charge retried.
                        let days = [3u64, 8, 15, 31][rng.random_range(0..4)];
                        sim.advance_customer_clock(&cus, Duration::from_secs(days * 86_400))
                            .await?;
                        sub = self.get(&format!("subscriptions/{sub_id}")).await?;
                    }
                    5 => {
                        let card = self.attach(&cus, "pm_card_visa").await?;
                        self.set_default(&cus, &card).await?;
                        if !ended {
                            sub = self
                                .post(
                                    &format!("subscriptions/{sub_id}"),
                                    &[("default_payment_method", card)],
                                )
                                .await?;
                        }
                    }
                    6 => {
                        let cards = self
                            .list(&format!("payment_methods?customer={cus}"))
                            .await?;
                        if cards.len() > 1 {
                            let pick = &cards[rng.random_range(0..cards.len())];
                            let id = pick["id"].as_str().unwrap_or_default();
                            self.post(&format!("payment_methods/{id}/detach"), &[])
                                .await?;
                        }
                    }
                    7 => {
                        let open = self
                            .list(&format!("invoices?customer={cus}&status=open"))
                            .await?;
                        if let Some(inv) = open.first() {
                            let id = inv["id"].as_str().unwrap_or_default();
                            let action = if rng.random_bool(0.5) {
                                "void"
                            } else {
                                "mark_uncollectible"
                            };
                            self.post(&format!("invoices/{id}/{action}"), &[]).await?;
                        }
                    }
                    8 => {
                        let product = sub["items"]["data"][0]["price"]["product"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let name = format!("Plan {}", rng.random_range(100..999));
                        self.post(&format!("products/{product}"), &[("name", name)])
                            .await?;
                    }
                    _ if ended && rng.random_bool(0.5) => {
                        // A second subscription once the first has ended.
                        let price = monthly[rng.random_range(0..monthly.len())].clone();
                        let card = self.attach(&cus, "pm_card_visa").await?;
                        sub = self
                            .post(
                                "subscriptions",
                                &[
                                    ("customer", cus.clone()),
                                    ("items[0][price]", price),
                                    ("default_payment_method", card),
                                ],
                            )
                            .await?;
                    }
                    _ => {}
                }
            }
            self.customers.push(cus);
        }
        Ok(())
    }

    async fn attach(&self, cus: &str, card: &str) -> anyhow::Result<String> {
        let pm = self
            .post(
                &format!("payment_methods/{card}/attach"),
                &[("customer", cus.to_owned())],
            )
            .await?;
        Ok(pm["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn set_default(&self, cus: &str, pm: &str) -> anyhow::Result<()> {
        self.post(
            &format!("customers/{cus}"),
            &[("invoice_settings[default_payment_method]", pm.to_owned())],
        )
        .await?;
        Ok(())
    }

    /// A Billfold user who owns `cus`, as sign-up would have made.
    async fn link(&self, cus: &str, email: &str) -> anyhow::Result<()> {
        let now = billfold::db::clock::now();
        self.db
            .execute_unprepared(&format!(
                "INSERT INTO users (email, password_hash, created_at) VALUES ('{email}', 'x', {now})"
            ))
            .await?;
        self.db
            .execute_unprepared(&format!(
                "INSERT INTO stripe_customers (user_id, livemode, customer_id, email, deleted, created_at) \
                 SELECT id, FALSE, '{cus}', '{email}', FALSE, {now} FROM users WHERE email = '{email}'"
            ))
            .await?;
        Ok(())
    }

    /// The double's event log, oldest first, each as the body a delivery carries.
    async fn recorded_events(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut events = self.list("events").await?;
        events.reverse();
        Ok(events
            .into_iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e.to_string(),
                )
            })
            .collect())
    }

    // ----- one adversarial schedule -------------------------------------------------------

    /// Back to the state before any event: users and their customers only.
    async fn reset(&self) -> anyhow::Result<()> {
        for table in [
            "webhook_events",
            "subscriptions",
            "payment_methods",
            "invoices",
            "prices",
            "products",
            "drift_records",
            "customer_checks",
            "reconcile_state",
        ] {
            self.db
                .execute_unprepared(&format!("DELETE FROM {table}"))
                .await?;
        }
        self.db
            .execute_unprepared(
                "UPDATE stripe_customers SET name = NULL, default_payment_method = NULL, \
                 stripe_event_at = NULL, deleted = FALSE",
            )
            .await?;
        Ok(())
    }

    async fn schedule(&self, seed: u64, tally: &mut Tally) -> anyhow::Result<()> {
        self.reset().await?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<&(String, String)> = self.events.iter().collect();
        tally.events += order.len() as u64;

        // Reordered: a full shuffle, or local swaps.
        if rng.random_bool(0.5) {
            order.shuffle(&mut rng);
        } else {
            for i in 1..order.len() {
                if rng.random_bool(0.3) {
                    order.swap(i - 1, i);
                }
            }
        }
        // Delayed past later events.
        let delayed: Vec<usize> = (0..order.len()).filter(|_| rng.random_bool(0.05)).collect();
        for (n, i) in delayed.iter().enumerate() {
            let e = order.remove(i - n);
            order.push(e);
        }
        // Dropped: Stripe gave up on them.
        let mut dropped = 0;
        if rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..4) {
                if !order.is_empty() {
                    order.remove(rng.random_range(0..order.len()));
                    dropped += 1;
                }
            }
        }
        // Duplicated: some again later, some at the same moment.
        let mut deliveries: Vec<Vec<&(String, String)>> = Vec::new();
        for e in &order {
            let mut wave = vec![*e];
            if rng.random_bool(0.1) {
                wave.push(*e);
                tally.duplicates += 1;
            }
            deliveries.push(wave);
        }
        let again: Vec<&(String, String)> = order
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.1))
            .collect();
        tally.duplicates += again.len() as u64;
        for e in again {
            let at = rng.random_range(0..=deliveries.len());
            deliveries.insert(at, vec![e]);
        }
        // Some waves go out concurrently with the next few.
        let mut waves: Vec<Vec<&(String, String)>> = Vec::new();
        for d in deliveries {
            match waves.last_mut() {
                Some(last) if rng.random_bool(0.3) && last.len() < 8 => last.extend(d),
                _ => waves.push(d),
            }
        }

        let mut failed: Vec<&(String, String)> = Vec::new();
        for wave in waves {
            tally.deliveries += wave.len() as u64;
            let answers =
                futures_util::future::join_all(wave.iter().map(|e| self.deliver(&e.1))).await;
            for (e, ok) in wave.into_iter().zip(answers) {
                if !ok? {
                    failed.push(e);
                }
            }
        }
        // Stripe retries what was not answered 2xx.
        for _ in 0..5 {
            if failed.is_empty() {
                break;
            }
            let mut still = Vec::new();
            for e in failed {
                tally.deliveries += 1;
                tally.redelivered += 1;
                if !self.deliver(&e.1).await? {
                    still.push(e);
                }
            }
            failed = still;
        }
        anyhow::ensure!(
            failed.is_empty(),
            "{} events never answered 2xx",
            failed.len()
        );

        if dropped > 0 {
            tally.dropped += dropped;
            let report = reconcile::run_cycle(&self.state).await?;
            anyhow::ensure!(
                report.succeeded(),
                "the reconciler cycle failed: {report:?}"
            );
        }
        self.compare(&order).await?;
        if dropped > 0 {
            tally.drops_healed += dropped;
        }
        Ok(())
    }

    /// Delivers one event body, signed now; true for a 2xx.
    async fn deliver(&self, body: &str) -> anyhow::Result<bool> {
        let header = signature::header_value(SECRET, billfold::db::clock::now(), body.as_bytes());
        let res = self
            .http
            .post(format!("{}/api/webhooks/stripe", self.app_base))
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(body.to_owned())
            .send()
            .await?;
        Ok(res.status().is_success())
    }

    // ----- the comparison -----------------------------------------------------------------

    async fn compare(&self, delivered: &[&(String, String)]) -> anyhow::Result<()> {
        let mut diffs: Vec<String> = Vec::new();
        let mut products: BTreeMap<String, String> = BTreeMap::new();
        for cus in &self.customers {
            let customer = self.get(&format!("customers/{cus}")).await?;
            let default_pm = customer["invoice_settings"]["default_payment_method"]
                .as_str()
                .map(str::to_owned);

            // Subscriptions.
            let subs = self
                .list(&format!("subscriptions?customer={cus}&status=all"))
                .await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, status, price_id, plan_name, {}, {} \
                     FROM subscriptions WHERE customer_id = '{cus}'",
                    text_bool("cancel_at_period_end"),
                    text_bool("deleted")
                ))
                .await?;
            let ids: BTreeSet<String> = subs
                .iter()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect();
            let row_ids: BTreeSet<String> = rows.keys().cloned().collect();
            if ids != row_ids {
                diffs.push(format!(
                    "{cus}: subscriptions {ids:?} in Stripe, {row_ids:?} stored"
                ));
            }
            for s in &subs {
                let id = s["id"].as_str().unwrap_or_default();
                let Some(row) = rows.get(id) else { continue };
                let price = &s["items"]["data"][0]["price"];
                let product_id = price["product"].as_str().unwrap_or_default().to_owned();
                if !products.contains_key(&product_id) {
                    let p = self.get(&format!("products/{product_id}")).await?;
                    products.insert(
                        product_id.clone(),
                        p["name"].as_str().unwrap_or_default().to_owned(),
                    );
                }
                let status = s["status"].as_str().unwrap_or_default();
                let terminal = matches!(status, "canceled" | "incomplete_expired");
                let want = [
                    status.to_owned(),
                    price["id"].as_str().unwrap_or_default().to_owned(),
                    products[&product_id].clone(),
                    s["cancel_at_period_end"]
                        .as_bool()
                        .unwrap_or(false)
                        .to_string(),
                    terminal.to_string(),
                ];
                if row[1..] != want {
                    diffs.push(format!(
                        "subscription {id}: stored {:?}, Stripe {want:?}",
                        &row[1..]
                    ));
                }
            }

            // Payment methods, and which is the default.
            let cards = self
                .list(&format!("payment_methods?customer={cus}"))
                .await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, {} FROM payment_methods WHERE customer_id = '{cus}'",
                    text_bool("is_default")
                ))
                .await?;
            let ids: BTreeSet<String> = cards
                .iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect();
            let row_ids: BTreeSet<String> = rows.keys().cloned().collect();
            if ids != row_ids {
                diffs.push(format!(
                    "{cus}: cards {ids:?} in Stripe, {row_ids:?} stored"
                ));
            }
            let stored_default: Vec<&String> = rows
                .iter()
                .filter(|(_, r)| r[1] == "true")
                .map(|(id, _)| id)
                .collect();
            let want_default: Vec<&String> =
                default_pm.iter().filter(|d| ids.contains(*d)).collect();
            if stored_default != want_default {
                diffs.push(format!(
                    "{cus}: default card {want_default:?} in Stripe, {stored_default:?} stored"
                ));
                if std::env::var_os("PROOF_DEBUG").is_some() {
                    self.dump(cus).await?;
                }
            }

            // Invoices.
            let invoices = self.list(&format!("invoices?customer={cus}")).await?;
            let rows = self
                .rows(&format!(
                    "SELECT id, status, CAST(amount_paid AS TEXT) FROM invoices WHERE customer_id = '{cus}'"
                ))
                .await?;
            for inv in &invoices {
                let id = inv["id"].as_str().unwrap_or_default();
                let want = [
                    inv["status"].as_str().unwrap_or("draft").to_owned(),
                    inv["amount_paid"].as_i64().unwrap_or_default().to_string(),
                ];
                match rows.get(id) {
                    Some(row) if row[1..] == want => {}
                    Some(row) => diffs.push(format!(
                        "invoice {id}: stored {:?}, Stripe {want:?}",
                        &row[1..]
                    )),
                    None => diffs.push(format!("invoice {id}: not stored")),
                }
            }
        }

        // Prices' product names.
        let prices = self
            .rows("SELECT id, product_id, product_name FROM prices")
            .await?;
        for (id, row) in &prices {
            if let Some(name) = products.get(&row[1]) {
                if &row[2] != name {
                    diffs.push(format!(
                        "price {id}: product name {:?} stored, {name:?} in Stripe",
                        row[2]
                    ));
                }
            }
        }

        // The event log: each delivered event recorded once, none failed.
        let recorded = self.rows("SELECT id, outcome FROM webhook_events").await?;
        let delivered: BTreeSet<&str> = delivered.iter().map(|e| e.0.as_str()).collect();
        for id in &delivered {
            match recorded.get(*id) {
                Some(r) if r[1] == "failed" => {
                    diffs.push(format!("event {id}: recorded as failed"))
                }
                Some(_) => {}
                None => diffs.push(format!("event {id}: delivered, not recorded")),
            }
        }
        anyhow::ensure!(diffs.is_empty(), "{}", diffs.join("; "));
        Ok(())
    }

    /// Prints a customer's events as delivered and what became of them (PROOF_DEBUG).
    async fn dump(&self, cus: &str) -> anyhow::Result<()> {
        let outcomes = self
            .rows("SELECT id, outcome, CAST(attempts AS TEXT) FROM webhook_events")
            .await?;
        for (id, body) in &self.events {
            let e: Value = serde_json::from_str(body)?;
            let o = &e["data"]["object"];
            if o["customer"] != cus && o["id"] != cus {
                continue;
            }
            eprintln!(
                "{id} {} created={} object={} default={} customer={} -> {:?}",
                e["type"],
                e["created"],
                o["id"],
                o["invoice_settings"]["default_payment_method"],
                o["customer"],
                outcomes.get(id.as_str()).map(|r| &r[1..])
            );
        }
        Ok(())
    }

    /// Rows of text columns, keyed by their first column.
    async fn rows(&self, sql: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(backend, sql))
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let mut values = Vec::new();
            while let Ok(v) = row.try_get_by_index::<Option<String>>(values.len()) {
                values.push(v.unwrap_or_default());
            }
            if let Some(key) = values.first().cloned() {
                out.insert(key, values);
            }
        }
        Ok(out)
    }
}

/// A boolean column as `'true'`/`'false'` text, on SQLite and PostgreSQL alike.
fn text_bool(column: &str) -> String {
    format!("CASE WHEN {column} THEN 'true' ELSE 'false' END")
}
