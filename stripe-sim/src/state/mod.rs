//! The rules: what each change does to the state and which events it emits, as Stripe would.
//! The API handlers, the hosted pages and the test clock all change state only through here,
//! one file per resource, each adding its own `impl State` block.

mod catalogue;
mod checkout;
mod customers;
mod entitlements;
mod invoices;
mod payment_methods;
mod subscriptions;
mod test_clock;

use crate::model::Metadata;

pub use checkout::CHECKOUT_SESSION_LIFETIME;
pub use customers::CustomerFields;
pub use invoices::ManualInvoice;
pub use subscriptions::{
    ItemPatch, NewSubscription, PaymentBehavior, SubscriptionPatch, TrialRequest,
};

/// How long a portal session URL works.
pub const PORTAL_SESSION_LIFETIME: i64 = 5 * 60;

/// A metadata change: keys to set, keys to remove (`metadata[k]=`), or everything cleared (`metadata=`).
#[derive(Debug, Clone, Default)]
pub struct MetadataPatch {
    pub clear: bool,
    pub set: Metadata,
}

impl MetadataPatch {
    pub fn apply(&self, target: &mut Metadata) {
        if self.clear {
            target.clear();
        }
        for (k, v) in &self.set {
            if v.is_empty() {
                target.remove(k);
            } else {
                target.insert(k.clone(), v.clone());
            }
        }
    }

    pub fn into_new(self) -> Metadata {
        let mut m = Metadata::new();
        self.apply(&mut m);
        m
    }
}

fn format_amount(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let (units, cents) = (abs / 100, abs % 100);
    match currency {
        "usd" => format!("{sign}${units}.{cents:02}"),
        "eur" => format!("{sign}€{units}.{cents:02}"),
        "gbp" => format!("{sign}£{units}.{cents:02}"),
        other => format!("{sign}{units}.{cents:02} {}", other.to_uppercase()),
    }
}

/// "$29.00", "€9.00": an amount in minor units as people read it.
pub fn money(amount: i64, currency: &str) -> String {
    format_amount(amount, currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::DAY, model::*};

    fn seeded() -> State {
        let mut st = State::default();
        st.seed();
        st
    }

    fn price(st: &State, lookup: &str) -> String {
        st.prices
            .iter()
            .find(|p| p.lookup_key.as_deref() == Some(lookup))
            .map(|p| p.id.clone())
            .expect("seeded price")
    }

    fn subscribe(st: &mut State, card: &str, lookup: &str) -> (String, String) {
        let cus = st
            .create_customer(CustomerFields::default())
            .expect("customer");
        let pm = st.attach_payment_method(card, &cus).expect("attach");
        let sub = st
            .create_subscription(NewSubscription {
                customer: cus.clone(),
                items: vec![(price(st, lookup), 1)],
                default_payment_method: Some(pm),
                trial: TrialRequest::FromPrice,
                metadata: Metadata::new(),
                description: None,
                payment_behavior: PaymentBehavior::AllowIncomplete,
                cancel_at_period_end: false,
            })
            .expect("subscription");
        (cus, sub)
    }

    fn status(st: &State, sub: &str) -> SubStatus {
        st.subscription(sub).map(|s| s.status).expect("sub")
    }

    #[test]
    fn money_reads_naturally() {
        assert_eq!(money(2900, "usd"), "$29.00");
        assert_eq!(money(5, "eur"), "€0.05");
        assert_eq!(money(123456, "jpy"), "1234.56 JPY");
    }

    #[test]
    fn metadata_patches_set_unset_and_clear() {
        let mut m = Metadata::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]);
        MetadataPatch {
            clear: false,
            set: Metadata::from([
                ("a".to_string(), String::new()),
                ("c".to_string(), "3".to_string()),
            ]),
        }
        .apply(&mut m);
        assert_eq!(
            m,
            Metadata::from([
                ("b".to_string(), "2".to_string()),
                ("c".to_string(), "3".to_string())
            ])
        );
        MetadataPatch {
            clear: true,
            set: Metadata::new(),
        }
        .apply(&mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn a_renewal_with_a_good_card_is_paid() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "pm_card_visa", "starter_monthly");
        assert_eq!(status(&st, &sub), SubStatus::Active);
        st.advance_clock(&cus, 32 * DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::Active);
        let paid = st
            .invoices
            .iter()
            .filter(|i| i.status == InvoiceStatus::Paid)
            .count();
        assert_eq!(paid, 2);
    }

    #[test]
    fn a_failing_card_goes_past_due_then_dunning_cancels() {
        let mut st = seeded();
        // Pro starts with a trial, so the failing card is only charged when it ends.
        let (cus, sub) = subscribe(&mut st, "pm_card_chargeCustomerFail", "pro_monthly");
        assert_eq!(status(&st, &sub), SubStatus::Trialing);
        st.advance_clock(&cus, 15 * DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::PastDue);
        assert!(st
            .events
            .iter()
            .any(|e| e.type_ == "customer.subscription.trial_will_end"));
        assert!(st
            .events
            .iter()
            .any(|e| e.type_ == "invoice.payment_failed"));
        st.advance_clock(&cus, 16 * DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::Canceled);
        assert!(st
            .invoices
            .iter()
            .any(|i| i.status == InvoiceStatus::Uncollectible));
    }

    #[test]
    fn dunning_can_mark_unpaid_instead() {
        let mut st = seeded();
        st.settings.retries_exhausted = RetriesExhausted::MarkUnpaid;
        let (cus, sub) = subscribe(&mut st, "pm_card_chargeCustomerFail", "pro_monthly");
        st.advance_clock(&cus, 40 * DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::Unpaid);
    }

    #[test]
    fn cancel_at_period_end_ends_the_subscription_at_the_end() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "pm_card_visa", "team_monthly");
        st.update_subscription(
            &sub,
            SubscriptionPatch {
                cancel_at_period_end: Some(true),
                ..Default::default()
            },
        )
        .expect("update");
        assert_eq!(status(&st, &sub), SubStatus::Active);
        st.advance_clock(&cus, 32 * DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::Canceled);
        // No renewal invoice was made for a period that never started.
        assert_eq!(st.invoices.len(), 1);
    }

    #[test]
    fn a_declined_first_payment_leaves_it_incomplete_until_it_expires() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "pm_card_chargeCustomerFail", "starter_monthly");
        assert_eq!(status(&st, &sub), SubStatus::Incomplete);
        st.advance_clock(&cus, DAY).expect("advance");
        assert_eq!(status(&st, &sub), SubStatus::IncompleteExpired);
    }

    #[test]
    fn declined_cards_cannot_be_attached() {
        let mut st = seeded();
        let cus = st
            .create_customer(CustomerFields::default())
            .expect("customer");
        let err = st
            .attach_payment_method("pm_card_chargeDeclinedInsufficientFunds", &cus)
            .expect_err("declined");
        assert_eq!(err.decline_code, Some("insufficient_funds"));
        assert!(st.payment_methods.is_empty());
    }
}
