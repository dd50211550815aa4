//! Stripe-shaped JSON objects for the canned APIs ([`super::stripe_stub`], and the held API of
//! `truth_ordering`): an event around an object, products, prices, subscriptions ([`Sub`],
//! changed field by field with `with`), customers, cards, invoices and Checkout sessions, each
//! with every field async-stripe's types require (`webhooks_events` checks that they parse).
//!
//! Use them where a test writes the exact object Stripe would send or answer; a test against
//! a double gets real objects from it instead.

use serde_json::{json, Value};

use crate::support::stripe_stub::now;

/// A Stripe event around `object`.
pub fn event(id: &str, event_type: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
        "data": {"object": object, "previous_attributes": {}},
    })
    .to_string()
}

pub fn product(id: &str, name: &str) -> Value {
    json!({
        "id": id, "object": "product", "active": true, "created": 1_700_000_000,
        "description": null, "images": [], "livemode": false, "marketing_features": [],
        "metadata": {}, "name": name, "type": "service", "updated": 1_700_000_000,
        "default_price": null, "shippable": null, "statement_descriptor": null,
        "tax_code": null, "unit_label": null, "url": null,
    })
}

pub fn price(id: &str, product: Value, unit_amount: i64, interval: &str) -> Value {
    json!({
        "id": id, "object": "price", "active": true, "billing_scheme": "per_unit",
        "created": 1_700_000_000, "currency": "usd", "custom_unit_amount": null,
        "livemode": false, "lookup_key": null, "metadata": {}, "nickname": null,
        "product": product,
        "recurring": {"interval": interval, "interval_count": 1, "meter": null,
                      "usage_type": "licensed", "trial_period_days": null},
        "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
        "type": "recurring", "unit_amount": unit_amount, "unit_amount_decimal": unit_amount.to_string(),
    })
}

/// What a subscription looks like; tests change fields with `with`.
#[derive(Clone)]
pub struct Sub {
    pub id: String,
    pub customer: String,
    pub status: &'static str,
    pub price: Value,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub period_start: i64,
    pub period_end: i64,
    pub default_payment_method: Option<String>,
}

impl Sub {
    pub fn new(id: &str, customer: &str) -> Sub {
        Sub {
            id: id.into(),
            customer: customer.into(),
            status: "active",
            price: price("price_pro", json!("prod_pro"), 2000, "month"),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            period_start: 1_700_000_000,
            period_end: 1_702_592_000,
            default_payment_method: None,
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut Sub)) -> Sub {
        f(&mut self);
        self
    }

    pub fn clone_with(&self, f: impl FnOnce(&mut Sub)) -> Sub {
        self.clone().with(f)
    }

    pub fn json(&self) -> Value {
        let price_id = self.price["id"].clone();
        let plan = json!({
            "id": price_id, "object": "plan", "active": true, "amount": self.price["unit_amount"],
            "amount_decimal": null, "billing_scheme": "per_unit", "created": 1_700_000_000,
            "currency": "usd", "interval": self.price["recurring"]["interval"], "interval_count": 1,
            "livemode": false, "metadata": {}, "meter": null, "nickname": null,
            "product": "prod_pro", "tiers_mode": null, "transform_usage": null,
            "trial_period_days": null, "usage_type": "licensed",
        });
        let item = json!({
            "id": format!("si_{}", self.id), "object": "subscription_item",
            "billing_thresholds": null, "created": self.period_start,
            "current_period_start": self.period_start, "current_period_end": self.period_end,
            "discounts": [], "metadata": {}, "quantity": 1, "subscription": self.id,
            "tax_rates": [], "plan": plan, "price": self.price,
        });
        let items = json!({
            "object": "list", "has_more": false, "data": [item],
            "url": format!("/v1/subscription_items?subscription={}", self.id),
        });
        let mut sub = json!({
            "id": self.id, "object": "subscription", "application": null,
            "application_fee_percent": null,
            "automatic_tax": {"enabled": false, "liability": null, "disabled_reason": null},
            "billing_cycle_anchor": self.period_start, "billing_cycle_anchor_config": null,
            "billing_mode": {"type": "classic"}, "billing_schedules": [],
            "billing_thresholds": null,
            "cancel_at": self.cancel_at, "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": self.canceled_at,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
            "collection_method": "charge_automatically", "created": self.period_start,
            "currency": "usd", "customer": self.customer, "days_until_due": null,
            "default_payment_method": self.default_payment_method, "default_source": null,
            "default_tax_rates": [], "description": null, "discounts": [],
            "ended_at": self.ended_at,
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "items": items,
            "latest_invoice": "in_latest", "livemode": false, "metadata": {},
        });
        let rest = json!({
            "next_pending_invoice_item_invoice": null, "on_behalf_of": null,
            "pause_collection": null, "payment_settings": null,
            "pending_invoice_item_interval": null, "pending_setup_intent": null,
            "pending_update": null, "schedule": null, "start_date": self.period_start,
            "status": self.status, "test_clock": null, "transfer_data": null,
            "trial_end": self.trial_end, "trial_settings": null, "trial_start": null,
        });
        if let (Some(sub), Value::Object(rest)) = (sub.as_object_mut(), rest) {
            sub.extend(rest);
        }
        sub
    }
}

pub fn customer(id: &str, email: &str, default_pm: Option<&str>) -> Value {
    json!({
        "id": id, "object": "customer", "address": null, "balance": 0,
        "created": 1_700_000_000, "currency": "usd", "default_source": null,
        "delinquent": false, "description": null, "discount": null, "email": email,
        "invoice_prefix": "ABC123",
        "invoice_settings": {"custom_fields": null, "default_payment_method": default_pm,
                             "footer": null, "rendering_options": null},
        "livemode": false, "metadata": {}, "name": "Ada Lovelace",
        "next_invoice_sequence": 1, "phone": null, "preferred_locales": [],
        "shipping": null, "tax_exempt": "none", "test_clock": null,
    })
}

pub fn payment_method(id: &str, customer: Option<&str>, last4: &str, exp_year: i64) -> Value {
    json!({
        "id": id, "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
        "card": {"brand": "visa", "checks": null, "country": "US", "display_brand": "visa",
                 "exp_month": 8, "exp_year": exp_year, "fingerprint": "fp", "funding": "credit",
                 "generated_from": null, "last4": last4, "networks": null,
                 "regulated_status": null, "three_d_secure_usage": {"supported": true}, "wallet": null},
        "created": 1_700_000_000, "customer": customer, "livemode": false,
        "metadata": {}, "type": "card",
    })
}

pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, paid: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "account_country": "US", "account_name": null,
        "amount_due": 2000, "amount_overpaid": 0, "amount_paid": paid,
        "amount_remaining": 2000 - paid, "amount_shipping": 0, "application": null,
        "attempt_count": 1, "attempted": true, "auto_advance": false,
        "automatic_tax": {"enabled": false, "liability": null, "status": null, "disabled_reason": null, "provider": null},
        "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
        "created": 1_700_000_100, "currency": "usd", "customer": customer,
        "customer_email": null, "default_payment_method": null, "default_source": null,
        "default_tax_rates": [], "description": null, "discounts": [], "due_date": null,
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/{id}"),
        "invoice_pdf": null, "issuer": {"type": "self"}, "last_finalization_error": null,
        "latest_revision": null,
        "lines": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/invoices/{id}/lines")},
        "livemode": false, "metadata": {}, "next_payment_attempt": null, "number": null,
        "on_behalf_of": null,
        "parent": {"quote_details": null, "type": "subscription_details",
                   "subscription_details": {"metadata": {}, "subscription": subscription}},
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": 1_702_592_000, "period_start": 1_700_000_000,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "receipt_number": null, "starting_balance": 0, "statement_descriptor": null,
        "status": status, "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
        "subtotal": 2000, "test_clock": null, "total": 2000, "webhooks_delivered_at": null,
    })
}

pub fn checkout_session(id: &str, customer: &str, user_ref: &str, subscription: &str) -> Value {
    json!({
        "id": id, "object": "checkout.session",
        "automatic_tax": {"enabled": false, "liability": null, "status": null, "provider": null},
        "cancel_url": "http://127.0.0.1/cancel", "client_reference_id": user_ref,
        "created": 1_700_000_000, "currency": "usd", "custom_fields": [], "custom_text": {},
        "customer": customer,
        "customer_details": {"email": "buyer@example.com", "address": null, "name": null, "phone": null, "tax_exempt": "none", "tax_ids": null},
        "customer_email": null, "expires_at": 1_700_086_400, "livemode": false,
        "metadata": {}, "mode": "subscription", "payment_method_types": ["card"],
        "payment_status": "paid", "shipping_options": [], "status": "complete",
        "subscription": subscription, "success_url": "http://127.0.0.1/ok", "url": null,
    })
}

pub fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now() as u64);
    h.finish()
}
