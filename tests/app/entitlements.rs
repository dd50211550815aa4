//! Features by entitlement: a plan's features reach the app through Stripe's Entitlements
//! (`entitlements.active_entitlement_summary.updated`), and the feature guard lets a user in
//! only while Stripe lists the feature *and* the access rule grants access.

use std::time::Duration;

use billfold::{
    db::entities::{customer_entitlement, drift_record},
    reconcile,
};
use sea_orm::{ConnectionTrait, EntityTrait};
use stripe_billing::subscription::{
    CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
};
use stripe_sim::DeliveryOptions;

use crate::support::{
    app::{Backend, TestApp},
    billing::{call, monthly_price, page_saying, sign_up_with_customer, subscribe_in_stripe},
    portal_confirm::{downgrades_at_period_end, Confirmation},
    standalone_stripe::StandaloneStripe,
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
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        last = export(app).await;
        if last.0 == status {
            return last.1;
        }
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
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        if export(&app).await.1.contains("is included in") {
            break;
        }
    }
    let (status, body) = export(&app).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Export to CSV is included in Pro and Team"),
        "{body}"
    );

    // Upgraded to Pro: Stripe's summary event arrives and the export opens.
    switch_to(&app, &sub, "Pro").await;
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
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        last = export(&app).await;
        if last.0 == 403 && last.1.contains("active plan") {
            break;
        }
    }
    assert_eq!(last.0, 403, "{}", last.1);
    assert!(last.1.contains("active plan"), "{}", last.1);
}

/// The features the database holds for a customer (Stripe's Entitlements as synced).
async fn held(app: &TestApp, customer: &str) -> Vec<String> {
    customer_entitlement::Entity::find_by_id(customer.to_owned())
        .one(&app.db)
        .await
        .expect("query")
        .map(|row| row.keys().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Moves a subscription to another price of the catalogue, straight in Stripe.
async fn switch_price(stripe: &stripe::Client, sub: &str, price: String) {
    let current = RetrieveSubscription::new(sub)
        .send(stripe)
        .await
        .expect("subscription");
    let mut item = UpdateSubscriptionItems::new();
    item.id = Some(current.items.data[0].id.to_string());
    item.price = Some(price);
    UpdateSubscription::new(sub)
        .items(vec![item])
        .send(stripe)
        .await
        .expect("switch");
}

/// Pro → Starter scheduled for the period's end: export stays open until the period ends,
/// then the summary event takes it away (403 naming the plans that include it).
async fn a_downgrade_keeps_the_feature_until_the_period_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    downgrades_at_period_end(&app).await;
    subscribe_in_stripe(&app.state.stripe, &customer, 2900).await;
    export_becomes(&app, 200).await;

    let starter = monthly_price(&app, "Starter").await;
    Confirmation::open(&app, &starter).await.confirm().await;
    page_saying(&app, "Switches to Starter on").await;
    assert_eq!(
        export(&app).await.0,
        200,
        "Pro is paid until the period ends"
    );
    assert_eq!(held(&app, &customer).await, ["api", "export"]);

    let sim = app.state.sim.clone().expect("the mounted double");
    sim.advance_customer_clock(&customer, Duration::from_secs(31 * 86_400))
        .await
        .expect("advance the clock");
    let body = export_becomes(&app, 403).await;
    assert!(
        body.contains("Export to CSV is included in Pro and Team"),
        "{body}"
    );
    assert!(held(&app, &customer).await.is_empty(), "Starter has none");
    app.stop().await;
}

/// Every event delivered twice and in any order within a window: the features end equal to
/// what Stripe lists after each change, and each event is applied once.
async fn summary_events_twice_and_out_of_order_end_the_same(backend: Backend) {
    const KEY: &str = "sk_test_entitlements";
    const SECRET: &str = "whsec_entitlements";
    let delivery = DeliveryOptions {
        duplicate_probability: 1.0,
        reorder_window: Duration::from_millis(300),
        ..DeliveryOptions::default()
    };
    let stripe = StandaloneStripe::start(KEY, SECRET, delivery).await;
    let app = stripe.app(backend).await;
    stripe
        .sim
        .add_webhook_endpoint(&app.url("/api/webhooks/stripe"), SECRET);
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    let pro = monthly_price(&app, "Pro").await;
    let team = monthly_price(&app, "Team").await;
    let starter = monthly_price(&app, "Starter").await;
    // Starter → Pro → Team → Starter → Pro, quicker than the deliveries settle.
    for price in [pro.clone(), team, starter, pro] {
        switch_price(&stripe.client, &sub, price).await;
    }
    stripe.settled().await;
    let listed = stripe
        .object(&format!(
            "entitlements/active_entitlements?customer={customer}"
        ))
        .await;
    let mut in_stripe: Vec<String> = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["lookup_key"].as_str().expect("lookup_key").to_owned())
        .collect();
    in_stripe.sort();
    assert_eq!(in_stripe, ["api", "export"], "Stripe ends on Pro");
    assert_eq!(held(&app, &customer).await, in_stripe);
    export_becomes(&app, 200).await;
    let applied = crate::support::rows::scalar(
        &app,
        "SELECT COUNT(*) FROM webhook_events \
         WHERE event_type = 'entitlements.active_entitlement_summary.updated'",
    )
    .await
    .expect("count");
    let sent = stripe
        .sim
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "entitlements.active_entitlement_summary.updated")
        .map(|d| d.event_id)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(applied, sent.len().to_string(), "each event recorded once");
    app.stop().await;
}

/// Summary events Stripe gave up on: the reconciler's next cycle applies them; a feature
/// changed by hand is put back by the compare, with a drift record naming the feature.
async fn dropped_summary_events_are_healed_by_the_reconciler(backend: Backend) {
    const KEY: &str = "sk_test_entitlements_dropped";
    const SECRET: &str = "whsec_entitlements_dropped";
    let stripe = StandaloneStripe::unheard(KEY, SECRET).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    subscribe_in_stripe(&stripe.client, &customer, 2900).await;
    stripe.settled().await;
    assert!(held(&app, &customer).await.is_empty(), "nothing delivered");
    assert_eq!(export(&app).await.0, 403);

    let cycle = reconcile::run_cycle(&app.state).await.expect("a cycle");
    assert!(cycle.succeeded(), "{cycle:?}");
    assert_eq!(held(&app, &customer).await, ["api", "export"]);
    assert_eq!(export(&app).await.0, 200);

    app.db
        .execute_unprepared(&format!(
            "UPDATE customer_entitlements SET lookup_keys = 'api\nsso' \
             WHERE customer_id = '{customer}'"
        ))
        .await
        .expect("edit by hand");
    // Only what this compare finds (a cycle compares every customer when there are few).
    app.db
        .execute_unprepared("DELETE FROM drift_records")
        .await
        .expect("forget earlier drift");
    let cycle = reconcile::run_cycle(&app.state).await.expect("a cycle");
    assert!(cycle.succeeded(), "{cycle:?}");
    assert_eq!(held(&app, &customer).await, ["api", "export"]);
    let mut found: Vec<String> = drift_record::Entity::find()
        .all(&app.db)
        .await
        .expect("drift records")
        .into_iter()
        .filter(|r| r.object_type == "entitlement")
        .map(|r| {
            assert_eq!(r.object_id, customer, "one row per customer");
            assert_eq!(
                r.event_type,
                "entitlements.active_entitlement_summary.updated"
            );
            format!(
                "{}: {:?} -> {:?}",
                r.field, r.database_value, r.stripe_value
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            r#"export: None -> Some("included")"#,
            r#"sso: Some("included") -> None"#,
        ]
    );
    app.stop().await;
}

/// Adds a project through the server function the page's form posts to.
async fn add_project(app: &TestApp, name: &str) -> (u16, String) {
    call(app, "/api/app/projects/create", &[("name", name)]).await
}

/// The `projects` limit: none without a plan, Starter's 3 (the fourth refused with the plans
/// that allow more, also when five are asked for at once), and no cap on Team.
async fn a_limit_caps_what_a_plan_allows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let signed_out = crate::support::app::browser_client()
        .post(app.url("/api/app/projects/create"))
        .header("Origin", &app.base)
        .form(&[("name", "Nope")])
        .send()
        .await
        .expect("request");
    assert_eq!(signed_out.status(), 401);
    let (_, customer) = sign_up_with_customer(&app).await;
    let (status, body) = add_project(&app, "Website").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Projects need an active plan"), "{body}");
    for bad in ["", "   ", "two\nlines"] {
        assert_eq!(add_project(&app, bad).await.0, 400, "{bad:?}");
    }

    let sub = subscribe_in_stripe(&app.state.stripe, &customer, 900).await;
    let mut added = 0;
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        if add_project(&app, "Website").await.0 < 400 {
            added = 1;
            break;
        }
    }
    assert_eq!(
        added, 1,
        "Starter allows projects once its subscription is in"
    );
    assert!(add_project(&app, "Blog").await.0 < 400);
    // One place left for five requests at once: one of them gets it.
    let tries = (0..5).map(|n| {
        let app = &app;
        async move { add_project(app, &format!("Rush {n}")).await }
    });
    let answers = futures_util::future::join_all(tries).await;
    let ok = answers.iter().filter(|(s, _)| *s < 400).count();
    assert_eq!(ok, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s >= 400) {
        assert_eq!(*status, 403, "{body}");
        assert!(
            body.contains("Your plan allows 3 projects. Pro (20) and Team (no limit) allow more."),
            "{body}"
        );
    }
    let page = app.get("/app").await.text().await.expect("html");
    assert!(page.contains("3 of 3 used"), "{page}");
    assert!(
        page.contains(r#"data-testid="projects-at-limit""#),
        "{page}"
    );

    // Team: no cap.
    switch_to(&app, &sub, "Team").await;
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        if add_project(&app, "Fourth").await.0 < 400 {
            break;
        }
    }
    let page = app.get("/app").await.text().await.expect("html");
    assert!(page.contains("4 used, no limit"), "{page}");
    app.stop().await;
}

/// Moves the subscription to a plan's monthly price in the mounted double.
async fn switch_to(app: &TestApp, sub: &str, plan: &str) {
    let price = monthly_price(app, plan).await;
    switch_price(&app.state.stripe, sub, price).await;
}

crate::support::on_both_databases!(
    a_limit_caps_what_a_plan_allows,
    a_feature_follows_the_plan_that_includes_it,
    a_downgrade_keeps_the_feature_until_the_period_ends,
    summary_events_twice_and_out_of_order_end_the_same,
    dropped_summary_events_are_healed_by_the_reconciler,
);
