//! Customers: create, update, delete (which cancels their subscriptions and detaches their
//! cards), and the checks other rules make on them.

use serde_json::Value;

use super::MetadataPatch;
use crate::{
    clock,
    error::{ApiError, ApiResult},
    model::*,
};

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

impl State {
    pub fn create_customer(&mut self, fields: CustomerFields) -> ApiResult<String> {
        self.create_customer_on(fields, None)
    }

    /// A new customer, on `test_clock` if given (created in its frozen time, and living in it).
    pub fn create_customer_on(
        &mut self,
        fields: CustomerFields,
        test_clock: Option<String>,
    ) -> ApiResult<String> {
        let now = match &test_clock {
            Some(clock) => self.live_test_clock(clock, "test_clock")?.frozen_time,
            None => clock::now(),
        };
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
            test_clock,
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
