//! Features by entitlement: a plan's features reach the app through Stripe's Entitlements
//! (`entitlements.active_entitlement_summary.updated`), and the feature guard lets a user in
//! only while Stripe lists the feature *and* the access rule grants access.

use std::time::Duration;

use billfold::db::entities::customer_entitlement;
use sea_orm::EntityTrait;
use stripe_billing::subscription::{
    CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
};

use crate::support::{
    app::{Backend, TestApp},
    billing::{monthly_price, sign_up_with_customer, subscribe_in_stripe},
};

/// `GET /app/export.csv` now: (status, body).
async fn export(app: &TestApp) -> (u16, String) {
    let res = app
        .client
        .get(app.url("/app/export.csv"))
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// Waits (a bounded while) for the export to answer `status`.
async fn export_becomes(app: &TestApp, status: u16) -> String {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = export(app).await;
        if last.0 == status {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export never answered {status}: {} {}", last.0, last.1);
}

async fn a_feature_follows_the_plan_that_includes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(export(&app).await.0, 401, "signed out");
    let (_, customer) = sign_up_with_customer(&app).await;
    let body = export_becomes(&app, 403).await;
    assert!(body.contains("active plan"), "no plan: {body}");

    // Starter does not include export: 403 naming the plans that do.
    let sub = subscribe_in_stripe(&app.state.stripe, &customer, 900).await;
    for _ in 0..100 {
        if export(&app).await.1.contains("is included in") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = export(&app).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Export to CSV is included in Pro and Team"),
        "{body}"
    );

    // Upgraded to Pro: Stripe's summary event arrives and the export opens.
    let current = RetrieveSubscription::new(sub.as_str())
        .send(&app.state.stripe)
        .await
        .expect("subscription");
    let mut item = UpdateSubscriptionItems::new();
    item.id = Some(current.items.data[0].id.to_string());
    item.price = Some(monthly_price(&app, "Pro").await);
    UpdateSubscription::new(sub.as_str())
        .items(vec![item])
        .send(&app.state.stripe)
        .await
        .expect("to Pro");
    let csv = export_becomes(&app, 200).await;
    assert!(
        csv.starts_with("invoice,paid_at,amount,currency\n"),
        "{csv}"
    );
    let row = customer_entitlement::Entity::find_by_id(customer.clone())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the customer's entitlements");
    assert_eq!(row.keys().collect::<Vec<_>>(), ["api", "export"]);

    // Cancelled: Stripe takes the entitlements away, and access ends with the plan anyway.
    CancelSubscription::new(sub.as_str())
        .send(&app.state.stripe)
        .await
        .expect("cancel");
    // Stripe's summary (no features) and the subscription's deletion arrive as two events,
    // in either order; once both are in, the refusal is for the plan, not the feature.
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = export(&app).await;
        if last.0 == 403 && last.1.contains("active plan") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, 403, "{}", last.1);
    assert!(last.1.contains("active plan"), "{}", last.1);
}
crate::support::on_both_databases!(a_feature_follows_the_plan_that_includes_it);
