//! The one clock the server reads: unix time for watermarks, sessions, signatures and logs.

/// Current unix time in whole seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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
