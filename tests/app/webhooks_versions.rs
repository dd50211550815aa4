//! Events from an endpoint on another API version carry objects in that version's shape,
//! which need not parse as the pinned types. Such an event is never answered 500 for that:
//! its object is read again through the API (which answers in the pinned version) and that
//! copy is applied; the event's row says so.

use serde_json::{json, Value};

use crate::support::{app::Backend, rows::*, stripe_objects::*, stripe_stub::*};

/// A subscription as an endpoint on API version 2024-06-20 receives it: the period on the
/// subscription, not on its items, and none of the newer fields.
fn in_2024_06_20_shape(sub: &Sub) -> Value {
    let mut object = sub.json();
    let map = object.as_object_mut().expect("object");
    map.insert("current_period_start".into(), json!(sub.period_start));
    map.insert("current_period_end".into(), json!(sub.period_end));
    for newer in [
        "billing_mode",
        "billing_schedules",
        "billing_cycle_anchor_config",
    ] {
        map.remove(newer);
    }
    if let Some(item) = object["items"]["data"][0].as_object_mut() {
        item.remove("current_period_start");
        item.remove("current_period_end");
    }
    object
}

async fn an_event_in_another_api_versions_shape_is_applied_from_the_api(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    stub.set("products/prod_pro", product("prod_pro", "Pro"));
    // Stripe's state now, as the API (in the pinned version) answers it.
    let now_in_stripe = Sub::new("sub_v", "cus_v").with(|s| {
        s.status = "past_due";
        s.period_start = 1_710_000_000;
        s.period_end = 1_712_592_000;
    });
    stub.set("subscriptions/sub_v", now_in_stripe.json());

    let old = in_2024_06_20_shape(&now_in_stripe.clone_with(|s| s.status = "active"));
    assert!(
        miniserde::json::from_str::<stripe_shared::Subscription>(&old.to_string()).is_err(),
        "the old shape does not parse as the pinned type"
    );
    let mut body: Value = serde_json::from_str(&event(
        "evt_v1",
        "customer.subscription.updated",
        now() - 30,
        old,
    ))
    .expect("json");
    body["api_version"] = json!("2024-06-20");
    deliver_expect(&app, &body.to_string(), "applied").await;

    let row = subscription_row(&app, "sub_v").await.expect("row");
    assert_eq!(row.status, "past_due", "the API's copy was applied");
    assert_eq!(
        (row.current_period_start, row.current_period_end),
        (Some(1_710_000_000), Some(1_712_592_000))
    );
    assert_eq!(row.plan_name.as_deref(), Some("Pro"));
    assert_eq!(stub.hits("subscriptions/sub_v"), 1);

    let recorded = event_row(&app, "evt_v1").await;
    assert_eq!(recorded.api_version.as_deref(), Some("2024-06-20"));
    assert!(
        recorded.applied_from_api,
        "the row says the payload was not used"
    );
    let listed = billfold::webhooks::history::list(&app.db, &Default::default())
        .await
        .expect("list");
    let shown = listed.iter().find(|e| e.id == "evt_v1").expect("listed");
    assert_eq!(shown.api_version.as_deref(), Some("2024-06-20"));
    assert!(shown.applied_from_api);

    // The same delivered again is a duplicate, not a second read.
    deliver_expect(&app, &body.to_string(), "duplicate").await;
    assert_eq!(stub.hits("subscriptions/sub_v"), 1);

    // An object Stripe no longer has, in a shape that does not parse: recorded and ignored
    // (with the reason), never a 500 that every retry for three days repeats.
    let gone = in_2024_06_20_shape(&Sub::new("sub_gone", "cus_v"));
    let mut body: Value = serde_json::from_str(&event(
        "evt_v2",
        "customer.subscription.updated",
        now() - 20,
        gone,
    ))
    .expect("json");
    body["api_version"] = json!("2024-06-20");
    deliver_expect(&app, &body.to_string(), "ignored").await;
    let recorded = event_row(&app, "evt_v2").await;
    assert!(
        recorded
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no longer has")),
        "{:?}",
        recorded.error
    );
    assert!(subscription_row(&app, "sub_gone").await.is_none());
    app.stop().await;
}

crate::support::on_both_databases!(an_event_in_another_api_versions_shape_is_applied_from_the_api);
