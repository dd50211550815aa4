//! The app's vocabulary that settings, rules and pages share, importing nothing of the app:
//! what `config` may parse a setting into without depending on a feature.

use serde::{Deserialize, Serialize};
use time::{macros::format_description, OffsetDateTime};

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

/// What a member may do in an organisation.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: billing, members, roles, and the organisation itself. At least one always.
    Owner,
    /// Billing (Checkout, plan switches, the portal) and the members' seats, not roles.
    BillingAdmin,
    /// Uses what the plan includes; sees the plan and who to ask.
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::BillingAdmin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::BillingAdmin => "billing_admin",
            Role::Member => "member",
        }
    }

    /// A stored or posted role; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// As the pages say it.
    pub fn label(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::BillingAdmin => "Billing admin",
            Role::Member => "Member",
        }
    }

    /// Checkout, plan switches, the portal and its deep links.
    pub fn manages_billing(self) -> bool {
        matches!(self, Role::Owner | Role::BillingAdmin)
    }

    /// Invitations, removals and roles.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner)
    }
}

/// One organisation a user belongs to, as the header's switcher and the organisation page list
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgChoice {
    pub id: i64,
    pub name: String,
    pub personal: bool,
    pub role: Role,
    pub current: bool,
}

/// The organisation a signed-in user acts for now, and their role in it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct CurrentOrg {
    pub id: i64,
    pub name: String,
    /// The user's personal organisation (they are its only member).
    pub personal: bool,
    pub role: Role,
}
