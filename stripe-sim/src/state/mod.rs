//! The rules: what each change does to the state and which events it emits, as Stripe would.
//! The API handlers, the hosted pages and the test clock all change state only through here.

use serde_json::Value;

use super::{
    cards::{self, CardOutcome, Decline, TestCard},
    clock::{self, DAY},
    error::{ApiError, ApiResult},
    model::*,
    plan_change::{PlanChange, ProrationBehavior, Timing},
};

/// Days between automatic retries of a failed renewal; one more failure after the last ends dunning.
pub const RETRY_DAYS: [i64; 3] = [3, 5, 7];
/// Stripe sends `customer.subscription.trial_will_end` this long before a trial ends.
const TRIAL_WILL_END_NOTICE: i64 = 3 * DAY;
/// An incomplete subscription whose first invoice stays unpaid this long expires.
const INCOMPLETE_EXPIRY: i64 = 23 * 3600;
/// How long a portal session URL works.
pub const PORTAL_SESSION_LIFETIME: i64 = 5 * 60;
/// How long a Checkout session stays open.
pub const CHECKOUT_SESSION_LIFETIME: i64 = DAY;

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

#[derive(Debug, Clone, Default)]
pub struct CustomerFields {
    pub email: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub address: Option<Option<Address>>,
    pub metadata: Option<MetadataPatch>,
    pub default_payment_method: Option<Option<String>>,
    pub preferred_locales: Option<Vec<String>>,
}

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

impl State {
    // ----- catalogue ---------------------------------------------------------------------

    /// The demo catalogue: Starter, Pro (with a 14-day trial) and Team, monthly and yearly,
    /// and a default portal configuration that allows switching among them.
    pub fn seed(&mut self) {
        let now = clock::now();
        let plans: [(&str, &str, &str, i64, Option<u32>); 3] = [
            (
                "prod_starter",
                "Starter",
                "For individuals getting started.",
                900,
                None,
            ),
            (
                "prod_pro",
                "Pro",
                "For growing teams; 14-day free trial.",
                2900,
                Some(14),
            ),
            ("prod_team", "Team", "For whole organisations.", 9900, None),
        ];
        let mut portal_products = Vec::new();
        for (product_id, name, description, monthly, trial) in plans {
            let lower = name.to_lowercase();
            let mut price_ids = Vec::new();
            for (interval, amount) in [("month", monthly), ("year", monthly * 10)] {
                let mut metadata = Metadata::new();
                metadata.insert("plan".into(), lower.clone());
                if let Some(days) = trial {
                    metadata.insert("trial_period_days".into(), days.to_string());
                }
                let price = Price {
                    id: new_id("price_", 24),
                    created: now,
                    product: product_id.to_string(),
                    active: true,
                    currency: "usd".into(),
                    unit_amount: amount,
                    interval: interval.into(),
                    interval_count: 1,
                    lookup_key: Some(format!("{lower}_{interval}ly")),
                    nickname: Some(format!("{name} ({interval}ly)")),
                    trial_period_days: trial,
                    metadata,
                };
                price_ids.push(price.id.clone());
                self.prices.push(price);
            }
            let product = Product {
                id: product_id.to_string(),
                created: now,
                updated: now,
                name: name.to_string(),
                description: Some(description.to_string()),
                active: true,
                default_price: price_ids.first().cloned(),
                metadata: Metadata::new(),
            };
            let product_json = self.product_json(&product);
            self.products.push(product);
            self.emit("product.created", product_json, None, now);
            for id in &price_ids {
                if let Some(json) = self.price(id).map(|p| self.price_json(p)) {
                    self.emit("price.created", json, None, now);
                }
            }
            portal_products.push(PortalProduct {
                product: product_id.to_string(),
                prices: price_ids,
            });
        }
        let config = PortalConfiguration {
            id: new_id("bpc_", 24),
            created: now,
            updated: now,
            active: true,
            is_default: true,
            name: Some("Billfold default".into()),
            headline: Some("Billfold (test mode)".into()),
            privacy_policy_url: None,
            terms_of_service_url: None,
            default_return_url: None,
            customer_update_enabled: true,
            customer_update_allowed: vec!["email".into(), "name".into(), "address".into()],
            invoice_history_enabled: true,
            payment_method_update_enabled: true,
            subscription_cancel_enabled: true,
            subscription_cancel_mode: "at_period_end".into(),
            cancellation_reason_enabled: true,
            cancellation_reason_options: vec![
                "too_expensive".into(),
                "missing_features".into(),
                "switched_service".into(),
                "unused".into(),
                "other".into(),
            ],
            subscription_update_enabled: true,
            subscription_update_allowed: vec!["price".into()],
            subscription_update_products: portal_products,
            proration_behavior: "create_prorations".into(),
            schedule_at_period_end: Vec::new(),
            metadata: Metadata::new(),
        };
        let json = self.portal_configuration_json(&config);
        self.portal_configurations.push(config);
        self.emit("billing_portal.configuration.created", json, None, now);
    }

    // ----- customers ---------------------------------------------------------------------

    pub fn create_customer(&mut self, fields: CustomerFields) -> ApiResult<String> {
        let now = clock::now();
        let id = new_id("cus_", 14);
        let mut customer = Customer {
            id: id.clone(),
            created: now,
            email: None,
            name: None,
            phone: None,
            description: None,
            address: None,
            metadata: Metadata::new(),
            default_payment_method: None,
            invoice_prefix: new_id("", 8).to_uppercase(),
            next_invoice_sequence: 1,
            preferred_locales: Vec::new(),
            clock_offset: 0,
            deleted: false,
            balance: 0,
        };
        if let Some(Some(pm)) = &fields.default_payment_method {
            return Err(ApiError::invalid_param(
                "invoice_settings[default_payment_method]",
                format!(
                    "No such PaymentMethod: '{pm}'; it must be attached to this customer first."
                ),
            ));
        }
        apply_customer_fields(&mut customer, fields);
        let json = self.customer_json(&customer);
        self.customers.push(customer);
        self.emit("customer.created", json, None, now);
        Ok(id)
    }

    pub fn update_customer(&mut self, id: &str, fields: CustomerFields) -> ApiResult<()> {
        if let Some(Some(pm)) = &fields.default_payment_method {
            let attached = self
                .payment_method(pm)
                .is_some_and(|p| p.customer.as_deref() == Some(id));
            if !attached {
                return Err(ApiError::invalid_param(
                    "invoice_settings[default_payment_method]",
                    format!("The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."),
                ));
            }
        }
        let now = self.customer_now(id);
        let before = self.customer_view(id, "id")?;
        let customer = self
            .customer_mut(id)
            .ok_or_else(|| ApiError::no_such("customer", id, "id"))?;
        apply_customer_fields(customer, fields);
        let after = self.customer_view(id, "id")?;
        self.emit_update("customer.updated", &before, after, now);
        Ok(())
    }

    pub fn delete_customer(&mut self, id: &str) -> ApiResult<()> {
        let before = self.customer_view(id, "id")?;
        let now = self.customer_now(id);
        let subs: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|s| s.customer == id && !s.status.is_ended())
            .map(|s| s.id.clone())
            .collect();
        for sub in subs {
            self.cancel_subscription_now(&sub, None, now);
        }
        let pms: Vec<String> = self
            .payment_methods
            .iter()
            .filter(|p| p.customer.as_deref() == Some(id))
            .map(|p| p.id.clone())
            .collect();
        for pm in pms {
            if let Some(p) = self.payment_method_mut(&pm) {
                p.customer = None;
            }
        }
        if let Some(c) = self.customer_mut(id) {
            c.deleted = true;
        }
        self.emit("customer.deleted", before, None, now);
        Ok(())
    }

    /// The customer's JSON, or 404 naming `param`.
    pub fn customer_view(&self, id: &str, param: &str) -> ApiResult<Value> {
        self.live_customer(id)
            .map(|c| self.customer_json(c))
            .ok_or_else(|| ApiError::no_such("customer", id, param))
    }

    pub fn require_customer(&self, id: &str, param: &str) -> ApiResult<()> {
        self.live_customer(id)
            .map(|_| ())
            .ok_or_else(|| ApiError::no_such("customer", id, param))
    }

    // ----- payment methods ---------------------------------------------------------------

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

    // ----- subscriptions -----------------------------------------------------------------

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
                let paid = self.attempt_invoice_payment(&invoice, now, true);
                if !paid {
                    self.change_subscription(id, now, |s| {
                        if s.status == SubStatus::Active {
                            s.status = SubStatus::PastDue;
                        }
                    });
                }
            }
        } else {
            let after = self.subscription_view(id, "id")?;
            self.emit_update("customer.subscription.updated", &before, after, now);
        }
        if patch.end_trial_now && sub.status == SubStatus::Trialing {
            self.end_trial(id, now);
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

    // ----- invoices ----------------------------------------------------------------------

    /// Creates a draft invoice for the subscription's items over a period (and its pending
    /// invoice items); returns its id.
    fn new_invoice(
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
        let lines = swept;
        let total: i64 = lines.iter().map(|l| l.amount).sum();
        let (number, email, name) = match self.customer_mut(&sub.customer) {
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
            customer: sub.customer.clone(),
            customer_email: email,
            customer_name: name,
            subscription: Some(sub.id.clone()),
            status: InvoiceStatus::Draft,
            currency: sub.currency.clone(),
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
        });
        id
    }

    /// `invoice.created` for the draft, then finalizes it (`invoice.finalized`).
    pub(crate) fn emit_invoice_opened(&mut self, invoice: &str, at: i64) {
        if let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) {
            self.emit("invoice.created", json, None, at);
        }
        self.apply_customer_balance(invoice, at);
        if let Some(inv) = self.invoice_mut(invoice) {
            inv.status = InvoiceStatus::Open;
            inv.finalized_at = Some(at);
        }
        if let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) {
            self.emit("invoice.finalized", json, None, at);
        }
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
                if let Some(json) = self.invoice(invoice).map(|i| self.invoice_json(i)) {
                    self.emit("invoice.payment_failed", json, None, at);
                }
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
            if let Some(json) = self.invoice(&inv.id).map(|i| self.invoice_json(i)) {
                self.emit("invoice.marked_uncollectible", json, None, at);
            }
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

    // ----- the clock ---------------------------------------------------------------------

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
    fn end_trial(&mut self, id: &str, at: i64) {
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

    // ----- checkout ----------------------------------------------------------------------

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
}

fn apply_customer_fields(c: &mut Customer, f: CustomerFields) {
    if let Some(v) = f.email {
        c.email = v;
    }
    if let Some(v) = f.name {
        c.name = v;
    }
    if let Some(v) = f.phone {
        c.phone = v;
    }
    if let Some(v) = f.description {
        c.description = v;
    }
    if let Some(v) = f.address {
        c.address = v.filter(|a| !a.is_empty());
    }
    if let Some(m) = f.metadata {
        m.apply(&mut c.metadata);
    }
    if let Some(v) = f.default_payment_method {
        c.default_payment_method = v;
    }
    if let Some(v) = f.preferred_locales {
        c.preferred_locales = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
