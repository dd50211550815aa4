//! Invoices: drafted for a period, finalized against the customer's balance, charged, retried
//! on Stripe's schedule, and what a payment or its failure does to the subscription.

use crate::{cards::Decline, clock::DAY, model::*};

/// A one-off invoice as `POST /v1/invoices` asks for it.
#[derive(Debug, Clone, Default)]
pub struct ManualInvoice {
    pub currency: Option<String>,
    /// `pending_invoice_items_behavior=include`.
    pub include_pending: bool,
    pub description: Option<String>,
    pub auto_advance: bool,
    pub metadata: Metadata,
}

/// How long a subscription's cycle invoice stays a draft before Stripe finalizes and charges
/// it (Stripe: "about an hour" after `invoice.created`, the time a webhook handler has to add
/// items to it).
pub const CYCLE_DRAFT_WINDOW: i64 = 3600;

/// Days between automatic retries of a failed renewal; one more failure after the last ends dunning.
pub const RETRY_DAYS: [i64; 3] = [3, 5, 7];

impl State {
    /// Creates a draft invoice for the subscription's items over a period (and its pending
    /// invoice items); returns its id.
    pub(super) fn new_invoice(
        &mut self,
        sub_id: &str,
        billing_reason: &str,
        period_start: i64,
        period_end: i64,
        at: i64,
        free: bool,
    ) -> String {
        let Some(sub) = self.subscription(sub_id).cloned() else {
            return String::new();
        };
        let lines: Vec<InvoiceLine> = sub
            .items
            .iter()
            .map(|it| {
                let price = self.price(&it.price);
                let unit = if free {
                    0
                } else {
                    price.map_or(0, |p| p.unit_amount)
                };
                let description = if free && price.is_some() {
                    format!("Trial period for {}", self.product_name(&it.price))
                } else {
                    self.period_line_description(&it.price, it.quantity)
                };
                InvoiceLine {
                    id: new_id("il_", 24),
                    price: it.price.clone(),
                    quantity: it.quantity,
                    amount: unit * i64::try_from(it.quantity).unwrap_or(1),
                    description,
                    period_start,
                    period_end,
                    subscription_item: Some(it.id.clone()),
                    proration: false,
                    invoice_item: None,
                }
            })
            .collect();
        self.record_invoice(
            sub_id,
            billing_reason,
            lines,
            (period_start, period_end),
            at,
            None,
        )
    }

    /// Records a draft invoice of `lines` plus every invoice item of the subscription still
    /// pending (prorations wait for the next invoice); returns its id.
    pub(crate) fn record_invoice(
        &mut self,
        sub_id: &str,
        billing_reason: &str,
        lines: Vec<InvoiceLine>,
        period: (i64, i64),
        at: i64,
        proration_date: Option<i64>,
    ) -> String {
        let Some(sub) = self.subscription(sub_id).cloned() else {
            return String::new();
        };
        let id = new_id("in_", 24);
        let mut swept: Vec<InvoiceLine> = Vec::new();
        for item in self
            .invoice_items
            .iter_mut()
            .filter(|i| i.subscription.as_deref() == Some(sub_id) && i.invoice.is_none())
        {
            item.invoice = Some(id.clone());
            swept.push(InvoiceLine {
                id: new_id("il_", 24),
                price: item.price.clone(),
                quantity: item.quantity,
                amount: item.amount,
                description: item.description.clone(),
                period_start: item.period_start,
                period_end: item.period_end,
                subscription_item: item.subscription_item.clone(),
                proration: item.proration,
                invoice_item: Some(item.id.clone()),
            });
        }
        let proration_date = proration_date.or_else(|| {
            swept
                .iter()
                .filter(|l| l.proration)
                .map(|l| l.period_start)
                .max()
        });
        swept.extend(lines);
        self.push_invoice(
            id,
            &sub.customer,
            Some(sub.id.clone()),
            &sub.currency,
            billing_reason,
            swept,
            period,
            at,
            proration_date,
        )
    }

    /// Records a draft invoice of `lines` for `customer` under `id`; returns the id.
    #[allow(clippy::too_many_arguments)]
    fn push_invoice(
        &mut self,
        id: String,
        customer: &str,
        subscription: Option<String>,
        currency: &str,
        billing_reason: &str,
        lines: Vec<InvoiceLine>,
        period: (i64, i64),
        at: i64,
        proration_date: Option<i64>,
    ) -> String {
        let total: i64 = lines.iter().map(|l| l.amount).sum();
        let (number, email, name) = match self.customer_mut(customer) {
            Some(c) => {
                let n = format!("{}-{:04}", c.invoice_prefix, c.next_invoice_sequence);
                c.next_invoice_sequence += 1;
                (n, c.email.clone(), c.name.clone())
            }
            None => (new_id("", 8), None, None),
        };
        self.invoices.push(Invoice {
            id: id.clone(),
            number,
            customer: customer.to_owned(),
            customer_email: email,
            customer_name: name,
            subscription,
            status: InvoiceStatus::Draft,
            currency: currency.to_owned(),
            lines,
            amount_due: total,
            amount_paid: 0,
            created: at,
            period_start: period.0,
            period_end: period.1,
            billing_reason: billing_reason.to_string(),
            attempt_count: 0,
            attempted: false,
            next_payment_attempt: None,
            finalized_at: None,
            paid_at: None,
            marked_uncollectible_at: None,
            voided_at: None,
            last_payment_error: None,
            metadata: Metadata::new(),
            starting_balance: 0,
            ending_balance: None,
            subscription_proration_date: proration_date,
            description: None,
            auto_advance: true,
            automatically_finalizes_at: None,
        });
        id
    }

    /// `POST /v1/invoiceitems`: an item waiting for the customer's next invoice (of
    /// `subscription`, when given, else of the next one-off invoice); `invoiceitem.created`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_invoice_item(
        &mut self,
        customer: &str,
        subscription: Option<String>,
        price: Option<String>,
        quantity: u64,
        amount: i64,
        currency: &str,
        description: String,
        at: i64,
    ) -> String {
        let id = new_id("ii_", 24);
        let item = InvoiceItem {
            id: id.clone(),
            customer: customer.to_owned(),
            subscription,
            subscription_item: None,
            price: price.unwrap_or_default(),
            quantity,
            amount,
            currency: currency.to_owned(),
            description,
            period_start: at,
            period_end: at,
            proration: false,
            date: at,
            invoice: None,
        };
        let json = self.invoice_item_json(&item);
        self.invoice_items.push(item);
        self.emit("invoiceitem.created", json, None, at);
        id
    }

    /// `POST /v1/invoices`: a draft one-off invoice for the customer, with their pending
    /// one-off items when `include_pending` (`pending_invoice_items_behavior=include`);
    /// `invoice.created`.
    pub fn create_manual_invoice(&mut self, customer: &str, new: ManualInvoice, at: i64) -> String {
        let ManualInvoice {
            currency,
            include_pending,
            description,
            auto_advance,
            metadata,
        } = new;
        let id = new_id("in_", 24);
        let mut lines = Vec::new();
        let mut item_currency = None;
        if include_pending {
            for item in self.invoice_items.iter_mut().filter(|i| {
                i.customer == customer && i.subscription.is_none() && i.invoice.is_none()
            }) {
                item.invoice = Some(id.clone());
                item_currency.get_or_insert_with(|| item.currency.clone());
                lines.push(InvoiceLine {
                    id: new_id("il_", 24),
                    price: item.price.clone(),
                    quantity: item.quantity,
                    amount: item.amount,
                    description: item.description.clone(),
                    period_start: item.period_start,
                    period_end: item.period_end,
                    subscription_item: None,
                    proration: false,
                    invoice_item: Some(item.id.clone()),
                });
            }
        }
        let currency = currency
            .or(item_currency)
            .unwrap_or_else(|| "usd".to_owned());
        let id = self.push_invoice(
            id,
            customer,
            None,
            &currency,
            "manual",
            lines,
            (at, at),
            at,
            None,
        );
        if let Some(inv) = self.invoice_mut(&id) {
            inv.description = description;
            inv.auto_advance = auto_advance;
            inv.metadata = metadata;
        }
        self.emit_invoice("invoice.created", &id, at);
        id
    }

    /// Emits `event` with the invoice as it is now.
    pub(crate) fn emit_invoice(&mut self, event: &str, invoice: &str, at: i64) {
        if let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) {
            self.emit(event, json, None, at);
        }
    }

    /// A draft becomes open against the customer's balance (`invoice.finalized`).
    fn finalize(&mut self, invoice: &str, at: i64) {
        self.apply_customer_balance(invoice, at);
        if let Some(inv) = self.invoice_mut(invoice) {
            inv.status = InvoiceStatus::Open;
            inv.finalized_at = Some(at);
            inv.automatically_finalizes_at = None;
        }
        self.emit_invoice("invoice.finalized", invoice, at);
    }

    /// `POST /v1/invoices/{id}/finalize` of a one-off draft: open, and paid at once when it
    /// owes nothing.
    pub fn finalize_draft(&mut self, invoice: &str, at: i64) {
        self.finalize(invoice, at);
        if self.invoice(invoice).is_some_and(|i| i.amount_due == 0) {
            self.attempt_invoice_payment(invoice, at, false);
        }
    }

    /// `invoice.created` for the draft, then finalizes it (`invoice.finalized`).
    pub(crate) fn emit_invoice_opened(&mut self, invoice: &str, at: i64) {
        self.emit_invoice("invoice.created", invoice, at);
        self.finalize(invoice, at);
    }

    /// A subscription's cycle invoice (a renewal, a trial's end) made a draft: `invoice.created`
    /// says when it will be finalized, which [`State::finalize_cycle_invoice`] does then.
    pub(crate) fn emit_cycle_draft(&mut self, invoice: &str, at: i64) {
        if let Some(inv) = self.invoice_mut(invoice) {
            inv.automatically_finalizes_at = Some(at + CYCLE_DRAFT_WINDOW);
        }
        self.emit_invoice("invoice.created", invoice, at);
    }

    /// A subscription's draft is finalized (when its hour is up, or by `/finalize`) and
    /// charged ([`State::charge_subscription_invoice`]).
    pub fn finalize_cycle_invoice(&mut self, invoice: &str, at: i64) {
        self.finalize(invoice, at);
        self.charge_subscription_invoice(invoice, at);
    }

    /// Charges a subscription's open invoice with retries; a declined charge makes an active
    /// subscription past due.
    pub(crate) fn charge_subscription_invoice(&mut self, invoice: &str, at: i64) {
        if self.attempt_invoice_payment(invoice, at, true) {
            return;
        }
        let Some(sub) = self.invoice(invoice).and_then(|i| i.subscription.clone()) else {
            return;
        };
        self.change_subscription(&sub, at, |s| {
            if s.status == SubStatus::Active {
                s.status = SubStatus::PastDue;
            }
        });
    }

    /// `DELETE /v1/invoices/{id}` (drafts only): its items go back to pending;
    /// `invoice.deleted`.
    pub fn delete_draft(&mut self, invoice: &str, at: i64) {
        let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) else {
            return;
        };
        for item in self
            .invoice_items
            .iter_mut()
            .filter(|i| i.invoice.as_deref() == Some(invoice))
        {
            item.invoice = None;
        }
        self.invoices.retain(|i| i.id != invoice);
        self.emit("invoice.deleted", json, None, at);
    }

    /// On finalizing: the customer's balance (a credit from earlier prorations, say) is applied
    /// to the invoice, and what the invoice does not use (or a negative invoice adds) stays.
    fn apply_customer_balance(&mut self, invoice: &str, at: i64) {
        let Some(inv) = self.invoice(invoice) else {
            return;
        };
        let customer = inv.customer.clone();
        let total: i64 = inv.lines.iter().map(|l| l.amount).sum();
        let starting = self.customer(&customer).map_or(0, |c| c.balance);
        let owed = total + starting;
        if let Some(inv) = self.invoice_mut(invoice) {
            inv.starting_balance = starting;
            inv.amount_due = owed.max(0);
            inv.ending_balance = Some(owed.min(0));
        }
        if owed.min(0) != starting {
            let Ok(before) = self.customer_view(&customer, "customer") else {
                return;
            };
            if let Some(c) = self.customer_mut(&customer) {
                c.balance = owed.min(0);
            }
            if let Ok(after) = self.customer_view(&customer, "customer") {
                self.emit_update("customer.updated", &before, after, at);
            }
        }
    }

    /// Charges an open invoice; `true` if it is now paid. A failure schedules the next retry
    /// when `with_retries` (renewals) and records the attempt either way.
    pub(crate) fn attempt_invoice_payment(
        &mut self,
        invoice: &str,
        at: i64,
        with_retries: bool,
    ) -> bool {
        let Some(inv) = self.invoice(invoice).cloned() else {
            return false;
        };
        if inv.status != InvoiceStatus::Open {
            return inv.status == InvoiceStatus::Paid;
        }
        let pm = self.payment_method_for(&inv.customer, inv.subscription.as_deref());
        let owed = inv.amount_due - inv.amount_paid;
        let outcome = self.charge(pm.as_deref(), owed);
        self.settle_invoice(invoice, outcome, at, with_retries)
    }

    fn settle_invoice(
        &mut self,
        invoice: &str,
        outcome: Result<(), Decline>,
        at: i64,
        with_retries: bool,
    ) -> bool {
        let Some(inv) = self.invoice_mut(invoice) else {
            return false;
        };
        let charged = inv.amount_due - inv.amount_paid > 0;
        if charged {
            inv.attempted = true;
            inv.attempt_count += 1;
        }
        match outcome {
            Ok(()) => {
                inv.status = InvoiceStatus::Paid;
                inv.amount_paid = inv.amount_due;
                inv.paid_at = Some(at);
                inv.next_payment_attempt = None;
                inv.last_payment_error = None;
                if !charged {
                    inv.attempted = true;
                }
                if let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) {
                    self.emit("invoice.paid", json.clone(), None, at);
                    self.emit("invoice.payment_succeeded", json, None, at);
                }
                true
            }
            Err(decline) => {
                inv.last_payment_error = Some(decline.message.to_string());
                let retry_index =
                    usize::try_from(inv.attempt_count.saturating_sub(1)).unwrap_or(usize::MAX);
                inv.next_payment_attempt = if with_retries {
                    RETRY_DAYS.get(retry_index).map(|d| at + d * DAY)
                } else {
                    None
                };
                // A payment waiting for the cardholder's authentication is not a failed one:
                // Stripe says so with its own event.
                let event = if decline.requires_action() {
                    "invoice.payment_action_required"
                } else {
                    "invoice.payment_failed"
                };
                self.emit_invoice(event, invoice, at);
                false
            }
        }
    }

    /// Tries an open invoice again (the automatic retry, a new default card, or `POST /pay`),
    /// and moves its subscription on: paid → active; out of retries → the dunning outcome.
    pub fn retry_invoice(&mut self, invoice: &str, at: i64) -> bool {
        let Some(inv) = self.invoice(invoice).cloned() else {
            return false;
        };
        let paid = self.attempt_invoice_payment(invoice, at, true);
        self.after_payment(&inv, paid, at);
        paid
    }

    /// Pays an open invoice with a specific card (the hosted invoice page).
    pub fn pay_invoice_with(&mut self, invoice: &str, pm: &str, at: i64) -> Result<(), Decline> {
        let Some(inv) = self.invoice(invoice).cloned() else {
            return Err(Decline::generic());
        };
        let owed = inv.amount_due - inv.amount_paid;
        let outcome = self.charge(Some(pm), owed);
        let failed = outcome.err();
        let paid = self.settle_invoice(
            invoice,
            failed.map_or(Ok(()), Err),
            at,
            inv.next_payment_attempt.is_some(),
        );
        self.after_payment(&inv, paid, at);
        match failed {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    fn after_payment(&mut self, inv: &Invoice, paid: bool, at: i64) {
        let Some(sub_id) = inv.subscription.clone() else {
            return;
        };
        if paid {
            let still_open = self.invoices.iter().any(|i| {
                i.subscription.as_deref() == Some(sub_id.as_str())
                    && i.status == InvoiceStatus::Open
            });
            if !still_open {
                self.change_subscription(&sub_id, at, |s| {
                    if matches!(
                        s.status,
                        SubStatus::PastDue | SubStatus::Unpaid | SubStatus::Incomplete
                    ) {
                        s.status = SubStatus::Active;
                    }
                });
            }
            return;
        }
        let exhausted = self
            .invoice(&inv.id)
            .is_some_and(|i| i.status == InvoiceStatus::Open && i.next_payment_attempt.is_none());
        let sub_status = self.subscription(&sub_id).map(|s| s.status);
        if exhausted && matches!(sub_status, Some(SubStatus::PastDue | SubStatus::Active)) {
            if let Some(i) = self.invoice_mut(&inv.id) {
                i.status = InvoiceStatus::Uncollectible;
                i.marked_uncollectible_at = Some(at);
            }
            self.emit_invoice("invoice.marked_uncollectible", &inv.id, at);
            match self.settings.retries_exhausted {
                RetriesExhausted::Cancel => {
                    self.cancel_subscription_now(&sub_id, Some("payment_failed"), at)
                }
                RetriesExhausted::MarkUnpaid => self.change_subscription(&sub_id, at, |s| {
                    s.status = SubStatus::Unpaid;
                }),
            }
        } else if sub_status == Some(SubStatus::Active) {
            self.change_subscription(&sub_id, at, |s| s.status = SubStatus::PastDue);
        }
    }
}
