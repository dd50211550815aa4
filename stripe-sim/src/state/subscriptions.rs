//! Subscriptions: what creating, updating (items, cancellation, plan switches) and canceling
//! one does, and the events each emits.

use serde_json::Value;

use super::MetadataPatch;
use crate::{
    clock::{self, DAY},
    error::{ApiError, ApiResult},
    model::*,
    plan_change::{PlanChange, ProrationBehavior, Timing},
};

/// How a new subscription's trial is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialRequest {
    /// No trial parameter: the price's `recurring.trial_period_days`, if any.
    FromPrice,
    /// `trial_end=now` or `trial_from_plan=false`: no trial.
    None,
    Days(u32),
    Until(i64),
}

/// `payment_behavior`, named as Stripe names its values.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentBehavior {
    AllowIncomplete,
    ErrorIfIncomplete,
    DefaultIncomplete,
}

#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub customer: String,
    pub items: Vec<(String, u64)>,
    pub default_payment_method: Option<String>,
    pub trial: TrialRequest,
    pub metadata: Metadata,
    pub description: Option<String>,
    pub payment_behavior: PaymentBehavior,
    pub cancel_at_period_end: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ItemPatch {
    pub id: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<u64>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub cancel_at_period_end: Option<bool>,
    /// `Some(None)` clears a scheduled cancellation (`cancel_at=`).
    pub cancel_at: Option<Option<i64>>,
    pub items: Option<Vec<ItemPatch>>,
    pub default_payment_method: Option<Option<String>>,
    pub metadata: Option<MetadataPatch>,
    pub description: Option<Option<String>>,
    pub end_trial_now: bool,
    pub cancellation_comment: Option<String>,
    pub cancellation_feedback: Option<String>,
    /// How a price switch is prorated (Stripe's default: `create_prorations`).
    pub proration_behavior: Option<ProrationBehavior>,
    /// The moment a price switch is prorated from.
    pub proration_date: Option<i64>,
}

impl State {
    /// The subscription's JSON, or 404 naming `param`.
    pub fn subscription_view(&self, id: &str, param: &str) -> ApiResult<Value> {
        self.subscription(id)
            .map(|s| self.subscription_json(s))
            .ok_or_else(|| ApiError::no_such("subscription", id, param))
    }

    pub(crate) fn validate_price(&self, price: &str, param: &str) -> ApiResult<&Price> {
        let p = self
            .price(price)
            .ok_or_else(|| ApiError::no_such("price", price, param))?;
        if !p.active {
            return Err(ApiError::invalid_param(
                param,
                format!("The price specified ({price}) is inactive. This field only accepts active prices."),
            ));
        }
        if p.one_time() {
            return Err(ApiError::invalid_param(
                param,
                "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
            ));
        }
        Ok(p)
    }

    /// The currency and interval every item shares (Stripe requires that), checked.
    fn validate_items(&self, items: &[(String, u64)], param: &str) -> ApiResult<(String, String)> {
        let mut shape: Option<(String, String, u32)> = None;
        if items.is_empty() {
            return Err(ApiError::missing_param(param));
        }
        for (i, (price, _)) in items.iter().enumerate() {
            let p = self.validate_price(price, &format!("{param}[{i}][price]"))?;
            let this = (p.currency.clone(), p.interval.clone(), p.interval_count);
            match &shape {
                None => shape = Some(this),
                Some(s) if *s != this => {
                    return Err(ApiError::invalid_param(
                        &format!("{param}[{i}][price]"),
                        "All prices on a subscription must have the same currency and recurring interval.",
                    ))
                }
                Some(_) => {}
            }
        }
        shape
            .map(|(c, i, _)| (c, i))
            .ok_or_else(|| ApiError::missing_param(param))
    }

    pub fn create_subscription(&mut self, new: NewSubscription) -> ApiResult<String> {
        self.require_customer(&new.customer, "customer")?;
        let (currency, _) = self.validate_items(&new.items, "items")?;
        if let Some(pm) = &new.default_payment_method {
            let attached = self
                .payment_method(pm)
                .is_some_and(|p| p.customer.as_deref() == Some(new.customer.as_str()));
            if !attached {
                return Err(ApiError::invalid_param(
                    "default_payment_method",
                    format!("The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."),
                ));
            }
        }
        let now = self.customer_now(&new.customer);
        let first_price = self
            .price(&new.items[0].0)
            .cloned()
            .ok_or_else(|| ApiError::no_such("price", &new.items[0].0, "items[0][price]"))?;
        let trial_end = match new.trial {
            TrialRequest::None => None,
            TrialRequest::Days(0) => None,
            TrialRequest::Days(d) => Some(now + i64::from(d) * DAY),
            TrialRequest::Until(t) if t > now => Some(t),
            TrialRequest::Until(_) => {
                return Err(ApiError::invalid_param(
                    "trial_end",
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                ))
            }
            TrialRequest::FromPrice => first_price
                .trial_period_days
                .filter(|d| *d > 0)
                .map(|d| now + i64::from(d) * DAY),
        };
        let amount: i64 = self.items_amount(&new.items);
        let pm = new.default_payment_method.clone().or_else(|| {
            self.customer(&new.customer)
                .and_then(|c| c.default_payment_method.clone())
        });
        let charge = if trial_end.is_some() {
            Ok(())
        } else {
            self.charge(pm.as_deref(), amount)
        };
        if let (Err(decline), PaymentBehavior::ErrorIfIncomplete) = (&charge, new.payment_behavior)
        {
            return Err(ApiError::card_declined(
                decline.decline_code,
                decline.message,
            ));
        }
        let status = match (trial_end, new.payment_behavior, &charge) {
            (Some(_), _, _) => SubStatus::Trialing,
            (None, PaymentBehavior::DefaultIncomplete, _) if amount > 0 => SubStatus::Incomplete,
            (None, _, Ok(())) => SubStatus::Active,
            (None, _, Err(_)) => SubStatus::Incomplete,
        };
        let anchor = trial_end.unwrap_or(now);
        let period_end = trial_end.unwrap_or_else(|| {
            clock::period_end(now, now, first_price.interval(), first_price.interval_count)
        });
        let id = new_id("sub_", 24);
        let items = new
            .items
            .iter()
            .map(|(price, quantity)| SubscriptionItem {
                id: new_id("si_", 14),
                created: now,
                price: price.clone(),
                quantity: *quantity,
                current_period_start: now,
                current_period_end: period_end,
                metadata: Metadata::new(),
            })
            .collect();
        let sub = Subscription {
            id: id.clone(),
            customer: new.customer.clone(),
            created: now,
            start_date: now,
            billing_cycle_anchor: anchor,
            status,
            items,
            currency,
            default_payment_method: new.default_payment_method.clone(),
            cancel_at_period_end: new.cancel_at_period_end,
            cancel_at: new.cancel_at_period_end.then_some(period_end),
            canceled_at: new.cancel_at_period_end.then_some(now),
            ended_at: None,
            cancellation_reason: new
                .cancel_at_period_end
                .then(|| "cancellation_requested".to_string()),
            cancellation_feedback: None,
            cancellation_comment: None,
            trial_start: trial_end.map(|_| now),
            trial_end,
            latest_invoice: None,
            metadata: new.metadata.clone(),
            description: new.description.clone(),
            trial_will_end_sent: false,
            schedule: None,
            pause_without_payment_method: false,
        };
        self.subscriptions.push(sub);
        let invoice = self.new_invoice(
            &id,
            "subscription_create",
            now,
            period_end,
            now,
            trial_end.is_some(),
        );
        if let Some(s) = self.subscription_mut(&id) {
            s.latest_invoice = Some(invoice.clone());
        }
        let created = self.subscription_view(&id, "id")?;
        self.emit("customer.subscription.created", created, None, now);
        self.emit_invoice_opened(&invoice, now);
        if !(status == SubStatus::Incomplete
            && new.payment_behavior == PaymentBehavior::DefaultIncomplete)
        {
            self.attempt_invoice_payment(&invoice, now, false);
        }
        self.run_clock(&new.customer);
        Ok(id)
    }

    fn items_amount(&self, items: &[(String, u64)]) -> i64 {
        items
            .iter()
            .map(|(price, qty)| {
                self.price(price).map_or(0, |p| p.unit_amount) * i64::try_from(*qty).unwrap_or(1)
            })
            .sum()
    }

    /// Applies `change` to a subscription and emits `customer.subscription.updated` if it changed anything.
    pub fn change_subscription(
        &mut self,
        id: &str,
        at: i64,
        change: impl FnOnce(&mut Subscription),
    ) {
        let Some(before) = self.subscription(id).map(|s| self.subscription_json(s)) else {
            return;
        };
        if let Some(s) = self.subscription_mut(id) {
            change(s);
        }
        if let Some(after) = self.subscription(id).map(|s| self.subscription_json(s)) {
            self.emit_update("customer.subscription.updated", &before, after, at);
        }
    }

    /// `POST /v1/subscriptions/{id}/resume` with `billing_cycle_anchor=now`: a paused
    /// subscription starts a new period now and is billed for it at once; it is active again
    /// (`customer.subscription.resumed`), past due if the charge is declined.
    pub fn resume_subscription(&mut self, id: &str) -> ApiResult<()> {
        let sub = self
            .subscription(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription", id, "subscription"))?;
        if sub.status != SubStatus::Paused {
            return Err(ApiError::state(format!(
                "Subscription {id} is {}: only a paused subscription can be resumed.",
                sub.status.as_str()
            )));
        }
        let price = sub
            .items
            .first()
            .and_then(|i| self.price(&i.price))
            .cloned()
            .ok_or_else(|| ApiError::state("The subscription has no price to bill."))?;
        let at = self.customer_now(&sub.customer);
        let end = clock::period_end(at, at, price.interval(), price.interval_count);
        let invoice = self.new_invoice(id, "subscription_cycle", at, end, at, false);
        self.change_subscription(id, at, |s| {
            s.status = SubStatus::Active;
            s.billing_cycle_anchor = at;
            for it in &mut s.items {
                it.current_period_start = at;
                it.current_period_end = end;
            }
            s.latest_invoice = Some(invoice.clone());
        });
        self.emit_invoice_opened(&invoice, at);
        self.charge_subscription_invoice(&invoice, at);
        if let Some(json) = self.subscription(id).map(|s| self.subscription_json(s)) {
            self.emit("customer.subscription.resumed", json, None, at);
        }
        Ok(())
    }

    pub fn update_subscription(&mut self, id: &str, patch: SubscriptionPatch) -> ApiResult<()> {
        let sub = self
            .subscription(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
        if sub.status.is_ended() {
            let allowed = patch.items.is_none()
                && patch.cancel_at.is_none()
                && patch.cancel_at_period_end.is_none()
                && patch.default_payment_method.is_none()
                && !patch.end_trial_now;
            if !allowed {
                return Err(ApiError::state(
                    "A canceled subscription can only update its cancellation_details and metadata.",
                ));
            }
        }
        let now = self.customer_now(&sub.customer);
        if let Some(Some(pm)) = &patch.default_payment_method {
            let attached = self
                .payment_method(pm)
                .is_some_and(|p| p.customer.as_deref() == Some(sub.customer.as_str()));
            if !attached {
                return Err(ApiError::invalid_param(
                    "default_payment_method",
                    format!("The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."),
                ));
            }
        }
        if let Some(schedule) = sub.schedule.as_deref() {
            if patch.cancel_at_period_end.is_some() || patch.cancel_at.is_some() {
                return Err(ApiError::invalid_request(format!(
                    "The subscription is managed by the subscription schedule `{schedule}`, and updating any cancelation behavior directly is not allowed. Please update the schedule instead."
                )));
            }
        }
        if let Some(at) = patch.proration_date {
            self.check_proration_date(&sub, at, "proration_date")?;
        }
        // Work out the new items first so a bad one changes nothing.
        let mut new_items = sub.items.clone();
        if let Some(patches) = &patch.items {
            for (i, p) in patches.iter().enumerate() {
                let param = format!("items[{i}]");
                if let Some(price) = &p.price {
                    self.validate_price(price, &format!("{param}[price]"))?;
                }
                match &p.id {
                    Some(item_id) => {
                        let pos = new_items
                            .iter()
                            .position(|it| &it.id == item_id)
                            .ok_or_else(|| {
                                ApiError::invalid_param(
                                    &format!("{param}[id]"),
                                    format!("Invalid subscription item: '{item_id}' is not on subscription {id}."),
                                )
                            })?;
                        if p.deleted {
                            new_items.remove(pos);
                            continue;
                        }
                        if let Some(price) = &p.price {
                            new_items[pos].price = price.clone();
                        }
                        if let Some(q) = p.quantity {
                            new_items[pos].quantity = q;
                        }
                    }
                    None => {
                        let price = p
                            .price
                            .clone()
                            .ok_or_else(|| ApiError::missing_param(&format!("{param}[price]")))?;
                        let (start, end) = sub.period();
                        new_items.push(SubscriptionItem {
                            id: new_id("si_", 14),
                            created: now,
                            price,
                            quantity: p.quantity.unwrap_or(1),
                            current_period_start: start,
                            current_period_end: end,
                            metadata: Metadata::new(),
                        });
                    }
                }
            }
            let pairs: Vec<(String, u64)> = new_items
                .iter()
                .map(|it| (it.price.clone(), it.quantity))
                .collect();
            self.validate_items(&pairs, "items")?;
        }
        let old_interval = sub
            .items
            .first()
            .and_then(|it| self.price(&it.price))
            .map(|p| (p.interval.clone(), p.interval_count));
        let new_price = new_items
            .first()
            .and_then(|it| self.price(&it.price))
            .cloned();
        let interval_changed = patch.items.is_some()
            && new_price
                .as_ref()
                .map(|p| (p.interval.clone(), p.interval_count))
                != old_interval;
        // Switching the one item's price or quantity is prorated as Stripe does; other item
        // changes (adding, removing) are applied as they are.
        let switch = match (
            patch.items.as_deref(),
            sub.items.as_slice(),
            new_items.as_slice(),
        ) {
            (Some([p]), [old], [new])
                if !p.deleted
                    && p.id.as_deref() == Some(old.id.as_str())
                    && (old.price != new.price || old.quantity != new.quantity) =>
            {
                Some(
                    self.quote_change(&PlanChange {
                        subscription: id.to_string(),
                        item: old.id.clone(),
                        price: new.price.clone(),
                        quantity: new.quantity,
                        behavior: patch
                            .proration_behavior
                            .unwrap_or(ProrationBehavior::CreateProrations),
                        proration_date: patch.proration_date,
                        timing: Timing::Now,
                    })?,
                )
            }
            _ => None,
        };

        let before = self.subscription_json(&sub);
        let (_, period_end) = sub.period();
        {
            let Some(s) = self.subscription_mut(id) else {
                return Err(ApiError::no_such("subscription", id, "id"));
            };
            if switch.is_none() {
                s.items = new_items;
            }
            if let Some(pm) = patch.default_payment_method {
                s.default_payment_method = pm;
            }
            if let Some(m) = &patch.metadata {
                m.apply(&mut s.metadata);
            }
            if let Some(d) = patch.description {
                s.description = d;
            }
            if let Some(c) = patch.cancellation_comment {
                s.cancellation_comment = Some(c);
            }
            if let Some(f) = patch.cancellation_feedback {
                s.cancellation_feedback = Some(f);
            }
            match patch.cancel_at_period_end {
                Some(true) => {
                    s.cancel_at_period_end = true;
                    s.cancel_at = Some(period_end);
                    s.canceled_at = Some(now);
                    s.cancellation_reason = Some("cancellation_requested".into());
                }
                Some(false) if patch.cancel_at.is_none() => {
                    s.cancel_at_period_end = false;
                    s.cancel_at = None;
                    s.canceled_at = None;
                    s.cancellation_reason = None;
                    s.cancellation_feedback = None;
                    s.cancellation_comment = None;
                }
                _ => {}
            }
            match patch.cancel_at {
                Some(Some(at)) => {
                    s.cancel_at_period_end = at == period_end;
                    s.cancel_at = Some(at);
                    s.canceled_at = Some(now);
                    s.cancellation_reason = Some("cancellation_requested".into());
                }
                Some(None) => {
                    s.cancel_at_period_end = false;
                    s.cancel_at = None;
                    s.canceled_at = None;
                    s.cancellation_reason = None;
                }
                None => {}
            }
        }
        if let Some(quote) = &switch {
            self.apply_change(quote, Some(before), false)?;
        } else if interval_changed && sub.status != SubStatus::Trialing {
            // A new interval starts a new billing period now, billed at once (no prorations).
            if let Some(price) = &new_price {
                let end = clock::period_end(now, now, price.interval(), price.interval_count);
                if let Some(s) = self.subscription_mut(id) {
                    s.billing_cycle_anchor = now;
                    for it in &mut s.items {
                        it.current_period_start = now;
                        it.current_period_end = end;
                    }
                    if s.cancel_at_period_end {
                        s.cancel_at = Some(end);
                    }
                }
                let after = self.subscription_view(id, "id")?;
                self.emit_update("customer.subscription.updated", &before, after, now);
                let invoice = self.new_invoice(id, "subscription_update", now, end, now, false);
                if let Some(s) = self.subscription_mut(id) {
                    s.latest_invoice = Some(invoice.clone());
                }
                self.emit_invoice_opened(&invoice, now);
                self.charge_subscription_invoice(&invoice, now);
            }
        } else {
            let after = self.subscription_view(id, "id")?;
            self.emit_update("customer.subscription.updated", &before, after, now);
        }
        if patch.end_trial_now && sub.status == SubStatus::Trialing {
            // As Stripe does for a trial shortened to under three days: trial_will_end goes
            // out at once, still trialing, in the same moment the payment is collected.
            if !sub.trial_will_end_sent {
                if let Some(s) = self.subscription_mut(id) {
                    s.trial_will_end_sent = true;
                }
                if let Some(json) = self.subscription(id).map(|s| self.subscription_json(s)) {
                    self.emit("customer.subscription.trial_will_end", json, None, now);
                }
            }
            self.end_trial(id, now, true);
        }
        self.run_clock(&sub.customer);
        Ok(())
    }

    /// Ends a subscription now (`DELETE /v1/subscriptions/{id}`, a scheduled cancellation
    /// falling due, or dunning giving up).
    pub fn cancel_subscription_now(&mut self, id: &str, reason: Option<&str>, at: i64) {
        let Some(s) = self.subscription_mut(id) else {
            return;
        };
        if s.status.is_ended() {
            return;
        }
        s.status = SubStatus::Canceled;
        s.ended_at = Some(at);
        if s.canceled_at.is_none() {
            s.canceled_at = Some(at);
        }
        if s.cancellation_reason.is_none() || reason.is_some() {
            s.cancellation_reason = Some(reason.unwrap_or("cancellation_requested").to_string());
        }
        // Canceling a subscription cancels the schedule that manages it.
        if let Some(schedule) = s.schedule.clone() {
            self.end_schedule(&schedule, ScheduleStatus::Canceled, at);
        }
        if let Some(json) = self.subscription(id).map(|s| self.subscription_json(s)) {
            self.emit("customer.subscription.deleted", json, None, at);
        }
    }
}
