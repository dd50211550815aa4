//! What the billing page shows, as plain data that crosses the wire, and how it reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::domain::{format_date, format_money};

use super::{
    access::{self, Access},
    model::{PastDuePolicy, Subscription, SubscriptionStatus as Status},
};

const DAY: i64 = 86_400;

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
    /// A switch Stripe has scheduled (a downgrade at the period's end): the plan's name and
    /// when it happens.
    #[serde(default)]
    pub switches_to: Option<(String, i64)>,
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
    /// How many times Stripe has tried to collect it.
    pub attempt_count: i32,
    /// When Stripe tries next; `None` when it will not.
    pub next_payment_attempt: Option<i64>,
    /// When it was finalized (its first attempt).
    pub finalized_at: Option<i64>,
}

/// The demo app's Pro feature: what the user has paid so far. Served only through the access
/// guard ([`crate::billing::guard`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProReport {
    pub invoices_paid: u32,
    /// In the currency's smallest unit.
    pub amount_paid: i64,
    pub currency: Option<String>,
    /// When the access that let this through ends unless renewed, if it does.
    pub access_until: Option<i64>,
}

/// The demo app's projects: their names, how many the plan allows now (`None`: no cap), and
/// what a user at the limit is told (which plans allow more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projects {
    pub names: Vec<String>,
    pub limit: Option<u64>,
    pub refusal: Option<String>,
}

impl Projects {
    /// The plan allows no more.
    pub fn at_limit(&self) -> bool {
        self.limit.is_some_and(|cap| self.names.len() as u64 >= cap)
    }
}

/// A plan a user can start from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub price_id: String,
    pub product_name: String,
    /// The catalogue's description of the plan.
    pub description: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub interval: Option<String>,
    /// The free trial this user would get: none when the catalogue's trial rule says they
    /// have had theirs.
    pub trial_period_days: Option<i32>,
    /// What the plan includes (the features' names), and its limits.
    pub features: Vec<String>,
    pub limits: Vec<(String, u64)>,
}

/// The demo app's feature by entitlement (`GET /app/export.csv`), by its catalogue lookup key.
pub const EXPORT_FEATURE: &str = "export";

/// A feature the user has: its lookup key (what code asks for) and its name (what users read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureView {
    pub lookup_key: String,
    pub name: String,
}

/// What the user's plan includes now: the features Stripe's Entitlements list for the customer
/// (only while the access rule grants access) and the limits the catalogue sets for the plan of
/// the primary subscription. Read by the entitlement loader for the page, the feature guard,
/// `limit(…)` and `GET /api/billing/state` alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Included {
    /// The access rule grants access now.
    pub granted: bool,
    /// The catalogue's plan of the primary subscription (`pro`), when the catalogue knows it.
    pub plan_key: Option<String>,
    /// The features, in the order Stripe lists them (sorted by lookup key).
    pub features: Vec<FeatureView>,
    /// The caps the plan sets, by limit name.
    pub limits: BTreeMap<String, u64>,
    /// The catalogue's features not included now, each with which plans include it ("Export
    /// to CSV is included in Pro and Team."), by lookup key.
    #[serde(default)]
    pub locked: BTreeMap<String, String>,
}

impl Included {
    /// Whether the feature (its lookup key) is included now.
    pub fn has(&self, lookup_key: &str) -> bool {
        self.features.iter().any(|f| f.lookup_key == lookup_key)
    }

    /// How many of `name` (e.g. `projects`) the user may have: `None` when the plan sets no
    /// cap. Nothing (`Some(0)`) without access, or on a plan the catalogue does not know (a
    /// product it does not sell): an allowance is only ever what the catalogue grants.
    pub fn limit(&self, name: &str) -> Option<u64> {
        if !self.granted || self.plan_key.is_none() {
            return Some(0);
        }
        self.limits.get(name).copied()
    }
}

/// Everything `/settings/billing` renders, read from the database in a fixed number of queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingSummary {
    pub email: String,
    /// The address is proven (the layout's banner asks for it until then).
    #[serde(default)]
    pub email_verified: bool,
    /// Whether the user has a Stripe customer in the current mode.
    pub has_customer: bool,
    pub subscriptions: Vec<SubscriptionView>,
    pub card: Option<CardView>,
    pub invoices: Vec<InvoiceView>,
    pub plans: Vec<PlanView>,
    /// The server's clock when the summary was read, so both sides render the same state.
    pub now: i64,
    /// How long a failed payment keeps access (`PAST_DUE_GRACE`).
    pub past_due: PastDuePolicy,
    /// When the primary subscription's grace clock started (the first attempt of its oldest
    /// invoice still owed), read by the entitlement's rule, not from the invoices listed.
    #[serde(default)]
    pub grace_started_at: Option<i64>,
    /// What the plan includes now (features and limits), by the entitlement loader.
    #[serde(default)]
    pub included: Included,
    /// Every limit the catalogue's plans name (`projects`), for saying what the user has of
    /// each, capped or not.
    #[serde(default)]
    pub limit_names: Vec<String>,
    /// The organisation this billing is, and the user's role in it.
    pub org: crate::domain::CurrentOrg,
    /// Every organisation the user belongs to (the header's switcher).
    #[serde(default)]
    pub org_choices: Vec<crate::domain::OrgChoice>,
    /// Who manages its billing (owners first): whom a member asks.
    #[serde(default)]
    pub billing_contacts: Vec<String>,
}

/// How urgent the payment-failed banner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Stripe is retrying and nothing ends soon.
    Notice,
    /// Access ends within three days, or Stripe has tried three times.
    Warning,
    /// Access ends within a day, or Stripe has stopped retrying.
    Critical,
}

/// What the dunning banner tells: the attempts so far, the next one, and when access ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dunning {
    pub attempts: i32,
    pub next_retry: Option<i64>,
    /// When access ends under the past-due policy (`None`: while Stripe retries).
    pub access_ends: Option<i64>,
    /// Stripe has stopped retrying: the plan is unpaid (or no retry is scheduled).
    pub retries_stopped: bool,
    /// The plan's first payment failed (incomplete): it starts once a payment goes through.
    pub first_payment: bool,
    pub severity: Severity,
    /// Where to pay the open invoice.
    pub invoice_url: Option<String>,
}

/// The state of the primary subscription, in the words the page uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanState {
    None,
    Trial {
        ends: Option<i64>,
    },
    Active {
        renews: Option<i64>,
    },
    Cancelling {
        ends: i64,
    },
    PaymentFailed,
    /// Stripe stopped retrying the failed payment and left the plan unpaid: no access, and
    /// a new plan may be started.
    RetriesStopped,
    Ended {
        ended: Option<i64>,
    },
}

impl PlanState {
    /// Whether the user may start a plan through Checkout: only with none, or once it ended.
    /// Anything live (a trial, a plan cancelling at period end, one whose payment failed) is
    /// changed in the portal instead, so nobody pays for two.
    pub fn offers_new_plan(&self) -> bool {
        matches!(
            self,
            PlanState::None | PlanState::Ended { .. } | PlanState::RetriesStopped
        )
    }

    /// The state of the primary subscription (`None`: no plan).
    pub fn of(primary: Option<&Subscription>) -> PlanState {
        let Some(sub) = primary else {
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
            Status::PastDue | Status::Incomplete => PlanState::PaymentFailed,
            Status::Unpaid => PlanState::RetriesStopped,
            Status::Canceled | Status::IncompleteExpired | Status::Paused => PlanState::Ended {
                ended: sub.ended_at.or(sub.canceled_at).or(sub.current_period_end),
            },
        }
    }
}

impl BillingSummary {
    pub fn primary(&self) -> Option<&SubscriptionView> {
        access::primary(&self.subscriptions)
    }

    /// The user's access as the server decided it ([`crate::billing::access`] over the
    /// subscriptions and the grace clock the entitlement loader read).
    pub fn access(&self) -> Access {
        access::access_under(
            &self.subscriptions,
            self.now,
            self.past_due,
            self.grace_started_at,
        )
    }

    /// The payment-failed banner's facts, when a payment failed.
    pub fn dunning(&self) -> Option<Dunning> {
        let sub = &self.primary()?.subscription;
        let invoice = self.open_invoice();
        let (stopped, first_payment) = match sub.status {
            Status::PastDue => (false, false),
            Status::Unpaid => (true, false),
            Status::Incomplete => (false, true),
            // Stripe's retries ran out and cancelled the plan: the invoice is still owed.
            Status::Canceled
                if invoice
                    .is_some_and(|i| i.attempt_count > 0 && i.next_payment_attempt.is_none()) =>
            {
                (true, false)
            }
            _ => return None,
        };
        let attempts = invoice.map_or(0, |i| i.attempt_count);
        let next_retry = invoice.and_then(|i| i.next_payment_attempt);
        let retries_stopped =
            stopped || (sub.status == Status::PastDue && invoice.is_some() && next_retry.is_none());
        let access_ends = if sub.status == Status::PastDue {
            self.past_due.access_ends(self.grace_started_at)
        } else {
            None
        };
        let left = access_ends.map(|end| end - self.now);
        let severity = if retries_stopped || left.is_some_and(|l| l <= DAY) {
            Severity::Critical
        } else if left.is_some_and(|l| l <= 3 * DAY) || attempts >= 3 {
            Severity::Warning
        } else {
            Severity::Notice
        };
        Some(Dunning {
            attempts,
            next_retry,
            access_ends,
            retries_stopped,
            first_payment,
            severity,
            invoice_url: invoice.and_then(|i| i.hosted_invoice_url.clone()),
        })
    }

    pub fn plan_state(&self) -> PlanState {
        PlanState::of(self.primary().map(|s| &s.subscription))
    }

    /// The newest unpaid invoice, for the "pay it" link in the payment-failed banner.
    pub fn open_invoice(&self) -> Option<&InvoiceView> {
        self.invoices
            .iter()
            .filter(|i| i.status == "open" || i.status == "uncollectible")
            .max_by_key(|i| i.created)
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
            email_verified: true,
            has_customer: true,
            subscriptions: subs,
            card: None,
            invoices: vec![],
            plans: vec![],
            now: 1_800_000_000,
            past_due: PastDuePolicy::WhileRetrying,
            grace_started_at: None,
            included: Included::default(),
            limit_names: vec![],
            org_choices: Vec::new(),
            org: crate::domain::CurrentOrg {
                id: 1,
                name: "Personal".into(),
                personal: true,
                role: crate::domain::Role::Owner,
            },
            billing_contacts: vec![],
        }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_limit_is_what_the_catalogue_grants_and_nothing_without_access() {
        let pro = Included {
            granted: true,
            plan_key: Some("pro".into()),
            limits: [("projects".to_owned(), 20)].into(),
            ..Included::default()
        };
        assert_eq!(pro.limit("projects"), Some(20));
        assert_eq!(
            pro.limit("seats"),
            None,
            "a limit the plan does not name has no cap"
        );
        let lapsed = Included {
            granted: false,
            ..pro.clone()
        };
        assert_eq!(lapsed.limit("projects"), Some(0));
        assert_eq!(lapsed.limit("seats"), Some(0));
        let unknown_plan = Included {
            plan_key: None,
            ..pro
        };
        assert_eq!(unknown_plan.limit("seats"), Some(0));
    }

    fn failing(
        status: &str,
        attempts: i32,
        next: Option<i64>,
        policy: PastDuePolicy,
    ) -> BillingSummary {
        let mut sub = Subscription::new("sub_1", Status::parse(status));
        sub.current_period_end = Some(NOW + 20 * DAY);
        let mut s = summary(vec![SubscriptionView {
            subscription: sub,
            plan_name: None,
            price_id: None,
            unit_amount: None,
            currency: None,
            interval: None,
            switches_to: None,
        }]);
        s.past_due = policy;
        s.invoices = vec![InvoiceView {
            id: "in_1".into(),
            created: NOW - 5 * DAY,
            amount_due: 900,
            amount_paid: 0,
            currency: "usd".into(),
            status: "open".into(),
            hosted_invoice_url: Some("https://pay.example/in_1".into()),
            attempt_count: attempts,
            next_payment_attempt: next,
            finalized_at: Some(NOW - 4 * DAY),
        }];
        s.grace_started_at = Some(NOW - 4 * DAY);
        s
    }

    #[test]
    fn dunning_tells_attempts_the_next_try_and_the_deadline() {
        let d = failing(
            "past_due",
            1,
            Some(NOW + 3 * DAY),
            PastDuePolicy::WhileRetrying,
        )
        .dunning()
        .expect("a banner");
        assert_eq!((d.attempts, d.next_retry), (1, Some(NOW + 3 * DAY)));
        assert_eq!((d.access_ends, d.retries_stopped), (None, false));
        assert_eq!(d.severity, Severity::Notice);
        assert_eq!(d.invoice_url.as_deref(), Some("https://pay.example/in_1"));

        // A 7-day grace from the first attempt (finalized 4 days ago): 3 days left.
        let grace = PastDuePolicy::Grace { secs: 7 * DAY };
        let s = failing("past_due", 2, Some(NOW + DAY), grace);
        let d = s.dunning().expect("a banner");
        assert_eq!(d.access_ends, Some(NOW + 3 * DAY));
        assert_eq!(d.severity, Severity::Warning, "three days left");
        assert_eq!(s.access().until, Some(NOW + 3 * DAY));
        assert!(s.access().granted);
        // Within a day of the end: critical; past it: no access, whatever Stripe does.
        let mut s = failing("past_due", 2, Some(NOW + DAY), grace);
        s.now = NOW + 3 * DAY - 3_600;
        assert_eq!(s.dunning().expect("banner").severity, Severity::Critical);
        s.now = NOW + 3 * DAY;
        assert_eq!(s.access().reason, access::Reason::GraceOver);
        assert!(!s.access().granted);
        // No grace at all.
        let s = failing(
            "past_due",
            1,
            Some(NOW + DAY),
            PastDuePolicy::Grace { secs: 0 },
        );
        assert!(!s.access().granted);

        // Three tries: warning even without a deadline.
        let d = failing("past_due", 3, Some(NOW + DAY), PastDuePolicy::WhileRetrying)
            .dunning()
            .expect("banner");
        assert_eq!(d.severity, Severity::Warning);

        // Stripe gave up: unpaid, critical, and a new plan may be started.
        let s = failing("unpaid", 4, None, PastDuePolicy::WhileRetrying);
        let d = s.dunning().expect("banner");
        assert!(d.retries_stopped);
        assert_eq!(d.severity, Severity::Critical);
        assert_eq!(s.plan_state(), PlanState::RetriesStopped);
        assert!(s.plan_state().offers_new_plan());
        assert!(!s.access().granted);

        // Nothing failed: no banner.
        assert!(failing("active", 0, None, PastDuePolicy::WhileRetrying)
            .dunning()
            .is_none());
        // The first payment of a new plan failed.
        let d = failing("incomplete", 1, None, PastDuePolicy::WhileRetrying)
            .dunning()
            .expect("banner");
        assert!(d.first_payment && !d.retries_stopped);
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
                switches_to: None,
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
        for failed in ["past_due", "incomplete"] {
            assert_eq!(with(failed, &|_| {}), PlanState::PaymentFailed, "{failed}");
        }
        assert_eq!(with("unpaid", &|_| {}), PlanState::RetriesStopped);
        assert_eq!(
            with("canceled", &|s| s.ended_at = Some(1_799_000_000)),
            PlanState::Ended {
                ended: Some(1_799_000_000)
            }
        );
    }
}
