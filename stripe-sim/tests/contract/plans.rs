//! The legacy Plans API: a plan is a recurring price in an older shape, one list with
//! `/v1/prices`; plans made, listed, renamed, subscribed to and deleted as Stripe does it, every
//! answer and event parsing as async-stripe's own `Plan` and `Price`.

use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems};
use stripe_product::price::RetrievePrice;
use stripe_shared::{Plan, PlanInterval};

use crate::helpers::*;

fn as_plan(v: &serde_json::Value) -> Plan {
    miniserde::json::from_str(&v.to_string())
        .unwrap_or_else(|e| panic!("not a Plan as async-stripe reads it ({e:?}): {v}"))
}

#[tokio::test]
async fn a_plan_is_a_price_in_the_legacy_shape() {
    let sim = start().await;
    // A plan with its own id and a product made with it, as older fixtures make them.
    let (status, made) = post_form(
        &sim,
        "/v1/plans",
        "id=gold-monthly&amount=2000&currency=usd&interval=month&product[name]=Gold&nickname=Gold+monthly&trial_period_days=7&metadata[tier]=gold",
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let plan = as_plan(&made);
    assert_eq!(plan.id.as_str(), "gold-monthly");
    assert_eq!(plan.amount, Some(2000));
    assert_eq!(plan.interval, PlanInterval::Month);
    assert_eq!(plan.trial_period_days, Some(7));
    let product = made["product"].as_str().expect("a product id").to_owned();
    for kind in ["plan.created", "price.created", "product.created"] {
        let events = events_of(&sim, kind).await;
        let last = events.last().unwrap_or_else(|| panic!("no {kind}"));
        crate::webhooks::assert_typed(&last.to_string());
    }

    // The same object at /v1/prices, recurring, under the same id.
    let same = RetrievePrice::new("gold-monthly")
        .send(&sim.client)
        .await
        .expect("the plan is a price");
    assert_eq!(same.unit_amount, Some(2000));
    assert_eq!(
        same.recurring.as_ref().map(|r| r.interval.as_str()),
        Some("month")
    );
    assert_eq!(same.product.id().as_str(), product);

    // Every recurring price is a plan; one-time prices are not.
    let (_, listed) = get_json(&sim, "/v1/plans?limit=100").await;
    let ids: Vec<String> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| as_plan(p).id.as_str().to_owned())
        .collect();
    assert!(ids.iter().any(|id| id == "gold-monthly"), "{ids:?}");
    let starter = price(&sim, "starter_monthly").await;
    assert!(ids.contains(&starter), "seeded prices are plans too");
    let (_, by_product) = get_json(&sim, &format!("/v1/plans?product={product}")).await;
    assert_eq!(by_product["data"].as_array().map(Vec::len), Some(1));

    // A second plan with the same id is refused; so is a bad interval or a missing amount.
    for (body, param) in [
        (
            "id=gold-monthly&amount=1&currency=usd&interval=month&product[name]=X",
            "id",
        ),
        (
            "amount=1&currency=usd&interval=fortnight&product[name]=X",
            "interval",
        ),
        ("currency=usd&interval=month&product[name]=X", "amount"),
    ] {
        let (status, err) = post_form(&sim, "/v1/plans", body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{err}");
    }

    // Renamed: plan.updated and price.updated, each with what it was before.
    let (status, renamed) = post_form(&sim, "/v1/plans/gold-monthly", "nickname=Gold").await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(as_plan(&renamed).nickname.as_deref(), Some("Gold"));
    let updated = events_of(&sim, "plan.updated").await;
    assert_eq!(
        updated.last().expect("plan.updated")["data"]["previous_attributes"]["nickname"],
        "Gold monthly"
    );
    assert_eq!(events_of(&sim, "price.updated").await.len(), 1);

    // A subscription on the plan, then the plan deleted: gone from the API, the subscription
    // goes on, and no new one can choose it.
    let customer = customer(&sim, "plans@example.com").await;
    let pm = attach(&sim, "pm_card_visa", &customer).await;
    let mut item = CreateSubscriptionItems::new();
    item.price = Some("gold-monthly".into());
    let sub = CreateSubscription::new()
        .customer(&customer)
        .items(vec![item])
        .default_payment_method(&pm)
        .send(&sim.client)
        .await
        .expect("subscribe to the plan");
    assert_eq!(sub.items.data[0].plan.id.as_str(), "gold-monthly");
    let deleted = delete(&sim, "/v1/plans/gold-monthly").await;
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    assert_eq!(deleted.1["deleted"], true);
    for kind in ["plan.deleted", "price.deleted"] {
        let events = events_of(&sim, kind).await;
        crate::webhooks::assert_typed(&events.last().expect(kind).to_string());
    }
    assert_eq!(get_json(&sim, "/v1/plans/gold-monthly").await.0, 404);
    assert_eq!(get_json(&sim, "/v1/prices/gold-monthly").await.0, 404);
    assert_eq!(delete(&sim, "/v1/plans/gold-monthly").await.0, 404);
    let (_, still) = get_json(&sim, &format!("/v1/subscriptions/{}", sub.id)).await;
    assert!(
        matches!(still["status"].as_str(), Some("active" | "trialing")),
        "{still}"
    );
    assert_eq!(still["items"]["data"][0]["plan"]["id"], "gold-monthly");
    let mut item = CreateSubscriptionItems::new();
    item.price = Some("gold-monthly".into());
    let refused = CreateSubscription::new()
        .customer(&customer)
        .items(vec![item])
        .default_payment_method(&pm)
        .send(&sim.client)
        .await;
    assert!(refused.is_err(), "a deleted plan cannot be chosen");
}
