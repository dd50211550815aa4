//! What the billing page shows, as plain data that crosses the wire, and how it reads.

use serde::{Deserialize, Serialize};
use time::{macros::format_description, OffsetDateTime};

use super::{
    access::{self, Access},
    model::{Subscription, SubscriptionStatus as Status},
};

/// One subscription as the page sees it (from the `subscriptions` table): what the rules
/// read, and the plan it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub subscription: Subscription,
    pub plan_name: Option<String>,
    pub price_id: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
}

impl AsRef<Subscription> for SubscriptionView {
    fn as_ref(&self) -> &Subscription {
        &self.subscription
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceView {
    pub id: String,
    pub created: i64,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub status: String,
    pub hosted_invoice_url: Option<String>,
}

/// A plan a user can start from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub price_id: String,
    pub product_name: String,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub interval: Option<String>,
    pub trial_period_days: Option<i32>,
}

/// Everything `/settings/billing` renders, read from the database in a fixed number of queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingSummary {
    pub email: String,
    /// Whether the user has a Stripe customer in the current mode.
    pub has_customer: bool,
    pub subscriptions: Vec<SubscriptionView>,
    pub card: Option<CardView>,
    pub invoices: Vec<InvoiceView>,
    pub plans: Vec<PlanView>,
    /// The server's clock when the summary was read, so both sides render the same state.
    pub now: i64,
}

/// The state of the primary subscription, in the words the page uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanState {
    None,
    Trial { ends: Option<i64> },
    Active { renews: Option<i64> },
    Cancelling { ends: i64 },
    PaymentFailed,
    Ended { ended: Option<i64> },
}

impl PlanState {
    /// Whether the user may start a plan through Checkout: only with none, or once it ended.
    /// Anything live (a trial, a plan cancelling at period end, one whose payment failed) is
    /// changed in the portal instead, so nobody pays for two.
    pub fn offers_new_plan(&self) -> bool {
        matches!(self, PlanState::None | PlanState::Ended { .. })
    }
}

impl BillingSummary {
    pub fn primary(&self) -> Option<&SubscriptionView> {
        access::primary(&self.subscriptions)
    }

    pub fn access(&self) -> Access {
        access::access(&self.subscriptions, self.now)
    }

    pub fn plan_state(&self) -> PlanState {
        let Some(sub) = self.primary().map(|s| &s.subscription) else {
            return PlanState::None;
        };
        match sub.status {
            Status::Active | Status::Trialing if sub.cancels_at().is_some() => {
                PlanState::Cancelling {
                    ends: sub.cancels_at().unwrap_or_default(),
                }
            }
            Status::Trialing => PlanState::Trial {
                ends: sub.trial_end.or(sub.current_period_end),
            },
            Status::Active => PlanState::Active {
                renews: sub.current_period_end,
            },
            Status::PastDue | Status::Unpaid | Status::Incomplete => PlanState::PaymentFailed,
            Status::Canceled | Status::IncompleteExpired | Status::Paused => PlanState::Ended {
                ended: sub.ended_at.or(sub.canceled_at).or(sub.current_period_end),
            },
        }
    }

    /// The newest unpaid invoice, for the "pay it" link in the payment-failed banner.
    pub fn open_invoice(&self) -> Option<&InvoiceView> {
        self.invoices
            .iter()
            .filter(|i| i.status == "open" || i.status == "uncollectible")
            .max_by_key(|i| i.created)
    }
}

/// A date in one unambiguous format, time zone shown: `9 Dec 2026 (UTC)`.
pub fn format_date(ts: i64) -> String {
    let fmt = format_description!("[day padding:none] [month repr:short] [year]");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .map(|d| format!("{d} (UTC)"))
        .unwrap_or_else(|| "an unknown date".into())
}

/// Minor units to a price: `$29.00`, `€9.00`, `¥500`, `12.50 CHF`.
pub fn format_money(amount: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let zero_decimal = matches!(
        code.as_str(),
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF"
    );
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let number = if zero_decimal {
        abs.to_string()
    } else {
        format!("{}.{:02}", abs / 100, abs % 100)
    };
    match code.as_str() {
        "USD" => format!("{sign}${number}"),
        "EUR" => format!("{sign}€{number}"),
        "GBP" => format!("{sign}£{number}"),
        "JPY" => format!("{sign}¥{number}"),
        _ => format!("{sign}{number} {code}"),
    }
}

/// `$29.00 / month`, or what is known of it.
pub fn format_price(amount: Option<i64>, currency: Option<&str>, interval: Option<&str>) -> String {
    match (amount, currency) {
        (Some(a), Some(c)) => match interval {
            Some(i) => format!("{} / {i}", format_money(a, c)),
            None => format_money(a, c),
        },
        _ => String::new(),
    }
}

/// `Visa •••• 4242, expires 12/2030`.
pub fn describe_card(card: &CardView) -> String {
    let brand = match card.brand.as_str() {
        "visa" => "Visa".to_owned(),
        "mastercard" => "Mastercard".to_owned(),
        "amex" => "American Express".to_owned(),
        "discover" => "Discover".to_owned(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_else(|| "Card".into())
        }
    };
    match (card.exp_month, card.exp_year) {
        (Some(m), Some(y)) => format!("{brand} •••• {}, expires {m:02}/{y}", card.last4),
        _ => format!("{brand} •••• {}", card.last4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(subs: Vec<SubscriptionView>) -> BillingSummary {
        BillingSummary {
            email: "a@example.com".into(),
            has_customer: true,
            subscriptions: subs,
            card: None,
            invoices: vec![],
            plans: vec![],
            now: 1_800_000_000,
        }
    }

    #[test]
    fn dates_and_money_read_unambiguously() {
        assert_eq!(format_date(1_796_083_200), "1 Dec 2026 (UTC)");
        assert_eq!(format_money(2900, "usd"), "$29.00");
        assert_eq!(format_money(905, "eur"), "€9.05");
        assert_eq!(format_money(500, "jpy"), "¥500");
        assert_eq!(format_money(1250, "chf"), "12.50 CHF");
        assert_eq!(format_money(-100, "usd"), "-$1.00");
        assert_eq!(
            format_price(Some(2900), Some("usd"), Some("month")),
            "$29.00 / month"
        );
        let card = CardView {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: Some(4),
            exp_year: Some(2030),
        };
        assert_eq!(describe_card(&card), "Visa •••• 4242, expires 04/2030");
    }

    #[test]
    fn plan_states() {
        let with = |status: &str, f: &dyn Fn(&mut Subscription)| {
            let mut s = Subscription::new("sub_1", Status::parse(status));
            s.current_period_end = Some(1_800_100_000);
            f(&mut s);
            summary(vec![SubscriptionView {
                subscription: s,
                plan_name: None,
                price_id: None,
                unit_amount: None,
                currency: None,
                interval: None,
            }])
            .plan_state()
        };
        assert_eq!(summary(vec![]).plan_state(), PlanState::None);
        assert_eq!(
            with("trialing", &|s| s.trial_end = Some(1_800_050_000)),
            PlanState::Trial {
                ends: Some(1_800_050_000)
            }
        );
        assert_eq!(
            with("active", &|_| {}),
            PlanState::Active {
                renews: Some(1_800_100_000)
            }
        );
        assert_eq!(
            with("active", &|s| s.cancel_at_period_end = true),
            PlanState::Cancelling {
                ends: 1_800_100_000
            }
        );
        assert_eq!(
            with("active", &|s| s.cancel_at = Some(1_800_070_000)),
            PlanState::Cancelling {
                ends: 1_800_070_000
            }
        );
        for failed in ["past_due", "unpaid", "incomplete"] {
            assert_eq!(with(failed, &|_| {}), PlanState::PaymentFailed, "{failed}");
        }
        assert_eq!(
            with("canceled", &|s| s.ended_at = Some(1_799_000_000)),
            PlanState::Ended {
                ended: Some(1_799_000_000)
            }
        );
    }
}
