//! Checkout sessions: what one charges, paying it with a test card (customer, card,
//! subscription, first invoice), and expiring it.

use super::{CustomerFields, NewSubscription, PaymentBehavior, TrialRequest};
use crate::{
    cards::{CardOutcome, Decline, TestCard},
    clock::{self, DAY},
    model::*,
};

/// How long a Checkout session stays open.
pub const CHECKOUT_SESSION_LIFETIME: i64 = DAY;

impl State {
    /// Expires an open session (`POST …/expire`, or its time ran out); emits
    /// `checkout.session.expired`.
    pub fn expire_checkout_session(&mut self, id: &str) {
        let Some(cs) = self.checkout_session_mut(id) else {
            return;
        };
        if cs.status != CheckoutStatus::Open {
            return;
        }
        cs.status = CheckoutStatus::Expired;
        if let Some(json) = self
            .checkout_session(id)
            .map(|c| self.checkout_session_json(c))
        {
            self.emit("checkout.session.expired", json, None, clock::now());
        }
    }

    /// What a Checkout session charges today and whether it starts with a trial.
    pub fn checkout_terms(&self, cs: &CheckoutSession) -> (i64, Option<u32>) {
        let trial = match (cs.trial_period_days, cs.trial_from_plan) {
            (Some(d), _) => Some(d).filter(|d| *d > 0),
            (None, Some(false)) => None,
            (None, _) => cs
                .line_items
                .first()
                .and_then(|l| self.price(&l.price))
                .and_then(|p| p.trial_period_days)
                .filter(|d| *d > 0),
        };
        let amount = if trial.is_some() { 0 } else { cs.amount_total };
        (amount, trial)
    }

    /// Pays a Checkout session with a test card: customer (if none), card, subscription,
    /// first invoice, `checkout.session.completed`. A declined card changes nothing.
    pub fn complete_checkout(
        &mut self,
        cs_id: &str,
        card: &TestCard,
        expiry: (u32, i32),
        name: &str,
        email: Option<String>,
    ) -> Result<(), Decline> {
        let Some(cs) = self.checkout_session(cs_id).cloned() else {
            return Err(Decline::generic());
        };
        if cs.mode == "payment" {
            if card.outcome.declined_at_attach() {
                return Err(card.outcome.decline().unwrap_or_else(Decline::generic));
            }
            let name = Some(name.to_string()).filter(|n| !n.is_empty());
            let pm = self.create_card(card, Some(expiry), name, email);
            return self.pay_checkout_with(cs_id, &pm);
        }
        let (amount, trial) = self.checkout_terms(&cs);
        if card.outcome.declined_at_attach()
            || (amount > 0 && card.outcome == CardOutcome::ChargeFails)
        {
            return Err(card.outcome.decline().unwrap_or_else(Decline::generic));
        }
        let customer = match cs.customer.clone() {
            Some(c) if self.live_customer(&c).is_some() => c,
            _ => self
                .create_customer(CustomerFields {
                    email: Some(email.clone().or_else(|| cs.customer_email.clone())),
                    name: Some(Some(name.to_string()).filter(|n| !n.is_empty())),
                    ..Default::default()
                })
                .map_err(|_| Decline::generic())?,
        };
        let pm = self.create_card(
            card,
            Some(expiry),
            Some(name.to_string()).filter(|n| !n.is_empty()),
            email,
        );
        self.attach_payment_method(&pm, &customer)
            .map_err(|_| Decline::generic())?;
        let sub = self
            .create_subscription(NewSubscription {
                customer: customer.clone(),
                items: cs
                    .line_items
                    .iter()
                    .map(|l| (l.price.clone(), l.quantity))
                    .collect(),
                default_payment_method: Some(pm),
                trial: trial.map_or(TrialRequest::None, TrialRequest::Days),
                metadata: cs.subscription_metadata.clone(),
                description: cs.subscription_description.clone(),
                payment_behavior: PaymentBehavior::ErrorIfIncomplete,
                cancel_at_period_end: false,
            })
            .map_err(|_| Decline::generic())?;
        let invoice = self
            .subscription(&sub)
            .and_then(|s| s.latest_invoice.clone());
        let now = self.customer_now(&customer);
        if let Some(s) = self.checkout_session_mut(cs_id) {
            s.status = CheckoutStatus::Complete;
            s.payment_status = if amount == 0 {
                "no_payment_required"
            } else {
                "paid"
            }
            .into();
            s.customer = Some(customer);
            s.subscription = Some(sub);
            s.invoice = invoice;
        }
        if let Some(json) = self
            .checkout_session(cs_id)
            .map(|c| self.checkout_session_json(c))
        {
            self.emit("checkout.session.completed", json, None, now);
        }
        Ok(())
    }

    /// Pays a Checkout session with a saved card (`pm_…`, attached or not): in payment mode the
    /// charge is the whole payment (no subscription); in subscription mode it goes as the
    /// hosted page's would, with that card.
    pub fn pay_checkout_with(&mut self, cs_id: &str, pm: &str) -> Result<(), Decline> {
        let Some(cs) = self.checkout_session(cs_id).cloned() else {
            return Err(Decline::generic());
        };
        let Some(card) = self.payment_method(pm).cloned() else {
            return Err(Decline::no_payment_method());
        };
        if cs.mode != "payment" {
            let test_card = crate::cards::TEST_CARDS
                .iter()
                .find(|c| c.outcome == card.outcome && c.last4() == card.last4)
                .ok_or_else(Decline::generic)?;
            return self.complete_checkout(
                cs_id,
                test_card,
                (card.exp_month, card.exp_year),
                card.billing_name.as_deref().unwrap_or(""),
                card.billing_email.clone(),
            );
        }
        let (amount, _) = self.checkout_terms(&cs);
        self.charge(Some(pm), amount)?;
        let now = cs
            .customer
            .as_deref()
            .map_or_else(clock::now, |c| self.customer_now(c));
        if let Some(s) = self.checkout_session_mut(cs_id) {
            s.status = CheckoutStatus::Complete;
            s.payment_status = if amount == 0 {
                "no_payment_required"
            } else {
                "paid"
            }
            .into();
            s.payment_intent = (amount > 0).then(|| new_id("pi_", 24));
        }
        if let Some(json) = self
            .checkout_session(cs_id)
            .map(|c| self.checkout_session_json(c))
        {
            self.emit("checkout.session.completed", json, None, now);
        }
        Ok(())
    }
}
