//! The test clock: a customer's time moved forward, and what falls due meanwhile, in order:
//! trial notices and ends, renewals, payment retries, scheduled cancellations and phases.

use crate::{
    clock::{self, DAY},
    error::{ApiError, ApiResult},
    model::*,
};

/// Stripe sends `customer.subscription.trial_will_end` this long before a trial ends.
const TRIAL_WILL_END_NOTICE: i64 = 3 * DAY;
/// An incomplete subscription whose first invoice stays unpaid this long expires.
const INCOMPLETE_EXPIRY: i64 = 23 * 3600;
/// Something the test clock has to do, in the order it falls due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    TrialWillEnd(String),
    Cancel(String),
    /// A schedule's next phase starts (before the renewal or trial end it coincides with bills).
    SchedulePhase(String),
    EndTrial(String),
    ExpireIncomplete(String),
    Renew(String),
    /// A schedule's last phase is over: it releases its subscription.
    ScheduleEnd(String),
    Retry(String),
}

impl State {
    /// Moves a customer's test clock forward and runs everything that fell due meanwhile.
    pub fn advance_clock(&mut self, customer: &str, seconds: i64) -> ApiResult<()> {
        let c = self
            .customer_mut(customer)
            .filter(|c| !c.deleted)
            .ok_or_else(|| ApiError::no_such("customer", customer, "customer"))?;
        c.clock_offset = c.clock_offset.saturating_add(seconds.max(0));
        self.run_clock(customer);
        Ok(())
    }

    /// Runs, in time order, everything due for this customer at its current time.
    pub fn run_clock(&mut self, customer: &str) {
        let now = self.customer_now(customer);
        for _ in 0..10_000 {
            let Some((at, due)) = self.next_due(customer, now) else {
                return;
            };
            self.perform(due, at);
        }
    }

    /// Runs every customer's clock and expires old Checkout sessions.
    pub fn run_all_clocks(&mut self) {
        let customers: Vec<String> = self
            .customers
            .iter()
            .filter(|c| !c.deleted)
            .map(|c| c.id.clone())
            .collect();
        for c in customers {
            self.run_clock(&c);
        }
        let now = clock::now();
        let expired: Vec<String> = self
            .checkout_sessions
            .iter()
            .filter(|s| s.status == CheckoutStatus::Open && s.expires_at <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.expire_checkout_session(&id);
        }
    }

    fn next_due(&self, customer: &str, now: i64) -> Option<(i64, Due)> {
        let mut candidates: Vec<(i64, Due)> = Vec::new();
        for s in self.subscriptions.iter().filter(|s| s.customer == customer) {
            let (_, period_end) = s.period();
            match s.status {
                SubStatus::Canceled | SubStatus::IncompleteExpired | SubStatus::Unpaid => {}
                SubStatus::Incomplete => candidates.push((
                    s.created + INCOMPLETE_EXPIRY,
                    Due::ExpireIncomplete(s.id.clone()),
                )),
                SubStatus::Trialing => {
                    if let Some(end) = s.trial_end {
                        if !s.trial_will_end_sent {
                            candidates.push((
                                (end - TRIAL_WILL_END_NOTICE).max(s.created),
                                Due::TrialWillEnd(s.id.clone()),
                            ));
                        }
                        candidates.push((end, Due::EndTrial(s.id.clone())));
                    }
                }
                SubStatus::Active | SubStatus::PastDue => {
                    candidates.push((period_end, Due::Renew(s.id.clone())))
                }
            }
            if !s.status.is_ended() {
                if let Some(at) = s.cancel_at {
                    candidates.push((at, Due::Cancel(s.id.clone())));
                }
            }
        }
        for i in self.invoices.iter().filter(|i| i.customer == customer) {
            if let (InvoiceStatus::Open, Some(at)) = (i.status, i.next_payment_attempt) {
                candidates.push((at, Due::Retry(i.id.clone())));
            }
        }
        for s in self
            .subscription_schedules
            .iter()
            .filter(|s| s.customer == customer && s.is_live() && s.subscription.is_some())
        {
            match s.next_phase() {
                Some(phase) => {
                    candidates.push((phase.start_date, Due::SchedulePhase(s.id.clone())))
                }
                None => {
                    if let Some(last) = s.phases.last() {
                        candidates.push((last.end_date, Due::ScheduleEnd(s.id.clone())));
                    }
                }
            }
        }
        candidates
            .into_iter()
            .filter(|(at, _)| *at <= now)
            .min_by(|a, b| a.cmp(b))
    }

    fn perform(&mut self, due: Due, at: i64) {
        match due {
            Due::TrialWillEnd(id) => {
                if let Some(s) = self.subscription_mut(&id) {
                    s.trial_will_end_sent = true;
                }
                if let Some(json) = self.subscription(&id).map(|s| self.subscription_json(s)) {
                    self.emit("customer.subscription.trial_will_end", json, None, at);
                }
            }
            Due::Cancel(id) => self.cancel_subscription_now(&id, None, at),
            Due::EndTrial(id) => self.end_trial(&id, at),
            Due::ExpireIncomplete(id) => {
                let open: Vec<String> = self
                    .invoices
                    .iter()
                    .filter(|i| {
                        i.subscription.as_deref() == Some(id.as_str())
                            && i.status == InvoiceStatus::Open
                    })
                    .map(|i| i.id.clone())
                    .collect();
                for inv in open {
                    if let Some(i) = self.invoice_mut(&inv) {
                        i.status = InvoiceStatus::Void;
                        i.voided_at = Some(at);
                        i.next_payment_attempt = None;
                    }
                    if let Some(json) = self.invoice(&inv).map(|i| self.invoice_json(i)) {
                        self.emit("invoice.voided", json, None, at);
                    }
                }
                if let Some(s) = self.subscription_mut(&id) {
                    s.status = SubStatus::IncompleteExpired;
                    s.ended_at = Some(at);
                }
                if let Some(json) = self.subscription(&id).map(|s| self.subscription_json(s)) {
                    self.emit("customer.subscription.deleted", json, None, at);
                }
            }
            Due::Renew(id) => self.renew(&id, at, "subscription_cycle"),
            Due::SchedulePhase(id) => self.start_next_phase(&id, at),
            Due::ScheduleEnd(id) => self.finish_schedule(&id, at),
            Due::Retry(inv) => {
                self.retry_invoice(&inv, at);
            }
        }
    }

    /// Starts the next period: new item periods, an invoice, a charge.
    fn renew(&mut self, id: &str, at: i64, billing_reason: &str) {
        let Some(sub) = self.subscription(id).cloned() else {
            return;
        };
        let Some(price) = sub
            .items
            .first()
            .and_then(|i| self.price(&i.price))
            .cloned()
        else {
            return;
        };
        let (old_start, start) = sub.period();
        let end = clock::period_end(
            sub.billing_cycle_anchor,
            start,
            price.interval(),
            price.interval_count,
        );
        let invoice = self.new_invoice(id, billing_reason, start, end, at, false);
        if let Some(inv) = self.invoice_mut(&invoice) {
            inv.period_start = old_start;
            inv.period_end = start;
        }
        self.change_subscription(id, at, |s| {
            for it in &mut s.items {
                it.current_period_start = start;
                it.current_period_end = end;
            }
            s.latest_invoice = Some(invoice.clone());
        });
        self.emit_invoice_opened(&invoice, at);
        let paid = self.attempt_invoice_payment(&invoice, at, true);
        if !paid {
            self.change_subscription(id, at, |s| {
                if s.status == SubStatus::Active {
                    s.status = SubStatus::PastDue;
                }
            });
        }
    }

    /// A trial is over: the subscription becomes active and its first paid period is billed.
    pub(super) fn end_trial(&mut self, id: &str, at: i64) {
        let Some(sub) = self.subscription(id).cloned() else {
            return;
        };
        let Some(price) = sub
            .items
            .first()
            .and_then(|i| self.price(&i.price))
            .cloned()
        else {
            return;
        };
        let end = clock::period_end(at, at, price.interval(), price.interval_count);
        let invoice = self.new_invoice(id, "subscription_cycle", at, end, at, false);
        self.change_subscription(id, at, |s| {
            s.status = SubStatus::Active;
            s.trial_end = Some(at);
            s.billing_cycle_anchor = at;
            for it in &mut s.items {
                it.current_period_start = at;
                it.current_period_end = end;
            }
            if s.cancel_at_period_end {
                s.cancel_at = Some(end);
            }
            s.latest_invoice = Some(invoice.clone());
        });
        self.emit_invoice_opened(&invoice, at);
        let paid = self.attempt_invoice_payment(&invoice, at, true);
        if !paid {
            self.change_subscription(id, at, |s| s.status = SubStatus::PastDue);
        }
    }
}
