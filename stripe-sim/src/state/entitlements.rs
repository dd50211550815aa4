//! Entitlements: features, the products that include them, and what each customer is entitled
//! to. A customer is entitled to the features of the products its subscriptions are on, while a
//! subscription is trialing, active, past due or unpaid (Stripe keeps entitlements through
//! failed payments; a cancelled or never-completed subscription grants nothing). The set is
//! worked out again whenever one of the customer's subscriptions changes (every
//! `customer.subscription.*` event): a feature attached to a product reaches existing
//! subscriptions then, as Stripe's reach them at their next change or period. When the set
//! differs from the one last announced, `entitlements.active_entitlement_summary.updated` goes
//! out, with the previous list in `previous_attributes`.

use serde_json::{json, Value};

use crate::model::*;

/// The subscription statuses that entitle a customer to its products' features.
fn entitles(status: SubStatus) -> bool {
    matches!(
        status,
        SubStatus::Trialing | SubStatus::Active | SubStatus::PastDue | SubStatus::Unpaid
    )
}

impl State {
    pub fn feature(&self, id: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.id == id)
    }

    pub fn feature_json(&self, f: &Feature) -> Value {
        json!({
            "id": f.id,
            "object": "entitlements.feature",
            "active": f.active,
            "livemode": false,
            "lookup_key": f.lookup_key,
            "metadata": f.metadata,
            "name": f.name,
        })
    }

    pub fn product_feature_json(&self, pf: &ProductFeature) -> Value {
        let feature = self
            .feature(&pf.feature)
            .map(|f| self.feature_json(f))
            .unwrap_or(Value::Null);
        json!({
            "id": pf.id,
            "object": "product_feature",
            "entitlement_feature": feature,
            "livemode": false,
        })
    }

    /// One active entitlement (`entitlements.active_entitlement`).
    pub fn active_entitlement_json(&self, id: &str, feature: &str) -> Value {
        json!({
            "id": id,
            "object": "entitlements.active_entitlement",
            "feature": feature,
            "livemode": false,
            "lookup_key": self.feature(feature).map(|f| f.lookup_key.clone()),
        })
    }

    /// The customer's active entitlements as last announced.
    pub fn active_entitlements(&self, customer: &str) -> Vec<(String, String)> {
        self.entitlements
            .iter()
            .find(|e| e.customer == customer)
            .map(|e| e.active.clone())
            .unwrap_or_default()
    }

    fn summary_list(&self, customer: &str, active: &[(String, String)]) -> Value {
        let data: Vec<Value> = active
            .iter()
            .map(|(id, feature)| self.active_entitlement_json(id, feature))
            .collect();
        json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "url": format!("/v1/customer/{customer}/entitlements"),
        })
    }

    /// The features the customer's subscriptions entitle it to now, in the features' order.
    fn features_due(&self, customer: &str) -> Vec<String> {
        let products: Vec<&str> = self
            .subscriptions
            .iter()
            .filter(|s| s.customer == customer && entitles(s.status))
            .flat_map(|s| s.items.iter())
            .filter_map(|item| self.price(&item.price).map(|p| p.product.as_str()))
            .collect();
        self.features
            .iter()
            .filter(|f| f.active)
            .filter(|f| {
                self.product_features
                    .iter()
                    .any(|pf| pf.feature == f.id && products.contains(&pf.product.as_str()))
            })
            .map(|f| f.id.clone())
            .collect()
    }

    /// Works out the customer's entitlements again and announces them if they changed.
    pub fn refresh_entitlements(&mut self, customer: &str, at: i64) {
        let due = self.features_due(customer);
        let before = self.active_entitlements(customer);
        let unchanged = before.len() == due.len()
            && before
                .iter()
                .zip(&due)
                .all(|((_, have), want)| have == want);
        if unchanged {
            return;
        }
        // An entitlement kept keeps its id.
        let active: Vec<(String, String)> = due
            .into_iter()
            .map(|feature| {
                let id = before
                    .iter()
                    .find(|(_, f)| *f == feature)
                    .map(|(id, _)| id.clone())
                    .unwrap_or_else(|| new_id("ent_", 24));
                (id, feature)
            })
            .collect();
        let previous = self.summary_list(customer, &before);
        let summary = json!({
            "object": "entitlements.active_entitlement_summary",
            "customer": customer,
            "entitlements": self.summary_list(customer, &active),
            "livemode": false,
        });
        match self
            .entitlements
            .iter_mut()
            .find(|e| e.customer == customer)
        {
            Some(e) => e.active = active,
            None => self.entitlements.push(CustomerEntitlements {
                customer: customer.to_owned(),
                active,
            }),
        }
        self.emit(
            "entitlements.active_entitlement_summary.updated",
            summary,
            Some(json!({ "entitlements": previous })),
            at,
        );
    }
}
