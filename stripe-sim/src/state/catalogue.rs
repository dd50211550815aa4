//! The catalogue: the demo products and prices a fresh double starts with, and the default
//! Customer Portal configuration that offers them.

use crate::{clock, model::*};

impl State {
    /// The demo catalogue: Starter, Pro (with a 14-day trial) and Team (per seat), monthly and
    /// yearly, and a default portal configuration that allows switching among them and
    /// choosing Team's seats.
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
            ("prod_pro", "Pro", "For growing teams.", 2900, Some(14)),
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
                    deleted: false,
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
            // Team is priced per seat (1 to 50), as the repository's billing.toml says.
            let adjustable_quantity = if product_id == "prod_team" {
                AdjustableQuantity {
                    enabled: true,
                    minimum: 1,
                    maximum: Some(50),
                }
            } else {
                AdjustableQuantity::default()
            };
            portal_products.push(PortalProduct {
                product: product_id.to_string(),
                prices: price_ids,
                adjustable_quantity,
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
            subscription_update_allowed: vec!["price".into(), "quantity".into()],
            subscription_update_products: portal_products,
            proration_behavior: "create_prorations".into(),
            schedule_at_period_end: Vec::new(),
            metadata: Metadata::new(),
        };
        let json = self.portal_configuration_json(&config);
        self.portal_configurations.push(config);
        self.seed_features();
        self.emit("billing_portal.configuration.created", json, None, now);
    }

    /// The demo features, included as the demo `billing.toml` says: Pro has export and API
    /// access, Team those and single sign-on.
    fn seed_features(&mut self) {
        let features = [
            ("export", "Export to CSV", &["prod_pro", "prod_team"][..]),
            ("api", "API access", &["prod_pro", "prod_team"][..]),
            ("sso", "Single sign-on", &["prod_team"][..]),
        ];
        for (lookup_key, name, products) in features {
            let feature = Feature {
                id: new_id("feat_", 24),
                lookup_key: lookup_key.into(),
                name: name.into(),
                active: true,
                metadata: Metadata::new(),
            };
            for product in products {
                self.product_features.push(ProductFeature {
                    id: new_id("prodft_", 24),
                    product: (*product).into(),
                    feature: feature.id.clone(),
                });
            }
            self.features.push(feature);
        }
    }
}
