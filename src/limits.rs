//! Rate limits per key: "a burst of N, then one more every period / N" (GCRA, the generic cell
//! rate algorithm), so a client that waits gets its attempts back a little at a time.
//!
//! One [`Limiter`] holds every limit's counts; a [`Rule`] says how many attempts a key gets.
//! An attempt names one or more keys (say an email with a client address, the email alone,
//! and the client alone), each under its own rule: every key is checked before any is
//! charged, so a refused attempt costs nothing on any key.
//!
//! Where the counts live follows the database:
//! - **SQLite** (one process owns the file): in memory, in a map bounded in size. Keys whose
//!   time has passed are swept; when the map is still full, a new key is refused rather than
//!   let the map grow.
//! - **PostgreSQL** (any number of replicas): one row per key in `rate_limits`, holding the
//!   key's theoretical arrival time. An attempt locks its keys' rows (in key order), decides,
//!   and writes them in one transaction timed by the database's clock, so every replica counts
//!   against the same budget and no two replicas' clocks need to agree. Rows whose time has
//!   passed are as good as absent and are swept now and then.
//!
//! Keys are bounded by whoever makes them ([`bounded`]): nothing a stranger sends becomes a
//! key unparsed.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use sea_orm::{sqlx, DatabaseConnection, DbBackend};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// How many keys the in-memory store holds at most.
pub const LOCAL_CAPACITY: usize = 50_000;
/// One check in this many also sweeps the keys that are fresh again.
const CHECKS_PER_SWEEP: u32 = 1_000;
/// The longest a key may be; [`bounded`] hashes anything longer.
pub const MAX_KEY_BYTES: usize = 300;

/// A named limit: `burst` attempts, given back one every `period / burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Prefixes every key, so two rules never share a count.
    pub name: &'static str,
    pub burst: u32,
    pub period: Duration,
}

impl Rule {
    pub const fn new(name: &'static str, burst: u32, period: Duration) -> Self {
        Rule {
            name,
            burst,
            period,
        }
    }

    /// The time one attempt takes to come back, in milliseconds (at least one).
    fn interval_ms(&self) -> i64 {
        let interval = self.period.as_millis() / u128::from(self.burst.max(1));
        i64::try_from(interval).unwrap_or(i64::MAX).max(1)
    }

    /// How far ahead of now a key's arrival time may be after an attempt that is let through.
    fn window_ms(&self) -> i64 {
        self.interval_ms()
            .saturating_mul(i64::from(self.burst.max(1)))
    }

    /// One attempt against `key` under this rule.
    pub fn on(&'static self, key: impl Into<String>) -> Charge {
        Charge {
            rule: self,
            key: key.into(),
        }
    }
}

/// One key an attempt is counted against, under its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub rule: &'static Rule,
    pub key: String,
}

impl Charge {
    /// The key as stored: the rule's name, then the key (already bounded by its maker).
    fn stored_key(&self) -> String {
        bounded(&format!("{}:{}", self.rule.name, self.key))
    }
}

/// `raw` if it is at most [`MAX_KEY_BYTES`], else a fixed-length digest of it: a key a
/// stranger's input went into never grows with that input.
pub fn bounded(raw: &str) -> String {
    if raw.len() <= MAX_KEY_BYTES {
        raw.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(raw.as_bytes())))
    }
}

/// Why an attempt was not let through.
#[derive(Debug)]
pub enum Refused {
    /// Over the limit: the attempt may be made again after this long.
    Wait(Duration),
    /// The in-memory store is full of keys still counting; nothing new is let in until some
    /// of them are fresh again.
    Full,
    /// The shared count could not be read.
    Database(String),
}

/// Every limit's counts, in this process or in the database.
pub struct Limiter {
    store: Store,
    checks: AtomicU32,
}

enum Store {
    Local(Mutex<LocalStore>),
    Shared(sqlx::PgPool),
}

/// Arrival times in milliseconds since `epoch`.
struct LocalStore {
    epoch: Instant,
    tats: HashMap<String, i64>,
    capacity: usize,
}

impl LocalStore {
    fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn sweep(&mut self, now: i64) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.capacity() > 2 * self.tats.len().max(1024) {
            self.tats.shrink_to_fit();
        }
    }
}

impl Limiter {
    /// Counts kept in this process, at most `capacity` keys.
    pub fn local(capacity: usize) -> Self {
        Limiter {
            store: Store::Local(Mutex::new(LocalStore {
                epoch: Instant::now(),
                tats: HashMap::new(),
                capacity,
            })),
            checks: AtomicU32::new(0),
        }
    }

    /// Counts shared by every process on `db` when it is PostgreSQL; in this process otherwise.
    pub fn for_database(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() == DbBackend::Postgres {
            Limiter {
                store: Store::Shared(db.get_postgres_connection_pool().clone()),
                checks: AtomicU32::new(0),
            }
        } else {
            Self::local(LOCAL_CAPACITY)
        }
    }

    /// Whether the counts are in the database (shared by replicas).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared(_))
    }

    /// How many keys the in-memory store holds (0 when the counts are in the database).
    pub fn local_keys(&self) -> usize {
        self.local_key_sizes().0
    }

    /// The in-memory store's key count and its longest key in bytes ((0, 0) when the counts
    /// are in the database).
    pub fn local_key_sizes(&self) -> (usize, usize) {
        match &self.store {
            Store::Local(store) => store
                .lock()
                .map(|s| {
                    let longest = s.tats.keys().map(String::len).max().unwrap_or(0);
                    (s.tats.len(), longest)
                })
                .unwrap_or((0, 0)),
            Store::Shared(_) => (0, 0),
        }
    }

    /// Counts an attempt against every key, if every key has room for it; otherwise refuses
    /// with the longest wait and charges no key.
    pub async fn check(&self, charges: &[Charge]) -> Result<(), Refused> {
        let sweep = self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECKS_PER_SWEEP);
        match &self.store {
            Store::Local(store) => {
                let mut store = store
                    .lock()
                    .map_err(|_| Refused::Database("rate limit store poisoned".into()))?;
                check_local(&mut store, charges, sweep)
            }
            Store::Shared(pool) => check_shared(pool, charges, sweep).await,
        }
    }

    /// [`check`](Self::check), with a refusal as the error a person reads (429 with
    /// `Retry-After`; a full store is 503 for a moment; an unreadable shared count is an
    /// internal error, logged).
    pub async fn enforce(&self, charges: &[Charge], message: &str) -> Result<(), AppError> {
        self.check(charges).await.map_err(|refused| match refused {
            Refused::Wait(wait) => AppError::rate_limited(message, wait),
            Refused::Full => {
                tracing::warn!("rate limits: the in-memory store is full; refusing new keys");
                AppError::busy(Duration::from_secs(5))
            }
            Refused::Database(e) => AppError::internal(format!("rate limit: {e}")),
        })
    }

    /// Forgets the keys' counts: the next attempt starts a fresh burst.
    pub async fn reset(&self, charges: &[Charge]) -> Result<(), Refused> {
        let keys: Vec<String> = charges.iter().map(Charge::stored_key).collect();
        match &self.store {
            Store::Local(store) => {
                let mut store = store
                    .lock()
                    .map_err(|_| Refused::Database("rate limit store poisoned".into()))?;
                for key in &keys {
                    store.tats.remove(key);
                }
                Ok(())
            }
            Store::Shared(pool) => sqlx::query("DELETE FROM rate_limits WHERE key = ANY($1)")
                .bind(&keys)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| Refused::Database(e.to_string())),
        }
    }

    /// Gives each key back the one attempt it was charged.
    pub async fn refund(&self, charges: &[Charge]) -> Result<(), Refused> {
        match &self.store {
            Store::Local(store) => {
                let mut store = store
                    .lock()
                    .map_err(|_| Refused::Database("rate limit store poisoned".into()))?;
                for charge in charges {
                    if let Some(tat) = store.tats.get_mut(&charge.stored_key()) {
                        *tat -= charge.rule.interval_ms();
                    }
                }
                Ok(())
            }
            Store::Shared(pool) => {
                let keys: Vec<String> = charges.iter().map(Charge::stored_key).collect();
                let intervals: Vec<i64> = charges.iter().map(|c| c.rule.interval_ms()).collect();
                sqlx::query(
                    "UPDATE rate_limits AS r SET tat_ms = r.tat_ms - v.ms \
                     FROM unnest($1::text[], $2::bigint[]) AS v(key, ms) WHERE r.key = v.key",
                )
                .bind(&keys)
                .bind(&intervals)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| Refused::Database(e.to_string()))
            }
        }
    }
}

/// The GCRA decision for one key: its new arrival time if the attempt is let through, else
/// how long until it would be.
fn decide(rule: &Rule, tat: Option<i64>, now: i64) -> Result<i64, Duration> {
    let new_tat = tat.unwrap_or(now).max(now) + rule.interval_ms();
    let ahead = new_tat - now;
    if ahead <= rule.window_ms() {
        Ok(new_tat)
    } else {
        let wait = (ahead - rule.window_ms()).max(1);
        Err(Duration::from_millis(wait.unsigned_abs()))
    }
}

/// All-or-nothing over `decisions`: the new arrival times, or the longest wait.
fn all_let_through(decisions: Vec<Result<i64, Duration>>) -> Result<Vec<i64>, Refused> {
    let mut wait = Duration::ZERO;
    let mut tats = Vec::with_capacity(decisions.len());
    for decision in decisions {
        match decision {
            Ok(tat) => tats.push(tat),
            Err(w) => wait = wait.max(w),
        }
    }
    if wait.is_zero() {
        Ok(tats)
    } else {
        Err(Refused::Wait(wait))
    }
}

fn check_local(store: &mut LocalStore, charges: &[Charge], sweep: bool) -> Result<(), Refused> {
    let now = store.now_ms();
    if sweep {
        store.sweep(now);
    }
    let keys: Vec<String> = charges.iter().map(Charge::stored_key).collect();
    let decisions = charges
        .iter()
        .zip(&keys)
        .map(|(charge, key)| decide(charge.rule, store.tats.get(key).copied(), now))
        .collect();
    let tats = all_let_through(decisions)?;
    let new_keys = keys.iter().filter(|k| !store.tats.contains_key(*k)).count();
    if store.tats.len() + new_keys > store.capacity {
        store.sweep(now);
        if store.tats.len() + new_keys > store.capacity {
            return Err(Refused::Full);
        }
    }
    for (key, tat) in keys.into_iter().zip(tats) {
        store.tats.insert(key, tat);
    }
    Ok(())
}

async fn check_shared(pool: &sqlx::PgPool, charges: &[Charge], sweep: bool) -> Result<(), Refused> {
    let database = |e: sqlx::Error| Refused::Database(e.to_string());
    // Rows are locked in key order, so two attempts over the same keys never deadlock.
    let mut keyed: Vec<(String, &Rule)> =
        charges.iter().map(|c| (c.stored_key(), c.rule)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    let keys: Vec<String> = keyed.iter().map(|(k, _)| k.clone()).collect();

    let mut tx = pool.begin().await.map_err(database)?;
    let now: i64 =
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            .fetch_one(&mut *tx)
            .await
            .map_err(database)?;
    // Every key gets a row first (in key order; a row already there is left alone), so the
    // locks below are all taken in key order. Without it, a key with no row yet is not locked
    // by the SELECT, another attempt can insert and lock it meanwhile, and the two wait for
    // each other.
    sqlx::query(
        "INSERT INTO rate_limits (key, tat_ms) \
         SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(&keys)
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key, tat_ms FROM rate_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE",
    )
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .map_err(database)?;
    let current: HashMap<String, i64> = rows.into_iter().collect();
    let decisions = keyed
        .iter()
        .map(|(key, rule)| decide(rule, current.get(key).copied(), now))
        .collect();
    // A refusal rolls back: nothing was written.
    let tats = all_let_through(decisions)?;
    // Two attempts may both insert a key that had no row: the second waits for the first
    // and then counts on top of it.
    sqlx::query(
        "INSERT INTO rate_limits AS r (key, tat_ms) \
         SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (key) DO UPDATE SET tat_ms = GREATEST(r.tat_ms, EXCLUDED.tat_ms)",
    )
    .bind(&keys)
    .bind(&tats)
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    tx.commit().await.map_err(database)?;

    if sweep {
        // Only rows nobody holds, taken in key order: a plain DELETE locks rows in the
        // table's order and deadlocks with an attempt that holds some of them (key order).
        let swept = sqlx::query(
            "DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits \
             WHERE tat_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
             ORDER BY key FOR UPDATE SKIP LOCKED)",
        )
        .execute(pool)
        .await;
        if let Err(e) = swept {
            tracing::warn!(error = %e, "rate limits: could not sweep fresh keys");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    static THREE_A_MINUTE: Rule = Rule::new("test", 3, Duration::from_secs(60));
    static TWO_FAST: Rule = Rule::new("fast", 2, Duration::from_millis(400));
    static GENEROUS: Rule = Rule::new("generous", 100, Duration::from_secs(60));

    #[tokio::test]
    async fn a_burst_then_refused_with_the_wait() {
        let limits = Limiter::local(100);
        let both = [
            THREE_A_MINUTE.on("email:a@b.co"),
            THREE_A_MINUTE.on("ip:1.2.3.4"),
        ];
        for _ in 0..3 {
            assert!(limits.check(&both).await.is_ok());
        }
        let Err(Refused::Wait(wait)) = limits.check(&both).await else {
            panic!("the fourth attempt is refused");
        };
        // One attempt comes back every 20 s.
        assert!(
            wait <= Duration::from_secs(20) && wait > Duration::from_secs(15),
            "{wait:?}"
        );
        // Another email from the same address is still limited by the address.
        assert!(limits
            .check(&[
                THREE_A_MINUTE.on("email:c@d.co"),
                THREE_A_MINUTE.on("ip:1.2.3.4")
            ])
            .await
            .is_err());
        assert!(limits
            .check(&[THREE_A_MINUTE.on("email:c@d.co")])
            .await
            .is_ok());
        assert!(!limits.is_shared());
    }

    #[tokio::test]
    async fn a_refused_attempt_charges_no_key() {
        let limits = Limiter::local(100);
        for _ in 0..3 {
            assert!(limits.check(&[THREE_A_MINUTE.on("full")]).await.is_ok());
        }
        // "fresh" has room, "full" does not: the attempt is refused and "fresh" keeps its
        // whole burst.
        for _ in 0..5 {
            assert!(limits
                .check(&[GENEROUS.on("fresh"), THREE_A_MINUTE.on("full")])
                .await
                .is_err());
        }
        for _ in 0..3 {
            assert!(limits.check(&[THREE_A_MINUTE.on("fresh")]).await.is_ok());
        }
    }

    #[tokio::test]
    async fn attempts_come_back_one_interval_at_a_time() {
        let limits = Limiter::local(100);
        let key = [TWO_FAST.on("k")];
        assert!(limits.check(&key).await.is_ok());
        assert!(limits.check(&key).await.is_ok());
        assert!(limits.check(&key).await.is_err());
        tokio::time::sleep(Duration::from_millis(220)).await;
        assert!(limits.check(&key).await.is_ok(), "one came back");
        assert!(limits.check(&key).await.is_err(), "only one");
    }

    #[tokio::test]
    async fn reset_and_refund_give_attempts_back() {
        let limits = Limiter::local(100);
        let key = [THREE_A_MINUTE.on("k")];
        for _ in 0..3 {
            assert!(limits.check(&key).await.is_ok());
        }
        limits.refund(&key).await.expect("refund");
        assert!(limits.check(&key).await.is_ok(), "the refunded attempt");
        assert!(limits.check(&key).await.is_err());
        limits.reset(&key).await.expect("reset");
        for _ in 0..3 {
            assert!(limits.check(&key).await.is_ok());
        }
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_keys_and_is_swept_by_time() {
        let limits = Limiter::local(10);
        for i in 0..10 {
            assert!(limits.check(&[TWO_FAST.on(format!("k{i}"))]).await.is_ok());
        }
        assert!(matches!(
            limits.check(&[TWO_FAST.on("one more")]).await,
            Err(Refused::Full)
        ));
        assert_eq!(limits.local_keys(), 10, "refused, not grown");
        // A key already counting still gets its attempts.
        assert!(limits.check(&[TWO_FAST.on("k0")]).await.is_ok());
        // Once the keys are fresh again they are swept and new keys fit.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(limits.check(&[TWO_FAST.on("one more")]).await.is_ok());
        assert_eq!(limits.local_keys(), 1);
    }

    #[test]
    fn keys_never_grow_with_their_input() {
        assert_eq!(bounded("email:a@b.co"), "email:a@b.co");
        let long = bounded(&"x".repeat(1_000_000));
        assert!(long.len() <= MAX_KEY_BYTES && long.starts_with("sha256:"));
        assert_ne!(long, bounded(&"y".repeat(1_000_000)));
        let key = GENEROUS.on("z".repeat(5_000)).stored_key();
        assert!(key.len() <= MAX_KEY_BYTES);
    }
}
