//! Objects as Stripe sends them, in the shape of API version 2026-09-30.endive (billing
//! periods on subscription items, the invoice's subscription under `parent`). Every field
//! async-stripe requires is present; fields the double does not model are `null` or empty.

use serde_json::{json, Value};

use super::model::*;

pub const API_VERSION: &str = "2026-09-30.endive";

/// Adds `rest`'s fields to `value` (objects too big for one `json!`).
fn merge(value: &mut Value, rest: Value) {
    if let (Some(a), Value::Object(b)) = (value.as_object_mut(), rest) {
        a.extend(b);
    }
}

fn opt<T: serde::Serialize>(v: &Option<T>) -> Value {
    json!(v)
}

fn address(a: &Option<Address>) -> Value {
    match a {
        None => Value::Null,
        Some(a) => json!({
            "city": a.city, "country": a.country, "line1": a.line1, "line2": a.line2,
            "postal_code": a.postal_code, "state": a.state,
        }),
    }
}

impl State {
    fn base(&self) -> &str {
        &self.env.public_base
    }

    pub fn customer_json(&self, c: &Customer) -> Value {
        if c.deleted {
            return json!({"id": c.id, "object": "customer", "deleted": true});
        }
        let currency = self
            .subscriptions
            .iter()
            .find(|s| s.customer == c.id)
            .map(|s| s.currency.clone());
        let delinquent = self
            .invoices
            .iter()
            .any(|i| i.customer == c.id && i.status == InvoiceStatus::Open && i.attempt_count > 0);
        json!({
            "id": c.id,
            "object": "customer",
            "address": address(&c.address),
            "balance": c.balance,
            "created": c.created,
            "currency": currency,
            "default_source": null,
            "delinquent": delinquent,
            "description": c.description,
            "discount": null,
            "email": c.email,
            "invoice_prefix": c.invoice_prefix,
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": c.default_payment_method,
                "footer": null,
                "rendering_options": null,
            },
            "livemode": false,
            "metadata": c.metadata,
            "name": c.name,
            "next_invoice_sequence": c.next_invoice_sequence,
            "phone": c.phone,
            "preferred_locales": c.preferred_locales,
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": c.test_clock,
        })
    }

    pub fn product_json(&self, p: &Product) -> Value {
        json!({
            "id": p.id,
            "object": "product",
            "active": p.active,
            "created": p.created,
            "default_price": p.default_price,
            "description": p.description,
            "images": [],
            "livemode": false,
            "marketing_features": [],
            "metadata": p.metadata,
            "name": p.name,
            "package_dimensions": null,
            "shippable": null,
            "statement_descriptor": null,
            "tax_code": null,
            "type": "service",
            "unit_label": null,
            "updated": p.updated,
            "url": null,
        })
    }

    pub fn price_json(&self, p: &Price) -> Value {
        json!({
            "id": p.id,
            "object": "price",
            "active": p.active,
            "billing_scheme": "per_unit",
            "created": p.created,
            "currency": p.currency,
            "custom_unit_amount": null,
            "livemode": false,
            "lookup_key": p.lookup_key,
            "metadata": p.metadata,
            "nickname": p.nickname,
            "product": p.product,
            "recurring": (!p.one_time()).then(|| json!({
                "interval": p.interval,
                "interval_count": p.interval_count,
                "meter": null,
                "trial_period_days": p.trial_period_days,
                "usage_type": "licensed",
            })),
            "tax_behavior": "unspecified",
            "tiers_mode": null,
            "transform_quantity": null,
            "type": if p.one_time() { "one_time" } else { "recurring" },
            "unit_amount": p.unit_amount,
            "unit_amount_decimal": p.unit_amount.to_string(),
        })
    }

    /// The legacy `plan` view of a recurring price, which subscription items still carry and
    /// `/v1/plans` answers.
    pub fn plan_json(&self, p: &Price) -> Value {
        json!({
            "id": p.id,
            "object": "plan",
            "active": p.active,
            "amount": p.unit_amount,
            "amount_decimal": p.unit_amount.to_string(),
            "billing_scheme": "per_unit",
            "created": p.created,
            "currency": p.currency,
            "interval": p.interval,
            "interval_count": p.interval_count,
            "livemode": false,
            "metadata": p.metadata,
            "meter": null,
            "nickname": p.nickname,
            "product": p.product,
            "tiers_mode": null,
            "transform_usage": null,
            "trial_period_days": p.trial_period_days,
            "usage_type": "licensed",
        })
    }

    fn price_or_placeholder(&self, id: &str) -> (Value, Value) {
        match self.price(id) {
            Some(p) => (self.price_json(p), self.plan_json(p)),
            None => {
                let missing = Price {
                    id: id.to_string(),
                    created: 0,
                    product: String::new(),
                    active: false,
                    currency: "usd".into(),
                    unit_amount: 0,
                    interval: "month".into(),
                    interval_count: 1,
                    lookup_key: None,
                    nickname: None,
                    trial_period_days: None,
                    metadata: Metadata::new(),
                    deleted: false,
                };
                (self.price_json(&missing), self.plan_json(&missing))
            }
        }
    }

    pub fn subscription_item_json(&self, sub: &Subscription, item: &SubscriptionItem) -> Value {
        let (price, plan) = self.price_or_placeholder(&item.price);
        json!({
            "id": item.id,
            "object": "subscription_item",
            "billing_thresholds": null,
            "created": item.created,
            "current_period_end": item.current_period_end,
            "current_period_start": item.current_period_start,
            "discounts": [],
            "metadata": item.metadata,
            "plan": plan,
            "price": price,
            "quantity": item.quantity,
            "subscription": sub.id,
            "tax_rates": [],
        })
    }

    pub fn subscription_json(&self, s: &Subscription) -> Value {
        let items: Vec<Value> = s
            .items
            .iter()
            .map(|i| self.subscription_item_json(s, i))
            .collect();
        let mut value = json!({
            "id": s.id,
            "object": "subscription",
            "application": null,
            "application_fee_percent": null,
            "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
            "billing_cycle_anchor": s.billing_cycle_anchor,
            "billing_cycle_anchor_config": null,
            "billing_mode": {"type": "classic"},
            "billing_schedules": [],
            "billing_thresholds": null,
            "cancel_at": s.cancel_at,
            "cancel_at_period_end": s.cancel_at_period_end,
            "canceled_at": s.canceled_at,
            "cancellation_details": {
                "comment": s.cancellation_comment,
                "feedback": s.cancellation_feedback,
                "reason": s.cancellation_reason,
            },
            "collection_method": "charge_automatically",
            "created": s.created,
            "currency": s.currency,
            "customer": s.customer,
            "customer_account": null,
            "days_until_due": null,
            "default_payment_method": s.default_payment_method,
            "default_source": null,
            "default_tax_rates": [],
            "description": s.description,
            "discounts": [],
            "ended_at": s.ended_at,
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": items,
                "has_more": false,
                "total_count": s.items.len(),
                "url": format!("/v1/subscription_items?subscription={}", s.id),
            },
        });
        let rest = json!({
            "latest_invoice": s.latest_invoice,
            "livemode": false,
            "metadata": s.metadata,
            "next_pending_invoice_item_invoice": null,
            "on_behalf_of": null,
            "pause_collection": null,
            "payment_settings": {
                "payment_method_options": null,
                "payment_method_types": null,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": null,
            "pending_setup_intent": null,
            "pending_update": null,
            "schedule": s.schedule,
            "start_date": s.start_date,
            "status": s.status.as_str(),
            "test_clock": self.clock_of(&s.customer),
            "transfer_data": null,
            "trial_end": s.trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": s.trial_start,
        });
        merge(&mut value, rest);
        value
    }

    pub fn payment_method_json(&self, pm: &PaymentMethod) -> Value {
        json!({
            "id": pm.id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": null,
                "email": pm.billing_email,
                "name": pm.billing_name,
                "phone": null,
                "tax_id": null,
            },
            "card": {
                "brand": pm.brand,
                "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                "country": "US",
                "display_brand": pm.brand,
                "exp_month": pm.exp_month,
                "exp_year": pm.exp_year,
                "fingerprint": format!("fp{}", pm.last4),
                "funding": pm.funding,
                "generated_from": null,
                "last4": pm.last4,
                "networks": {"available": [pm.brand], "preferred": null},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": true},
                "wallet": null,
            },
            "created": pm.created,
            "customer": pm.customer,
            "customer_account": null,
            "livemode": false,
            "metadata": pm.metadata,
            "type": "card",
        })
    }

    pub fn invoice_json(&self, inv: &Invoice) -> Value {
        let lines: Vec<Value> = inv
            .lines
            .iter()
            .map(|l| {
                let product = self.price(&l.price).map(|p| p.product.clone());
                json!({
                    "id": l.id,
                    "object": "line_item",
                    "amount": l.amount,
                    "currency": inv.currency,
                    "description": l.description,
                    "discount_amounts": [],
                    "discountable": true,
                    "discounts": [],
                    "invoice": inv.id,
                    "livemode": false,
                    "metadata": {},
                    "parent": if inv.subscription.is_none() && l.subscription_item.is_none() {
                        // A one-off item on a one-off invoice.
                        json!({
                            "type": "invoice_item_details",
                            "invoice_item_details": {
                                "invoice_item": l.invoice_item,
                                "proration": l.proration,
                                "proration_details": {"credited_items": null},
                                "subscription": null,
                            },
                            "subscription_item_details": null,
                        })
                    } else {
                        json!({
                            "type": "subscription_item_details",
                            "invoice_item_details": null,
                            "subscription_item_details": {
                                "invoice_item": l.invoice_item,
                                "proration": l.proration,
                                "proration_details": {"credited_items": null},
                                "subscription": inv.subscription,
                                "subscription_item": l.subscription_item,
                            },
                        })
                    },
                    "period": {"end": l.period_end, "start": l.period_start},
                    "pretax_credit_amounts": [],
                    "pricing": (!l.price.is_empty()).then(|| json!({
                        "type": "price_details",
                        "price_details": {"price": l.price, "product": product},
                        "unit_amount_decimal": (l.amount / i64::try_from(l.quantity.max(1)).unwrap_or(1)).to_string(),
                    })),
                    "quantity": l.quantity,
                    "quantity_decimal": l.quantity.to_string(),
                    "subtotal": l.amount,
                    "taxes": [],
                })
            })
            .collect();
        let amount_remaining = match inv.status {
            InvoiceStatus::Paid | InvoiceStatus::Void | InvoiceStatus::Uncollectible => 0,
            _ => inv.amount_due - inv.amount_paid,
        };
        let subtotal: i64 = inv.lines.iter().map(|l| l.amount).sum();
        let parent = inv.subscription.as_ref().map(|sub| {
            json!({
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {
                    "metadata": self.subscription(sub).map(|s| json!(s.metadata)).unwrap_or(json!({})),
                    "subscription": sub,
                    "subscription_proration_date": inv.subscription_proration_date,
                },
            })
        });
        let hosted = (inv.status != InvoiceStatus::Draft)
            .then(|| format!("{}/invoice/{}", self.base(), inv.id));
        let mut value = json!({
            "id": inv.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Billfold (test mode)",
            "account_tax_ids": null,
            "amount_due": inv.amount_due,
            "amount_overpaid": 0,
            "amount_paid": inv.amount_paid,
            "amount_remaining": amount_remaining,
            "amount_shipping": 0,
            "application": null,
            "attempt_count": inv.attempt_count,
            "attempted": inv.attempted,
            "auto_advance": inv.auto_advance
                && matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Open),
            "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "provider": null, "status": null},
            "automatically_finalizes_at": inv
                .automatically_finalizes_at
                .filter(|_| inv.status == InvoiceStatus::Draft),
            "billing_reason": inv.billing_reason,
            "collection_method": "charge_automatically",
            "created": inv.created,
            "currency": inv.currency,
            "custom_fields": null,
            "customer": inv.customer,
            "customer_account": null,
        });
        merge(
            &mut value,
            json!({
                "customer_address": null,
                "customer_email": inv.customer_email,
                "customer_name": inv.customer_name,
                "customer_phone": null,
                "customer_shipping": null,
                "customer_tax_exempt": "none",
                "customer_tax_ids": [],
                "default_payment_method": null,
                "default_source": null,
                "default_tax_rates": [],
                "description": inv.description,
                "discounts": [],
                "due_date": null,
                "effective_at": inv.finalized_at,
                "ending_balance": inv.ending_balance.filter(|_| inv.status != InvoiceStatus::Draft),
                "footer": null,
                "from_invoice": null,
                "hosted_invoice_url": hosted,
                "invoice_pdf": null,
            }),
        );
        let rest = json!({
            "issuer": {"type": "self"},
            "last_finalization_error": null,
            "latest_revision": null,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": false,
                "total_count": inv.lines.len(),
                "url": format!("/v1/invoices/{}/lines", inv.id),
            },
            "livemode": false,
            "metadata": inv.metadata,
            "next_payment_attempt": inv.next_payment_attempt,
            "number": (inv.status != InvoiceStatus::Draft).then(|| inv.number.clone()),
            "on_behalf_of": null,
            "parent": parent,
            "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
            "period_end": inv.period_end,
            "period_start": inv.period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": null,
            "rendering": null,
            "shipping_cost": null,
            "shipping_details": null,
            "starting_balance": inv.starting_balance,
            "statement_descriptor": null,
            "status": inv.status.as_str(),
            "status_transitions": {
                "finalized_at": inv.finalized_at,
                "marked_uncollectible_at": inv.marked_uncollectible_at,
                "paid_at": inv.paid_at,
                "voided_at": inv.voided_at,
            },
            "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal,
            "test_clock": self.clock_of(&inv.customer),
            "total": subtotal,
            "total_discount_amounts": [],
            "total_excluding_tax": subtotal,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": inv.finalized_at,
        });
        merge(&mut value, rest);
        value
    }

    /// A pending (or swept) invoice item, as `invoiceitem.created` carries it.
    pub fn invoice_item_json(&self, i: &InvoiceItem) -> Value {
        let product = self.price(&i.price).map(|p| p.product.clone());
        let unit = i.amount / i64::try_from(i.quantity.max(1)).unwrap_or(1);
        json!({
            "id": i.id,
            "object": "invoiceitem",
            "amount": i.amount,
            "currency": i.currency,
            "customer": i.customer,
            "customer_account": null,
            "date": i.date,
            "description": i.description,
            "discountable": !i.proration,
            "discounts": [],
            "invoice": i.invoice,
            "livemode": false,
            "metadata": {},
            "net_amount": i.amount,
            "parent": i.subscription.as_ref().map(|sub| json!({
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub,
                    "subscription_item": i.subscription_item,
                },
            })),
            "period": {"end": i.period_end, "start": i.period_start},
            // An item made from an amount, not a price, has no pricing to show.
            "pricing": (!i.price.is_empty()).then(|| json!({
                "type": "price_details",
                "price_details": {"price": i.price, "product": product},
                "unit_amount_decimal": unit.to_string(),
            })),
            "proration": i.proration,
            "proration_details": {"credited_items": null, "discount_amounts": []},
            "quantity": i.quantity,
            "quantity_decimal": i.quantity.to_string(),
            "tax_rates": [],
            "test_clock": self.clock_of(&i.customer),
        })
    }

    pub fn subscription_schedule_json(&self, s: &SubscriptionSchedule) -> Value {
        let phases: Vec<Value> = s
            .phases
            .iter()
            .map(|ph| {
                let (_, plan) = self.price_or_placeholder(&ph.price);
                json!({
                    "add_invoice_items": [],
                    "application_fee_percent": null,
                    "automatic_tax": null,
                    "billing_cycle_anchor": null,
                    "billing_thresholds": null,
                    "collection_method": null,
                    "currency": s.currency,
                    "default_payment_method": null,
                    "default_tax_rates": [],
                    "description": null,
                    "discounts": [],
                    "end_date": ph.end_date,
                    "invoice_settings": null,
                    "items": [{
                        "billing_thresholds": null,
                        "discounts": [],
                        "metadata": {},
                        "plan": plan,
                        "price": ph.price,
                        "quantity": ph.quantity,
                        "tax_rates": [],
                    }],
                    "metadata": {},
                    "on_behalf_of": null,
                    "proration_behavior": ph.proration_behavior,
                    "start_date": ph.start_date,
                    "transfer_data": null,
                    "trial_end": null,
                })
            })
            .collect();
        let current_phase = (s.status == ScheduleStatus::Active)
            .then(|| s.phases.get(s.current_phase))
            .flatten()
            .map(|ph| json!({"end_date": ph.end_date, "start_date": ph.start_date}));
        json!({
            "id": s.id,
            "object": "subscription_schedule",
            "application": null,
            "billing_mode": {"type": "classic"},
            "canceled_at": s.canceled_at,
            "completed_at": s.completed_at,
            "created": s.created,
            "current_phase": current_phase,
            "customer": s.customer,
            "customer_account": null,
            "default_settings": {
                "application_fee_percent": null,
                "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
                "billing_cycle_anchor": "automatic",
                "billing_thresholds": null,
                "collection_method": "charge_automatically",
                "default_payment_method": null,
                "description": null,
                "invoice_settings": {
                    "account_tax_ids": null,
                    "days_until_due": null,
                    "issuer": {"type": "self"},
                },
                "on_behalf_of": null,
                "transfer_data": null,
            },
            "end_behavior": s.end_behavior,
            "livemode": false,
            "metadata": s.metadata,
            "phases": phases,
            "released_at": s.released_at,
            "released_subscription": s.released_subscription,
            "status": s.status.as_str(),
            "subscription": s.subscription,
            "test_clock": self.clock_of(&s.customer),
        })
    }

    pub fn checkout_line_items_json(&self, cs: &CheckoutSession) -> Value {
        let data: Vec<Value> = cs
            .line_items
            .iter()
            .map(|l| {
                let (price, _) = self.price_or_placeholder(&l.price);
                let unit = self.price(&l.price).map_or(0, |p| p.unit_amount);
                let total = unit * i64::try_from(l.quantity).unwrap_or(1);
                json!({
                    "id": l.id,
                    "object": "item",
                    "adjustable_quantity": null,
                    "amount_discount": 0,
                    "amount_subtotal": total,
                    "amount_tax": 0,
                    "amount_total": total,
                    "currency": cs.currency,
                    "description": self.product_name(&l.price),
                    "discounts": [],
                    "metadata": {},
                    "price": price,
                    "quantity": l.quantity,
                    "taxes": [],
                })
            })
            .collect();
        json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "url": format!("/v1/checkout/sessions/{}/line_items", cs.id),
        })
    }

    pub fn checkout_session_json(&self, cs: &CheckoutSession) -> Value {
        let url = (cs.status == CheckoutStatus::Open)
            .then(|| format!("{}/checkout/{}", self.base(), cs.id));
        let customer_details = cs.customer.as_ref().map(|id| {
            let c = self.customer(id);
            json!({
                "address": c.map(|c| address(&c.address)).unwrap_or(Value::Null),
                "business_name": null,
                "email": c.and_then(|c| c.email.clone()).or_else(|| cs.customer_email.clone()),
                "individual_name": null,
                "name": c.and_then(|c| c.name.clone()),
                "phone": null,
                "tax_exempt": "none",
                "tax_ids": [],
            })
        });
        let mut value = json!({
            "id": cs.id,
            "object": "checkout.session",
            "adaptive_pricing": null,
            "after_expiration": null,
            "allow_promotion_codes": null,
            "amount_subtotal": cs.amount_total,
            "amount_total": cs.amount_total,
            "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
            "billing_address_collection": null,
            "cancel_url": cs.cancel_url,
            "client_reference_id": cs.client_reference_id,
            "client_secret": null,
            "collected_information": null,
            "consent": null,
            "consent_collection": null,
            "created": cs.created,
            "currency": cs.currency,
            "currency_conversion": null,
            "custom_fields": [],
            "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
            "customer": cs.customer,
            "customer_account": null,
            "customer_creation": if cs.customer.is_some() { Value::Null } else { json!("always") },
            "customer_details": customer_details,
            "customer_email": cs.customer_email,
            "discounts": [],
            "expires_at": cs.expires_at,
            "invoice": cs.invoice,
            "invoice_creation": null,
        });
        let rest = json!({
            "livemode": false,
            "locale": cs.locale,
            "metadata": cs.metadata,
            "mode": cs.mode,
            "payment_intent": cs.payment_intent,
            "payment_link": null,
            "payment_method_collection": "always",
            "payment_method_configuration_details": null,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": cs.payment_status,
            "phone_number_collection": {"enabled": false},
            "recovered_from": null,
            "saved_payment_method_options": null,
            "setup_intent": null,
            "shipping_address_collection": null,
            "shipping_cost": null,
            "shipping_options": [],
            "status": cs.status.as_str(),
            "submit_type": null,
            "subscription": cs.subscription,
            "success_url": cs.success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted_page",
            "url": url,
        });
        merge(&mut value, rest);
        value
    }

    pub fn portal_configuration_json(&self, c: &PortalConfiguration) -> Value {
        let products: Vec<Value> = c
            .subscription_update_products
            .iter()
            .map(|p| {
                json!({
                    "adjustable_quantity": {
                        "enabled": p.adjustable_quantity.enabled,
                        "maximum": p.adjustable_quantity.maximum,
                        "minimum": p.adjustable_quantity.minimum,
                    },
                    "prices": p.prices,
                    "product": p.product,
                })
            })
            .collect();
        json!({
            "id": c.id,
            "object": "billing_portal.configuration",
            "active": c.active,
            "application": null,
            "business_profile": {
                "headline": c.headline,
                "privacy_policy_url": c.privacy_policy_url,
                "terms_of_service_url": c.terms_of_service_url,
            },
            "created": c.created,
            "default_return_url": c.default_return_url,
            "features": {
                "customer_update": {
                    "allowed_updates": c.customer_update_allowed,
                    "enabled": c.customer_update_enabled,
                },
                "invoice_history": {"enabled": c.invoice_history_enabled},
                "payment_method_update": {
                    "enabled": c.payment_method_update_enabled,
                    "payment_method_configuration": null,
                },
                "subscription_cancel": {
                    "cancellation_reason": {
                        "enabled": c.cancellation_reason_enabled,
                        "options": c.cancellation_reason_options,
                    },
                    "enabled": c.subscription_cancel_enabled,
                    "mode": c.subscription_cancel_mode,
                    "proration_behavior": "none",
                },
                "subscription_update": {
                    "billing_cycle_anchor": null,
                    "default_allowed_updates": c.subscription_update_allowed,
                    "enabled": c.subscription_update_enabled,
                    "products": products,
                    "proration_behavior": c.proration_behavior,
                    "schedule_at_period_end": {
                        "conditions": c
                            .schedule_at_period_end
                            .iter()
                            .map(|t| json!({"type": t}))
                            .collect::<Vec<_>>(),
                    },
                    "trial_update_behavior": "end_trial",
                },
            },
            "is_default": c.is_default,
            "livemode": false,
            "login_page": {"enabled": false, "url": null},
            "metadata": c.metadata,
            "name": c.name,
            "updated": c.updated,
        })
    }

    pub fn portal_session_json(&self, s: &PortalSession) -> Value {
        json!({
            "id": s.id,
            "object": "billing_portal.session",
            "configuration": s.configuration,
            "created": s.created,
            "customer": s.customer,
            "customer_account": null,
            "flow": opt(&s.flow),
            "livemode": false,
            "locale": s.locale,
            "on_behalf_of": null,
            "return_url": s.return_url,
            "url": format!("{}/portal/{}", self.base(), s.id),
        })
    }

    pub fn webhook_endpoint_json(&self, e: &WebhookEndpoint, with_secret: bool) -> Value {
        let mut v = json!({
            "id": e.id,
            "object": "webhook_endpoint",
            "api_version": e.api_version.as_deref().unwrap_or(API_VERSION),
            "application": null,
            "created": e.created,
            "description": e.description,
            "enabled_events": e.enabled_events,
            "livemode": false,
            "metadata": e.metadata,
            "status": e.status,
            "url": e.url,
        });
        if with_secret {
            v["secret"] = json!(e.secret);
        }
        v
    }

    /// Deliveries of this event still waiting for a 2xx.
    pub fn pending_webhooks(&self, event_id: &str) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.event_id == event_id && d.pending() && !d.duplicate)
            .count()
    }

    pub fn event_json(&self, e: &StoredEvent) -> Value {
        let mut v = e.json.clone();
        v["pending_webhooks"] = json!(self.pending_webhooks(&e.id));
        v
    }

    /// Any object by id, chosen by its prefix: what `expand` replaces an id with.
    pub fn object_json(&self, id: &str) -> Option<Value> {
        if id.starts_with("sub_sched_") {
            return self
                .subscription_schedule(id)
                .map(|s| self.subscription_schedule_json(s));
        }
        let (prefix, _) = id.split_once('_')?;
        match prefix {
            "cus" => self.customer(id).map(|c| self.customer_json(c)),
            "prod" => self.product(id).map(|p| self.product_json(p)),
            "price" => self.price(id).map(|p| self.price_json(p)),
            "pm" => self.payment_method(id).map(|p| self.payment_method_json(p)),
            "sub" => self.subscription(id).map(|s| self.subscription_json(s)),
            "in" => self.invoice(id).map(|i| self.invoice_json(i)),
            "ii" => self.invoice_item(id).map(|i| self.invoice_item_json(i)),
            "cs" => self
                .checkout_session(id)
                .map(|c| self.checkout_session_json(c)),
            "bpc" => self
                .portal_configuration(id)
                .map(|c| self.portal_configuration_json(c)),
            "bps" => self.portal_session(id).map(|s| self.portal_session_json(s)),
            "evt" => self.event(id).map(|e| self.event_json(e)),
            _ => None,
        }
    }

    /// Applies `expand` paths such as `customer`, `latest_invoice`, `data.customer`,
    /// `items.data.price.product` or a checkout session's `line_items`.
    pub fn expand(&self, value: &mut Value, paths: &[String]) {
        for path in paths {
            let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
            self.expand_path(value, &segments);
        }
    }

    fn expand_path(&self, value: &mut Value, segments: &[&str]) {
        let Some((head, rest)) = segments.split_first() else {
            return;
        };
        if *head == "data" {
            if let Some(items) = value.get_mut("data").and_then(Value::as_array_mut) {
                for item in items {
                    self.expand_path(item, rest);
                }
                return;
            }
        }
        if *head == "line_items" && value["object"] == "checkout.session" {
            let id = value["id"].as_str().unwrap_or_default().to_string();
            if let Some(cs) = self.checkout_session(&id) {
                value["line_items"] = self.checkout_line_items_json(cs);
            }
        }
        let Some(child) = value.get_mut(*head) else {
            return;
        };
        if let Some(id) = child.as_str() {
            if let Some(object) = self.object_json(id) {
                *child = object;
            }
        }
        self.expand_path(child, rest);
    }
}

/// The old values of every top-level field that changed: an update event's `previous_attributes`.
pub fn previous_attributes(before: &Value, after: &Value) -> Option<Value> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return None;
    };
    let changed: serde_json::Map<String, Value> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    (!changed.is_empty()).then_some(Value::Object(changed))
}

/// A page of a list, newest first: `{object:"list", data, has_more, url}`.
pub fn list_page(
    url: &str,
    items: Vec<(String, Value)>,
    limit: usize,
    starting_after: Option<&str>,
    ending_before: Option<&str>,
) -> Value {
    let mut items = items;
    if let Some(after) = starting_after {
        match items.iter().position(|(id, _)| id == after) {
            Some(i) => {
                items.drain(..=i);
            }
            None => items.clear(),
        }
    }
    let (data, has_more): (Vec<Value>, bool) = if let Some(before) = ending_before {
        let end = items.iter().position(|(id, _)| id == before).unwrap_or(0);
        let start = end.saturating_sub(limit);
        (
            items[start..end].iter().map(|(_, v)| v.clone()).collect(),
            start > 0,
        )
    } else {
        let has_more = items.len() > limit;
        (
            items.into_iter().take(limit).map(|(_, v)| v).collect(),
            has_more,
        )
    };
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, Value)> {
        (0..n).map(|i| (format!("x_{i}"), json!(i))).collect()
    }

    #[test]
    fn pages_follow_starting_after() {
        let page = list_page("/v1/x", items(5), 2, None, None);
        assert_eq!(page["data"], json!([0, 1]));
        assert_eq!(page["has_more"], true);
        let page = list_page("/v1/x", items(5), 2, Some("x_1"), None);
        assert_eq!(page["data"], json!([2, 3]));
        let page = list_page("/v1/x", items(5), 2, Some("x_3"), None);
        assert_eq!(page["data"], json!([4]));
        assert_eq!(page["has_more"], false);
        let page = list_page("/v1/x", items(5), 2, None, Some("x_4"));
        assert_eq!(page["data"], json!([2, 3]));
        assert_eq!(page["has_more"], true);
        assert_eq!(page["url"], "/v1/x");
    }

    #[test]
    fn previous_attributes_hold_old_values_of_changed_fields() {
        let before = json!({"a": 1, "b": {"c": 2}, "d": null});
        let after = json!({"a": 1, "b": {"c": 3}, "d": "x"});
        assert_eq!(
            previous_attributes(&before, &after),
            Some(json!({"b": {"c": 2}, "d": null}))
        );
        assert_eq!(previous_attributes(&before, &before), None);
    }
}
