//! One adversarial schedule: the lifecycle's events delivered to every replica in an order
//! of its own, with drops, duplicates, delays and concurrency, and at most one disruption:
//! a SIGKILL mid-burst, a window of failing statements, or a database outage.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use billfold::reconcile;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use sea_orm::ConnectionTrait;

use crate::{apps::Answer, faults, world::World, Tally, SECRET};

type Event<'a> = &'a (String, String);

/// Deliveries in a wave go out at once; waves go out one after another.
type Plan<'a> = Vec<Vec<Event<'a>>>;

/// What happens to a process or the database during the burst, at the first replica's
/// wave `at`.
enum Disruption {
    None,
    /// SIGKILL to `replica`, `after_ms` into the wave (so deliveries are in flight).
    Kill {
        replica: usize,
        at: usize,
        after_ms: u64,
    },
    /// `percent` of writes to Billfold's tables fail from wave `from` to wave `to`.
    Faults {
        from: usize,
        to: usize,
        percent: u32,
    },
    /// The database stops before wave `at`, for the run's outage length.
    Outage {
        at: usize,
    },
}

/// A delivery not answered 2xx, to be sent again as Stripe would.
struct Pending<'a> {
    replica: usize,
    event: Event<'a>,
    first: Instant,
}

/// What the deliveries of one schedule share while they run at once.
#[derive(Default)]
struct Shared<'a> {
    /// Events some replica answered 2xx: each must be recorded, whatever happens next.
    answered: Mutex<BTreeSet<&'a str>>,
    pending: Mutex<Vec<Pending<'a>>>,
    deliveries: AtomicU64,
    /// Deliveries answered 5xx or not at all.
    failures: AtomicU64,
    /// The longest a delivered event waited between its first delivery and its 2xx.
    longest: Mutex<Duration>,
    /// Answers that were neither 2xx, 5xx nor missing (a 4xx to a good event).
    wrong: Mutex<Vec<String>>,
}

impl<'a> Shared<'a> {
    fn note(&self, replica: usize, event: Event<'a>, first: Instant, answer: Answer) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        if answer != Answer::Ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        match answer {
            Answer::Ok => {
                lock(&self.answered).insert(event.0.as_str());
                let mut longest = lock(&self.longest);
                *longest = (*longest).max(first.elapsed());
            }
            Answer::Status(s) if s < 500 => {
                lock(&self.wrong).push(format!("event {} answered {s}", event.0));
            }
            Answer::Status(_) | Answer::Silence => lock(&self.pending).push(Pending {
                replica,
                event,
                first,
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One replica's deliveries: reordered, delayed, duplicated (some at the same moment), in
/// waves of which some go out together.
fn plan<'a>(rng: &mut StdRng, kept: &[Event<'a>], tally: &mut Tally) -> Plan<'a> {
    let mut order: Vec<Event<'a>> = kept.to_vec();
    // Reordered: a full shuffle, or local swaps.
    if rng.random_bool(0.5) {
        order.shuffle(rng);
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
    // Duplicated: some again later, some at the same moment.
    let mut deliveries: Plan<'a> = Vec::new();
    for e in &order {
        let mut wave = vec![*e];
        if rng.random_bool(0.1) {
            wave.push(*e);
            tally.duplicates += 1;
        }
        deliveries.push(wave);
    }
    let again: Vec<Event<'a>> = order
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
    let mut waves: Plan<'a> = Vec::new();
    for d in deliveries {
        match waves.last_mut() {
            Some(last) if rng.random_bool(0.3) && last.len() < 8 => last.extend(d),
            _ => waves.push(d),
        }
    }
    waves
}

impl World {
    /// Back to the state before any event: users and their customers only. Reconciler
    /// cycles stay on record: the replicas' turns are checked over the whole lifecycle.
    /// Replicas' cycles run meanwhile, so a statement here can lose a deadlock to one of
    /// theirs: it is simply run again.
    async fn reset(&self) -> anyhow::Result<()> {
        let mut lost = 0;
        loop {
            match self.reset_once().await {
                Err(e) if billfold::db::lost_to_concurrency(&e) && lost < 10 => lost += 1,
                result => return Ok(result?),
            }
        }
    }

    async fn reset_once(&self) -> Result<(), sea_orm::DbErr> {
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
            "proof_applied",
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

    pub async fn schedule(&self, seed: u64, tally: &mut Tally) -> anyhow::Result<()> {
        faults::arm(&self.db, 0).await?;
        self.reset().await?;
        let mut rng = StdRng::seed_from_u64(seed);
        tally.events += self.events.len() as u64;

        // Dropped: Stripe gave up on them, for every replica.
        let mut kept: Vec<Event> = self.events.iter().collect();
        let mut dropped = 0;
        if rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..4) {
                if !kept.is_empty() {
                    kept.remove(rng.random_range(0..kept.len()));
                    dropped += 1;
                }
            }
        }
        let plans: Vec<Plan> = (0..self.apps.count())
            .map(|_| plan(&mut rng, &kept, tally))
            .collect();
        let waves = plans[0].len().max(1);
        let disruption = if self.outage.is_some() && !kept.is_empty() {
            Disruption::Outage {
                at: rng.random_range(0..waves),
            }
        } else {
            match rng.random_range(0..100) {
                0..10 => Disruption::Kill {
                    replica: rng.random_range(0..self.apps.count()),
                    at: rng.random_range(0..waves),
                    after_ms: rng.random_range(0..20),
                },
                10..25 => {
                    let from = rng.random_range(0..waves);
                    Disruption::Faults {
                        from,
                        to: rng.random_range(from..waves),
                        percent: rng.random_range(5..=30),
                    }
                }
                _ => Disruption::None,
            }
        };

        let shared = Shared::default();
        let bursts = plans
            .into_iter()
            .enumerate()
            .map(|(replica, plan)| self.burst(replica, plan, &disruption, &shared));
        let bursts = futures_util::future::join_all(bursts);
        let (ended, clock) = if let Disruption::Outage { .. } = disruption {
            let (ended, clock) = tokio::join!(bursts, self.outage_clock(&shared));
            (ended, Some(clock))
        } else {
            (bursts.await, None)
        };
        let ended: anyhow::Result<Vec<()>> = ended.into_iter().collect();
        if let Disruption::Faults { .. } = disruption {
            faults::arm(&self.db, 0).await?;
        }
        ended?;
        match disruption {
            Disruption::Kill { .. } => tally.crashes += 1,
            Disruption::Faults { .. } => tally.fault_windows += 1,
            Disruption::Outage { .. } => {
                tally.outages += 1;
                let clock = clock.context("the outage's clock")??;
                self.outage_ends(&shared, clock, tally).await?;
            }
            Disruption::None => {}
        }

        // Stripe retries what was not answered 2xx.
        let longest = self.redeliver(&shared, tally).await?;
        if matches!(disruption, Disruption::Outage { .. }) {
            tally.longest_outage_wait = tally.longest_outage_wait.max(longest.as_secs_f64());
        }
        tally.deliveries += shared.deliveries.load(Ordering::Relaxed);
        let wrong = lock(&shared.wrong).join("; ");
        anyhow::ensure!(wrong.is_empty(), "{wrong}");

        if dropped > 0 {
            tally.dropped += dropped;
            self.reconcile_once().await?;
        }
        self.compare(&kept).await?;
        if dropped > 0 {
            tally.drops_healed += dropped;
        }
        Ok(())
    }

    /// One replica's plan, wave by wave; the first replica's plan also sets off the
    /// disruption.
    async fn burst<'a>(
        &self,
        replica: usize,
        plan: Plan<'a>,
        disruption: &Disruption,
        shared: &Shared<'a>,
    ) -> anyhow::Result<()> {
        let driver = replica == 0;
        let mut waves = plan.into_iter().enumerate();
        while let Some((n, wave)) = waves.next() {
            if self.down.load(Ordering::Relaxed) {
                // Stripe does not wait for one answer before the next delivery: while the
                // database is down (each answer slow to come), the rest goes out at once.
                let rest: Vec<Event> = std::iter::once(wave)
                    .chain(waves.by_ref().map(|(_, w)| w))
                    .flatten()
                    .collect();
                self.wave(replica, rest, shared).await;
                break;
            }
            let send = self.wave(replica, wave, shared);
            match *disruption {
                Disruption::Kill {
                    replica: victim,
                    at,
                    after_ms,
                } if driver && at == n => {
                    let kill = async {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        self.apps.kill_and_restart(victim).await
                    };
                    let ((), killed) = tokio::join!(send, kill);
                    killed?;
                    self.check_durable(shared, "a SIGKILL").await?;
                }
                Disruption::Faults { from, to, percent } if driver && (n == from || n == to) => {
                    if n == from {
                        faults::arm(&self.db, percent).await?;
                    }
                    send.await;
                    if n == to {
                        faults::arm(&self.db, 0).await?;
                    }
                }
                Disruption::Outage { at } if driver && at == n => {
                    self.cluster()?.down().await?;
                    *lock(&self.down_at) = Some(Instant::now());
                    self.down.store(true, Ordering::Relaxed);
                    send.await;
                }
                _ => send.await,
            }
        }
        Ok(())
    }

    /// Sends one wave to one replica, all at once.
    async fn wave<'a>(&self, replica: usize, wave: Vec<Event<'a>>, shared: &Shared<'a>) {
        let sends = wave.into_iter().map(|e| async move {
            let first = Instant::now();
            let answer = self.apps.deliver(replica, SECRET, &e.1).await;
            shared.note(replica, e, first, answer);
        });
        futures_util::future::join_all(sends).await;
    }

    fn cluster(&self) -> anyhow::Result<&crate::cluster::Cluster> {
        self.cluster
            .as_ref()
            .context("an outage needs the private cluster")
    }

    /// An outage's clock, beside the bursts: once the database is down, every replica
    /// must say so on `/healthz`; Stripe keeps retrying (and is answered 5xx); when the
    /// outage's time is up the database comes back. Returns the replicas' health while down
    /// and when the database returned.
    async fn outage_clock(&self, shared: &Shared<'_>) -> anyhow::Result<(Vec<u16>, Instant)> {
        let outage = self.outage.context("an outage length")?;
        let waiting = Instant::now();
        let down_at = loop {
            if let Some(at) = *lock(&self.down_at) {
                break at;
            }
            anyhow::ensure!(
                waiting.elapsed() < Duration::from_secs(600),
                "the burst never took the database down"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut health = Vec::new();
        for i in 0..self.apps.count() {
            health.push(self.apps.health(i).await);
        }
        let back = async {
            tokio::time::sleep_until((down_at + outage).into()).await;
            let up = self.cluster()?.up().await;
            self.down.store(false, Ordering::Relaxed);
            up.map(|()| Instant::now())
        };
        let retries = async {
            while self.down.load(Ordering::Relaxed) {
                self.retry_pass(shared).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let (up_at, ()) = tokio::join!(back, retries);
        Ok((health, up_at?))
    }

    /// After an outage: every replica stayed up, said it was unhealthy, and is healthy
    /// again; every event answered 2xx is still there.
    async fn outage_ends(
        &self,
        shared: &Shared<'_>,
        clock: (Vec<u16>, Instant),
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let (health, up_at) = clock;
        let down_at = lock(&self.down_at).take().context("the outage started")?;
        anyhow::ensure!(
            self.apps.all_alive().await?,
            "a replica died while the database was down"
        );
        anyhow::ensure!(
            health.iter().all(|s| *s == 503),
            "/healthz answered {health:?} while the database was down, not 503 on every replica"
        );
        let deadline = up_at + Duration::from_secs(60);
        for i in 0..self.apps.count() {
            while self.apps.health(i).await != 200 {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "replica {i} did not report healthy within 60 s of the database's return"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tally.longest_recovery = tally.longest_recovery.max(up_at.elapsed().as_secs_f64());
        tally.longest_outage = tally.longest_outage.max((up_at - down_at).as_secs_f64());
        tally.outage_5xx += shared.failures.load(Ordering::Relaxed);
        self.check_durable(shared, "the database outage").await
    }

    /// Every event answered 2xx so far is recorded: a 2xx is sent only after a commit.
    async fn check_durable(&self, shared: &Shared<'_>, after: &str) -> anyhow::Result<()> {
        let answered: Vec<String> = lock(&shared.answered)
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let recorded = self
            .rows("SELECT id, outcome FROM webhook_events WHERE outcome <> 'failed'")
            .await?;
        let lost: Vec<&String> = answered
            .iter()
            .filter(|id| !recorded.contains_key(*id))
            .collect();
        anyhow::ensure!(
            lost.is_empty(),
            "after {after}, events answered 2xx are not recorded: {lost:?}"
        );
        Ok(())
    }

    /// Sends every pending delivery again, at once; what fails stays pending. Returns how
    /// many were sent.
    async fn retry_pass(&self, shared: &Shared<'_>) -> usize {
        let pending: Vec<Pending> = std::mem::take(&mut *lock(&shared.pending));
        let sent = pending.len();
        let sends = pending.into_iter().map(|p| async move {
            let answer = self.apps.deliver(p.replica, SECRET, &p.event.1).await;
            shared.note(p.replica, p.event, p.first, answer);
        });
        futures_util::future::join_all(sends).await;
        sent
    }

    /// Redelivers until every event is answered 2xx (within two minutes); returns the
    /// longest an event waited between its first delivery and its 2xx.
    async fn redeliver(&self, shared: &Shared<'_>, tally: &mut Tally) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pending = lock(&shared.pending).len();
            if pending == 0 {
                return Ok(*lock(&shared.longest));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{pending} deliveries still not answered 2xx after two minutes of redelivery"
            );
            tally.redelivered += self.retry_pass(shared).await as u64;
            if !lock(&shared.pending).is_empty() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// One reconciler cycle by this runner, once no replica holds the lock.
    async fn reconcile_once(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let report = reconcile::run_cycle(&self.state).await?;
            if report.ran {
                anyhow::ensure!(
                    report.succeeded(),
                    "the reconciler cycle failed: {report:?}"
                );
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the reconciler lock stayed taken for a minute"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
