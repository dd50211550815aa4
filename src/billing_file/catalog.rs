//! `[catalog]`: the plans for sale. Each plan has its product (name, description), its prices
//! (amount, currency, interval, free-trial days, and a stable `lookup_key` each), the features
//! it includes (by lookup key) and its numeric limits. Only what this section lists is ever
//! sold: [`Catalog::offers`] is the one rule that says whether a Stripe price is for sale.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The plans for sale, the features they include, and who may have a free trial.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Who may start a plan with its free trial.
    #[serde(default)]
    pub trials: TrialRule,
    /// Every feature a plan can include.
    #[serde(default)]
    pub features: Vec<Feature>,
    pub plans: Vec<Plan>,
    /// How a per-seat plan's quantity follows its organisation's members.
    #[serde(default)]
    pub seat_policy: SeatPolicy,
}

/// A plan priced per seat: the quantity billed is the organisation's seat count, within these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seats {
    /// The fewest seats billed (at least 1).
    #[serde(default = "one")]
    pub minimum: u64,
    /// The most seats the plan allows: inviting beyond it is refused.
    pub maximum: Option<u64>,
}

impl Seats {
    /// The bounds as people read them: `2–50`, or `from 2` without a maximum.
    pub fn bounds(&self) -> String {
        match self.maximum {
            Some(max) => format!("{}–{max}", self.minimum),
            None => format!("from {}", self.minimum),
        }
    }
}

fn one() -> u64 {
    1
}

/// How seats are counted and what Stripe is told when they change (one policy for every
/// per-seat plan; the README states it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatPolicy {
    /// Pending invitations take a seat too.
    #[serde(default)]
    pub count_pending_invitations: bool,
    /// How added seats are charged.
    #[serde(default)]
    pub growth: Growth,
    /// When freed seats stop being billed.
    #[serde(default)]
    pub release: Release,
    /// Member changes within this many seconds go to Stripe as one update.
    #[serde(default = "default_coalesce")]
    pub coalesce_secs: u64,
    /// The most quantity updates one subscription gets in an hour (Stripe allows 200).
    #[serde(default = "default_budget")]
    pub updates_per_hour: u32,
    /// What members beyond the paid seats get when Stripe's quantity is below the seat count.
    #[serde(default)]
    pub beyond_paid: BeyondPaid,
}

fn default_coalesce() -> u64 {
    30
}

fn default_budget() -> u32 {
    20
}

impl Default for SeatPolicy {
    fn default() -> Self {
        SeatPolicy {
            count_pending_invitations: false,
            growth: Growth::default(),
            release: Release::default(),
            coalesce_secs: default_coalesce(),
            updates_per_hour: default_budget(),
            beyond_paid: BeyondPaid::default(),
        }
    }
}

/// How seats added mid-period are charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    /// Invoiced at once, prorated (`always_invoice`): one invoice per coalesced change.
    ChargeNow,
    /// Prorated onto the next invoice (`create_prorations`).
    #[default]
    NextInvoice,
    /// Not prorated: the next renewal charges the new count (a true-up at renewal).
    AtRenewal,
}

/// When seats that free up stop being billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// At once, the unused time credited on the next invoice (`create_prorations`).
    AtOnce,
    /// At the end of the period: the quantity is lowered just before the renewal, without
    /// proration (until then the seats stay paid for).
    #[default]
    PeriodEnd,
}

/// What members beyond the paid seats get, when someone lowered the quantity in Stripe (the
/// portal, the Dashboard) below the seat count. Seats go to owners first, then billing
/// admins, then members, each in the order they joined. Billing admins are told either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeyondPaid {
    /// Everything, as long as the plan grants access.
    Keep,
    /// Everything until the end of the period in which the quantity went down; nothing after
    /// the renewal bills the lower count.
    #[default]
    UntilPeriodEnd,
    /// Nothing of the plan from the moment the quantity went down.
    Nothing,
}

/// Who may start a plan with its free trial. Either way a billing customer has one trial at
/// most: Stripe would otherwise give a new one to anyone who cancels and starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialRule {
    /// One trial per billing customer.
    #[default]
    OncePerCustomer,
    /// One trial per billing customer, and none for a customer who has paid for a plan.
    NeverAfterPaid,
}

/// What a customer did before, as far as trials go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrialHistory {
    /// Any subscription of the customer's had a trial.
    pub had_trial: bool,
    /// The customer has paid an invoice (of any amount above zero).
    pub paid_before: bool,
}

impl TrialRule {
    /// Whether a customer with this history may start a plan with its trial.
    pub fn allows(self, history: TrialHistory) -> bool {
        match self {
            TrialRule::OncePerCustomer => !history.had_trial,
            TrialRule::NeverAfterPaid => !history.had_trial && !history.paid_before,
        }
    }
}

/// A feature a plan can include, as Stripe's Entitlements name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Stable and unique, e.g. `export`; what the app's code asks for.
    pub lookup_key: String,
    /// What users read, e.g. "Export to CSV".
    pub name: String,
}

/// One plan: a product, its prices, what it includes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable and unique, e.g. `pro` (the product's `metadata[billfold_plan]` in Stripe).
    pub key: String,
    /// The product's name.
    pub name: String,
    pub description: Option<String>,
    /// The lookup keys of the features it includes.
    #[serde(default)]
    pub features: Vec<String>,
    /// Numeric limits, e.g. `projects = 10`. A limit the plan does not name has no cap.
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
    /// Priced per seat (the quantity follows the organisation's members); `None`: one unit.
    #[serde(default)]
    pub seats: Option<Seats>,
    pub prices: Vec<PlanPrice>,
}

/// One price of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPrice {
    /// Stable and unique, e.g. `pro_monthly`: the price's `lookup_key` in Stripe. A new amount
    /// is a new price under the same lookup key (Stripe never edits a price's amount).
    pub lookup_key: String,
    /// In the currency's smallest unit (cents).
    pub amount: i64,
    /// Three lowercase letters, e.g. `usd`.
    pub currency: String,
    pub interval: Interval,
    /// Days of free trial when the plan is started (and [`TrialRule`] allows one).
    pub trial_days: Option<u32>,
}

/// How often a price bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    /// As Stripe spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// What the rule needs to know of a price in the Stripe account (from the database's copy).
#[derive(Debug, Clone, Copy)]
pub struct AccountPrice<'a> {
    pub lookup_key: Option<&'a str>,
    pub active: bool,
    pub product_active: bool,
    pub unit_amount: Option<i64>,
    pub currency: &'a str,
    /// `month`, `year`, …; none for a one-time price.
    pub interval: Option<&'a str>,
    pub interval_count: Option<i32>,
}

/// A price for sale: the catalogue's plan and price it is.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub plan: &'a Plan,
    pub price: &'a PlanPrice,
}

/// Stripe's longest lookup key.
const MAX_LOOKUP_KEY: usize = 200;
/// Stripe's longest free trial.
const MAX_TRIAL_DAYS: u32 = 730;

impl Catalog {
    /// The catalogue's price with this lookup key.
    pub fn price(&self, lookup_key: &str) -> Option<Offer<'_>> {
        self.plans.iter().find_map(|plan| {
            plan.prices
                .iter()
                .find(|p| p.lookup_key == lookup_key)
                .map(|price| Offer { plan, price })
        })
    }

    /// The one rule of what is for sale: a price of the account is for sale when it carries a
    /// lookup key of the catalogue, is active, belongs to an active product, recurs once per
    /// the catalogue's interval, and costs what the catalogue says in its currency. Anything
    /// else (a price made in the Dashboard for one deal, a one-time price, an archived
    /// product's, one whose amount differs from the file) is not.
    pub fn offers(&self, p: AccountPrice<'_>) -> Option<Offer<'_>> {
        let offer = self.price(p.lookup_key?)?;
        let want = offer.price;
        let sells = p.active
            && p.product_active
            && p.interval == Some(want.interval.as_str())
            && p.interval_count == Some(1)
            && p.unit_amount == Some(want.amount)
            && p.currency == want.currency;
        sells.then_some(offer)
    }

    /// The plan a subscription is on: the plan of its own price's lookup key; else, for a price
    /// the catalogue does not name (one made in the Dashboard for a deal, or an old price whose
    /// lookup key moved to a new amount), the plan of any other price of the same product that
    /// carries one of the catalogue's lookup keys. `None`: a product the catalogue does not sell.
    pub fn plan_of<'a>(
        &self,
        own: Option<&str>,
        product_prices: impl IntoIterator<Item = &'a str>,
    ) -> Option<&Plan> {
        own.and_then(|k| self.price(k))
            .or_else(|| product_prices.into_iter().find_map(|k| self.price(k)))
            .map(|offer| offer.plan)
    }

    /// Which plans include a feature, for someone who lacks it: "Export to CSV is included in
    /// Pro and Team."
    pub fn where_included(&self, lookup_key: &str) -> String {
        let plans: Vec<&str> = self
            .plans
            .iter()
            .filter(|p| p.features.iter().any(|f| f == lookup_key))
            .map(|p| p.name.as_str())
            .collect();
        let feature = self.feature_name(lookup_key);
        match plans.as_slice() {
            [] => format!("{feature} is not included in any plan for sale."),
            [one] => format!("{feature} is included in {one}."),
            [rest @ .., last] => {
                format!("{feature} is included in {} and {last}.", rest.join(", "))
            }
        }
    }

    /// Every limit any plan names, sorted.
    pub fn limit_names(&self) -> Vec<String> {
        self.plans
            .iter()
            .flat_map(|p| p.limits.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// A feature's name for users (its lookup key if the catalogue has no such feature).
    pub fn feature_name<'a>(&'a self, lookup_key: &'a str) -> &'a str {
        self.features
            .iter()
            .find(|f| f.lookup_key == lookup_key)
            .map_or(lookup_key, |f| f.name.as_str())
    }

    /// Checks what serde cannot: unique keys, features that exist, values Stripe accepts.
    /// Every problem names its place in the file.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        let key_like = |what: &str, key: &str, max: usize| -> anyhow::Result<()> {
            let ok = !key.is_empty()
                && key.len() <= max
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
            if ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{what}: `{key}` must be 1 to {max} of a-z, 0-9, `_`, `-`, `.`"
                ))
            }
        };
        let mut features = BTreeSet::new();
        for f in &self.features {
            key_like("catalog.features.lookup_key", &f.lookup_key, 80)?;
            if f.name.trim().is_empty() {
                anyhow::bail!("catalog.features `{}`: name is empty", f.lookup_key);
            }
            if !features.insert(f.lookup_key.as_str()) {
                anyhow::bail!("catalog.features: `{}` is listed twice", f.lookup_key);
            }
        }
        if self.plans.is_empty() {
            anyhow::bail!("catalog.plans: list at least one plan (nothing else is for sale)");
        }
        let policy = &self.seat_policy;
        if !(1..=100).contains(&policy.updates_per_hour) {
            anyhow::bail!(
                "catalog.seat_policy: updates_per_hour must be 1 to 100 (Stripe allows 200 quantity updates an hour)"
            );
        }
        if policy.coalesce_secs > 3_600 {
            anyhow::bail!("catalog.seat_policy: coalesce_secs must be 0 to 3600");
        }
        let mut plans = BTreeSet::new();
        let mut lookup_keys = BTreeSet::new();
        for plan in &self.plans {
            key_like("catalog.plans.key", &plan.key, 40)?;
            let at = format!("catalog.plans `{}`", plan.key);
            if !plans.insert(plan.key.as_str()) {
                anyhow::bail!("{at}: the key is used by two plans");
            }
            if plan.name.trim().is_empty() {
                anyhow::bail!("{at}: name is empty");
            }
            for f in &plan.features {
                if !features.contains(f.as_str()) {
                    anyhow::bail!(
                        "{at}: feature `{f}` is not among catalog.features (add it there)"
                    );
                }
            }
            for limit in plan.limits.keys() {
                key_like(&format!("{at}: limits"), limit, 40)?;
            }
            if let Some(seats) = plan.seats {
                if seats.minimum == 0 || seats.maximum.is_some_and(|max| max < seats.minimum) {
                    anyhow::bail!(
                        "{at}: seats needs a minimum of at least 1 and a maximum of at least the minimum"
                    );
                }
            }
            if plan.prices.is_empty() {
                anyhow::bail!("{at}: list at least one price");
            }
            for price in &plan.prices {
                key_like(
                    &format!("{at}: prices.lookup_key"),
                    &price.lookup_key,
                    MAX_LOOKUP_KEY,
                )?;
                let at = format!("{at}: price `{}`", price.lookup_key);
                if !lookup_keys.insert(price.lookup_key.as_str()) {
                    anyhow::bail!("{at}: the lookup key is used twice");
                }
                if !(0..=99_999_999).contains(&price.amount) {
                    anyhow::bail!("{at}: amount must be 0 to 99999999 (in cents)");
                }
                if price.currency.len() != 3
                    || !price.currency.bytes().all(|b| b.is_ascii_lowercase())
                {
                    anyhow::bail!(
                        "{at}: currency `{}` must be three lowercase letters, e.g. usd",
                        price.currency
                    );
                }
                if price
                    .trial_days
                    .is_some_and(|d| d == 0 || d > MAX_TRIAL_DAYS)
                {
                    anyhow::bail!("{at}: trial_days must be 1 to {MAX_TRIAL_DAYS} (or left out)");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing_file::BillingFile;

    fn example() -> Catalog {
        BillingFile::parse(include_str!("../../billing.toml"))
            .expect("billing.toml")
            .catalog
    }

    fn account_price<'a>(lookup_key: &'a str, amount: i64, interval: &'a str) -> AccountPrice<'a> {
        AccountPrice {
            lookup_key: Some(lookup_key),
            active: true,
            product_active: true,
            unit_amount: Some(amount),
            currency: "usd",
            interval: Some(interval),
            interval_count: Some(1),
        }
    }

    #[test]
    fn only_what_the_catalogue_lists_is_for_sale() {
        let c = example();
        let pro = c.price("pro_monthly").expect("pro_monthly in the example");
        let (amount, interval) = (pro.price.amount, pro.price.interval.as_str());
        assert!(c
            .offers(account_price("pro_monthly", amount, interval))
            .is_some());
        // A price made for one deal: no lookup key, another lookup key, another amount.
        let mut deal = account_price("pro_monthly", 100, interval);
        assert!(c.offers(deal).is_none(), "another amount");
        deal.unit_amount = Some(amount);
        deal.lookup_key = None;
        assert!(c.offers(deal).is_none(), "no lookup key");
        assert!(c
            .offers(account_price("pro_deal", amount, interval))
            .is_none());
        // A one-time price, an archived price, an archived product, every third month.
        let mut p = account_price("pro_monthly", amount, interval);
        p.interval = None;
        assert!(c.offers(p).is_none(), "one-time");
        let mut p = account_price("pro_monthly", amount, interval);
        p.active = false;
        assert!(c.offers(p).is_none(), "archived price");
        let mut p = account_price("pro_monthly", amount, interval);
        p.product_active = false;
        assert!(c.offers(p).is_none(), "archived product");
        let mut p = account_price("pro_monthly", amount, interval);
        p.interval_count = Some(3);
        assert!(c.offers(p).is_none(), "another cadence");
        let mut p = account_price("pro_monthly", amount, interval);
        p.currency = "eur";
        assert!(c.offers(p).is_none(), "another currency");
    }

    #[test]
    fn a_subscription_is_on_the_plan_of_its_price_or_of_its_product() {
        let c = example();
        fn key(p: Option<&Plan>) -> Option<&str> {
            p.map(|p| p.key.as_str())
        }
        assert_eq!(key(c.plan_of(Some("pro_yearly"), [])), Some("pro"));
        // Its own price's lookup key comes first, whatever else the product sells.
        assert_eq!(
            key(c.plan_of(Some("team_monthly"), ["pro_monthly"])),
            Some("team")
        );
        // A deal's price (no lookup key, or one the file does not name): the product's plan.
        assert_eq!(key(c.plan_of(None, ["pro_monthly"])), Some("pro"));
        assert_eq!(
            key(c.plan_of(Some("pro_deal"), ["nope", "starter_yearly"])),
            Some("starter")
        );
        assert_eq!(key(c.plan_of(Some("pro_deal"), ["nope"])), None);
        assert_eq!(c.limit_names(), ["projects"]);
    }

    #[test]
    fn a_customer_has_one_trial_at_most() {
        let none = TrialHistory::default();
        let trial = TrialHistory {
            had_trial: true,
            paid_before: false,
        };
        let paid = TrialHistory {
            had_trial: false,
            paid_before: true,
        };
        assert!(TrialRule::OncePerCustomer.allows(none));
        assert!(!TrialRule::OncePerCustomer.allows(trial));
        assert!(TrialRule::OncePerCustomer.allows(paid));
        assert!(TrialRule::NeverAfterPaid.allows(none));
        assert!(!TrialRule::NeverAfterPaid.allows(trial));
        assert!(!TrialRule::NeverAfterPaid.allows(paid));
    }

    #[test]
    fn mistakes_in_the_catalogue_are_named() {
        let text = include_str!("../../billing.toml");
        let cases = [
            (
                "features = [\"export\"",
                "features = [\"exprot\"",
                "`exprot` is not among",
            ),
            (
                "currency = \"usd\"",
                "currency = \"USD\"",
                "three lowercase letters",
            ),
            ("trial_days = 14", "trial_days = 0", "trial_days must be"),
            (
                "lookup_key = \"starter_yearly\"",
                "lookup_key = \"starter_monthly\"",
                "used twice",
            ),
        ];
        for (from, to, says) in cases {
            assert!(text.contains(from), "the example has {from}");
            let err = format!(
                "{:#}",
                BillingFile::parse(&text.replacen(from, to, 1)).expect_err(to)
            );
            assert!(err.contains(says), "{to}: {err}");
            assert!(err.contains("catalog"), "{to}: {err}");
        }
    }
}
