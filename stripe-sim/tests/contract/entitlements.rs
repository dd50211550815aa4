//! Entitlements: features, the products that include them, a customer's active entitlements,
//! and the summary event when they change, each parsed by async-stripe's own types.

use stripe_misc::{
    entitlements_active_entitlement::ListEntitlementsActiveEntitlement,
    entitlements_feature::{CreateEntitlementsFeature, ListEntitlementsFeature},
};
use stripe_product::product_feature::{CreateProductProductFeature, ListProductProductFeature};
use stripe_webhook::{EventObject, Webhook};

use crate::helpers::*;

async fn active_keys(sim: &Sim, customer: &str) -> Vec<String> {
    let mut keys: Vec<String> = ListEntitlementsActiveEntitlement::new(customer)
        .send(&sim.client)
        .await
        .expect("active entitlements")
        .data
        .into_iter()
        .map(|e| e.lookup_key)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_subscription_entitles_its_customer_to_its_products_features() {
    let sim = start().await;
    let client = &sim.client;
    // The demo catalogue's features are seeded: Pro includes export and api, Team also sso.
    let seeded = ListEntitlementsFeature::new()
        .send(client)
        .await
        .expect("list");
    assert_eq!(seeded.data.len(), 3);
    let beta = CreateEntitlementsFeature::new("beta", "Beta programme")
        .send(client)
        .await
        .expect("feature");
    assert_eq!(beta.lookup_key, "beta");
    let refused = CreateEntitlementsFeature::new("beta", "Again")
        .send(client)
        .await
        .err();
    assert!(
        matches!(refused, Some(stripe::StripeError::Stripe(_, 400))),
        "a lookup key is unique: {refused:?}"
    );
    let product_of = |key: &'static str| {
        let sim = &sim;
        async move {
            stripe_product::price::RetrievePrice::new(price(sim, key).await.as_str())
                .send(&sim.client)
                .await
                .expect("price")
                .product
                .id()
                .to_string()
        }
    };
    let pro = product_of("pro_monthly").await;
    let team = product_of("team_monthly").await;
    let on_team = ListProductProductFeature::new(team.as_str())
        .send(client)
        .await
        .expect("list");
    assert_eq!(on_team.data.len(), 3);
    // Beta on Pro, attached once.
    let attached = CreateProductProductFeature::new(pro.as_str(), beta.id.as_str())
        .send(client)
        .await
        .expect("attach");
    assert_eq!(attached.entitlement_feature.id, beta.id);
    let again = CreateProductProductFeature::new(pro.as_str(), beta.id.as_str())
        .send(client)
        .await
        .err();
    assert!(
        matches!(again, Some(stripe::StripeError::Stripe(_, 400))),
        "{again:?}"
    );

    // Subscribing to Pro: api, beta, export; moving to Team: api, export, sso; cancelling: none.
    let (customer, sub) = subscribed(&sim, "pm_card_visa", "pro_monthly").await;
    assert_eq!(
        active_keys(&sim, &customer).await,
        ["api", "beta", "export"]
    );
    let mut item = stripe_billing::subscription::UpdateSubscriptionItems::new();
    item.id = Some(sub.items.data[0].id.to_string());
    item.price = Some(price(&sim, "team_monthly").await);
    stripe_billing::subscription::UpdateSubscription::new(sub.id.as_str())
        .items(vec![item])
        .send(client)
        .await
        .expect("to Team");
    assert_eq!(active_keys(&sim, &customer).await, ["api", "export", "sso"]);
    stripe_billing::subscription::CancelSubscription::new(sub.id.as_str())
        .send(client)
        .await
        .expect("cancel");
    assert!(active_keys(&sim, &customer).await.is_empty());

    // One summary event per change, typed by async-stripe, the previous list alongside.
    let summaries: Vec<serde_json::Value> =
        events_of(&sim, "entitlements.active_entitlement_summary.updated")
            .await
            .into_iter()
            .filter(|e| e["data"]["object"]["customer"] == customer.as_str())
            .collect();
    assert_eq!(summaries.len(), 3, "granted, widened, removed");
    let counts: Vec<usize> = summaries
        .iter()
        .map(|e| {
            e["data"]["object"]["entitlements"]["data"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(counts, [3, 3, 0]);
    let previous: Vec<&str> = summaries[1]["data"]["previous_attributes"]["entitlements"]["data"]
        .as_array()
        .expect("the previous list")
        .iter()
        .filter_map(|e| e["lookup_key"].as_str())
        .collect();
    assert!(previous.contains(&"beta"), "{previous:?}");
    for e in &summaries {
        let event = Webhook::insecure(&e.to_string()).expect("parses");
        let EventObject::EntitlementsActiveEntitlementSummaryUpdated(summary) = event.data.object
        else {
            panic!("not typed: {e}");
        };
        assert_eq!(summary.customer, customer);
    }
}
