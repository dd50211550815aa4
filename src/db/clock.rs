//! The one clock the server reads: unix time for watermarks, sessions, signatures and logs.

tokio::task_local! {
    /// How far this server's clock is off, within [`skewed`]: 0 everywhere else.
    static SKEW: i64;
}

/// Current unix time in whole seconds, as this server's clock has it.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + SKEW.try_with(|s| *s).unwrap_or(0)
}

/// Runs `work` as if this server's clock were `secs` ahead (behind, if negative) of the
/// true time, for the tests of what a wrong clock must not break. Only [`now`] moves: the
/// database's clock and Stripe's do not.
pub async fn skewed<F: std::future::Future>(secs: i64, work: F) -> F::Output {
    SKEW.scope(secs, work).await
}

/// Current unix time in milliseconds, for spans that must not blur within a second.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A unix second as RFC 3339 (UTC), for operators' tables; the number itself if out of range.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_present() {
        // 2023-11-14: any clock this code runs under is later.
        assert!(now() > 1_700_000_000);
    }
}
