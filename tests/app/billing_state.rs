//! `GET /api/billing/state`: the host app's JSON read of the signed-in user's billing says what
//! the billing page and `/app` show, in every state a plan can be in; and a feature Stripe
//! still lists is refused once `PAST_DUE_GRACE` is over.

use billfold::{
    billing::{page::describe_limit, summary::format_date},
    db::{
        clock::now,
        entities::{customer_entitlement, price},
    },
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::support::{
    app::{Backend, TestApp},
    billing::{a_subscription, monthly_price, page_for, sign_up_with_customer, DAY},
    rows::invoice_row,
    standalone_stripe::settled,
};

/// The texts of the elements marked `data-testid="{id}"`, tags and check marks left out.
fn shown(html: &str, id: &str) -> Vec<String> {
    let marker = format!("data-testid=\"{id}\"");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&marker) {
        let open = rest[..at].rfind('<').expect("an element");
        let tag: String = rest[open + 1..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let body_start = at + rest[at..].find('>').expect("tag end") + 1;
        let close = format!("</{tag}>");
        let body_end = body_start + rest[body_start..].find(&close).expect("closing tag");
        let mut text = String::new();
        let mut in_tag = false;
        for c in rest[body_start..body_end].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        found.push(text.replace('✓', "").trim().to_owned());
        rest = &rest[body_end..];
    }
    found
}

/// The JSON state, the billing page and `/app`, read one after the other.
async fn read_all(app: &TestApp) -> (Value, String, String) {
    let res = app.get("/api/billing/state").await;
    assert_eq!(res.status(), 200);
    let state: Value = res.json().await.expect("json");
    let billing = app
        .get("/settings/billing")
        .await
        .text()
        .await
        .expect("html");
    let app_page = app.get("/app").await.text().await.expect("html");
    (state, billing, app_page)
}

/// Asserts that the JSON says what the pages show.
fn same(what: &str, state: &Value, billing: &str, app_page: &str) {
    let plan = state["plan"]["name"].as_str().map(str::to_owned);
    let alert = billing
        .find("role=\"alert\"")
        .map(|at| &billing[at..billing.len().min(at + 400)]);
    assert_eq!(
        plan,
        shown(billing, "plan-name").first().cloned(),
        "{what}: the plan (the page's alert, if any: {alert:?}; the state: {state})"
    );
    let granted = state["access"]["granted"].as_bool().expect("granted");
    assert!(
        app_page.contains(&format!("data-granted=\"{granted}\"")),
        "{what}: access"
    );
    assert_eq!(
        shown(app_page, "access-reason"),
        [state["access"]["message"].as_str().expect("message")],
        "{what}: the reason"
    );
    let features: Vec<String> = state["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_owned())
        .collect();
    let limits: Vec<String> = state["limits"]
        .as_object()
        .expect("limits")
        .iter()
        .map(|(name, v)| describe_limit(name, v.as_u64()))
        .collect();
    if plan.is_some() && granted {
        assert_eq!(shown(billing, "have-feature"), features, "{what}: features");
        assert_eq!(shown(billing, "have-limit"), limits, "{what}: limits");
    } else {
        assert!(features.is_empty(), "{what}: no features without access");
        assert!(
            state["limits"]
                .as_object()
                .expect("limits")
                .values()
                .all(|v| v.as_u64() == Some(0)),
            "{what}: nothing without access: {state}"
        );
        assert!(shown(billing, "have-feature").is_empty(), "{what}");
    }
    for (date, says) in [
        ("renews_at", "Renews on"),
        ("trial_ends", "Trial ends on"),
        ("cancels_at", "Cancels on"),
    ] {
        if let Some(at) = state["dates"][date].as_i64() {
            assert_eq!(
                shown(billing, "plan-next"),
                [format!("{says} {}", format_date(at))],
                "{what}: {date}"
            );
        }
    }
    if let Some(at) = state["dates"]["access_ends"].as_i64() {
        assert!(
            shown(billing, "dunning-deadline")[0].contains(&format_date(at)),
            "{what}: the grace's end"
        );
    }
}

/// One catalogue plan's monthly price row.
async fn catalogue_price(app: &TestApp, plan: &str) -> price::Model {
    let id = monthly_price(app, plan).await;
    price::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("price")
}

/// A subscription row on `plan`'s monthly price.
async fn on_plan(
    app: &TestApp,
    plan: &str,
    status: &str,
) -> billfold::db::entities::subscription::ActiveModel {
    let p = catalogue_price(app, plan).await;
    let mut sub = a_subscription(status, now() + 20 * DAY);
    sub.price_id = Set(Some(p.id));
    sub.product_id = Set(Some(p.product_id));
    sub.plan_name = Set(Some(plan.to_owned()));
    sub.unit_amount = p.unit_amount.map(|a| Set(Some(a))).unwrap_or(Set(None));
    sub
}

/// What Stripe's Entitlements list for the customer, written as the sync would.
async fn listed(app: &TestApp, customer: &str, keys: &str) {
    customer_entitlement::Entity::delete_many()
        .filter(customer_entitlement::Column::CustomerId.eq(customer))
        .exec(&app.db)
        .await
        .expect("clear");
    customer_entitlement::Entity::insert(customer_entitlement::ActiveModel {
        customer_id: Set(customer.to_owned()),
        lookup_keys: Set(keys.to_owned()),
        livemode: Set(false),
        stripe_event_at: Set(Some(now())),
        updated_at: Set(now()),
    })
    .exec(&app.db)
    .await
    .expect("entitlements");
}

async fn the_state_endpoint_says_what_the_pages_show(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "7d")]).await;
    let signed_out = crate::support::app::browser_client()
        .get(app.url("/api/billing/state"))
        .send()
        .await
        .expect("request");
    assert_eq!(signed_out.status(), 401);
    let (_, customer) = sign_up_with_customer(&app).await;
    // The sign-up's own events in first, so none re-syncs the customer over the rows below.
    settled(app.state.sim.as_ref().expect("the mounted double")).await;

    // No plan yet.
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["state"], "none");
    assert_eq!(state["plan"], Value::Null);
    assert_eq!(state["may_start_plan"], true);
    assert_eq!(state["limits"]["projects"], 0);
    same("no plan", &state, &billing, &app_page);

    // Starter, which Stripe lists no feature for: 3 projects.
    listed(&app, &customer, "").await;
    page_for(&app, &customer, on_plan(&app, "Starter", "active").await).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["state"], "active");
    assert_eq!(state["plan"]["key"], "starter");
    assert_eq!(state["limits"]["projects"], 3);
    assert_eq!(state["features"], serde_json::json!([]));
    same("starter", &state, &billing, &app_page);

    // Pro, its features listed by Stripe: export and the API, 20 projects.
    listed(&app, &customer, "api\nexport").await;
    page_for(&app, &customer, on_plan(&app, "Pro", "active").await).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["plan"]["key"], "pro");
    assert_eq!(state["limits"]["projects"], 20);
    assert_eq!(state["features"][1]["lookup_key"], "export");
    assert_eq!(state["may_start_plan"], false);
    same("pro", &state, &billing, &app_page);

    // Team: no cap on projects.
    listed(&app, &customer, "api\nexport\nsso").await;
    page_for(&app, &customer, on_plan(&app, "Team", "active").await).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["limits"]["projects"], Value::Null);
    same("team", &state, &billing, &app_page);

    // A Pro trial, and Pro cancelling at the period's end.
    listed(&app, &customer, "api\nexport").await;
    let mut trial = on_plan(&app, "Pro", "trialing").await;
    trial.trial_end = Set(Some(now() + 10 * DAY));
    page_for(&app, &customer, trial).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["state"], "trial");
    same("trial", &state, &billing, &app_page);
    let mut cancelling = on_plan(&app, "Pro", "active").await;
    cancelling.cancel_at_period_end = Set(true);
    page_for(&app, &customer, cancelling).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["state"], "cancelling");
    same("cancelling", &state, &billing, &app_page);

    // Past due, two days into a week's grace: still everything, and when it ends.
    invoice_row(&app, &customer, "in_failed", "open", now() - 2 * DAY).await;
    page_for(&app, &customer, on_plan(&app, "Pro", "past_due").await).await;
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["state"], "payment_failed");
    assert_eq!(state["access"]["granted"], true);
    assert!(state["dates"]["access_ends"].is_i64(), "{state}");
    assert_eq!(state["payment_failed"]["attempts"], 1);
    same("past due", &state, &billing, &app_page);
    app.stop().await;
}

/// `PAST_DUE_GRACE` over: Stripe still lists export for the customer (a past_due subscription
/// keeps its entitlements in Stripe), but the guard, the page and the state all refuse it.
async fn a_feature_stripe_still_lists_is_refused_once_the_grace_is_over(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("PAST_DUE_GRACE", "3d")]).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    settled(app.state.sim.as_ref().expect("the mounted double")).await;
    listed(&app, &customer, "api\nexport").await;
    invoice_row(
        &app,
        &customer,
        "in_failed_long_ago",
        "open",
        now() - 10 * DAY,
    )
    .await;
    page_for(&app, &customer, on_plan(&app, "Pro", "past_due").await).await;

    let res = app.get("/app/export.csv").await;
    assert_eq!(res.status(), 403);
    let body = res.text().await.expect("body");
    assert!(body.contains("grace period is over"), "{body}");
    assert!(body.contains("\"reason\":\"grace_over\""), "{body}");
    let (state, billing, app_page) = read_all(&app).await;
    assert_eq!(state["access"]["granted"], false);
    assert_eq!(state["access"]["reason"], "grace_over");
    assert_eq!(state["features"], serde_json::json!([]));
    same("grace over", &state, &billing, &app_page);
    assert!(
        billing.contains("data-testid=\"have-now-none\""),
        "{billing}"
    );
    assert!(app_page.contains("data-included=\"false\""));
    app.stop().await;
}

crate::support::on_both_databases!(
    the_state_endpoint_says_what_the_pages_show,
    a_feature_stripe_still_lists_is_refused_once_the_grace_is_over,
);
