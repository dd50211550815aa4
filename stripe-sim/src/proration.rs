//! Stripe's proration arithmetic, to the second, as pure functions.
//!
//! Switching a price at `at` inside the billing period `[start, end)`:
//! - the unused time on the old price is credited: `-(old × (end − at) ÷ (end − start))`;
//! - the remaining time on the new price is charged: `new × (end − at) ÷ (end − start)`.
//!
//! **Rounding.** Each line is rounded to the minor unit on its own, half away from zero
//! (the credit is rounded as a positive amount, then negated), in integer arithmetic: so a
//! credit and a charge for the same price and time cancel exactly, and the figure shown,
//! previewed and charged is one integer. Stripe keeps the exact fraction in
//! `unit_amount_decimal` and rounds each line's `amount` to the cent; it does not document
//! its tie rule, and half-away-from-zero is the common one.
//!
//! An interval change (month ↔ year) starts a new period at `at`: the new price is charged
//! in full, less the credit for the old price's unused time.

use super::clock::Interval;

/// `amount × remaining ÷ period`, rounded to the nearest minor unit, halves away from zero.
/// A period of zero (or less) prorates to nothing.
pub fn prorate(amount: i64, remaining: i64, period: i64) -> i64 {
    if period <= 0 || remaining <= 0 {
        return 0;
    }
    let remaining = remaining.min(period);
    let numerator = i128::from(amount) * i128::from(remaining);
    let period = i128::from(period);
    let magnitude = (numerator.abs() * 2 + period) / (period * 2);
    let rounded = if numerator < 0 { -magnitude } else { magnitude };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// The two proration lines of a price switch inside one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proration {
    /// Credit for the unused time on the old price (zero or negative).
    pub credit: i64,
    /// Charge for the remaining time on the new price (zero or positive for a positive price).
    pub charge: i64,
}

#[cfg(test)]
impl Proration {
    /// What the customer owes for the switch (negative: a credit).
    pub fn net(&self) -> i64 {
        self.credit + self.charge
    }
}

/// Prorations for switching from `old_amount` to `new_amount` (each price × quantity) at `at`
/// within `period` (start, end). Outside the period nothing is prorated.
pub fn switch(old_amount: i64, new_amount: i64, period: (i64, i64), at: i64) -> Proration {
    let (start, end) = period;
    if at < start || at >= end {
        return Proration {
            credit: 0,
            charge: 0,
        };
    }
    let length = end - start;
    let remaining = end - at;
    Proration {
        credit: -prorate(old_amount, remaining, length),
        charge: prorate(new_amount, remaining, length),
    }
}

/// An interval change at `at`: the credit for the old price's unused time, and the new
/// price's full first period (billed at once, as the billing cycle restarts at `at`).
pub fn interval_change(old_amount: i64, new_amount: i64, period: (i64, i64), at: i64) -> Proration {
    Proration {
        credit: switch(old_amount, 0, period, at).credit,
        charge: new_amount,
    }
}

/// An interval's rough length in days, enough to tell a shorter interval from a longer one.
pub fn interval_days(interval: Interval, count: u32) -> i64 {
    let unit = match interval {
        Interval::Day => 1,
        Interval::Week => 7,
        Interval::Month => 30,
        Interval::Year => 365,
    };
    unit * i64::from(count.max(1))
}

/// The portal's `schedule_at_period_end.conditions`: whether switching waits for the end of
/// the period. `decreasing_item_amount`: the new item amount (price × quantity) is lower;
/// `shortening_interval`: the new interval is shorter.
pub fn waits_for_period_end(
    conditions: &[String],
    old_amount: i64,
    new_amount: i64,
    old_interval_days: i64,
    new_interval_days: i64,
) -> bool {
    conditions.iter().any(|c| match c.as_str() {
        "decreasing_item_amount" => new_amount < old_amount,
        "shortening_interval" => new_interval_days < old_interval_days,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn prorates_to_the_second() {
        // 30-day period, one second in: all but one second is unused.
        let period = (0, 30 * DAY);
        let p = switch(900, 2900, period, 1);
        assert_eq!(
            p.credit, -900,
            "900 × 2591999/2592000 = 899.99965 rounds to 900"
        );
        assert_eq!(p.charge, 2900);
        // Exactly half way.
        let p = switch(900, 2900, period, 15 * DAY);
        assert_eq!((p.credit, p.charge, p.net()), (-450, 1450, 1000));
        // One second before the end: 2900 / 2592000 = 0.0011 → 0.
        let p = switch(900, 2900, period, 30 * DAY - 1);
        assert_eq!((p.credit, p.charge), (0, 0));
        // A second matters: 10 days and one second left of 30 days.
        let at = 20 * DAY - 1;
        let p = switch(900, 2900, period, at);
        // 900 × 864001 / 2592000 = 300.0003 → 300; 2900 × 864001 / 2592000 = 966.668 → 967.
        assert_eq!((p.credit, p.charge), (-300, 967));
    }

    #[test]
    fn a_downgrade_is_a_net_credit() {
        let p = switch(2900, 900, (0, 30 * DAY), 10 * DAY);
        // Two thirds left: 2900 × 2/3 = 1933.33 → 1933; 900 × 2/3 = 600.
        assert_eq!((p.credit, p.charge, p.net()), (-1933, 600, -1333));
    }

    #[test]
    fn rounds_half_away_from_zero_per_line() {
        assert_eq!(prorate(1, 1, 2), 1);
        assert_eq!(prorate(3, 1, 2), 2);
        assert_eq!(prorate(-3, 1, 2), -2);
        assert_eq!(prorate(1000, 1, 3), 333);
        assert_eq!(prorate(1000, 2, 3), 667);
        // Credit and charge for the same amount cancel exactly.
        let p = switch(1001, 1001, (0, 7), 3);
        assert_eq!(p.net(), 0);
        assert_eq!(p.charge, 572, "1001 × 4/7 = 572");
    }

    #[test]
    fn nothing_is_prorated_outside_the_period() {
        assert_eq!(switch(900, 2900, (100, 200), 99).net(), 0);
        assert_eq!(switch(900, 2900, (100, 200), 200).net(), 0);
        assert_eq!(prorate(900, 10, 0), 0);
        assert_eq!(
            prorate(900, 500, 100),
            900,
            "never more than the whole period"
        );
    }

    #[test]
    fn an_interval_change_charges_the_new_price_less_the_credit() {
        // Starter monthly ($9) to Pro yearly ($290) a third of the way into a 30-day month.
        let p = interval_change(900, 29000, (0, 30 * DAY), 10 * DAY);
        assert_eq!((p.credit, p.charge, p.net()), (-600, 29000, 28400));
        // Yearly to monthly right at the start: the whole year is credited.
        let p = interval_change(9000, 900, (0, 365 * DAY), 0);
        assert_eq!(p.net(), 900 - 9000);
    }

    #[test]
    fn schedule_conditions() {
        let both = vec![
            "decreasing_item_amount".to_string(),
            "shortening_interval".to_string(),
        ];
        let amount_only = vec!["decreasing_item_amount".to_string()];
        let interval_only = vec!["shortening_interval".to_string()];
        // Pro → Starter, both monthly.
        assert!(waits_for_period_end(&both, 2900, 900, 30, 30));
        assert!(waits_for_period_end(&amount_only, 2900, 900, 30, 30));
        assert!(!waits_for_period_end(&interval_only, 2900, 900, 30, 30));
        // Starter → Pro: an upgrade never waits.
        assert!(!waits_for_period_end(&both, 900, 2900, 30, 30));
        // Team yearly → Team monthly: shorter interval, lower amount.
        assert!(waits_for_period_end(&interval_only, 99000, 9900, 365, 30));
        // Monthly → yearly: longer and dearer.
        assert!(!waits_for_period_end(&both, 900, 9000, 30, 365));
        assert!(!waits_for_period_end(&[], 2900, 900, 30, 30));
        assert_eq!(interval_days(Interval::Month, 3), 90);
    }
}
