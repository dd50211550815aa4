//! The reconciler: events Stripe gave up on are applied without a webhook, a row changed by
//! hand is healed and the drift recorded, and cycles running beside deliveries leave every
//! object equal to Stripe's.

use std::time::Duration;

use billfold::{
    db::entities::{drift_record, reconcile_run, subscription, webhook_event},
    reconcile,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use stripe_sim::DeliveryOptions;

use crate::support::{
    app::{Backend, TestApp},
    billing::{sign_up_with_customer, subscribe_in_stripe},
    standalone_stripe::StandaloneStripe,
};

const KEY: &str = "sk_test_reconcile";
const SECRET: &str = "whsec_reconcile";

async fn cycle(app: &TestApp) -> reconcile::Report {
    let report = reconcile::run_cycle(&app.state).await.expect("a cycle");
    assert!(report.ran, "nothing else holds the lock");
    assert!(report.succeeded(), "{report:?}");
    report
}

async fn subscription(app: &TestApp, id: &str) -> Option<subscription::Model> {
    subscription::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
}

/// Stripe gave up on an event (its endpoint never answered): the next cycle lists it and
/// applies it through the pipeline, recorded like a delivery, once.
async fn an_event_stripe_gave_up_on_is_applied_by_the_next_cycle(backend: Backend) {
    // One attempt and no retries, to an endpoint nobody listens on.
    let stripe = StandaloneStripe::unheard(KEY, SECRET).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    stripe.settled().await;
    let lost: Vec<String> = stripe
        .sim
        .deliveries()
        .into_iter()
        .filter(|d| d.gave_up && d.event_type == "customer.subscription.created")
        .map(|d| d.event_id)
        .collect();
    assert_eq!(lost.len(), 1, "Stripe gave up on the subscription's event");
    assert!(subscription(&app, &sub).await.is_none());

    let report = cycle(&app).await;
    assert!(report.events_processed >= 1, "{report:?}");
    let recorded = webhook_event::Entity::find_by_id(lost[0].as_str())
        .one(&app.db)
        .await
        .expect("query")
        .expect("the missed event is recorded");
    assert_eq!(recorded.outcome, webhook_event::Outcome::Applied);
    let row = subscription(&app, &sub)
        .await
        .expect("the subscription row");
    assert_eq!(row.status, "active");

    // Recorded once: the next cycle finds nothing new to apply.
    let again = cycle(&app).await;
    assert_eq!(again.events_processed, 0, "{again:?}");

    // Each cycle is on record, with this process as its runner.
    let runs = reconcile_run::Entity::find()
        .order_by_asc(reconcile_run::Column::Id)
        .all(&app.db)
        .await
        .expect("query");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].events_processed as usize, report.events_processed);
    assert_eq!(runs[1].events_processed, 0);
    for run in &runs {
        assert!(run.succeeded && run.error.is_none(), "{run:?}");
        assert!(run.started_at_ms <= run.finished_at_ms, "{run:?}");
        assert!(
            run.runner.ends_with(&format!(":{}", std::process::id())),
            "{run:?}"
        );
    }
    assert!(runs[0].finished_at_ms <= runs[1].started_at_ms);
    app.stop().await;
}

/// A subscription row changed by hand is put back within one full compare, and a drift
/// record names each field, both values and the event that would have carried it.
async fn a_row_changed_by_hand_is_healed_and_its_drift_recorded(backend: Backend) {
    let stripe = StandaloneStripe::start(KEY, SECRET, DeliveryOptions::default()).await;
    let app = stripe.app(backend).await;
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    cycle(&app).await;
    let right = subscription(&app, &sub).await.expect("healed in");
    let plan = right.plan_name.clone().expect("a plan name");

    app.db
        .execute_unprepared(&format!(
            "UPDATE subscriptions SET plan_name = 'Enterprise', cancel_at_period_end = TRUE \
             WHERE id = '{sub}'"
        ))
        .await
        .expect("edit by hand");
    let report = cycle(&app).await;
    assert!(report.customers_compared >= 1);
    let found: Vec<(String, Option<String>, Option<String>)> = drift_record::Entity::find()
        .all(&app.db)
        .await
        .expect("drift records")
        .into_iter()
        .map(|r| (r.field, r.database_value, r.stripe_value))
        .collect();
    assert!(report.drift >= 2, "{report:?}: {found:?}");

    let healed = subscription(&app, &sub).await.expect("row");
    assert_eq!(healed.plan_name.as_deref(), Some(plan.as_str()));
    assert!(!healed.cancel_at_period_end);

    let records = drift_record::Entity::find()
        .filter(drift_record::Column::ObjectId.eq(sub.as_str()))
        .all(&app.db)
        .await
        .expect("drift records");
    let plan_drift = records
        .iter()
        .find(|r| r.field == "plan_name")
        .expect("a drift record for the plan");
    assert_eq!(plan_drift.object_type, "subscription");
    assert_eq!(plan_drift.customer_id, customer);
    assert_eq!(plan_drift.database_value.as_deref(), Some("Enterprise"));
    assert_eq!(plan_drift.stripe_value.as_deref(), Some(plan.as_str()));
    assert_eq!(plan_drift.event_type, "customer.subscription.updated");
    assert!(records.iter().any(|r| r.field == "cancel_at_period_end"
        && r.database_value.as_deref() == Some("true")
        && r.stripe_value.as_deref() == Some("false")));

    // `billfold drift` shows them.
    let listed = reconcile::drift::list(&app.db, None, 100)
        .await
        .expect("list");
    let table = reconcile::drift::format_table(&listed);
    assert!(
        table.contains("plan_name") && table.contains("Enterprise"),
        "{table}"
    );

    // Nothing differs any more: the next compare finds no drift.
    assert_eq!(cycle(&app).await.drift, 0);
    app.stop().await;
}

/// Deliveries (reordered, some duplicated, retried) and reconciler cycles run at once;
/// when the deliveries are done, every subscription equals Stripe's.
async fn cycles_beside_deliveries_end_equal_to_stripe(backend: Backend) {
    use stripe_billing::subscription::{
        CancelSubscription, RetrieveSubscription, UpdateSubscription,
    };
    let mut delivery = DeliveryOptions::exponential(Duration::from_millis(100), 6);
    delivery.reorder_window = Duration::from_millis(300);
    delivery.duplicate_probability = 0.3;
    let stripe = StandaloneStripe::start(KEY, SECRET, delivery).await;
    let app = stripe.app(backend).await;
    stripe
        .sim
        .add_webhook_endpoint(&app.url("/api/webhooks/stripe"), SECRET);

    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cycles = tokio::spawn({
        let state = app.state.clone();
        let running = running.clone();
        async move {
            let mut ran = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) = reconcile::run_cycle(&state).await {
                    ran += usize::from(r.ran);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ran
        }
    });

    let mut subs = Vec::new();
    for i in 0..4 {
        let (_, customer) = sign_up_with_customer(&app).await;
        let amount = if i % 2 == 0 { 900 } else { 2900 };
        let sub = subscribe_in_stripe(&stripe.client, &customer, amount).await;
        match i {
            0 => {
                UpdateSubscription::new(sub.as_str())
                    .cancel_at_period_end(true)
                    .send(&stripe.client)
                    .await
                    .expect("cancel at period end");
            }
            1 => {
                CancelSubscription::new(sub.as_str())
                    .send(&stripe.client)
                    .await
                    .expect("cancel now");
            }
            2 => {
                for flag in [true, false, true, false] {
                    UpdateSubscription::new(sub.as_str())
                        .cancel_at_period_end(flag)
                        .send(&stripe.client)
                        .await
                        .expect("toggle");
                }
            }
            _ => {}
        }
        subs.push(sub);
    }
    // The plan of two of them is renamed while all this goes on.
    let pro = RetrieveSubscription::new(subs[1].as_str())
        .send(&stripe.client)
        .await
        .expect("Stripe's copy")
        .items
        .data[0]
        .price
        .product
        .id()
        .to_string();
    stripe_product::product::UpdateProduct::new(pro.as_str())
        .name("Pro Plus")
        .send(&stripe.client)
        .await
        .expect("rename");
    stripe.settled().await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let ran = cycles.await.expect("join");
    assert!(ran >= 1, "the reconciler ran beside the deliveries");

    for id in &subs {
        let truth = RetrieveSubscription::new(id.as_str())
            .send(&stripe.client)
            .await
            .expect("Stripe's copy");
        let row = subscription(&app, id).await.expect("row");
        assert_eq!(row.status, truth.status.as_str(), "{id}");
        assert_eq!(row.cancel_at_period_end, truth.cancel_at_period_end, "{id}");
        let price = &truth.items.data[0].price;
        assert_eq!(row.price_id.as_deref(), Some(price.id.as_str()), "{id}");
        if price.product.id().as_str() == pro {
            assert_eq!(row.plan_name.as_deref(), Some("Pro Plus"), "{id}");
        }
    }
    // Every event applied once, however often it was delivered or listed.
    let events = webhook_event::Entity::find()
        .all(&app.db)
        .await
        .expect("events");
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
    assert!(events
        .iter()
        .all(|e| e.outcome != webhook_event::Outcome::Failed));
    app.stop().await;
}

/// Found by the proof runner: a test-clock customer's rows are all stamped ahead of this
/// server's clock, so a compare re-fetches each of them; however many there are, the heal
/// goes through (it gave up after eight).
async fn a_test_clock_customer_with_many_rows_is_compared(backend: Backend) {
    let stripe = StandaloneStripe::start(
        KEY,
        SECRET,
        DeliveryOptions::exponential(Duration::from_millis(50), 4),
    )
    .await;
    let app = stripe.app(backend).await;
    stripe
        .sim
        .add_webhook_endpoint(&app.url("/api/webhooks/stripe"), SECRET);
    let (_, customer) = sign_up_with_customer(&app).await;
    let sub = subscribe_in_stripe(&stripe.client, &customer, 900).await;
    // Six renewals: six more invoices, every event stamped with the clock's (future) time.
    for _ in 0..6 {
        stripe
            .sim
            .advance_customer_clock(&customer, Duration::from_secs(31 * 86_400))
            .await
            .expect("advance the clock");
    }
    stripe.settled().await;
    let invoices = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM invoices WHERE customer_id = '{customer}'"),
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert!(invoices >= 7, "{invoices} invoices");

    let report = cycle(&app).await;
    assert_eq!(report.drift, 0, "{report:?}");
    assert_eq!(
        subscription(&app, &sub).await.expect("row").status,
        "active"
    );
    app.stop().await;
}

crate::support::on_both_databases!(
    a_test_clock_customer_with_many_rows_is_compared,
    an_event_stripe_gave_up_on_is_applied_by_the_next_cycle,
    a_row_changed_by_hand_is_healed_and_its_drift_recorded,
    cycles_beside_deliveries_end_equal_to_stripe,
);
