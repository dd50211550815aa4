//! Switching a subscription item's price: the quote (prorations, what is charged now, the
//! next invoice), and applying it now or at the period's end through a subscription schedule.
//!
//! One [`ChangeQuote`] feeds the portal's confirmation page, `POST /v1/invoices/create_preview`
//! and the change itself, so the three show and charge the same figure.
//!
//! A change that waits for the period's end is represented as Stripe's portal represents it:
//! a subscription schedule (`end_behavior=release`) with the current phase until the period
//! ends and a phase on the new price for one period; the test clock starts the second phase
//! at the period's end (before the renewal is billed) and releases the schedule when it ends.

use serde_json::Value;

use super::{
    clock,
    error::{ApiError, ApiResult},
    model::*,
    proration,
    state::money,
};

/// `proration_behavior`, as the API and the portal configuration name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProrationBehavior {
    /// Proration items wait for the next invoice.
    CreateProrations,
    /// An invoice for the prorations now, charged to the default card.
    AlwaysInvoice,
    /// No prorations.
    None,
}

impl ProrationBehavior {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create_prorations" => Some(ProrationBehavior::CreateProrations),
            "always_invoice" => Some(ProrationBehavior::AlwaysInvoice),
            "none" => Some(ProrationBehavior::None),
            _ => None,
        }
    }
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Now,
    /// At the end of the current period, through a subscription schedule.
    PeriodEnd,
}

/// A requested switch of one subscription item to another price or quantity.
#[derive(Debug, Clone)]
pub struct PlanChange {
    pub subscription: String,
    pub item: String,
    pub price: String,
    pub quantity: u64,
    pub behavior: ProrationBehavior,
    /// The moment the prorations count from (`proration_date`); `None`: the customer's now.
    pub proration_date: Option<i64>,
    pub timing: Timing,
}

/// One line of a quoted invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteLine {
    pub price: String,
    pub quantity: u64,
    pub amount: i64,
    pub description: String,
    pub period_start: i64,
    pub period_end: i64,
    pub proration: bool,
    pub subscription_item: Option<String>,
    /// The pending invoice item this line is, if it already exists.
    pub invoice_item: Option<String>,
}

/// An invoice as it would be made: now (a proration or interval-change invoice) or at the
/// next renewal.
#[derive(Debug, Clone)]
pub struct QuoteInvoice {
    /// When it is made and charged.
    pub at: i64,
    pub period_start: i64,
    pub period_end: i64,
    pub lines: Vec<QuoteLine>,
    /// The customer's balance it starts from (negative: credit).
    pub starting_balance: i64,
}

impl QuoteInvoice {
    pub fn total(&self) -> i64 {
        self.lines.iter().map(|l| l.amount).sum()
    }

    /// What is charged: the total less any credit balance, never below zero.
    pub fn amount_due(&self) -> i64 {
        (self.total() + self.starting_balance).max(0)
    }

    /// The customer's balance afterwards: what is left of a credit.
    pub fn ending_balance(&self) -> i64 {
        (self.total() + self.starting_balance).min(0)
    }
}

/// What a change does, worked out once.
#[derive(Debug, Clone)]
pub struct ChangeQuote {
    pub change: PlanChange,
    pub currency: String,
    /// The proration date: `change.proration_date`, or the customer's now when quoted.
    pub at: i64,
    pub old_price: String,
    pub old_quantity: u64,
    /// The current billing period.
    pub period: (i64, i64),
    pub interval_change: bool,
    pub trialing: bool,
    /// The new proration lines (credit for unused time, charge for remaining time).
    pub prorations: Vec<QuoteLine>,
    /// The invoice made at once (always_invoice, or an interval change), if any.
    pub due_now: Option<QuoteInvoice>,
    /// The next invoice after that.
    pub next_invoice: QuoteInvoice,
}

impl ChangeQuote {
    /// The prorations' sum: positive is owed, negative is a credit.
    pub fn proration_total(&self) -> i64 {
        self.prorations.iter().map(|l| l.amount).sum()
    }

    /// What is charged at once.
    pub fn due_now_amount(&self) -> i64 {
        self.due_now.as_ref().map_or(0, QuoteInvoice::amount_due)
    }

    /// The invoice a preview of this change shows: the one made now, else the next one.
    pub fn preview(&self) -> &QuoteInvoice {
        self.due_now.as_ref().unwrap_or(&self.next_invoice)
    }
}

fn qty(q: u64) -> i64 {
    i64::try_from(q).unwrap_or(i64::MAX)
}

fn named(quantity: u64, name: &str) -> String {
    if quantity == 1 {
        name.to_string()
    } else {
        format!("{quantity} × {name}")
    }
}

/// The end of the period of `price` that starts at `from`, counted from `anchor`.
fn period_end_for(price: &Price, anchor: i64, from: i64) -> i64 {
    clock::period_end(anchor, from, price.interval(), price.interval_count)
}

impl State {
    /// "1 × Pro (at $29.00 / month)": how an invoice describes a whole period of an item.
    pub fn period_line_description(&self, price: &str, quantity: u64) -> String {
        let name = self.product_name(price);
        match self.price(price) {
            Some(p) => format!(
                "{quantity} × {name} (at {} / {})",
                money(p.unit_amount, &p.currency),
                p.interval
            ),
            None => name,
        }
    }

    /// Lines for a whole period of each item, from `from`.
    fn period_lines(
        &self,
        items: &[(Option<String>, Price, u64)],
        from: i64,
        anchor: i64,
    ) -> Vec<QuoteLine> {
        items
            .iter()
            .map(|(item, price, quantity)| QuoteLine {
                price: price.id.clone(),
                quantity: *quantity,
                amount: price.unit_amount * qty(*quantity),
                description: self.period_line_description(&price.id, *quantity),
                period_start: from,
                period_end: period_end_for(price, anchor, from),
                proration: false,
                subscription_item: item.clone(),
                invoice_item: None,
            })
            .collect()
    }

    /// The subscription's invoice items still waiting for an invoice.
    fn pending_lines(&self, subscription: &str) -> Vec<QuoteLine> {
        self.invoice_items
            .iter()
            .filter(|i| i.subscription.as_deref() == Some(subscription) && i.invoice.is_none())
            .map(|i| QuoteLine {
                price: i.price.clone(),
                quantity: i.quantity,
                amount: i.amount,
                description: i.description.clone(),
                period_start: i.period_start,
                period_end: i.period_end,
                proration: i.proration,
                subscription_item: i.subscription_item.clone(),
                invoice_item: Some(i.id.clone()),
            })
            .collect()
    }

    /// The prices a portal configuration lets customers switch to: its products' prices that
    /// are active, or (a configuration listing none) every active price.
    /// The quantities the portal lets a customer choose for `price` (its product's
    /// `adjustable_quantity`, when the configuration allows quantity updates at all).
    pub fn portal_quantity(
        &self,
        config: &PortalConfiguration,
        price: &str,
    ) -> Option<AdjustableQuantity> {
        if !config
            .subscription_update_allowed
            .iter()
            .any(|u| u == "quantity")
        {
            return None;
        }
        let product = &self.price(price)?.product;
        config
            .subscription_update_products
            .iter()
            .find(|p| &p.product == product)
            .map(|p| p.adjustable_quantity)
            .filter(|q| q.enabled)
    }

    pub fn portal_prices(&self, config: &PortalConfiguration) -> Vec<String> {
        let listed: Vec<String> = config
            .subscription_update_products
            .iter()
            .flat_map(|p| p.prices.iter().cloned())
            .filter(|p| self.price(p).is_some_and(|x| x.active))
            .collect();
        if listed.is_empty() {
            self.prices
                .iter()
                .filter(|p| p.active)
                .map(|p| p.id.clone())
                .collect()
        } else {
            listed
        }
    }

    /// Checks that a `proration_date` falls in the subscription's current period, as Stripe
    /// requires.
    pub fn check_proration_date(&self, sub: &Subscription, at: i64, param: &str) -> ApiResult<()> {
        let (start, end) = sub.period();
        if at < start || at > end {
            return Err(ApiError::invalid_param(
                param,
                format!(
                    "The proration date {at} must be within the subscription's current period ({start} to {end})."
                ),
            ));
        }
        Ok(())
    }

    /// Whether the portal configuration makes this switch wait for the period's end.
    pub fn portal_timing(
        &self,
        config: &PortalConfiguration,
        sub: &Subscription,
        item: &str,
        price: &str,
        quantity: u64,
    ) -> Timing {
        let Some(current) = sub.items.iter().find(|i| i.id == item) else {
            return Timing::Now;
        };
        let (Some(old), Some(new)) = (self.price(&current.price), self.price(price)) else {
            return Timing::Now;
        };
        let waits = proration::waits_for_period_end(
            &config.schedule_at_period_end,
            old.unit_amount * qty(current.quantity),
            new.unit_amount * qty(quantity),
            proration::interval_days(old.interval(), old.interval_count),
            proration::interval_days(new.interval(), new.interval_count),
        );
        if waits {
            Timing::PeriodEnd
        } else {
            Timing::Now
        }
    }

    /// Works out what `change` does without doing it.
    pub fn quote_change(&self, change: &PlanChange) -> ApiResult<ChangeQuote> {
        let sub = self.subscription(&change.subscription).ok_or_else(|| {
            ApiError::no_such("subscription", &change.subscription, "subscription")
        })?;
        if sub.status.is_ended() {
            return Err(ApiError::state(format!(
                "The subscription {} has ended and can no longer be updated.",
                sub.id
            )));
        }
        let item = sub
            .items
            .iter()
            .find(|i| i.id == change.item)
            .ok_or_else(|| {
                ApiError::invalid_param(
                    "items[0][id]",
                    format!(
                        "Invalid subscription item: '{}' is not on subscription {}.",
                        change.item, sub.id
                    ),
                )
            })?;
        let old = self
            .price(&item.price)
            .cloned()
            .ok_or_else(|| ApiError::no_such("price", &item.price, "items[0][price]"))?;
        let new = self
            .price(&change.price)
            .cloned()
            .ok_or_else(|| ApiError::no_such("price", &change.price, "items[0][price]"))?;
        if new.currency != sub.currency {
            return Err(ApiError::invalid_param(
                "items[0][price]",
                format!(
                    "The price {} is in {}, but the subscription is billed in {}.",
                    new.id, new.currency, sub.currency
                ),
            ));
        }
        let now = self.customer_now(&sub.customer);
        let at = change.proration_date.unwrap_or(now);
        let (start, end) = sub.period();
        let trialing = sub.status == SubStatus::Trialing;
        let unchanged = old.id == new.id && item.quantity == change.quantity;
        let interval_change = !unchanged
            && (old.interval.as_str(), old.interval_count)
                != (new.interval.as_str(), new.interval_count);
        let old_amount = old.unit_amount * qty(item.quantity);
        let new_amount = new.unit_amount * qty(change.quantity);
        let balance = self.customer(&sub.customer).map_or(0, |c| c.balance);
        let pending = self.pending_lines(&sub.id);
        let after: Vec<(Option<String>, Price, u64)> = sub
            .items
            .iter()
            .filter_map(|i| {
                if i.id == change.item {
                    Some((Some(i.id.clone()), new.clone(), change.quantity))
                } else {
                    self.price(&i.price)
                        .map(|p| (Some(i.id.clone()), p.clone(), i.quantity))
                }
            })
            .collect();
        let date = clock::long_date(at);
        let credit_line = |amount: i64| QuoteLine {
            price: old.id.clone(),
            quantity: item.quantity,
            amount,
            description: format!(
                "Unused time on {} after {date}",
                named(item.quantity, &self.product_name(&old.id))
            ),
            period_start: at,
            period_end: end,
            proration: true,
            subscription_item: Some(item.id.clone()),
            invoice_item: None,
        };
        let charge_line = |amount: i64| QuoteLine {
            price: new.id.clone(),
            quantity: change.quantity,
            amount,
            description: format!(
                "Remaining time on {} after {date}",
                named(change.quantity, &self.product_name(&new.id))
            ),
            period_start: at,
            period_end: end,
            proration: true,
            subscription_item: Some(item.id.clone()),
            invoice_item: None,
        };
        let prorate = change.behavior != ProrationBehavior::None && !trialing && !unchanged;
        let mut prorations = Vec::new();
        let renew = |lines: Vec<QuoteLine>, extra: Vec<QuoteLine>, starting_balance: i64| {
            let mut all = extra;
            all.extend(lines);
            QuoteInvoice {
                at: end,
                period_start: start,
                period_end: end,
                lines: all,
                starting_balance,
            }
        };
        // After a trial the billing cycle restarts at the trial's end.
        let anchor = if trialing {
            end
        } else {
            sub.billing_cycle_anchor
        };
        let (due_now, next_invoice) = if change.timing == Timing::PeriodEnd || trialing || unchanged
        {
            // Nothing to prorate: the new price is billed from the next period.
            (
                None,
                renew(self.period_lines(&after, end, anchor), pending, balance),
            )
        } else if interval_change {
            let p = proration::interval_change(old_amount, new_amount, (start, end), at);
            if prorate && p.credit != 0 {
                prorations.push(credit_line(p.credit));
            }
            let mut lines = prorations.clone();
            lines.extend(pending);
            lines.extend(self.period_lines(&after, at, at));
            let due = QuoteInvoice {
                at,
                period_start: at,
                period_end: at,
                lines,
                starting_balance: balance,
            };
            let new_end = period_end_for(&new, at, at);
            let next = QuoteInvoice {
                at: new_end,
                period_start: at,
                period_end: new_end,
                lines: self.period_lines(&after, new_end, at),
                starting_balance: due.ending_balance(),
            };
            (Some(due), next)
        } else {
            let p = proration::switch(old_amount, new_amount, (start, end), at);
            if prorate {
                if p.credit != 0 {
                    prorations.push(credit_line(p.credit));
                }
                if p.charge != 0 {
                    prorations.push(charge_line(p.charge));
                }
            }
            let period = self.period_lines(&after, end, anchor);
            if change.behavior == ProrationBehavior::AlwaysInvoice
                && !(prorations.is_empty() && pending.is_empty())
            {
                let mut lines = prorations.clone();
                lines.extend(pending);
                let due = QuoteInvoice {
                    at,
                    period_start: at,
                    period_end: at,
                    lines,
                    starting_balance: balance,
                };
                let next = renew(period, Vec::new(), due.ending_balance());
                (Some(due), next)
            } else {
                let mut extra = pending;
                extra.extend(prorations.iter().cloned());
                (None, renew(period, extra, balance))
            }
        };
        Ok(ChangeQuote {
            change: PlanChange {
                proration_date: Some(at),
                ..change.clone()
            },
            currency: sub.currency.clone(),
            at,
            old_price: old.id.clone(),
            old_quantity: item.quantity,
            period: (start, end),
            interval_change,
            trialing,
            prorations,
            due_now,
            next_invoice,
        })
    }

    /// The next invoice of a subscription as it stands (a preview with no change).
    pub fn upcoming_invoice(&self, sub: &Subscription) -> QuoteInvoice {
        let (start, end) = sub.period();
        let anchor = if sub.status == SubStatus::Trialing {
            end
        } else {
            sub.billing_cycle_anchor
        };
        // A pending scheduled change is billed from the next period.
        let next_phase = sub
            .schedule
            .as_deref()
            .and_then(|id| self.subscription_schedule(id))
            .and_then(SubscriptionSchedule::next_phase)
            .filter(|p| p.start_date == end);
        let items: Vec<(Option<String>, Price, u64)> = sub
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| {
                let (price, quantity) = match next_phase {
                    Some(phase) if i == 0 => (phase.price.as_str(), phase.quantity),
                    _ => (it.price.as_str(), it.quantity),
                };
                self.price(price)
                    .map(|p| (Some(it.id.clone()), p.clone(), quantity))
            })
            .collect();
        let mut lines = self.pending_lines(&sub.id);
        lines.extend(self.period_lines(&items, end, anchor));
        QuoteInvoice {
            at: end,
            period_start: start,
            period_end: end,
            lines,
            starting_balance: self.customer(&sub.customer).map_or(0, |c| c.balance),
        }
    }

    /// A quoted invoice as `POST /v1/invoices/create_preview` answers it: a draft with an
    /// `upcoming_in_…` id that is stored nowhere.
    pub fn preview_invoice_json(
        &self,
        sub: &Subscription,
        q: &QuoteInvoice,
        proration_date: Option<i64>,
    ) -> Value {
        let customer = self.customer(&sub.customer);
        let invoice = Invoice {
            id: new_id("upcoming_in_", 24),
            number: String::new(),
            customer: sub.customer.clone(),
            customer_email: customer.and_then(|c| c.email.clone()),
            customer_name: customer.and_then(|c| c.name.clone()),
            subscription: Some(sub.id.clone()),
            status: InvoiceStatus::Draft,
            currency: sub.currency.clone(),
            lines: q
                .lines
                .iter()
                .map(|l| InvoiceLine {
                    id: new_id("il_tmp_", 24),
                    price: l.price.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                    description: l.description.clone(),
                    period_start: l.period_start,
                    period_end: l.period_end,
                    subscription_item: l.subscription_item.clone(),
                    proration: l.proration,
                    invoice_item: l.invoice_item.clone(),
                })
                .collect(),
            amount_due: q.amount_due(),
            amount_paid: 0,
            created: q.at,
            period_start: q.period_start,
            period_end: q.period_end,
            billing_reason: "upcoming".into(),
            attempt_count: 0,
            attempted: false,
            next_payment_attempt: Some(q.at),
            finalized_at: None,
            paid_at: None,
            marked_uncollectible_at: None,
            voided_at: None,
            last_payment_error: None,
            metadata: Metadata::new(),
            starting_balance: q.starting_balance,
            ending_balance: None,
            subscription_proration_date: proration_date
                .filter(|_| q.lines.iter().any(|l| l.proration)),
            description: None,
            auto_advance: true,
            automatically_finalizes_at: None,
        };
        self.invoice_json(&invoice)
    }

    /// Does what `quote` says. `before` is the subscription's JSON before the request (when
    /// other fields changed in the same request); `strict` refuses, changing nothing, when the
    /// charge due now would be declined (the portal), where the API lets the subscription go
    /// past due instead.
    pub fn apply_change(
        &mut self,
        quote: &ChangeQuote,
        before: Option<Value>,
        strict: bool,
    ) -> ApiResult<()> {
        let sub_id = quote.change.subscription.clone();
        let sub = self
            .subscription(&sub_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription", &sub_id, "subscription"))?;
        let before = before.unwrap_or_else(|| self.subscription_json(&sub));
        let now = self.customer_now(&sub.customer);
        if quote.change.timing == Timing::PeriodEnd {
            return self.schedule_change(quote, before, now);
        }
        if strict && quote.due_now_amount() > 0 {
            let pm = self.payment_method_for(&sub.customer, Some(&sub_id));
            self.charge(pm.as_deref(), quote.due_now_amount())
                .map_err(|d| ApiError::card_declined(d.decline_code, d.message))?;
        }
        // A change made now replaces one that was waiting for the period's end.
        if let Some(schedule) = sub.schedule.clone() {
            self.end_schedule(&schedule, ScheduleStatus::Released, now);
        }
        for line in &quote.prorations {
            self.add_invoice_item(&sub, line, &quote.currency, now);
        }
        let new_period = (quote.interval_change && !quote.trialing).then(|| {
            let end = self
                .price(&quote.change.price)
                .map_or(quote.at, |p| period_end_for(p, quote.at, quote.at));
            (quote.at, end)
        });
        if let Some(s) = self.subscription_mut(&sub_id) {
            if let Some(item) = s.items.iter_mut().find(|i| i.id == quote.change.item) {
                item.price = quote.change.price.clone();
                item.quantity = quote.change.quantity;
            }
            if let Some((start, end)) = new_period {
                s.billing_cycle_anchor = start;
                for it in &mut s.items {
                    it.current_period_start = start;
                    it.current_period_end = end;
                }
                if s.cancel_at_period_end {
                    s.cancel_at = Some(end);
                }
            }
        }
        let invoice = quote.due_now.as_ref().map(|due| {
            let lines = due
                .lines
                .iter()
                .filter(|l| !l.proration && l.invoice_item.is_none())
                .map(|l| InvoiceLine {
                    id: new_id("il_", 24),
                    price: l.price.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                    description: l.description.clone(),
                    period_start: l.period_start,
                    period_end: l.period_end,
                    subscription_item: l.subscription_item.clone(),
                    proration: false,
                    invoice_item: None,
                })
                .collect();
            self.record_invoice(
                &sub_id,
                "subscription_update",
                lines,
                (due.period_start, due.period_end),
                now,
                Some(quote.at),
            )
        });
        if let (Some(inv), Some(s)) = (&invoice, self.subscription_mut(&sub_id)) {
            s.latest_invoice = Some(inv.clone());
        }
        if let Some(after) = self
            .subscription(&sub_id)
            .map(|s| self.subscription_json(s))
        {
            self.emit_update("customer.subscription.updated", &before, after, now);
        }
        if let Some(inv) = invoice {
            self.emit_invoice_opened(&inv, now);
            self.charge_subscription_invoice(&inv, now);
        }
        Ok(())
    }

    /// A pending invoice item for a proration line; emits `invoiceitem.created`.
    fn add_invoice_item(&mut self, sub: &Subscription, line: &QuoteLine, currency: &str, at: i64) {
        let item = InvoiceItem {
            id: new_id("ii_", 24),
            customer: sub.customer.clone(),
            subscription: Some(sub.id.clone()),
            subscription_item: line.subscription_item.clone(),
            price: line.price.clone(),
            quantity: line.quantity,
            amount: line.amount,
            currency: currency.to_string(),
            description: line.description.clone(),
            period_start: line.period_start,
            period_end: line.period_end,
            proration: line.proration,
            date: at,
            invoice: None,
        };
        let json = self.invoice_item_json(&item);
        self.invoice_items.push(item);
        self.emit("invoiceitem.created", json, None, at);
    }

    /// The portal's way to wait for the period's end: a schedule from the subscription with
    /// the current phase and one period of the new price, then released.
    fn schedule_change(&mut self, quote: &ChangeQuote, before: Value, now: i64) -> ApiResult<()> {
        let sub_id = quote.change.subscription.clone();
        let sub = self
            .subscription(&sub_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription", &sub_id, "subscription"))?;
        if let Some(existing) = sub.schedule.clone() {
            self.end_schedule(&existing, ScheduleStatus::Released, now);
        }
        let (start, end) = quote.period;
        let new = self
            .price(&quote.change.price)
            .cloned()
            .ok_or_else(|| ApiError::no_such("price", &quote.change.price, "price"))?;
        let anchor = if quote.trialing {
            end
        } else {
            sub.billing_cycle_anchor
        };
        let schedule = SubscriptionSchedule {
            id: new_id("sub_sched_", 24),
            created: now,
            customer: sub.customer.clone(),
            subscription: Some(sub_id.clone()),
            status: ScheduleStatus::Active,
            phases: vec![
                SchedulePhase {
                    start_date: start,
                    end_date: end,
                    price: quote.old_price.clone(),
                    quantity: quote.old_quantity,
                    proration_behavior: "create_prorations".into(),
                },
                SchedulePhase {
                    start_date: end,
                    end_date: period_end_for(&new, anchor, end),
                    price: new.id.clone(),
                    quantity: quote.change.quantity,
                    proration_behavior: "none".into(),
                },
            ],
            current_phase: 0,
            end_behavior: "release".into(),
            released_at: None,
            released_subscription: None,
            canceled_at: None,
            completed_at: None,
            currency: sub.currency.clone(),
            metadata: Metadata::new(),
        };
        let id = schedule.id.clone();
        let json = self.subscription_schedule_json(&schedule);
        self.subscription_schedules.push(schedule);
        self.emit("subscription_schedule.created", json, None, now);
        if let Some(s) = self.subscription_mut(&sub_id) {
            s.schedule = Some(id);
        }
        if let Some(after) = self
            .subscription(&sub_id)
            .map(|s| self.subscription_json(s))
        {
            self.emit_update("customer.subscription.updated", &before, after, now);
        }
        Ok(())
    }

    /// Ends a schedule: `released` (the subscription goes on as it is) or `canceled` (with its
    /// subscription). Detaches it from its subscription without an event of the subscription's
    /// own (the caller's change emits that); emits `subscription_schedule.released|canceled`.
    pub(crate) fn end_schedule(&mut self, id: &str, status: ScheduleStatus, at: i64) {
        let Some(s) = self.subscription_schedule_mut(id) else {
            return;
        };
        if !s.is_live() {
            return;
        }
        let sub = s.subscription.take();
        s.status = status;
        match status {
            ScheduleStatus::Canceled => s.canceled_at = Some(at),
            _ => {
                s.released_at = Some(at);
                s.released_subscription = sub.clone();
            }
        }
        if let Some(sub) = sub.as_deref().and_then(|id| self.subscription_mut(id)) {
            if sub.schedule.as_deref() == Some(id) {
                sub.schedule = None;
            }
        }
        let event = match status {
            ScheduleStatus::Canceled => "subscription_schedule.canceled",
            _ => "subscription_schedule.released",
        };
        if let Some(json) = self
            .subscription_schedule(id)
            .map(|s| self.subscription_schedule_json(s))
        {
            self.emit(event, json, None, at);
        }
    }

    /// `POST /v1/subscription_schedules` with `phases`: each phase one price for `iterations`
    /// periods (one when not given). Starting now (or earlier), it creates its subscription
    /// from the first phase; starting later, it waits (`not_started`) until the customer's
    /// clock reaches its start. `subscription_schedule.created`.
    pub fn create_schedule(
        &mut self,
        customer: &str,
        start: Option<i64>,
        phases: Vec<(String, u64, u32)>,
        end_behavior: String,
        metadata: Metadata,
    ) -> ApiResult<String> {
        self.require_customer(customer, "customer")?;
        let now = self.customer_now(customer);
        let start = start.unwrap_or(now);
        let mut laid_out = Vec::new();
        let mut from = start;
        let mut currency = String::new();
        for (i, (price, quantity, iterations)) in phases.iter().enumerate() {
            let p = self
                .validate_price(price, &format!("phases[{i}][items][0][price]"))?
                .clone();
            currency.clone_from(&p.currency);
            let mut end = from;
            for _ in 0..(*iterations).max(1) {
                end = period_end_for(&p, start, end);
            }
            laid_out.push(SchedulePhase {
                start_date: from,
                end_date: end,
                price: price.clone(),
                quantity: *quantity,
                proration_behavior: "create_prorations".into(),
            });
            from = end;
        }
        let started = start <= now;
        let subscription = if started {
            let first = &laid_out[0];
            Some(self.subscription_from_phase(customer, first)?)
        } else {
            None
        };
        let schedule = SubscriptionSchedule {
            id: new_id("sub_sched_", 24),
            created: now,
            customer: customer.to_owned(),
            subscription: subscription.clone(),
            status: if started {
                ScheduleStatus::Active
            } else {
                ScheduleStatus::NotStarted
            },
            phases: laid_out,
            current_phase: 0,
            end_behavior,
            released_at: None,
            released_subscription: None,
            canceled_at: None,
            completed_at: None,
            currency,
            metadata,
        };
        let id = schedule.id.clone();
        let json = self.subscription_schedule_json(&schedule);
        self.subscription_schedules.push(schedule);
        self.emit("subscription_schedule.created", json, None, now);
        if let Some(sub) = subscription {
            let before = self.subscription(&sub).map(|s| self.subscription_json(s));
            if let Some(s) = self.subscription_mut(&sub) {
                s.schedule = Some(id.clone());
            }
            if let (Some(before), Some(after)) = (
                before,
                self.subscription(&sub).map(|s| self.subscription_json(s)),
            ) {
                self.emit_update("customer.subscription.updated", &before, after, now);
            }
        }
        Ok(id)
    }

    /// The subscription a schedule makes from a phase, as Stripe does when it starts.
    fn subscription_from_phase(
        &mut self,
        customer: &str,
        phase: &SchedulePhase,
    ) -> ApiResult<String> {
        self.create_subscription(crate::state::NewSubscription {
            customer: customer.to_owned(),
            items: vec![(phase.price.clone(), phase.quantity)],
            default_payment_method: None,
            trial: crate::state::TrialRequest::None,
            metadata: Metadata::new(),
            description: None,
            payment_behavior: crate::state::PaymentBehavior::AllowIncomplete,
            cancel_at_period_end: false,
        })
    }

    /// A `not_started` schedule's start came: its subscription is made from the first phase
    /// and the schedule becomes active (`subscription_schedule.updated`).
    pub(crate) fn start_schedule(&mut self, id: &str, at: i64) {
        let Some(schedule) = self.subscription_schedule(id).cloned() else {
            return;
        };
        let before = self.subscription_schedule_json(&schedule);
        // Whatever happens, the schedule is no longer waiting (a failure must not repeat).
        if let Some(s) = self.subscription_schedule_mut(id) {
            s.status = ScheduleStatus::Active;
        }
        let Some(first) = schedule.phases.first() else {
            return;
        };
        let made = self.subscription_from_phase(&schedule.customer, first);
        if let Ok(sub) = made {
            if let Some(s) = self.subscription_schedule_mut(id) {
                s.subscription = Some(sub.clone());
            }
            if let Some(s) = self.subscription_mut(&sub) {
                s.schedule = Some(id.to_owned());
            }
        }
        if let Some(after) = self
            .subscription_schedule(id)
            .map(|s| self.subscription_schedule_json(s))
        {
            self.emit_update("subscription_schedule.updated", &before, after, at);
        }
    }

    /// `POST /v1/subscription_schedules/{id}`: its metadata and `end_behavior`;
    /// `subscription_schedule.updated` when something changed.
    pub fn update_schedule(
        &mut self,
        id: &str,
        metadata: Option<crate::state::MetadataPatch>,
        end_behavior: Option<String>,
    ) -> ApiResult<()> {
        let schedule = self.live_schedule(id, "update")?;
        let before = self.subscription_schedule_json(&schedule);
        if let Some(s) = self.subscription_schedule_mut(id) {
            if let Some(patch) = metadata {
                patch.apply(&mut s.metadata);
            }
            if let Some(e) = end_behavior {
                s.end_behavior = e;
            }
        }
        let now = self.customer_now(&schedule.customer);
        if let Some(after) = self
            .subscription_schedule(id)
            .map(|s| self.subscription_schedule_json(s))
        {
            self.emit_update("subscription_schedule.updated", &before, after, now);
        }
        Ok(())
    }

    /// A schedule that can still change (`not_started` or `active`), or Stripe's refusal to
    /// `verb` it.
    fn live_schedule(&self, id: &str, verb: &str) -> ApiResult<SubscriptionSchedule> {
        let schedule = self
            .subscription_schedule(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription_schedule", id, "schedule"))?;
        if !schedule.is_live() {
            return Err(ApiError::state(format!(
                "You cannot {verb} a subscription schedule that is currently in the `{}` status. It must be in `not_started` or `active`.",
                schedule.status.as_str()
            )));
        }
        Ok(schedule)
    }

    /// `POST /v1/subscription_schedules/{id}/release` and the portal's "keep my plan": the
    /// scheduled change is dropped and the subscription goes on unchanged.
    pub fn release_schedule(&mut self, id: &str) -> ApiResult<()> {
        let schedule = self.live_schedule(id, "release")?;
        let now = self.customer_now(&schedule.customer);
        let sub = schedule.subscription.clone();
        let before = sub
            .as_deref()
            .and_then(|s| self.subscription(s))
            .map(|s| self.subscription_json(s));
        self.end_schedule(id, ScheduleStatus::Released, now);
        if let (Some(sub), Some(before)) = (sub, before) {
            if let Some(after) = self.subscription(&sub).map(|s| self.subscription_json(s)) {
                self.emit_update("customer.subscription.updated", &before, after, now);
            }
        }
        Ok(())
    }

    /// `POST /v1/subscription_schedules/{id}/cancel`: the schedule and its subscription end now.
    pub fn cancel_schedule(&mut self, id: &str) -> ApiResult<()> {
        let schedule = self.live_schedule(id, "cancel")?;
        let now = self.customer_now(&schedule.customer);
        match schedule.subscription.as_deref() {
            // Canceling the subscription cancels its schedule too.
            Some(sub) => self.cancel_subscription_now(sub, Some("cancellation_requested"), now),
            None => self.end_schedule(id, ScheduleStatus::Canceled, now),
        }
        Ok(())
    }

    /// The test clock reached the next phase's start: the subscription takes its items.
    pub(crate) fn start_next_phase(&mut self, id: &str, at: i64) {
        let Some(schedule) = self.subscription_schedule(id).cloned() else {
            return;
        };
        let (Some(phase), Some(sub)) = (
            schedule.next_phase().cloned(),
            schedule.subscription.clone(),
        ) else {
            return;
        };
        let before = self.subscription_schedule_json(&schedule);
        if let Some(s) = self.subscription_schedule_mut(id) {
            s.current_phase += 1;
        }
        if let Some(after) = self
            .subscription_schedule(id)
            .map(|s| self.subscription_schedule_json(s))
        {
            self.emit_update("subscription_schedule.updated", &before, after, at);
        }
        self.change_subscription(&sub, at, |s| {
            if let Some(item) = s.items.first_mut() {
                item.price = phase.price.clone();
                item.quantity = phase.quantity;
            }
        });
    }

    /// The test clock reached the last phase's end: the schedule lets its subscription go.
    pub(crate) fn finish_schedule(&mut self, id: &str, at: i64) {
        let Some(sub) = self
            .subscription_schedule(id)
            .and_then(|s| s.subscription.clone())
        else {
            return;
        };
        let before = self.subscription(&sub).map(|s| self.subscription_json(s));
        self.end_schedule(id, ScheduleStatus::Released, at);
        if let (Some(before), Some(after)) = (
            before,
            self.subscription(&sub).map(|s| self.subscription_json(s)),
        ) {
            self.emit_update("customer.subscription.updated", &before, after, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CustomerFields, NewSubscription, PaymentBehavior, TrialRequest};

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

    fn subscribe(st: &mut State, lookup: &str) -> (String, String) {
        let cus = st
            .create_customer(CustomerFields::default())
            .expect("customer");
        let pm = st
            .attach_payment_method("pm_card_visa", &cus)
            .expect("attach");
        let sub = st
            .create_subscription(NewSubscription {
                customer: cus.clone(),
                items: vec![(price(st, lookup), 1)],
                default_payment_method: Some(pm),
                trial: TrialRequest::None,
                metadata: Metadata::new(),
                description: None,
                payment_behavior: PaymentBehavior::AllowIncomplete,
                cancel_at_period_end: false,
            })
            .expect("subscription");
        (cus, sub)
    }

    fn change(st: &State, sub: &str, lookup: &str, behavior: ProrationBehavior) -> PlanChange {
        let s = st.subscription(sub).expect("sub");
        PlanChange {
            subscription: sub.to_string(),
            item: s.items[0].id.clone(),
            price: price(st, lookup),
            quantity: 1,
            behavior,
            proration_date: None,
            timing: Timing::Now,
        }
    }

    #[test]
    fn always_invoice_charges_the_quoted_prorations_now() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "starter_monthly");
        st.advance_clock(&cus, 10 * clock::DAY).expect("advance");
        let q = st
            .quote_change(&change(
                &st,
                &sub,
                "pro_monthly",
                ProrationBehavior::AlwaysInvoice,
            ))
            .expect("quote");
        assert_eq!(q.prorations.len(), 2);
        assert!(q.proration_total() > 0);
        assert_eq!(q.due_now_amount(), q.proration_total());
        st.apply_change(&q, None, true).expect("apply");
        let inv = st.invoices.last().expect("invoice");
        assert_eq!(inv.status, InvoiceStatus::Paid);
        assert_eq!(inv.amount_paid, q.proration_total());
        assert!(inv.lines.iter().all(|l| l.proration));
        assert_eq!(
            st.subscription(&sub).map(|s| s.items[0].price.clone()),
            Some(price(&st, "pro_monthly"))
        );
    }

    #[test]
    fn the_portal_refuses_a_charge_that_would_be_declined_and_changes_nothing() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "starter_monthly");
        let failing = st
            .attach_payment_method("pm_card_chargeCustomerFail", &cus)
            .expect("attach");
        st.change_subscription(&sub, 0, |s| s.default_payment_method = Some(failing));
        st.advance_clock(&cus, 10 * clock::DAY).expect("advance");
        let q = st
            .quote_change(&change(
                &st,
                &sub,
                "pro_monthly",
                ProrationBehavior::AlwaysInvoice,
            ))
            .expect("quote");
        let invoices = st.invoices.len();
        let err = st.apply_change(&q, None, true).expect_err("declined");
        assert_eq!(err.kind, "card_error");
        assert_eq!(st.invoices.len(), invoices);
        assert!(st.invoice_items.is_empty());
        assert_eq!(
            st.subscription(&sub).map(|s| s.items[0].price.clone()),
            Some(price(&st, "starter_monthly"))
        );
        // Through the API (not strict) the change stands and the subscription goes past due.
        st.apply_change(&q, None, false).expect("applied");
        assert_eq!(
            st.subscription(&sub).map(|s| s.status),
            Some(SubStatus::PastDue)
        );
    }

    #[test]
    fn create_prorations_wait_for_the_renewal() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "starter_monthly");
        st.advance_clock(&cus, 10 * clock::DAY).expect("advance");
        let q = st
            .quote_change(&change(
                &st,
                &sub,
                "pro_monthly",
                ProrationBehavior::CreateProrations,
            ))
            .expect("quote");
        assert!(q.due_now.is_none());
        let expected = 2900 + q.proration_total();
        assert_eq!(q.next_invoice.amount_due(), expected);
        st.apply_change(&q, None, true).expect("apply");
        assert_eq!(
            st.invoice_items
                .iter()
                .filter(|i| i.invoice.is_none())
                .count(),
            2
        );
        st.advance_clock(&cus, 25 * clock::DAY).expect("renew");
        let renewal = st.invoices.last().expect("renewal");
        assert_eq!(renewal.billing_reason, "subscription_cycle");
        assert_eq!(renewal.amount_paid, expected);
        assert!(st.invoice_items.iter().all(|i| i.invoice.is_some()));
    }

    #[test]
    fn a_downgrade_with_always_invoice_leaves_a_credit_for_the_next_invoice() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "pro_monthly");
        st.advance_clock(&cus, 10 * clock::DAY).expect("advance");
        let q = st
            .quote_change(&change(
                &st,
                &sub,
                "starter_monthly",
                ProrationBehavior::AlwaysInvoice,
            ))
            .expect("quote");
        let credit = q.proration_total();
        assert!(credit < 0);
        assert_eq!(q.due_now_amount(), 0);
        assert_eq!(q.next_invoice.amount_due(), (900 + credit).max(0));
        st.apply_change(&q, None, true).expect("apply");
        assert_eq!(st.customer(&cus).map(|c| c.balance), Some(credit));
        st.advance_clock(&cus, 25 * clock::DAY).expect("renew");
        assert_eq!(
            st.invoices
                .last()
                .map(|i| (i.starting_balance, i.amount_due)),
            Some((credit, (900 + credit).max(0)))
        );
    }

    #[test]
    fn an_interval_change_restarts_the_cycle_and_charges_now() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "starter_monthly");
        st.advance_clock(&cus, 10 * clock::DAY).expect("advance");
        let q = st
            .quote_change(&change(
                &st,
                &sub,
                "starter_yearly",
                ProrationBehavior::CreateProrations,
            ))
            .expect("quote");
        assert!(q.interval_change);
        let due = q.due_now.clone().expect("invoiced now");
        assert_eq!(due.total(), 9000 + q.proration_total());
        st.apply_change(&q, None, false).expect("apply");
        let s = st.subscription(&sub).expect("sub");
        assert_eq!(s.billing_cycle_anchor, q.at);
        assert_eq!(s.period().0, q.at);
        assert_eq!(
            st.invoices.last().map(|i| i.amount_paid),
            Some(due.amount_due())
        );
    }

    #[test]
    fn a_scheduled_downgrade_switches_when_the_period_ends() {
        let mut st = seeded();
        let (cus, sub) = subscribe(&mut st, "pro_monthly");
        let mut c = change(
            &st,
            &sub,
            "starter_monthly",
            ProrationBehavior::CreateProrations,
        );
        c.timing = Timing::PeriodEnd;
        let q = st.quote_change(&c).expect("quote");
        assert!(q.prorations.is_empty());
        assert_eq!(q.next_invoice.amount_due(), 900);
        st.apply_change(&q, None, true).expect("apply");
        let sched = st
            .subscription(&sub)
            .and_then(|s| s.schedule.clone())
            .expect("schedule");
        assert_eq!(
            st.subscription(&sub).map(|s| s.items[0].price.clone()),
            Some(price(&st, "pro_monthly"))
        );
        assert_eq!(
            st.upcoming_invoice(st.subscription(&sub).expect("sub"))
                .amount_due(),
            900
        );
        st.advance_clock(&cus, 32 * clock::DAY).expect("advance");
        let s = st.subscription(&sub).expect("sub");
        assert_eq!(s.items[0].price, price(&st, "starter_monthly"));
        assert_eq!(st.invoices.last().map(|i| i.amount_paid), Some(900));
        assert_eq!(
            s.schedule.as_deref(),
            Some(sched.as_str()),
            "released after its last phase"
        );
        st.advance_clock(&cus, 31 * clock::DAY).expect("advance");
        assert!(st.subscription(&sub).is_some_and(|s| s.schedule.is_none()));
        assert_eq!(
            st.subscription_schedule(&sched).map(|s| s.status),
            Some(ScheduleStatus::Released)
        );
    }
}
