//! Rate limits per key: "a burst of N, then one more every period / N" (GCRA, the generic cell
//! rate algorithm), so a client that waits gets its attempts back a little at a time.
//!
//! Where the count lives follows the database:
//! - **SQLite** (one process owns the file): in memory, with `governor`'s keyed limiter.
//! - **PostgreSQL** (any number of replicas): one row per key in `rate_limits`, holding the
//!   key's theoretical arrival time. Each attempt is one conditional upsert timed by the
//!   database's clock, so every replica counts against the same budget and no two replicas'
//!   clocks need to agree. Rows whose time has passed are as good as absent and are swept now
//!   and then.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};
use sea_orm::{sqlx, DatabaseConnection, DbBackend};

use crate::error::AppError;

/// How many keys the in-memory limiter holds before it forgets the ones that are fresh again.
const LOCAL_KEYS_BEFORE_SWEEP: usize = 10_000;
/// One shared check in this many also deletes the rows that are fresh again.
const SHARED_CHECKS_PER_SWEEP: u32 = 1_000;

/// A named limit: `burst` attempts, given back one every `period / burst`.
pub struct RateLimiter {
    /// Prefixes every key in the shared table, so limits never share a row.
    name: &'static str,
    burst: u32,
    /// The time one attempt takes to come back.
    interval: Duration,
    store: Store,
}

enum Store {
    Local(Box<DefaultKeyedRateLimiter<String>>),
    Shared {
        pool: sqlx::PgPool,
        checks: AtomicU32,
    },
}

/// Why an attempt was not let through.
#[derive(Debug)]
pub enum Refused {
    /// Over the limit: the attempt may be made again after this long.
    Wait(Duration),
    /// The shared count could not be read.
    Database(String),
}

impl RateLimiter {
    /// A limit counted in this process only.
    pub fn local(name: &'static str, burst: u32, period: Duration) -> Self {
        let burst = burst.max(1);
        let interval = (period / burst).max(Duration::from_millis(1));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| unreachable!("the interval is at least a millisecond"))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        RateLimiter {
            name,
            burst,
            interval,
            store: Store::Local(Box::new(governor::RateLimiter::keyed(quota))),
        }
    }

    /// A limit shared by every process on `db` when it is PostgreSQL; in this process otherwise.
    pub fn for_database(
        name: &'static str,
        burst: u32,
        period: Duration,
        db: &DatabaseConnection,
    ) -> Self {
        let mut limiter = Self::local(name, burst, period);
        if db.get_database_backend() == DbBackend::Postgres {
            limiter.store = Store::Shared {
                pool: db.get_postgres_connection_pool().clone(),
                checks: AtomicU32::new(0),
            };
        }
        limiter
    }

    /// Whether this limit is counted in the database (shared by replicas).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared { .. })
    }

    /// Counts an attempt against every key; refuses, with the longest wait, if any key is over
    /// its limit. A key that is refused is not charged for the attempt.
    pub async fn check(&self, keys: &[String]) -> Result<(), Refused> {
        let mut wait = Duration::ZERO;
        for key in keys {
            let key_wait = match &self.store {
                Store::Local(limiter) => self.check_local(limiter, key),
                Store::Shared { pool, checks } => self.check_shared(pool, checks, key).await?,
            };
            wait = wait.max(key_wait);
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Refused::Wait(wait))
        }
    }

    /// [`check`](Self::check), with a refusal as the error a person reads (429 with
    /// `Retry-After`; an unreadable shared count is an internal error, logged).
    pub async fn enforce(&self, keys: &[String], message: &str) -> Result<(), AppError> {
        self.check(keys).await.map_err(|refused| match refused {
            Refused::Wait(wait) => AppError::rate_limited(message, wait),
            Refused::Database(e) => AppError::internal(format!("rate limit {}: {e}", self.name)),
        })
    }

    /// Zero if let through, else how long until the key may try again.
    fn check_local(&self, limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Duration {
        if limiter.len() > LOCAL_KEYS_BEFORE_SWEEP {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Duration::ZERO,
            Err(not_until) => not_until
                .wait_time_from(limiter.clock().now())
                .max(Duration::from_millis(1)),
        }
    }

    async fn check_shared(
        &self,
        pool: &sqlx::PgPool,
        checks: &AtomicU32,
        key: &str,
    ) -> Result<Duration, Refused> {
        let database = |e: sqlx::Error| Refused::Database(e.to_string());
        let key = format!("{}:{key}", self.name);
        let interval = millis(self.interval);
        // Let through when, after this attempt, the key's arrival time is at most `burst`
        // intervals ahead of now; a refused attempt leaves the row as it was.
        let window = interval.saturating_mul(i64::from(self.burst));
        let let_through: Option<i64> = sqlx::query_scalar(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) \
             INSERT INTO rate_limits AS r (key, tat_ms) SELECT $1, now.ms + $2 FROM now \
             ON CONFLICT (key) DO UPDATE \
               SET tat_ms = GREATEST(r.tat_ms, (SELECT ms FROM now)) + $2 \
               WHERE GREATEST(r.tat_ms, (SELECT ms FROM now)) + $2 - (SELECT ms FROM now) <= $3 \
             RETURNING r.tat_ms",
        )
        .bind(&key)
        .bind(interval)
        .bind(window)
        .fetch_optional(pool)
        .await
        .map_err(database)?;

        if checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SHARED_CHECKS_PER_SWEEP)
        {
            let swept = sqlx::query(
                "DELETE FROM rate_limits \
                 WHERE tat_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            )
            .execute(pool)
            .await;
            if let Err(e) = swept {
                tracing::warn!(error = %e, "rate limits: could not sweep fresh keys");
            }
        }
        if let_through.is_some() {
            return Ok(Duration::ZERO);
        }
        // Refused: the attempt may be made once the arrival time is within the window again.
        let ahead: Option<i64> = sqlx::query_scalar(
            "SELECT tat_ms - (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
             FROM rate_limits WHERE key = $1",
        )
        .bind(&key)
        .fetch_optional(pool)
        .await
        .map_err(database)?;
        let wait_ms = ahead.unwrap_or(0) + interval - window;
        Ok(Duration::from_millis(wait_ms.max(1).unsigned_abs()))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| (*k).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_burst_then_refused_with_the_wait() {
        let rl = RateLimiter::local("test", 3, Duration::from_secs(60));
        let both = keys(&["email:a@b.co", "ip:1.2.3.4"]);
        for _ in 0..3 {
            assert!(rl.check(&both).await.is_ok());
        }
        let Err(Refused::Wait(wait)) = rl.check(&both).await else {
            panic!("the fourth attempt is refused");
        };
        // One attempt comes back every 20 s.
        assert!(
            wait <= Duration::from_secs(20) && wait > Duration::from_secs(15),
            "{wait:?}"
        );
        // Another email from the same address is still limited by the address.
        assert!(rl
            .check(&keys(&["email:c@d.co", "ip:1.2.3.4"]))
            .await
            .is_err());
        assert!(rl.check(&keys(&["email:c@d.co"])).await.is_ok());
        assert!(!rl.is_shared());
    }

    #[tokio::test]
    async fn attempts_come_back_one_interval_at_a_time() {
        let rl = RateLimiter::local("test", 2, Duration::from_millis(400));
        let key = keys(&["k"]);
        assert!(rl.check(&key).await.is_ok());
        assert!(rl.check(&key).await.is_ok());
        assert!(rl.check(&key).await.is_err());
        tokio::time::sleep(Duration::from_millis(220)).await;
        assert!(rl.check(&key).await.is_ok(), "one came back");
        assert!(rl.check(&key).await.is_err(), "only one");
    }
}
