//! The test clock: a customer's time moved forward, and what falls due meanwhile, in order:
//! trial notices and ends, renewals, payment retries, scheduled cancellations and phases.

use serde_json::Value;

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
    /// A schedule made to start later reaches its start: it creates its subscription.
    StartSchedule(String),
    Cancel(String),
    /// A schedule's next phase starts (before the renewal or trial end it coincides with bills).
    SchedulePhase(String),
    EndTrial(String),
    ExpireIncomplete(String),
    Renew(String),
    /// A cycle invoice's draft hour is over: it is finalized and charged.
    FinalizeDraft(String),
    /// A schedule's last phase is over: it releases its subscription.
    ScheduleEnd(String),
    Retry(String),
}

/// Stripe deletes a Test Clock this long after creating it.
const CLOCK_LIFETIME: i64 = 30 * DAY;

impl State {
    /// Moves a customer's time forward and runs everything that fell due meanwhile: their
    /// Test Clock's, when they live on one (every customer on it moves), else their own.
    pub fn advance_clock(&mut self, customer: &str, seconds: i64) -> ApiResult<()> {
        let c = self
            .customer_mut(customer)
            .filter(|c| !c.deleted)
            .ok_or_else(|| ApiError::no_such("customer", customer, "customer"))?;
        if let Some(clock) = c.test_clock.clone() {
            let to = self
                .test_clock(&clock)
                .map_or(0, |t| t.frozen_time)
                .saturating_add(seconds.max(0));
            return self.advance_test_clock(&clock, to);
        }
        c.clock_offset = c.clock_offset.saturating_add(seconds.max(0));
        self.run_clock(customer);
        Ok(())
    }

    /// `POST /v1/test_helpers/test_clocks`: a clock frozen at `frozen_time`.
    pub fn create_test_clock(&mut self, frozen_time: i64, name: Option<String>) -> String {
        let now = clock::now();
        let id = new_id("clock_", 24);
        let created = TestClock {
            id: id.clone(),
            created: now,
            name,
            frozen_time,
            deletes_after: now + CLOCK_LIFETIME,
            deleted: false,
        };
        let json = self.test_clock_json(&created, "ready");
        self.test_clocks.push(created);
        self.emit("test_helpers.test_clock.created", json, None, frozen_time);
        id
    }

    /// A clock that exists and was not deleted, or Stripe's 404 naming `param`.
    pub fn live_test_clock(&self, id: &str, param: &str) -> ApiResult<&TestClock> {
        self.test_clock(id)
            .filter(|c| !c.deleted)
            .ok_or_else(|| ApiError::no_such("test_helpers.test_clock", id, param))
    }

    /// `POST /v1/test_helpers/test_clocks/{id}/advance`: the clock moves to `to` and, in time
    /// order, everything due for its customers up to then happens, stamped with the time it
    /// fell due. Stripe does this asynchronously (`advancing`, then `ready`); here it is done
    /// when the call answers, and the events say both.
    pub fn advance_test_clock(&mut self, id: &str, to: i64) -> ApiResult<()> {
        let current = self.live_test_clock(id, "test_clock")?.frozen_time;
        if to <= current {
            return Err(ApiError::invalid_param(
                "frozen_time",
                format!(
                    "The frozen_time ({to}) must be after the test clock's current frozen_time ({current})."
                ),
            ));
        }
        let advancing = self
            .test_clock(id)
            .map(|c| self.test_clock_json(c, "advancing"))
            .unwrap_or_default();
        self.emit(
            "test_helpers.test_clock.advancing",
            advancing,
            None,
            current,
        );
        let customers: Vec<String> = self
            .customers
            .iter()
            .filter(|c| !c.deleted && c.test_clock.as_deref() == Some(id))
            .map(|c| c.id.clone())
            .collect();
        // Every customer's due work in one time order: a step at a time up to `to`.
        for _ in 0..10_000 {
            let next = customers
                .iter()
                .filter_map(|c| self.next_due(c, to))
                .min_by(|a, b| a.cmp(b));
            let Some((at, due)) = next else { break };
            if let Some(clock) = self.test_clock_mut(id) {
                clock.frozen_time = clock.frozen_time.max(at);
            }
            self.perform(due, at);
        }
        if let Some(clock) = self.test_clock_mut(id) {
            clock.frozen_time = to;
        }
        let ready = self
            .test_clock(id)
            .map(|c| self.test_clock_json(c, "ready"))
            .unwrap_or_default();
        self.emit("test_helpers.test_clock.ready", ready, None, to);
        Ok(())
    }

    /// `DELETE /v1/test_helpers/test_clocks/{id}`: the clock goes, and with it its customers
    /// (their subscriptions canceled, as deleting a customer does).
    pub fn delete_test_clock(&mut self, id: &str) -> ApiResult<Value> {
        let clock = self.live_test_clock(id, "test_clock")?;
        let at = clock.frozen_time;
        let json = self.test_clock_json(clock, "ready");
        let customers: Vec<String> = self
            .customers
            .iter()
            .filter(|c| !c.deleted && c.test_clock.as_deref() == Some(id))
            .map(|c| c.id.clone())
            .collect();
        for c in customers {
            self.delete_customer(&c)?;
        }
        if let Some(clock) = self.test_clock_mut(id) {
            clock.deleted = true;
        }
        self.emit("test_helpers.test_clock.deleted", json, None, at);
        Ok(serde_json::json!({"id": id, "object": "test_helpers.test_clock", "deleted": true}))
    }

    /// A clock as the API shows it, in `status`.
    pub fn test_clock_json(&self, c: &TestClock, status: &str) -> Value {
        serde_json::json!({
            "id": c.id,
            "object": "test_helpers.test_clock",
            "created": c.created,
            "deletes_after": c.deletes_after,
            "frozen_time": c.frozen_time,
            "livemode": false,
            "name": c.name,
            "status": status,
            "status_details": {},
        })
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
                SubStatus::Canceled
                | SubStatus::IncompleteExpired
                | SubStatus::Unpaid
                | SubStatus::Paused => {}
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
            match (
                i.status,
                i.next_payment_attempt,
                i.automatically_finalizes_at,
            ) {
                (InvoiceStatus::Open, Some(at), _) => {
                    candidates.push((at, Due::Retry(i.id.clone())))
                }
                (InvoiceStatus::Draft, _, Some(at)) => {
                    candidates.push((at, Due::FinalizeDraft(i.id.clone())))
                }
                _ => {}
            }
        }
        for s in self
            .subscription_schedules
            .iter()
            .filter(|s| s.customer == customer && s.status == ScheduleStatus::NotStarted)
        {
            if let Some(first) = s.phases.first() {
                candidates.push((first.start_date, Due::StartSchedule(s.id.clone())));
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
            Due::StartSchedule(id) => self.start_schedule(&id, at),
            Due::EndTrial(id) => self.end_trial(&id, at, false),
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
                    self.emit_invoice("invoice.voided", &inv, at);
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
            Due::FinalizeDraft(inv) => self.finalize_cycle_invoice(&inv, at),
            Due::SchedulePhase(id) => self.start_next_phase(&id, at),
            Due::ScheduleEnd(id) => self.finish_schedule(&id, at),
            Due::Retry(inv) => {
                self.retry_invoice(&inv, at);
            }
        }
    }

    /// Starts the next period: new item periods and a draft invoice, finalized and charged
    /// about an hour later.
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
        self.emit_cycle_draft(&invoice, at);
    }

    /// A trial is over: the subscription becomes active and its first paid period is billed
    /// (a draft, finalized and charged about an hour later; at once when `now`, a trial ended
    /// through the API, whose update charges in the same request).
    pub(super) fn end_trial(&mut self, id: &str, at: i64, now: bool) {
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
        let has_card = self.payment_method_for(&sub.customer, Some(id)).is_some();
        if sub.pause_without_payment_method && !has_card {
            // `missing_payment_method=pause`: no invoice; paused until a card and a resume.
            self.change_subscription(id, at, |s| {
                s.status = SubStatus::Paused;
                s.trial_end = Some(at);
            });
            if let Some(json) = self.subscription(id).map(|s| self.subscription_json(s)) {
                self.emit("customer.subscription.paused", json, None, at);
            }
            return;
        }
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
        if !now {
            self.emit_cycle_draft(&invoice, at);
            return;
        }
        self.emit_invoice_opened(&invoice, at);
        self.charge_subscription_invoice(&invoice, at);
    }
}
