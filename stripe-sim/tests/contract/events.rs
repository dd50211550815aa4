//! `GET /v1/events` through async-stripe's `ListEvent`: the filters the app's reconciler
//! relies on (`created`, `type`, `types[]`, `delivery_success`) and Stripe's paging, newest
//! first.

use std::time::Duration;

use futures_util::TryStreamExt;
use stripe_core::event::ListEvent;
use stripe_shared::Event;
use stripe_sim::DeliveryOptions;
use stripe_types::{RangeBoundsTs, RangeQueryTs};

use crate::helpers::*;

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

async fn list(sim: &Sim, request: ListEvent) -> Vec<Event> {
    request
        .limit(100)
        .send(&sim.client)
        .await
        .expect("list events")
        .data
}

async fn customer_events(sim: &Sim) -> Vec<Event> {
    list(sim, ListEvent::new().type_("customer.*")).await
}

#[tokio::test]
async fn events_filter_by_created_and_type_newest_first() {
    let sim = start().await;
    customer(&sim, "first@example.com").await;
    // A later second for the next events, so `created` tells them apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = customer(&sim, "second@example.com").await;
    stripe_core::customer::UpdateCustomer::new(second.as_str())
        .name("Second")
        .send(&sim.client)
        .await
        .expect("update");

    let all = customer_events(&sim).await;
    let types: Vec<&str> = all.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(
        types,
        ["customer.updated", "customer.created", "customer.created"],
        "newest first"
    );
    let later = all[0].created;
    let earlier = all[2].created;
    assert!(later > earlier);

    let since = list(
        &sim,
        ListEvent::new()
            .type_("customer.*")
            .created(RangeQueryTs::gte(later)),
    )
    .await;
    assert_eq!(ids(&since), ids(&all[..2]));
    let after = list(
        &sim,
        ListEvent::new()
            .type_("customer.*")
            .created(RangeQueryTs::gt(earlier)),
    )
    .await;
    assert_eq!(ids(&after), ids(&all[..2]));
    let before = list(
        &sim,
        ListEvent::new()
            .type_("customer.*")
            .created(RangeQueryTs::lt(later)),
    )
    .await;
    assert_eq!(ids(&before), ids(&all[2..]));
    let window = list(
        &sim,
        ListEvent::new()
            .type_("customer.*")
            .created(RangeQueryTs::Bounds(RangeBoundsTs {
                gte: Some(earlier),
                lte: Some(earlier),
                ..Default::default()
            })),
    )
    .await;
    assert_eq!(ids(&window), ids(&all[2..]));
    let exact = list(
        &sim,
        ListEvent::new()
            .type_("customer.*")
            .created(RangeQueryTs::eq(later)),
    )
    .await;
    assert_eq!(ids(&exact), ids(&all[..2]));
    let future = list(
        &sim,
        ListEvent::new().created(RangeQueryTs::gte(later + 3600)),
    )
    .await;
    assert!(future.is_empty());

    let updated = list(&sim, ListEvent::new().type_("customer.updated")).await;
    assert_eq!(ids(&updated), ids(&all[..1]));
    let created = list(
        &sim,
        ListEvent::new().types(vec!["customer.created".to_owned()]),
    )
    .await;
    assert_eq!(ids(&created), ids(&all[1..]));
    let both = list(
        &sim,
        ListEvent::new().types(vec![
            "customer.created".to_owned(),
            "customer.updated".to_owned(),
        ]),
    )
    .await;
    assert_eq!(ids(&both), ids(&all));
}

#[tokio::test]
async fn delivery_success_tells_given_up_events_from_delivered_ones() {
    // One attempt, no retries: the first delivery fails and is given up on.
    let sim = start_with(
        DeliveryOptions::exponential(Duration::from_millis(50), 0),
        None,
    )
    .await;
    let hook = receiver(1).await;
    sim.sim
        .add_webhook_endpoint(&hook.url, "whsec_events_contract");
    customer(&sim, "lost@example.com").await;
    hook.wait_for(Duration::from_secs(5), |r| r.len() == 1)
        .await;
    customer(&sim, "delivered@example.com").await;
    hook.wait_for(Duration::from_secs(5), |r| r.len() == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let all = customer_events(&sim).await;
    assert_eq!(all.len(), 2);
    let failed = list(
        &sim,
        ListEvent::new().type_("customer.*").delivery_success(false),
    )
    .await;
    assert_eq!(ids(&failed), ids(&all[1..]), "the given-up one (older)");
    let delivered = list(
        &sim,
        ListEvent::new().type_("customer.*").delivery_success(true),
    )
    .await;
    assert_eq!(ids(&delivered), ids(&all[..1]));
}

#[tokio::test]
async fn events_page_like_stripe_in_both_directions() {
    let sim = start().await;
    for i in 0..5 {
        customer(&sim, &format!("page{i}@example.com")).await;
    }
    let all = customer_events(&sim).await;
    assert_eq!(all.len(), 5);

    let streamed: Vec<Event> = ListEvent::new()
        .type_("customer.*")
        .limit(2)
        .paginate()
        .stream(&sim.client)
        .try_collect()
        .await
        .expect("paginate");
    assert_eq!(ids(&streamed), ids(&all), "pages of two add up to the list");

    let after = ListEvent::new()
        .type_("customer.*")
        .limit(2)
        .starting_after(all[1].id.as_str())
        .send(&sim.client)
        .await
        .expect("page");
    assert_eq!(ids(&after.data), ids(&all[2..4]));
    assert!(after.has_more);
    let before = ListEvent::new()
        .type_("customer.*")
        .limit(2)
        .ending_before(all[4].id.as_str())
        .send(&sim.client)
        .await
        .expect("page");
    assert_eq!(ids(&before.data), ids(&all[2..4]));
    assert!(before.has_more);
}
