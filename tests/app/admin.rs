//! `/admin/billing`, the operators' event inbox: only the users granted on the server
//! (`billfold admin add`) ever learn it is there (everyone else gets the not-found page, for the page and for its replay);
//! the filters narrow the events; each event shows what became of it and its payload; a
//! replay works as a plain form and comes back with its result; drift and the reconciler's
//! last cycle are shown.

use std::time::Duration;

use billfold::db::entities::{drift_record, operator_action, webhook_event};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::support::app::{browser_client, location, unique_email, Backend, TestApp};

const ADMIN: &str = "ops@billfold.test";
const PASSWORD: &str = "correct horse battery";

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn(backend).await
}

/// Signs up as the operator in `app.client` and grants the account on the server, as an
/// operator would (the email typed as someone might type it).
async fn operator(app: &TestApp) {
    sign_up_as(app, &app.client, ADMIN).await;
    crate::support::rows::prove_address(app, ADMIN).await;
    let (ok, out) = app.cli(&["admin", "add", " Ops@Billfold.test "]);
    assert!(ok, "billfold admin add: {out}");
}
/// Signs up in `client`'s cookie jar.
async fn sign_up_as(app: &TestApp, client: &reqwest::Client, email: &str) {
    let res = client
        .post(app.url("/api/signup"))
        .header("Accept", "text/html")
        .header("Origin", &app.base)
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(res.status(), 302, "sign-up of {email}");
}

async fn get_as(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let res = client
        .get(app.url(path))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, text(&res.text().await.expect("body")))
}

/// The page as the operator (signed in with `app.client`) sees it.
async fn page(app: &TestApp, path: &str) -> String {
    let (status, body) = get_as(app, &app.client, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// HTML with the entities Leptos writes turned back into characters.
fn text(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A page with its per-response nonce (in `nonce` and `crossorigin`) taken out, so two
/// renderings can be compared.
fn without_nonce(html: &str) -> String {
    let mut page = html.to_owned();
    for attribute in ["nonce=\"", "crossorigin=\""] {
        let mut out = String::with_capacity(page.len());
        let mut rest = page.as_str();
        while let Some(at) = rest.find(attribute) {
            out.push_str(&rest[..at]);
            let after = &rest[at + attribute.len()..];
            rest = after.find('"').map_or("", |end| &after[end + 1..]);
        }
        out.push_str(rest);
        page = out;
    }
    page
}

/// The id of the `customer.created` event the double sent for the customer made at sign-up.
async fn customer_created_event(app: &TestApp) -> String {
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        let found = webhook_event::Entity::find()
            .filter(webhook_event::Column::EventType.eq("customer.created"))
            .one(&app.db)
            .await
            .expect("query");
        if let Some(event) = found {
            return event.id;
        }
    }
    panic!("the double never delivered customer.created");
}

/// Records an event as if it had been received `age` seconds ago.
async fn record_event(
    app: &TestApp,
    id: &str,
    event_type: &str,
    outcome: webhook_event::Outcome,
    age: i64,
    changes: impl FnOnce(&mut webhook_event::ActiveModel),
) {
    let at = billfold::db::clock::now() - age;
    let payload = serde_json::json!({
        "id": id,
        "object": "event",
        "type": event_type,
        "created": at,
        "data": {"object": {"id": format!("obj_of_{id}"), "description": "a payload to read"}},
    });
    let mut row = webhook_event::ActiveModel {
        id: Set(id.to_owned()),
        event_type: Set(event_type.to_owned()),
        livemode: Set(false),
        created: Set(at),
        api_version: Set(Some("2026-09-30.endive".into())),
        received_at: Set(at),
        processed_at: Set(Some(at)),
        outcome: Set(outcome),
        error: Set(None),
        attempts: Set(1),
        applied_from_api: Set(false),
        payload: Set(payload.to_string()),
        stripe_refused: Set(false),
        payload_removed_at: Set(None),
    };
    changes(&mut row);
    webhook_event::Entity::insert(row)
        .exec(&app.db)
        .await
        .expect("event row");
}

/// The page is the not-found page for a visitor, for a signed-in user who is not an
/// operator, and for both with filters: byte for byte the page of any unknown address.
async fn only_operators_ever_see_the_page(backend: Backend) {
    let app = app(backend).await;
    let visitor = browser_client();
    let (status, unknown) = get_as(&app, &visitor, "/no/such/page").await;
    assert_eq!(status, 404);
    for path in ["/admin/billing", "/admin/billing?outcome=failed&since=1d"] {
        let (status, body) = get_as(&app, &visitor, path).await;
        assert_eq!(status, 404, "signed out, {path}: not sent to log in");
        assert_eq!(without_nonce(&body), without_nonce(&unknown), "{path}");
        assert!(body.contains("Page not found"));
    }

    let user = browser_client();
    sign_up_as(&app, &user, &unique_email()).await;
    let (status, billing) = get_as(&app, &user, "/settings/billing").await;
    assert_eq!(status, 200, "signed in: {billing}");
    let (_, unknown_signed_in) = get_as(&app, &user, "/no/such/page").await;
    for path in ["/admin/billing", "/admin/billing?type=customer.created"] {
        let (status, body) = get_as(&app, &user, path).await;
        assert_eq!(status, 404, "a user who is no operator, {path}");
        assert_eq!(
            without_nonce(&body),
            without_nonce(&unknown_signed_in),
            "{path}"
        );
        assert!(!body.contains("Billing operations"));
    }

    // Signing up with the address an operator will be granted gives nothing by itself.
    sign_up_as(&app, &app.client, ADMIN).await;
    let (status, body) = get_as(&app, &app.client, "/admin/billing").await;
    assert_eq!(
        status, 404,
        "an email someone signed up with proves nothing"
    );
    assert!(!body.contains("Billing operations"));

    // Only a proven address is granted.
    let (ok, out) = app.cli(&["admin", "add", ADMIN]);
    assert!(!ok && out.contains("has not proven its address"), "{out}");
    crate::support::rows::prove_address(&app, ADMIN).await;

    // Granted on the server: the page opens, and the view is written down with who looked.
    let (ok, out) = app.cli(&["admin", "add", ADMIN]);
    assert!(ok && out.contains("is now an operator"), "{out}");
    let (ok, out) = app.cli(&["admin", "add", ADMIN]);
    assert!(
        ok && out.contains("already"),
        "granting twice changes nothing: {out}"
    );
    let body = page(&app, "/admin/billing?outcome=failed").await;
    assert!(body.contains("Billing operations"), "{body}");
    assert!(body.contains(ADMIN), "the operator's email in the header");
    assert!(
        body.contains("data-testid=\"mail-row\"") && body.contains("verify email"),
        "the outbox lists the sign-up's mail: {body}"
    );
    let views = operator_action::Entity::find()
        .filter(operator_action::Column::Action.eq("view"))
        .all(&app.db)
        .await
        .expect("actions");
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(views[0].email, ADMIN);
    assert_eq!(
        views[0].target.as_deref(),
        Some("/admin/billing outcome=failed")
    );
    let (ok, out) = app.cli(&["admin", "list"]);
    assert!(ok && out.contains(ADMIN), "{out}");

    // Only an account that exists can be granted.
    let (ok, out) = app.cli(&["admin", "add", "nobody@example.com"]);
    assert!(!ok && out.contains("no account"), "{out}");
    let (ok, out) = app.cli(&["admin", "add", "not an email"]);
    assert!(!ok && out.contains("not an email"), "{out}");

    // Revoked: the not-found page again, for the page and for its replay.
    let (ok, out) = app.cli(&["admin", "remove", ADMIN]);
    assert!(ok && out.contains("no longer"), "{out}");
    let (status, _) = get_as(&app, &app.client, "/admin/billing").await;
    assert_eq!(status, 404, "revoked");
    let res = app
        .client
        .post(app.url("/admin/billing/replay"))
        .header("Origin", &app.base)
        .form(&[("event_id", "evt_anything")])
        .send()
        .await
        .expect("replay");
    assert_eq!(res.status(), 404, "a revoked operator cannot replay");
    app.stop().await;
}

/// Each event with its outcome, attempts, API version ("refetched" when the API's copy was
/// applied), error and pretty-printed payload; the outcome, type and time filters narrow
/// the list; a time that does not parse is explained.
async fn the_operator_sees_events_and_narrows_them(backend: Backend) {
    let app = app(backend).await;
    operator(&app).await;
    let delivered = customer_created_event(&app).await;
    record_event(
        &app,
        "evt_admin_failed",
        "invoice.paid",
        webhook_event::Outcome::Failed,
        3 * 86_400,
        |row| {
            row.attempts = Set(3);
            row.error = Set(Some("database error: the disk is full".into()));
        },
    )
    .await;
    record_event(
        &app,
        "evt_admin_refetched",
        "customer.subscription.updated",
        webhook_event::Outcome::Applied,
        60,
        |row| {
            row.api_version = Set(Some("2024-06-20".into()));
            row.applied_from_api = Set(true);
        },
    )
    .await;

    let all = page(&app, "/admin/billing").await;
    for id in [&delivered, "evt_admin_failed", "evt_admin_refetched"] {
        assert!(all.contains(&format!("data-event-id=\"{id}\"")), "{id}");
    }
    assert!(all.contains("database error: the disk is full"));
    assert!(all.contains("2024-06-20"));
    assert!(all.contains(">refetched<"), "the refetched event says so");
    assert_eq!(all.matches(">refetched<").count(), 1, "only that one");
    assert!(all.contains(">3<"), "the failed event's attempts");
    // Received three days ago, as RFC 3339.
    let three_days_ago = billfold::db::clock::rfc3339(billfold::db::clock::now() - 3 * 86_400);
    assert!(all.contains(&three_days_ago[..13]), "{three_days_ago}");
    // The payload, indented, to unfold.
    assert!(all.contains("<summary"), "a <details> to unfold");
    assert!(
        all.contains("\n  \"id\": \"evt_admin_failed\""),
        "the stored payload, pretty-printed"
    );
    assert!(all.contains("a payload to read"));
    // The delivered event's payload is stored deflated, and shown as Stripe sent it.
    let stored = webhook_event::Entity::find_by_id(delivered.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the delivered event");
    assert!(stored.payload.starts_with("deflate:"), "{}", stored.payload);
    assert!(
        all.contains(&format!("\n  \"id\": \"{delivered}\"")),
        "the delivered payload, inflated and pretty-printed"
    );
    // Outcomes and types to pick from.
    assert!(all.contains("<option value=\"mode_mismatch\""));
    assert!(all.contains("<option value=\"invoice.paid\""));

    let failed = page(&app, "/admin/billing?outcome=failed").await;
    assert!(failed.contains("data-event-id=\"evt_admin_failed\""));
    assert!(!failed.contains("data-event-id=\"evt_admin_refetched\""));
    assert!(!failed.contains(&format!("data-event-id=\"{delivered}\"")));
    assert!(
        failed.contains("<option value=\"failed\" selected"),
        "the form shows the filter in use"
    );

    let by_type = page(&app, "/admin/billing?type=customer.created").await;
    assert!(by_type.contains(&format!("data-event-id=\"{delivered}\"")));
    assert!(!by_type.contains("data-event-id=\"evt_admin_failed\""));
    assert!(!by_type.contains("data-event-id=\"evt_admin_refetched\""));

    let recent = page(&app, "/admin/billing?since=1d").await;
    assert!(recent.contains("data-event-id=\"evt_admin_refetched\""));
    assert!(recent.contains(&format!("data-event-id=\"{delivered}\"")));
    assert!(!recent.contains("data-event-id=\"evt_admin_failed\""));

    let since = billfold::db::clock::rfc3339(billfold::db::clock::now() - 4 * 86_400);
    let combined = page(
        &app,
        &format!("/admin/billing?outcome=failed&type=invoice.paid&since={since}"),
    )
    .await;
    assert!(combined.contains("data-event-id=\"evt_admin_failed\""));
    assert_eq!(combined.matches("data-testid=\"event-row\"").count(), 1);

    let none = page(&app, "/admin/billing?outcome=stale").await;
    assert!(none.contains("No event matches these filters."));

    let bad = page(&app, "/admin/billing?since=yesterday").await;
    assert!(bad.contains("Received since:"), "{bad}");
    assert!(bad.contains("`yesterday`"));
    assert!(!bad.contains("data-testid=\"event-row\""));
    let bad = page(&app, "/admin/billing?outcome=lost").await;
    assert!(bad.contains("`lost` is not an outcome"), "{bad}");
    app.stop().await;
}

/// A replay is a plain form post: 303 back to the page (and its filters) with the result,
/// which the page shows. An unknown event says so. Someone who is no operator gets the
/// not-found page; a post from another site is refused before anything else.
async fn a_replay_works_without_javascript(backend: Backend) {
    let app = app(backend).await;
    operator(&app).await;
    let event = customer_created_event(&app).await;
    let before = webhook_event::Entity::find_by_id(event.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the event");

    let listed = page(&app, "/admin/billing?type=customer.created").await;
    assert!(listed.contains("action=\"/admin/billing/replay\""));
    assert!(listed.contains(&format!("name=\"event_id\" value=\"{event}\"")));

    let res = app
        .post_form(
            "/admin/billing/replay",
            "/admin/billing?type=customer.created",
            &[("event_id", event.as_str()), ("type", "customer.created")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let after = webhook_event::Entity::find_by_id(event.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the event");
    let outcome = after.outcome.to_string();
    assert_eq!(
        location(&res),
        format!("/admin/billing?type=customer.created&replayed={event}&result={outcome}")
    );
    assert!(
        after.processed_at >= before.processed_at,
        "the replay went through the pipeline"
    );
    let back = page(&app, &location(&res)).await;
    assert!(
        back.contains(&format!("Replayed {event}: {outcome}.")),
        "{back}"
    );
    assert!(back.contains("data-testid=\"replay-flash\""));
    assert!(back.contains(&format!("data-event-id=\"{event}\"")));

    let res = app
        .post_form(
            "/admin/billing/replay",
            "/admin/billing",
            &[("event_id", "evt_never_received")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        "/admin/billing?replayed=evt_never_received&result=not_found"
    );
    let back = page(&app, &location(&res)).await;
    assert!(back.contains("No event evt_never_received has been received."));

    // Another site's form, with the operator's cookie: refused by the origin guard.
    let res = app
        .client
        .post(app.url("/admin/billing/replay"))
        .header("Accept", "text/html")
        .header("Origin", "https://evil.example")
        .form(&[("event_id", event.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);

    // A user who is no operator, and a visitor: the not-found page, and nothing replayed.
    let user = browser_client();
    sign_up_as(&app, &user, &unique_email()).await;
    let before = webhook_event::Entity::find_by_id(event.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the event");
    for client in [&user, &browser_client()] {
        let res = client
            .post(app.url("/admin/billing/replay"))
            .header("Accept", "text/html")
            .header("Origin", &app.base)
            .form(&[("event_id", event.as_str())])
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404);
        assert!(res.text().await.expect("body").contains("Page not found"));
    }
    let unchanged = webhook_event::Entity::find_by_id(event.as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the event");
    assert_eq!(unchanged, before, "nobody else replays anything");
    app.stop().await;
}

/// Before any cycle the page says so; after one it shows the cycle (runner, times, counts,
/// success) and the last success, and the drift records, newest first.
async fn drift_and_the_last_cycle_are_shown(backend: Backend) {
    let app = app(backend).await;
    operator(&app).await;
    let before = page(&app, "/admin/billing").await;
    assert!(before.contains("No cycle has run yet."));
    assert!(before.contains("No drift found."));
    assert!(
        before.contains("Last successful cycle: <span class=\"font-medium text-slate-900\">never")
    );

    let now = billfold::db::clock::now();
    for (id, field, database, stripe, age) in [
        ("sub_admin_1", "plan_name", "Enterprise", "Pro", 7_200),
        ("sub_admin_2", "status", "active", "past_due", 60),
    ] {
        drift_record::Entity::insert(drift_record::ActiveModel {
            detected_at: Set(now - age),
            customer_id: Set("cus_admin_drift".into()),
            object_type: Set("subscription".into()),
            object_id: Set(id.into()),
            field: Set(field.into()),
            event_type: Set("customer.subscription.updated".into()),
            database_value: Set(Some(database.into())),
            stripe_value: Set(Some(stripe.into())),
            ..Default::default()
        })
        .exec(&app.db)
        .await
        .expect("drift row");
    }
    let report = billfold::reconcile::run_cycle(&app.state)
        .await
        .expect("a cycle");
    assert!(report.ran && report.succeeded(), "{report:?}");

    let after = page(&app, "/admin/billing").await;
    assert!(!after.contains("No cycle has run yet."));
    assert!(after.contains("data-testid=\"last-run\""));
    assert!(after.contains(">Succeeded<"));
    assert!(
        after.contains(&format!(":{}<", std::process::id())),
        "the runner, host:pid"
    );
    assert!(after.contains(&format!(">{}<", report.customers_compared)));
    assert!(
        !after.contains("Last successful cycle: <span class=\"font-medium text-slate-900\">never")
    );
    let today = billfold::db::clock::rfc3339(billfold::db::clock::now());
    assert!(after.contains(&today[..10]), "times in RFC 3339");

    assert_eq!(after.matches("data-testid=\"drift-row\"").count(), 2);
    let newest = after.find("sub_admin_2").expect("the newest drift");
    let older = after.find("sub_admin_1").expect("the older drift");
    assert!(newest < older, "newest first");
    for value in [
        "Enterprise",
        "Pro",
        "past_due",
        "plan_name",
        "cus_admin_drift",
    ] {
        assert!(after.contains(value), "{value}");
    }
    app.stop().await;
}

crate::support::on_both_databases!(
    only_operators_ever_see_the_page,
    the_operator_sees_events_and_narrows_them,
    a_replay_works_without_javascript,
    drift_and_the_last_cycle_are_shown
);
