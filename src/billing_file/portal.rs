//! `[portal]`: the Customer Portal's configuration, as `billfold portal apply` makes Stripe's
//! say and `billfold doctor` checks it still does.

use serde::Deserialize;

/// What Stripe lets a customer edit in the portal.
const CUSTOMER_FIELDS: &[&str] = &["email", "name", "address", "phone", "shipping", "tax_id"];
/// The reasons Stripe can offer when a customer cancels.
const CANCEL_REASONS: &[&str] = &[
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
];

/// The portal, as `billing.toml`'s `[portal]` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSpec {
    pub headline: Option<String>,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    /// Where the portal's "return" link goes; the billing page when absent.
    pub default_return_url: Option<String>,
    pub payment_method_update: Toggle,
    pub invoice_history: Toggle,
    pub customer_update: CustomerUpdate,
    pub cancellation: Cancellation,
    pub plan_switching: PlanSwitching,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerUpdate {
    pub enabled: bool,
    /// Among `email`, `name`, `address`, `phone`, `shipping`, `tax_id`.
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    pub enabled: bool,
    /// `at_period_end` or `immediately`.
    pub mode: String,
    /// The reasons offered (none: the question is not asked).
    #[serde(default)]
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSwitching {
    pub enabled: bool,
    /// `none`, `create_prorations` or `always_invoice`.
    pub proration_behavior: String,
    /// A switch to a cheaper plan (or a shorter interval) waits for the period's end.
    #[serde(default)]
    pub downgrades_at_period_end: bool,
}

impl PortalSpec {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        let one_of = |field: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "portal.{field}: `{value}` is not one of {}",
                    allowed.join(", ")
                ))
            }
        };
        for f in &self.customer_update.allowed {
            one_of("customer_update.allowed", f, CUSTOMER_FIELDS)?;
        }
        if self.customer_update.enabled && self.customer_update.allowed.is_empty() {
            anyhow::bail!("portal.customer_update.allowed: name at least one field, or disable it");
        }
        one_of(
            "cancellation.mode",
            &self.cancellation.mode,
            &["at_period_end", "immediately"],
        )?;
        for r in &self.cancellation.reasons {
            one_of("cancellation.reasons", r, CANCEL_REASONS)?;
        }
        one_of(
            "plan_switching.proration_behavior",
            &self.plan_switching.proration_behavior,
            &["none", "create_prorations", "always_invoice"],
        )?;
        for (field, url) in [
            ("privacy_policy_url", &self.privacy_policy_url),
            ("terms_of_service_url", &self.terms_of_service_url),
            ("default_return_url", &self.default_return_url),
        ] {
            if let Some(url) = url {
                let parsed = url::Url::parse(url)
                    .map_err(|e| anyhow::anyhow!("portal.{field}: `{url}` is not a URL ({e})"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    anyhow::bail!("portal.{field}: `{url}` is not an http(s) URL");
                }
            }
        }
        Ok(())
    }
}
