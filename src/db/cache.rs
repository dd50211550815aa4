//! In-memory copies of catalogue rows (prices, products): every billing page shows the
//! plans, and they change only when Stripe's catalogue does.
//!
//! A copy is used for at most [`FRESH_FOR`], and not at all once this process has written
//! the catalogue since it was loaded: every writer of prices or products calls
//! [`catalogue_changed`] in its transaction, and a load that overlapped a write is not kept.
//! A change another replica commits shows here within [`FRESH_FOR`].

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// How long a copy may be served without asking the database again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// A count of writes to some tables, made in this process.
pub struct Writes(AtomicU64);

impl Writes {
    pub const fn new() -> Self {
        Writes(AtomicU64::new(0))
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl Default for Writes {
    fn default() -> Self {
        Writes::new()
    }
}

/// Writes to the catalogue in this process (all apps in it share one count: a write to one
/// app's catalogue only makes the others load theirs once more).
pub static CATALOGUE_WRITES: Writes = Writes::new();

/// Called by every writer of `prices` or `products`, inside its transaction.
pub fn catalogue_changed() {
    CATALOGUE_WRITES.bump();
}

/// One cached value, dropped on the writes it depends on.
pub struct Cached<T> {
    writes_of: &'static Writes,
    slot: Mutex<Option<Copy<T>>>,
}

struct Copy<T> {
    writes: u64,
    loaded_at: Instant,
    value: Arc<T>,
}

impl<T> Cached<T> {
    /// A value of the catalogue.
    pub fn catalogue() -> Self {
        Cached::over(&CATALOGUE_WRITES)
    }

    fn over(writes_of: &'static Writes) -> Self {
        Cached {
            writes_of,
            slot: Mutex::new(None),
        }
    }

    /// The copy, when it is fresh and no write came after it; else what `load` answers
    /// (kept for the next caller unless a write overlapped it).
    pub async fn get_or_load<E, F, Fut>(&self, load: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let writes = self.writes_of.now();
        if let Some(copy) = self.lock().as_ref() {
            if copy.writes == writes && copy.loaded_at.elapsed() < FRESH_FOR {
                return Ok(copy.value.clone());
            }
        }
        let loaded_at = Instant::now();
        let value = Arc::new(load().await?);
        if self.writes_of.now() == writes {
            *self.lock() = Some(Copy {
                writes,
                loaded_at,
                value: value.clone(),
            });
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Copy<T>>> {
        // The slot holds no invariant a panicking holder could break.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    async fn count(cache: &Cached<usize>, loads: &AtomicUsize) -> usize {
        *cache
            .get_or_load(|| async { Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst) + 1) })
            .await
            .expect("the load cannot fail")
    }

    #[tokio::test]
    async fn a_copy_is_reused_until_the_catalogue_is_written() {
        static WRITES: Writes = Writes::new();
        let cache = Cached::over(&WRITES);
        let loads = AtomicUsize::new(0);
        let first = count(&cache, &loads).await;
        assert_eq!(count(&cache, &loads).await, first, "a fresh copy is reused");
        WRITES.bump();
        assert_eq!(
            count(&cache, &loads).await,
            first + 1,
            "a write makes the next read load again"
        );
    }

    #[tokio::test]
    async fn a_load_that_overlaps_a_write_is_not_kept() {
        static WRITES: Writes = Writes::new();
        let cache = Cached::over(&WRITES);
        let stale = cache
            .get_or_load(|| async {
                WRITES.bump();
                Ok::<_, ()>("read before the write committed")
            })
            .await
            .expect("the load cannot fail");
        assert_eq!(*stale, "read before the write committed");
        let next = cache
            .get_or_load(|| async { Ok::<_, ()>("read after") })
            .await
            .expect("the load cannot fail");
        assert_eq!(*next, "read after", "the overlapping load was not kept");
    }

    #[tokio::test]
    async fn a_failed_load_keeps_nothing() {
        let cache: Cached<u8> = Cached::catalogue();
        assert_eq!(
            cache.get_or_load(|| async { Err("down") }).await,
            Err("down")
        );
        let value = cache
            .get_or_load(|| async { Ok::<_, &str>(7) })
            .await
            .expect("the load succeeds");
        assert_eq!(*value, 7);
    }
}
