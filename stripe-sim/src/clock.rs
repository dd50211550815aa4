//! Time: the real clock, billing-period arithmetic, and dates as the hosted pages show them.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{macros::format_description, Date, Month, OffsetDateTime};

pub const DAY: i64 = 86_400;

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    now_millis() / 1000
}

/// Milliseconds since the epoch, now (delivery scheduling needs sub-second precision).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A recurring price's billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }
}

/// The end of the period that starts at `start`: `count` intervals later. Months keep the
/// anchor's day of month where the month has it and clamp to its last day otherwise
/// (Jan 31 → Feb 28 → Mar 31), which is how Stripe bills.
pub fn period_end(anchor: i64, start: i64, interval: Interval, count: u32) -> i64 {
    let count = i64::from(count.max(1));
    match interval {
        Interval::Day => start + count * DAY,
        Interval::Week => start + count * 7 * DAY,
        Interval::Month | Interval::Year => {
            let months_per_step = if interval == Interval::Year {
                12 * count
            } else {
                count
            };
            // The smallest multiple of the step, counted from the anchor, that ends after `start`.
            let mut step = 1;
            loop {
                let candidate = add_months(anchor, months_per_step * step);
                if candidate > start || step > 100_000 {
                    return candidate;
                }
                step += 1;
            }
        }
    }
}

/// `ts` plus `months` calendar months, at the same time of day, the day clamped to the month.
pub fn add_months(ts: i64, months: i64) -> i64 {
    let Ok(dt) = OffsetDateTime::from_unix_timestamp(ts) else {
        return ts.saturating_add(months.saturating_mul(30 * DAY));
    };
    let month_index = i64::from(dt.year()) * 12 + i64::from(u8::from(dt.month())) - 1 + months;
    let year = month_index.div_euclid(12);
    let month0 = month_index.rem_euclid(12);
    let (Ok(year), Ok(month)) = (
        i32::try_from(year),
        Month::try_from(u8::try_from(month0 + 1).unwrap_or(1)),
    ) else {
        return ts;
    };
    let last_day = time::util::days_in_month(month, year);
    let day = dt.day().min(last_day);
    match Date::from_calendar_date(year, month, day) {
        Ok(date) => date.with_time(dt.time()).assume_utc().unix_timestamp(),
        Err(_) => ts,
    }
}

/// "March 5, 2026", as the hosted pages print a date.
pub fn long_date(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|dt| {
            dt.format(format_description!(
                "[month repr:long] [day padding:none], [year]"
            ))
            .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, m: u8, d: u8) -> i64 {
        let month = Month::try_from(m).expect("month");
        Date::from_calendar_date(y, month, d)
            .expect("date")
            .midnight()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn months_clamp_and_recover_the_anchor_day() {
        let jan31 = ts(2026, 1, 31);
        assert_eq!(add_months(jan31, 1), ts(2026, 2, 28));
        assert_eq!(add_months(jan31, 2), ts(2026, 3, 31));
        assert_eq!(add_months(ts(2027, 12, 15), 1), ts(2028, 1, 15));
        assert_eq!(add_months(ts(2028, 2, 29), 12), ts(2029, 2, 28));
        assert_eq!(add_months(ts(2026, 3, 10), -3), ts(2025, 12, 10));
    }

    #[test]
    fn period_ends_follow_the_anchor() {
        let jan31 = ts(2026, 1, 31);
        assert_eq!(
            period_end(jan31, jan31, Interval::Month, 1),
            ts(2026, 2, 28)
        );
        // The period that starts on Feb 28 ends on Mar 31, not Mar 28.
        assert_eq!(
            period_end(jan31, ts(2026, 2, 28), Interval::Month, 1),
            ts(2026, 3, 31)
        );
        assert_eq!(period_end(jan31, jan31, Interval::Year, 1), ts(2027, 1, 31));
        assert_eq!(
            period_end(jan31, jan31, Interval::Week, 2),
            jan31 + 14 * DAY
        );
        assert_eq!(period_end(jan31, jan31, Interval::Day, 0), jan31 + DAY);
    }

    #[test]
    fn dates_read_like_dates() {
        assert_eq!(long_date(ts(2026, 3, 5)), "March 5, 2026");
    }
}
