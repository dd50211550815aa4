//! The one clock the server reads: unix time for watermarks, sessions, signatures and logs.

/// Current unix time in whole seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Current unix time in milliseconds.
pub fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_agree() {
        let (s, ms) = (now(), now_millis());
        assert!((ms / 1000 - s).abs() <= 1, "{s} {ms}");
        assert!(s > 1_700_000_000);
    }
}
