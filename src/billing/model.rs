//! Billing's own vocabulary, shared by the server and the browser: no server-only types.

use serde::{Deserialize, Serialize};

pub use crate::domain::PastDuePolicy;

/// A subscription's status as Stripe names it. Billfold keeps Stripe's string in the
/// database; this is how code reads it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Unpaid,
    Canceled,
    Incomplete,
    IncompleteExpired,
    Paused,
}

impl SubscriptionStatus {
    /// Every status, for parsing and tests.
    pub const ALL: [SubscriptionStatus; 8] = [
        SubscriptionStatus::Active,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Incomplete,
        SubscriptionStatus::IncompleteExpired,
        SubscriptionStatus::Paused,
    ];

    /// Stripe's name for the status: the one table of names.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::Paused => "paused",
        }
    }

    /// Reads Stripe's name. A status this code does not know (one Stripe adds later) reads
    /// as `incomplete`: it grants nothing and is not final.
    pub fn parse(s: &str) -> SubscriptionStatus {
        s.parse().unwrap_or(SubscriptionStatus::Incomplete)
    }

    /// Stripe never brings a canceled or expired subscription back: such a subscription is
    /// over for good, and its row is a tombstone.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }
}

/// A name that is none of Stripe's subscription statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a subscription status")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for SubscriptionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SubscriptionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the billing rules know of one subscription: its status and its dates. The pure rules
/// (access, the primary subscription) read this, never a wire DTO or a database row.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Subscription {
    pub id: String,
    pub status: SubscriptionStatus,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
}

/// What the grace rule knows of one invoice: whose it is, whether it is still owed, and
/// when its first collection attempt was made.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Invoice {
    pub subscription_id: Option<String>,
    /// Stripe's status: `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub created: i64,
    pub finalized_at: Option<i64>,
}

impl Invoice {
    /// Still owed: finalized and neither paid nor voided.
    pub fn is_unpaid(&self) -> bool {
        matches!(self.status.as_str(), "open" | "uncollectible")
    }

    /// When its first collection attempt was made: at finalization (or, for an invoice
    /// without that, its creation).
    pub fn first_attempt(&self) -> i64 {
        self.finalized_at.unwrap_or(self.created)
    }
}

impl Subscription {
    /// A subscription with this status and nothing else known yet.
    pub fn new(id: impl Into<String>, status: SubscriptionStatus) -> Self {
        Subscription {
            id: id.into(),
            status,
            current_period_start: None,
            current_period_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
        }
    }

    /// When a scheduled cancellation takes effect, if one is scheduled: `cancel_at`, or the
    /// period end with `cancel_at_period_end` (the portal may set either).
    pub fn cancels_at(&self) -> Option<i64> {
        match (self.cancel_at, self.cancel_at_period_end) {
            (Some(at), _) => Some(at),
            (None, true) => self.current_period_end,
            (None, false) => None,
        }
    }
}

impl AsRef<Subscription> for Subscription {
    fn as_ref(&self) -> &Subscription {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_stripe_names() {
        for status in SubscriptionStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(SubscriptionStatus::parse(status.as_str()), status);
        }
        assert_eq!(
            SubscriptionStatus::parse("something_new"),
            SubscriptionStatus::Incomplete
        );
        assert!("Active".parse::<SubscriptionStatus>().is_err());
    }

    #[test]
    fn canceled_and_expired_subscriptions_are_final() {
        let terminal: Vec<_> = SubscriptionStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                SubscriptionStatus::Canceled,
                SubscriptionStatus::IncompleteExpired
            ]
        );
    }
}
