//! Payment methods: test cards made, attached, detached and made the default, and whether a
//! charge on one succeeds.

use super::CustomerFields;
use crate::{
    cards::{self, CardOutcome, Decline, TestCard},
    clock,
    error::{ApiError, ApiResult},
    model::*,
};

impl State {
    /// A new, unattached card payment method for a test card.
    pub fn create_card(
        &mut self,
        card: &TestCard,
        expiry: Option<(u32, i32)>,
        name: Option<String>,
        email: Option<String>,
    ) -> String {
        let (exp_month, exp_year) = expiry.unwrap_or((12, 2034));
        let pm = PaymentMethod {
            id: new_id("pm_", 24),
            created: clock::now(),
            customer: None,
            brand: card.brand.to_string(),
            last4: card.last4().to_string(),
            funding: card.funding.to_string(),
            exp_month,
            exp_year,
            outcome: card.outcome,
            billing_name: name,
            billing_email: email,
            metadata: Metadata::new(),
        };
        let id = pm.id.clone();
        self.payment_methods.push(pm);
        id
    }

    /// Attaches a payment method (or a `pm_card_*` test id, which makes a new one, as Stripe
    /// does) to a customer. Cards that decline outright are refused with a 402.
    pub fn attach_payment_method(&mut self, pm_ref: &str, customer: &str) -> ApiResult<String> {
        self.require_customer(customer, "customer")?;
        let pm_id =
            if let Some(card) = cards::by_token(pm_ref) {
                if let Some(decline) = card
                    .outcome
                    .declined_at_attach()
                    .then(|| card.outcome.decline())
                    .flatten()
                {
                    return Err(ApiError::card_declined(
                        decline.decline_code,
                        decline.message,
                    ));
                }
                self.create_card(card, None, None, None)
            } else {
                let pm = self
                    .payment_method(pm_ref)
                    .ok_or_else(|| ApiError::no_such("PaymentMethod", pm_ref, "payment_method"))?;
                match pm.customer.as_deref() {
                    Some(c) if c == customer => return Ok(pm.id.clone()),
                    Some(_) => return Err(ApiError::invalid_request(
                        "The payment method you provided has already been attached to a customer.",
                    )),
                    None => {}
                }
                if let Some(decline) = pm
                    .outcome
                    .declined_at_attach()
                    .then(|| pm.outcome.decline())
                    .flatten()
                {
                    return Err(ApiError::card_declined(
                        decline.decline_code,
                        decline.message,
                    ));
                }
                pm.id.clone()
            };
        let now = self.customer_now(customer);
        if let Some(pm) = self.payment_method_mut(&pm_id) {
            pm.customer = Some(customer.to_string());
        }
        if let Some(json) = self
            .payment_method(&pm_id)
            .map(|p| self.payment_method_json(p))
        {
            self.emit("payment_method.attached", json, None, now);
        }
        Ok(pm_id)
    }

    pub fn detach_payment_method(&mut self, pm_id: &str) -> ApiResult<()> {
        let pm = self
            .payment_method(pm_id)
            .ok_or_else(|| ApiError::no_such("PaymentMethod", pm_id, "payment_method"))?;
        let Some(customer) = pm.customer.clone() else {
            return Err(ApiError::invalid_request(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
            ));
        };
        let now = self.customer_now(&customer);
        if self
            .customer(&customer)
            .is_some_and(|c| c.default_payment_method.as_deref() == Some(pm_id))
        {
            self.update_customer(
                &customer,
                CustomerFields {
                    default_payment_method: Some(None),
                    ..Default::default()
                },
            )?;
        }
        let subs: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|s| s.default_payment_method.as_deref() == Some(pm_id))
            .map(|s| s.id.clone())
            .collect();
        for sub in subs {
            self.change_subscription(&sub, now, |s| s.default_payment_method = None);
        }
        if let Some(pm) = self.payment_method_mut(pm_id) {
            pm.customer = None;
        }
        if let Some(json) = self
            .payment_method(pm_id)
            .map(|p| self.payment_method_json(p))
        {
            self.emit("payment_method.detached", json, None, now);
        }
        Ok(())
    }

    /// A card from a hosted page becomes the customer's default for invoices and for every
    /// live subscription, as the portal's "update payment method" does.
    pub fn make_default_card(&mut self, customer: &str, pm_id: &str) -> ApiResult<()> {
        self.update_customer(
            customer,
            CustomerFields {
                default_payment_method: Some(Some(pm_id.to_string())),
                ..Default::default()
            },
        )?;
        let now = self.customer_now(customer);
        let subs: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|s| s.customer == customer && !s.status.is_ended())
            .map(|s| s.id.clone())
            .collect();
        for sub in subs {
            self.change_subscription(&sub, now, |s| {
                s.default_payment_method = Some(pm_id.to_string())
            });
        }
        // A card that works settles what is owed, as Stripe retries open invoices on a new default.
        let open: Vec<String> = self
            .invoices
            .iter()
            .filter(|i| i.customer == customer && i.status == InvoiceStatus::Open)
            .map(|i| i.id.clone())
            .collect();
        for inv in open {
            if self
                .payment_method(pm_id)
                .is_some_and(|p| p.outcome == CardOutcome::Succeeds)
            {
                self.retry_invoice(&inv, now);
            }
        }
        Ok(())
    }

    /// The payment method a charge for this subscription uses.
    pub(crate) fn payment_method_for(
        &self,
        customer: &str,
        subscription: Option<&str>,
    ) -> Option<String> {
        subscription
            .and_then(|s| self.subscription(s))
            .and_then(|s| s.default_payment_method.clone())
            .or_else(|| {
                self.customer(customer)
                    .and_then(|c| c.default_payment_method.clone())
            })
    }

    /// Would charging `amount` now succeed? (Charges have no other effect here.)
    pub(crate) fn charge(&self, pm: Option<&str>, amount: i64) -> Result<(), Decline> {
        if amount <= 0 {
            return Ok(());
        }
        let pm = pm
            .and_then(|id| self.payment_method(id))
            .ok_or_else(Decline::no_payment_method)?;
        match pm.outcome.decline() {
            None => Ok(()),
            Some(d) => Err(d),
        }
    }
}
