//! The one clock the server reads: unix time for watermarks, sessions, signatures and logs.

/// Current unix time in whole seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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
