//! The billing messages' facts, as queued with them (the outbox row's `params`): what the
//! billing tables said when the event that caused the message was applied. Rendering reads
//! these, never the tables, so a mail says what was true when it was caused.

use serde::{Deserialize, Serialize};

/// `customer.subscription.trial_will_end`, checked against the subscription (still trialing,
/// nothing collected yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialEnding {
    pub plan: Option<String>,
    pub trial_end: i64,
    /// What the first invoice will be: the plan's price (before tax and discounts).
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    /// A card is on file, so the plan goes on by itself.
    pub has_card: bool,
}

/// The first failed attempt of an invoice of a past_due plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub plan: Option<String>,
    pub amount_due: i64,
    pub currency: String,
    /// Stripe's next try, if it plans one.
    pub next_attempt: Option<i64>,
    /// When the grace clock started (the first attempt of the oldest unpaid invoice):
    /// `PAST_DUE_GRACE` counts from here.
    pub failed_at: Option<i64>,
    /// The organisation whose plan it is: the mail's link opens its billing.
    #[serde(default)]
    pub organization_id: Option<i64>,
}

/// `invoice.payment_action_required`: the bank wants the card holder to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequired {
    pub amount_due: i64,
    pub currency: String,
    /// Stripe's page for the invoice, where the payment is confirmed.
    pub invoice_url: Option<String>,
}

/// A plan that ended: cancelled, or left unpaid when Stripe stopped retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEnded {
    pub plan: Option<String>,
    /// Stripe stopped retrying a failed payment (the plan is unpaid), rather than a
    /// cancellation.
    pub retries_stopped: bool,
}

/// What the old address is told once the account's address changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChanged {
    pub new_email: String,
}

/// An invitation: who asked, to which organisation, in which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub invitation_id: i64,
    pub organization: String,
    pub invited_by: String,
    /// As the pages say it ("Member", "Billing admin", "Owner").
    pub role: String,
}
