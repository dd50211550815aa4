//! Stripe's test cards: the `pm_card_*` ids the API accepts and the card numbers the hosted
//! pages accept, each with the outcome Stripe documents for it.

use serde::{Deserialize, Serialize};

/// What happens when a card is attached and, later, charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardOutcome {
    /// Attaches and every charge succeeds.
    Succeeds,
    /// Attaches, but every charge is declined (`card_declined`).
    ChargeFails,
    /// Declined at once: attaching (or paying on a hosted page) fails with insufficient funds.
    DeclinedInsufficientFunds,
    /// Declined at once with a generic decline.
    DeclinedGeneric,
    /// Attaches, but every charge needs the cardholder's authentication (3-D Secure 2): an
    /// invoice stays open with `invoice.payment_action_required`, and a new subscription
    /// stays `incomplete`.
    RequiresAction,
}

impl CardOutcome {
    /// The decline Stripe reports when this card is refused, if it ever is.
    pub fn decline(self) -> Option<Decline> {
        match self {
            CardOutcome::Succeeds => None,
            CardOutcome::ChargeFails | CardOutcome::DeclinedGeneric => Some(Decline::generic()),
            CardOutcome::DeclinedInsufficientFunds => Some(Decline {
                decline_code: "insufficient_funds",
                message: "Your card has insufficient funds.",
            }),
            CardOutcome::RequiresAction => Some(Decline::authentication_required()),
        }
    }

    /// Whether the card is refused before it can even be saved.
    pub fn declined_at_attach(self) -> bool {
        matches!(
            self,
            CardOutcome::DeclinedInsufficientFunds | CardOutcome::DeclinedGeneric
        )
    }
}

/// A refused payment, as the customer should read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decline {
    pub decline_code: &'static str,
    pub message: &'static str,
}

impl Decline {
    pub fn generic() -> Self {
        Decline {
            decline_code: "generic_decline",
            message: "Your card was declined.",
        }
    }

    /// A charge that needs the cardholder to authenticate it (not a decline of the card).
    pub fn authentication_required() -> Self {
        Decline {
            decline_code: "authentication_required",
            message: "This payment requires the cardholder's authentication (3-D Secure).",
        }
    }

    /// Whether the charge waits for the cardholder rather than being refused.
    pub fn requires_action(&self) -> bool {
        self.decline_code == "authentication_required"
    }

    pub fn no_payment_method() -> Self {
        Decline {
            decline_code: "no_payment_method",
            message: "The customer has no attached payment source or default payment method.",
        }
    }
}

/// One test card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    /// The `pm_card_*` id accepted by the API.
    pub token: &'static str,
    pub number: &'static str,
    pub brand: &'static str,
    pub funding: &'static str,
    pub outcome: CardOutcome,
    /// What the hosted pages say about it.
    pub label: &'static str,
}

impl TestCard {
    pub fn last4(&self) -> &'static str {
        &self.number[self.number.len() - 4..]
    }
}

/// The cards the double knows, in the order the hosted pages list them.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        token: "pm_card_visa",
        number: "4242424242424242",
        brand: "visa",
        funding: "credit",
        outcome: CardOutcome::Succeeds,
        label: "Succeeds",
    },
    TestCard {
        token: "pm_card_chargeCustomerFail",
        number: "4000000000000341",
        brand: "visa",
        funding: "credit",
        outcome: CardOutcome::ChargeFails,
        label: "Saves, but every charge fails",
    },
    TestCard {
        token: "pm_card_chargeDeclinedInsufficientFunds",
        number: "4000000000009995",
        brand: "visa",
        funding: "credit",
        outcome: CardOutcome::DeclinedInsufficientFunds,
        label: "Declined: insufficient funds",
    },
    TestCard {
        token: "pm_card_chargeDeclined",
        number: "4000000000000002",
        brand: "visa",
        funding: "credit",
        outcome: CardOutcome::DeclinedGeneric,
        label: "Declined",
    },
    TestCard {
        token: "pm_card_threeDSecure2Required",
        number: "4000002760003184",
        brand: "visa",
        funding: "credit",
        outcome: CardOutcome::RequiresAction,
        label: "Saves, but every payment needs 3-D Secure authentication",
    },
    TestCard {
        token: "pm_card_mastercard",
        number: "5555555555554444",
        brand: "mastercard",
        funding: "credit",
        outcome: CardOutcome::Succeeds,
        label: "Succeeds (Mastercard)",
    },
    TestCard {
        token: "pm_card_amex",
        number: "378282246310005",
        brand: "amex",
        funding: "credit",
        outcome: CardOutcome::Succeeds,
        label: "Succeeds (American Express)",
    },
];

/// The test card with this `pm_card_*` id, or its `tok_*` test token (`tok_visa` is the card
/// `pm_card_visa` is).
pub fn by_token(token: &str) -> Option<&'static TestCard> {
    let name = token
        .strip_prefix("pm_card_")
        .or_else(|| token.strip_prefix("tok_"))?;
    TEST_CARDS
        .iter()
        .find(|c| c.token.strip_prefix("pm_card_") == Some(name))
}

/// The test card with this number; spaces and dashes are ignored, as a card field would.
pub fn by_number(number: &str) -> Option<&'static TestCard> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    TEST_CARDS.iter().find(|c| c.number == digits)
}

/// Parses an expiry typed as `MM/YY`, `MM / YY` or `MM/YYYY` into (month, four-digit year).
pub fn parse_expiry(input: &str) -> Option<(u32, i32)> {
    let cleaned: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let (m, y) = cleaned.split_once('/')?;
    let month: u32 = m.parse().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let year: i32 = match y.len() {
        2 => 2000 + y.parse::<i32>().ok()?,
        4 => y.parse().ok()?,
        _ => return None,
    };
    Some((month, year))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_numbers_find_the_same_cards() {
        for card in TEST_CARDS {
            assert_eq!(by_token(card.token), Some(card));
            assert_eq!(by_number(card.number), Some(card));
        }
        assert_eq!(
            by_number("4242 4242 4242 4242").map(|c| c.token),
            Some("pm_card_visa")
        );
        assert_eq!(by_number("4242-4242-4242-4241"), None);
        assert_eq!(by_token("pm_card_unknown"), None);
        assert_eq!(
            by_number("4000000000000341").map(|c| c.last4()),
            Some("0341")
        );
    }

    #[test]
    fn outcomes() {
        let fail = by_token("pm_card_chargeCustomerFail").map(|c| c.outcome);
        assert_eq!(fail, Some(CardOutcome::ChargeFails));
        assert!(!CardOutcome::ChargeFails.declined_at_attach());
        assert!(CardOutcome::DeclinedInsufficientFunds.declined_at_attach());
        assert_eq!(
            CardOutcome::DeclinedInsufficientFunds
                .decline()
                .map(|d| d.decline_code),
            Some("insufficient_funds")
        );
        assert_eq!(CardOutcome::Succeeds.decline(), None);
    }

    #[test]
    fn expiry_formats() {
        assert_eq!(parse_expiry("12/34"), Some((12, 2034)));
        assert_eq!(parse_expiry(" 01 / 2030 "), Some((1, 2030)));
        for bad in ["13/30", "00/30", "1230", "12/3", "aa/bb", "", "/"] {
            assert_eq!(parse_expiry(bad), None, "{bad}");
        }
    }
}
