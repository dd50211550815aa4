//! Missed events: what Stripe has not delivered everywhere (pending, or given up on),
//! applied through the same pipeline as a delivery.
//!
//! Stripe keeps events for 30 days; the first cycle looks that far back. Later cycles list
//! from a cursor a little behind the start of the last complete listing (so an event that
//! shows up in the list late is still seen) and never past an event that failed. The
//! cursor follows this server's clock, not the events' `created`, which a test clock may
//! put days in the future.

use futures_util::TryStreamExt;
use miniserde::json::{Number, Object, Value};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use stripe_core::event::ListEvent;
use stripe_shared::Event;
use stripe_types::RangeQueryTs;

use super::{store, CycleError, Report};
use crate::{
    db::{
        clock::now,
        entities::webhook_event::{self, Outcome},
    },
    state::AppState,
    webhooks::{
        event::{Envelope, Kind},
        pipeline::{self, Delivery, Pipeline},
    },
};

/// How long Stripe keeps events.
pub const RETENTION_SECS: i64 = 30 * 86_400;

/// How far behind the last listing's start the next one begins: room for an event that
/// appears in Stripe's list a little after it was created, and for clock skew.
pub const OVERLAP_SECS: i64 = 600;

const PAGE: i64 = 100;

/// Lists and applies the missed events, then moves the cursor.
pub async fn recover(state: &AppState, report: &mut Report) -> Result<(), CycleError> {
    let started = now();
    let floor = started - RETENTION_SECS;
    let since = store::events_cursor(&state.db)
        .await?
        .map_or(floor, |c| c.max(floor));
    let listed: Vec<Event> = ListEvent::new()
        .created(RangeQueryTs::gte(since))
        .delivery_success(false)
        .limit(PAGE)
        .paginate()
        .stream(&state.stripe)
        .try_collect()
        .await?;
    report.events_listed = listed.len();

    let livemode = state.config.stripe.mode.livemode();
    let mut missed: Vec<Envelope> = Vec::new();
    for chunk in listed.chunks(PAGE as usize) {
        let wanted: Vec<&Event> = chunk
            .iter()
            .filter(|e| e.livemode == livemode && Kind::of(e.type_.as_str()).is_some())
            .collect();
        let done = recorded(state, &wanted).await?;
        for e in wanted {
            if done.contains(&e.id.to_string()) {
                continue;
            }
            match Envelope::parse(body_of(e).into()) {
                Ok(envelope) => missed.push(envelope),
                Err(err) => {
                    tracing::warn!(event_id = %e.id, error = %err, "reconcile: a listed event does not read as one")
                }
            }
        }
    }
    // Oldest first, as Stripe would have delivered them.
    missed.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));

    let p = Pipeline {
        db: &state.db,
        stripe: &state.stripe,
        livemode,
    };
    let mut oldest_failed: Option<i64> = None;
    for envelope in &missed {
        report.events_processed += 1;
        if let Err(e) = pipeline::process(p, envelope, Delivery::Webhook).await {
            tracing::warn!(event_id = %envelope.id, error = %e, "reconcile: a missed event failed");
            report.events_failed += 1;
            oldest_failed =
                Some(oldest_failed.map_or(envelope.created, |o| o.min(envelope.created)));
        }
    }

    let mut cursor = (started - OVERLAP_SECS).max(since);
    if let Some(failed) = oldest_failed {
        cursor = cursor.min(failed);
    }
    store::set_events_cursor(&state.db, cursor).await?;
    Ok(())
}

/// The ids among `events` already recorded with an outcome that needs nothing more (all
/// but `failed`, which the pipeline takes over again).
async fn recorded(state: &AppState, events: &[&Event]) -> Result<Vec<String>, sea_orm::DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::Id)
        .filter(webhook_event::Column::Id.is_in(ids))
        .filter(webhook_event::Column::Outcome.ne(Outcome::Failed))
        .into_tuple()
        .all(&state.db)
        .await
}

/// The event as a delivery would have carried it: the envelope's fields and `data`.
fn body_of(e: &Event) -> String {
    let mut data = Object::new();
    data.insert("object".to_owned(), e.data.object.clone());
    if let Some(previous) = &e.data.previous_attributes {
        data.insert("previous_attributes".to_owned(), previous.clone());
    }
    let mut map = Object::new();
    map.insert("id".to_owned(), Value::String(e.id.to_string()));
    map.insert("object".to_owned(), Value::String("event".to_owned()));
    map.insert(
        "type".to_owned(),
        Value::String(e.type_.as_str().to_owned()),
    );
    map.insert("created".to_owned(), Value::Number(Number::I64(e.created)));
    map.insert("livemode".to_owned(), Value::Bool(e.livemode));
    if let Some(v) = &e.api_version {
        map.insert("api_version".to_owned(), Value::String(v.clone()));
    }
    map.insert(
        "pending_webhooks".to_owned(),
        Value::Number(Number::I64(e.pending_webhooks)),
    );
    map.insert("data".to_owned(), Value::Object(data));
    miniserde::json::to_string(&Value::Object(map))
}
