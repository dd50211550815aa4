//! The app's vocabulary that settings, rules and pages share, importing nothing of the app:
//! what `config` may parse a setting into without depending on a feature.

use serde::{Deserialize, Serialize};

/// How long a subscription whose payment failed (past_due) keeps its access
/// (`PAST_DUE_GRACE`).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum PastDuePolicy {
    /// For as long as Stripe retries the payment (the status stays past_due).
    #[default]
    WhileRetrying,
    /// For this many seconds after the unpaid invoice's first attempt (0: none at all), or
    /// until Stripe stops retrying, whichever comes first.
    Grace { secs: i64 },
}

impl PastDuePolicy {
    /// When access ends for a payment that first failed at `failed_at`, if the policy says.
    pub fn access_ends(self, failed_at: Option<i64>) -> Option<i64> {
        match self {
            PastDuePolicy::WhileRetrying => None,
            PastDuePolicy::Grace { secs } => failed_at.map(|t| t.saturating_add(secs)),
        }
    }
}
