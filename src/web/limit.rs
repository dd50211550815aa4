//! A sliding-window rate limiter, in memory, per process.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Counts attempts per key in a sliding window; in memory, per process.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt for every key; refuses (with the wait) if any key is over its limit.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 50_000 {
            hits.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let mut wait = None;
        for key in keys {
            let q = hits.entry(key.clone()).or_default();
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.len() >= self.max {
                let oldest = q.front().copied().unwrap_or(now);
                let w = self.window.saturating_sub(now.duration_since(oldest));
                wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        for key in keys {
            hits.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_counts_each_key() {
        let rl = RateLimiter::new(3, Duration::from_secs(60));
        let keys = vec!["email:a@b.co".to_string(), "ip:1.2.3.4".to_string()];
        for _ in 0..3 {
            assert!(rl.check(&keys).is_ok());
        }
        let wait = rl.check(&keys).expect_err("fourth attempt refused");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        // Another email from the same address is still limited by the address.
        assert!(rl
            .check(&["email:c@d.co".to_string(), "ip:1.2.3.4".to_string()])
            .is_err());
        assert!(rl.check(&["email:c@d.co".to_string()]).is_ok());
    }
}
