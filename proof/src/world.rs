//! One lifecycle: the Stripe double driven through it, the database and the `billfold`
//! processes its events are delivered to.

use std::time::Duration;

use billfold::{config::Config, state::AppState};
use billfold_test_support::Scratch;
use rand::{rngs::StdRng, Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::Value;
use stripe_sim::{SimOptions, StripeSim};
use tokio::net::TcpListener;

use crate::{
    apps::{AppEnv, Apps},
    cluster::Cluster,
    faults, Options, KEY, SECRET,
};

pub struct World {
    sim_base: String,
    http: reqwest::Client,
    /// The app under test: one or more `billfold` processes.
    pub apps: Apps,
    /// This runner's own view of the app (not serving): reconciler cycles and the compare.
    pub state: AppState,
    pub db: DatabaseConnection,
    pub customers: Vec<String>,
    /// The double's events, oldest first, as delivered bodies.
    pub events: Vec<(String, String)>,
    /// The private PostgreSQL cluster of the outage schedules.
    pub cluster: Option<Cluster>,
    /// How long an outage lasts, when this run has them.
    pub outage: Option<Duration>,
    /// When the database of the outage under way went down.
    pub down_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Whether the database is down now.
    pub down: std::sync::atomic::AtomicBool,
    _dir: tempfile::TempDir,
    scratch: Scratch,
    _sim: StripeSim,
}

impl World {
    pub async fn start(o: &Options, lifecycle: u64) -> anyhow::Result<World> {
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
        let name = format!("billfold_proof_{lifecycle}");
        let (cluster, scratch) = match o.outage {
            Some(_) => {
                let cluster = Cluster::start().await?;
                let scratch = Scratch::create_on(&cluster.admin_url(), &name).await?;
                (Some(cluster), scratch)
            }
            None => (
                None,
                Scratch::create(&o.db, dir.path(), "BILLFOLD_TEST_PG_URL", &name).await?,
            ),
        };

        // Replicas run reconciler cycles of their own, to show they take turns.
        let reconcile_every = if o.replicas > 1 { "1s" } else { "0" };
        let vars: Vec<(String, String)> = [
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_WEBHOOK_SECRET", SECRET),
            ("STRIPE_API_BASE", sim_base.as_str()),
            ("DATABASE_URL", scratch.url.as_str()),
            ("RECONCILE_EVERY", reconcile_every),
            ("LOG_LEVEL", "warn"),
            // The proof is about billing: its mail goes to the log.
            ("MAIL_DELIVERY", "log"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // This runner's own state: the same settings, never served.
        let config = Config::from_lookup(|k| match k {
            "APP_URL" => Some("http://127.0.0.1:9".to_owned()),
            "RECONCILE_EVERY" => Some("0".to_owned()),
            _ => vars
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone()),
        })?;
        let state = billfold::server::build_state(config).await?;
        let db = state.db.clone();
        faults::install(&db).await?;
        let apps = Apps::start(
            AppEnv {
                bin: o.app_bin.clone(),
                vars,
                logs: dir.path().to_owned(),
            },
            o.replicas,
        )
        .await?;

        let mut world = World {
            sim_base,
            http,
            apps,
            state,
            db,
            customers: Vec::new(),
            events: Vec::new(),
            cluster,
            outage: o.outage.map(Duration::from_secs),
            down_at: Default::default(),
            down: Default::default(),
            _dir: dir,
            scratch,
            _sim: sim.clone(),
        };
        world.live(&sim, &mut world_rng, o.customers).await?;
        world.events = world.recorded_events().await?;
        Ok(world)
    }

    pub async fn stop(self) {
        drop(self.apps);
        self.db.close().await.ok();
        self.scratch.drop_database().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
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

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.api(reqwest::Method::GET, path, &[]).await
    }

    /// Every page of a list.
    pub async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
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
}
