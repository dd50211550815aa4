//! What Stripe says or does not say must not leave the database behind it: a request Stripe
//! refuses for good (a key without a permission) is recorded, answered and replayable; the
//! reconciler lists only what it handles, a capped page at a time, and sets aside what keeps
//! failing; a server clock running ahead drops no real event; schedules are ordered and
//! healed like every other object; old payloads are removed and their events still count.

use std::time::Duration;

use billfold::{
    billing::sync,
    db::entities::{subscription_schedule, webhook_event},
    reconcile,
    webhooks::{
        event::HANDLED,
        history::{self, Filter},
        pipeline::{Outcome, Pipeline},
    },
};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{json, Value};
use stripe_sim::{DeliveryOptions, Fault};

use crate::support::{
    app::{Backend, TestApp},
    billing::{sign_up_with_customer, subscribe_in_stripe},
    rows::{scalar, user_with_customer},
    standalone_stripe::StandaloneStripe,
    stripe_objects::{event, rand_id, Sub},
    stripe_stub::{deliver, deliver_expect, now, spawn, stripe_client, StripeStub, SECRET},
};

const KEY: &str = "sk_test_resilience";

fn pipeline(app: &TestApp) -> Pipeline<'_> {
    Pipeline {
        db: &app.db,
        stripe: &app.state.stripe,
        livemode: false,
    }
}

async fn recorded(app: &TestApp, id: &str) -> webhook_event::Model {
    webhook_event::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("the event is recorded")
}

/// A subscription in the shape an endpoint on API version 2024-06-20 receives it (the period
/// on the subscription, not its items): it does not parse as the pinned type, so applying it
/// reads the subscription from the API.
fn in_an_older_shape(mut sub: Value) -> Value {
    let item = sub["items"]["data"][0].as_object_mut().expect("an item");
    let start = item.remove("current_period_start").expect("period start");
    let end = item.remove("current_period_end").expect("period end");
    sub["current_period_start"] = start;
    sub["current_period_end"] = end;
    sub
}

/// Stripe refuses the re-fetch an event needs with a 403 (a restricted key without the
/// permission): the delivery is answered 200 and recorded `failed` with Stripe's reason, so
/// Stripe stops retrying; a replay while the key is still wrong fails the same way; once the
/// key is fixed, `billfold webhooks replay --outcome failed` applies it. A temporary failure
/// (Stripe answering 500) is still a 500, for Stripe to retry.
async fn a_permanent_stripe_refusal_is_recorded_answered_and_replayable(backend: Backend) {
    let stripe = StandaloneStripe::start(KEY, SECRET, DeliveryOptions::default()).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    let object = in_an_older_shape(stripe.object(&format!("subscriptions/{sub}")).await);
    let id = format!("evt_refused_{:x}", rand_id());
    let mut body: Value = serde_json::from_str(&event(
        &id,
        "customer.subscription.updated",
        now() - 5,
        object.clone(),
    ))
    .expect("json");
    body["api_version"] = json!("2024-06-20");

    stripe
        .sim
        .add_fault(Fault::missing_permission("GET", "/v1/subscriptions/"));
    let (status, answer) = deliver(&app, &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "failed", "{answer}");
    let row = recorded(&app, &id).await;
    assert_eq!(row.outcome, webhook_event::Outcome::Failed);
    assert!(row.stripe_refused);
    let error = row.error.clone().unwrap_or_default();
    assert!(
        error.contains("403") && error.contains("permission_error"),
        "{error}"
    );
    assert!(!row.payload.is_empty(), "kept for the replay");
    let subscriptions = scalar(
        &app,
        &format!("SELECT COUNT(*) FROM subscriptions WHERE id = '{sub}'"),
    )
    .await;
    assert_eq!(subscriptions.as_deref(), Some("0"), "nothing was applied");
    // Operators are told: the inbox and `billfold doctor` count it.
    let attention = history::attention(&app.db).await.expect("attention");
    assert_eq!(attention.refused_by_stripe, 1);
    let listed = history::list(
        &app.db,
        &Filter {
            outcome: Some(Outcome::Failed),
            ..Filter::default()
        },
    )
    .await
    .expect("list");
    assert!(listed.iter().any(|e| e.id == id && e.stripe_refused));

    // Replayed with the key still wrong: the same refusal, recorded again.
    let again = history::replay(pipeline(&app), &id)
        .await
        .expect("replayed");
    assert_eq!(again.outcome, Outcome::Failed);
    assert_eq!(recorded(&app, &id).await.attempts, 2);

    // The key is fixed: replaying the failed events applies it.
    stripe.sim.clear_faults();
    let results = history::replay_matching(
        pipeline(&app),
        &Filter {
            outcome: Some(Outcome::Failed),
            ..Filter::default()
        },
    )
    .await
    .expect("replay");
    assert_eq!(results, vec![(id.clone(), Ok(Outcome::Applied))]);
    let row = recorded(&app, &id).await;
    assert_eq!(row.outcome, webhook_event::Outcome::Applied);
    assert!(!row.stripe_refused && row.error.is_none(), "{row:?}");
    assert!(row.applied_from_api);
    let status = scalar(
        &app,
        &format!("SELECT status FROM subscriptions WHERE id = '{sub}'"),
    )
    .await;
    assert_eq!(status.as_deref(), Some("active"));
    assert_eq!(
        history::attention(&app.db)
            .await
            .expect("attention")
            .refused_by_stripe,
        0
    );

    // Stripe failing for now is another matter: answered 500, for Stripe to retry.
    stripe.sim.add_fault(Fault {
        method: None,
        path_prefix: "/v1/subscriptions/".into(),
        status: 500,
        kind: "api_error".into(),
        message: "Something went wrong on Stripe's end.".into(),
    });
    let id = format!("evt_unavailable_{:x}", rand_id());
    let mut body: Value = serde_json::from_str(&event(
        &id,
        "customer.subscription.updated",
        now() - 1,
        object,
    ))
    .expect("json");
    body["api_version"] = json!("2024-06-20");
    let (status, _) = deliver(&app, &body.to_string()).await;
    assert_eq!(status, 500);
    let row = recorded(&app, &id).await;
    assert_eq!(row.outcome, webhook_event::Outcome::Failed);
    assert!(!row.stripe_refused);
    app.stop().await;
}

/// Events Stripe gave up on, more than a cycle may list: each cycle asks only for the handled
/// types (at most 20 a request), lists at most its cap, and the listing goes on where it left
/// off until every missed event is applied, once; an unhandled type is never listed.
async fn the_reconciler_lists_handled_types_a_capped_page_at_a_time(backend: Backend) {
    let stripe = StandaloneStripe::unheard(KEY, SECRET).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    subscribe_in_stripe(&stripe.client, &customer, 900).await;
    subscribe_in_stripe(&stripe.client, &customer, 2900).await;
    stripe.settled().await;
    let handled: Vec<&str> = HANDLED.iter().map(|(t, _)| *t).collect();
    let lost: Vec<(String, String)> = stripe
        .sim
        .deliveries()
        .into_iter()
        .filter(|d| d.gave_up)
        .map(|d| (d.event_id, d.event_type))
        .collect();
    let missed: Vec<&String> = lost
        .iter()
        .filter(|(_, t)| handled.contains(&t.as_str()))
        .map(|(id, _)| id)
        .collect();
    let unhandled: Vec<&String> = lost
        .iter()
        .filter(|(_, t)| !handled.contains(&t.as_str()))
        .map(|(id, _)| id)
        .collect();
    const CAP: usize = 4;
    assert!(missed.len() > 2 * CAP, "{} missed events", missed.len());
    assert!(!unhandled.is_empty(), "customer.created, at least");

    let mut cycles = 0;
    let mut processed = 0;
    loop {
        let report = reconcile::run_cycle_capped(&app.state, CAP)
            .await
            .expect("a cycle");
        assert!(report.ran);
        assert!(report.events_listed <= CAP, "{report:?}");
        assert_eq!(report.events_failed, 0, "{report:?}");
        processed += report.events_processed;
        cycles += 1;
        // Until every group of types has been listed to its end.
        let listing = scalar(
            &app,
            "SELECT COUNT(*) FROM reconcile_state WHERE key = 'events_listing'",
        )
        .await;
        if (processed >= missed.len() && listing.as_deref() == Some("0")) || cycles > 60 {
            break;
        }
    }
    assert_eq!(processed, missed.len(), "each missed event applied once");
    assert!(cycles >= missed.len().div_ceil(CAP), "{cycles} cycles");
    for id in &missed {
        let row = recorded(&app, id).await;
        assert_ne!(row.outcome, webhook_event::Outcome::Failed, "{id}");
    }
    for id in &unhandled {
        let found = webhook_event::Entity::find_by_id(id.as_str())
            .one(&app.db)
            .await
            .expect("query");
        assert!(found.is_none(), "{id} was never listed");
    }
    // What the double was asked: handled types only, at most 20 a request, every one of them.
    let listings: Vec<Vec<String>> = stripe
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/events")
        .map(|r| r.query_values("types"))
        .collect();
    assert!(!listings.is_empty());
    let mut asked: Vec<String> = Vec::new();
    for types in &listings {
        assert!(!types.is_empty() && types.len() <= 20, "{types:?}");
        for t in types {
            assert!(handled.contains(&t.as_str()), "{t} is not handled");
        }
        asked.extend(types.iter().cloned());
    }
    for t in &handled {
        assert!(asked.iter().any(|a| a == t), "{t} never asked for");
    }
    app.stop().await;
}

/// A missed event whose applying fails every time (Stripe refuses the product it needs) is
/// tried each cycle until it has failed five times, then set aside: the cycles after it
/// succeed without it, the cursor is no longer held at it, and operators see it.
async fn a_missed_event_that_keeps_failing_is_set_aside(backend: Backend) {
    let stripe = StandaloneStripe::unheard(KEY, SECRET).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    stripe.settled().await;
    // The catalogue the app loads from Stripe when it starts has landed (it would bring the
    // product back otherwise).
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        if billfold::commands::portal::catalogue_is_loaded(&app.db)
            .await
            .expect("query")
        {
            break;
        }
    }
    // The app does not know the plan's product, and Stripe will not say.
    let product = stripe.object(&format!("subscriptions/{sub}")).await["items"]["data"][0]["price"]
        ["product"]
        .as_str()
        .expect("a product id")
        .to_owned();
    for table in ["prices WHERE product_id", "products WHERE id"] {
        app.db
            .execute_unprepared(&format!("DELETE FROM {table} = '{product}'"))
            .await
            .expect("forget the product");
    }
    stripe
        .sim
        .add_fault(Fault::missing_permission("GET", "/v1/products/"));
    stripe
        .sim
        .add_fault(Fault::missing_permission("GET", "/v1/prices/"));
    let created: String = stripe
        .sim
        .deliveries()
        .into_iter()
        .find(|d| d.event_type == "customer.subscription.created")
        .map(|d| d.event_id)
        .expect("the subscription's event");

    for attempt in 1..=5 {
        let report = reconcile::run_cycle(&app.state).await.expect("a cycle");
        assert!(report.events_failed >= 1, "cycle {attempt}: {report:?}");
        let row = recorded(&app, &created).await;
        assert_eq!(row.attempts, attempt, "{row:?}");
        let expected = if attempt < 5 {
            webhook_event::Outcome::Failed
        } else {
            webhook_event::Outcome::SetAside
        };
        assert_eq!(row.outcome, expected, "cycle {attempt}");
        assert_eq!(
            report.events_set_aside > 0,
            attempt == 5,
            "cycle {attempt}: {report:?}"
        );
    }
    let row = recorded(&app, &created).await;
    assert!(row.stripe_refused && row.error.is_some(), "{row:?}");

    // The next cycle leaves it alone: nothing failed, nothing holds the cursor back.
    let started = now();
    let report = reconcile::run_cycle(&app.state).await.expect("a cycle");
    assert_eq!(report.events_failed, 0, "{report:?}");
    assert_eq!(recorded(&app, &created).await.attempts, 5);
    let cursor: i64 = scalar(
        &app,
        "SELECT value FROM reconcile_state WHERE key = 'events_cursor'",
    )
    .await
    .expect("a cursor")
    .parse()
    .expect("a number");
    assert!(
        cursor >= started - reconcile::events::OVERLAP_SECS - 5,
        "{cursor} vs {started}"
    );

    // Operators see it.
    let attention = history::attention(&app.db).await.expect("attention");
    assert!(attention.set_aside >= 1, "{attention:?}");
    let listed = history::list(
        &app.db,
        &Filter {
            outcome: Some(Outcome::SetAside),
            ..Filter::default()
        },
    )
    .await
    .expect("list");
    assert!(listed.iter().any(|e| e.id == created), "{listed:?}");
    app.stop().await;
}

/// With this server's clock two minutes ahead, a re-sync stamps what it read by a clock that
/// is right (the database's), so a real change Stripe makes right after it, and the event it
/// sends, is applied rather than dropped as older than the re-sync.
async fn a_server_clock_ahead_drops_no_event_after_a_resync(backend: Backend) {
    use stripe_billing::subscription::UpdateSubscription;
    let stripe = StandaloneStripe::start(KEY, SECRET, DeliveryOptions::default()).await;
    let app = stripe.app(backend).await;
    stripe
        .sim
        .add_webhook_endpoint(&app.url("/api/webhooks/stripe"), SECRET);
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    stripe.settled().await;

    billfold::db::clock::skewed(120, async {
        assert!(billfold::db::clock::now() > stripe_sim_now() + 100);
        sync::sync_customer(&app.db, &app.state.stripe, &customer)
            .await
            .expect("re-sync");
    })
    .await;
    UpdateSubscription::new(sub.as_str())
        .cancel_at_period_end(true)
        .send(&stripe.client)
        .await
        .expect("cancel at the period's end");
    stripe.settled().await;

    let update = stripe
        .sim
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == "customer.subscription.updated")
        .map(|d| d.event_id)
        .next_back()
        .expect("the update's event");
    assert_eq!(
        recorded(&app, &update).await.outcome,
        webhook_event::Outcome::Applied
    );
    let canceling = scalar(
        &app,
        &format!("SELECT cancel_at_period_end FROM subscriptions WHERE id = '{sub}'"),
    )
    .await;
    assert!(
        matches!(canceling.as_deref(), Some("true" | "1")),
        "{canceling:?}"
    );
    app.stop().await;
}

/// The true time, as Stripe (the double) has it.
fn stripe_sim_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn schedule(id: &str, subscription: &str, next_price: &str, switch_at: i64) -> Value {
    json!({
        "id": id,
        "object": "subscription_schedule",
        "customer": "cus_sched",
        "status": "active",
        "subscription": subscription,
        "current_phase": {"start_date": switch_at - 2_592_000, "end_date": switch_at},
        "phases": [
            {"start_date": switch_at - 2_592_000, "end_date": switch_at, "items": [{"price": "price_pro"}]},
            {"start_date": switch_at, "end_date": null, "items": [{"price": next_price}]},
        ],
    })
}

async fn schedule_row(app: &TestApp, id: &str) -> subscription_schedule::Model {
    subscription_schedule::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("schedule row")
}

/// Schedules follow the ordering rule: a redelivery of the same second with other content is
/// decided by the API's copy; a row that drifted is healed by a customer's re-sync (which the
/// reconciler's compare runs), and the compare records the drift.
async fn schedules_are_refetched_on_a_tie_and_healed_by_a_resync(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    user_with_customer(&app, "cus_sched").await;
    let t = now() - 100;
    let switch_at = now() + 86_400;
    deliver_expect(
        &app,
        &event(
            "evt_sched_1",
            "subscription_schedule.updated",
            t,
            schedule("sub_sched_1", "sub_s", "price_starter", switch_at),
        ),
        "applied",
    )
    .await;
    assert_eq!(
        schedule_row(&app, "sub_sched_1")
            .await
            .next_price_id
            .as_deref(),
        Some("price_starter")
    );
    // Same second, other content: which came last cannot be told, so Stripe's copy decides.
    stub.set(
        "subscription_schedules/sub_sched_1",
        schedule("sub_sched_1", "sub_s", "price_team", switch_at),
    );
    deliver_expect(
        &app,
        &event(
            "evt_sched_2",
            "subscription_schedule.updated",
            t,
            schedule("sub_sched_1", "sub_s", "price_other", switch_at),
        ),
        "applied",
    )
    .await;
    assert_eq!(stub.hits("subscription_schedules/sub_sched_1"), 1);
    let row = schedule_row(&app, "sub_sched_1").await;
    assert_eq!(row.next_price_id.as_deref(), Some("price_team"));
    assert_eq!(row.stripe_event_at, Some(t));

    // The row drifts; a re-sync of the customer puts Stripe's schedule back.
    app.db
        .execute_unprepared(
            "UPDATE subscription_schedules SET next_price_id = 'price_drifted', switch_at = 1 \
             WHERE id = 'sub_sched_1'",
        )
        .await
        .expect("drift by hand");
    stub.set(
        "customers/cus_sched",
        crate::support::stripe_objects::customer("cus_sched", "sched@example.com", None),
    );
    stub.set_list("subscriptions", vec![Sub::new("sub_s", "cus_sched").json()]);
    stub.set_list("payment_methods", vec![]);
    stub.set_list("invoices", vec![]);
    stub.set(
        "prices/price_pro",
        crate::support::stripe_objects::price(
            "price_pro",
            crate::support::stripe_objects::product("prod_pro", "Pro"),
            2000,
            "month",
        ),
    );
    stub.set_list(
        "subscription_schedules",
        vec![schedule("sub_sched_1", "sub_s", "price_team", switch_at)],
    );
    let report = sync::sync_customer(&app.db, &stripe_client(&stub), "cus_sched")
        .await
        .expect("re-sync");
    assert_eq!(report.schedules, 1, "{report:?}");
    let row = schedule_row(&app, "sub_sched_1").await;
    assert_eq!(row.next_price_id.as_deref(), Some("price_team"));
    assert_eq!(row.switch_at, Some(switch_at));
    app.stop().await;
}

/// A payload older than the retention is emptied; the event's row stays (id, type, outcome,
/// times), so a redelivery of that event is still a duplicate, and operators are told the
/// payload is gone rather than shown an empty one.
async fn an_old_payload_is_removed_and_its_event_still_counts(backend: Backend) {
    let stub = StripeStub::start().await;
    let app = spawn(backend, SECRET, &stub).await;
    let old = event(
        "evt_old_personal",
        "customer.created",
        now() - 100 * 86_400,
        json!({"id": "cus_old", "object": "customer", "email": "someone@example.com", "name": "Some One"}),
    );
    let recent = event(
        "evt_recent_personal",
        "customer.created",
        now() - 60,
        json!({"id": "cus_new", "object": "customer", "email": "new@example.com"}),
    );
    deliver_expect(&app, &old, "ignored").await;
    deliver_expect(&app, &recent, "ignored").await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE webhook_events SET received_at = {} WHERE id = 'evt_old_personal'",
            now() - 91 * 86_400
        ))
        .await
        .expect("age the event");

    let keep = app.state.config.webhook_payload_retention;
    assert_eq!(keep, Duration::from_secs(90 * 86_400), "the default");
    let removed = reconcile::retention::remove_old_payloads(&app.db, keep)
        .await
        .expect("sweep");
    assert_eq!(removed, 1);
    let row = recorded(&app, "evt_old_personal").await;
    assert!(row.payload.is_empty(), "{}", row.payload);
    assert!(!row.payload.contains("someone@example.com"));
    assert!(row.payload_removed_at.is_some());
    assert_eq!(row.event_type, "customer.created");
    assert_eq!(row.outcome, webhook_event::Outcome::Ignored);
    let kept = recorded(&app, "evt_recent_personal").await;
    assert!(billfold::webhooks::payload::text(&kept.payload).contains("new@example.com"));
    assert!(kept.payload_removed_at.is_none());

    // Still exactly once: a redelivery is a duplicate, and a second sweep finds nothing.
    deliver_expect(&app, &old, "duplicate").await;
    assert!(recorded(&app, "evt_old_personal").await.payload.is_empty());
    assert_eq!(
        reconcile::retention::remove_old_payloads(&app.db, keep)
            .await
            .expect("sweep"),
        0
    );
    let listed = history::list(&app.db, &Filter::default())
        .await
        .expect("list");
    let shown = listed
        .iter()
        .find(|e| e.id == "evt_old_personal")
        .expect("listed");
    assert!(shown.payload_removed_at.is_some());
    assert!(matches!(
        history::replay(pipeline(&app), "evt_old_personal").await,
        Err(history::ReplayError::PayloadRemoved(_))
    ));
    app.stop().await;
}

crate::support::on_both_databases!(
    a_permanent_stripe_refusal_is_recorded_answered_and_replayable,
    the_reconciler_lists_handled_types_a_capped_page_at_a_time,
    a_missed_event_that_keeps_failing_is_set_aside,
    a_server_clock_ahead_drops_no_event_after_a_resync,
    schedules_are_refetched_on_a_tie_and_healed_by_a_resync,
    an_old_payload_is_removed_and_its_event_still_counts,
);
