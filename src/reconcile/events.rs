//! Missed events: what Stripe has not delivered everywhere (pending, or given up on),
//! applied through the same pipeline as a delivery.
//!
//! Only the event types Billfold handles are listed (`types[]`, at most 20 a request, so a
//! few groups of types), a page at a time: each page is applied before the next is asked
//! for, and a cycle lists at most [`CYCLE_CAP`] events. A listing that needs more cycles
//! goes on where it left off (the last event listed, `starting_after`). Stripe keeps events
//! for 30 days; the first listing looks that far back. Once a listing is done, the next one
//! starts a little before the moment it began (so an event that shows up in Stripe's list
//! late is still seen) and no later than an event that failed in it. An event that fails
//! [`SET_ASIDE_AFTER`] times is set aside (outcome `set_aside`, shown on `/admin/billing`)
//! instead of holding every later listing back. Times come from the database's clock
//! (`sync::read_clock`), never from the events' `created`, which a test clock may put days
//! in the future.

use miniserde::json::{Number, Object, Value};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use stripe_core::event::ListEvent;
use stripe_shared::Event;
use stripe_types::{RangeBoundsTs, RangeQueryTs};

use super::{
    store::{self, Listing},
    CycleError, Report,
};
use crate::{
    billing::sync,
    db::begin_write,
    db::entities::webhook_event::{self, Outcome},
    state::AppState,
    webhooks::{
        batch,
        event::{Envelope, Kind, HANDLED},
        pipeline::Pipeline,
    },
};

/// How long Stripe keeps events.
pub const RETENTION_SECS: i64 = 30 * 86_400;

/// How far behind the last listing's start the next one begins: room for an event that
/// appears in Stripe's list a little after it was created, and for clock skew.
pub const OVERLAP_SECS: i64 = 600;

/// The most events one cycle lists; a longer listing goes on in the next cycle.
pub const CYCLE_CAP: usize = 1_000;

/// After this many failed attempts (deliveries, cycles and replays together) a missed
/// event is set aside.
pub const SET_ASIDE_AFTER: i32 = 5;

/// Stripe's limit on `types[]` in one request.
const TYPES_PER_REQUEST: usize = 20;

const PAGE: usize = 100;

/// The handled event types, in groups of at most [`TYPES_PER_REQUEST`].
fn type_groups() -> Vec<Vec<String>> {
    HANDLED
        .chunks(TYPES_PER_REQUEST)
        .map(|group| group.iter().map(|(t, _)| (*t).to_owned()).collect())
        .collect()
}

/// Lists and applies missed events (at most `cap` listed), then moves the cursor or keeps
/// where the listing left off.
pub async fn recover(state: &AppState, report: &mut Report, cap: usize) -> Result<(), CycleError> {
    let db = &state.db;
    let now = sync::read_clock(db).await?;
    let floor = now - RETENTION_SECS;
    let mut listing = match store::listing(db).await? {
        Some(listing) => listing,
        None => {
            let since = store::events_cursor(db)
                .await?
                .map_or(floor, |c| c.max(floor));
            Listing {
                since,
                started: now,
                chunk: 0,
                after: None,
                oldest_failed: None,
            }
        }
    };
    // Stripe no longer has what is older than its retention.
    listing.since = listing.since.max(floor);
    let groups = type_groups();
    let mut budget = cap.max(1);
    while let Some(types) = groups.get(listing.chunk) {
        // Boxed as a `dyn Future`: applying holds async-stripe's deep types, too deep for the
        // compiler to prove `Send` from the top of the reconciler's task otherwise.
        let group: Group<'_> =
            Box::pin(list_group(state, report, types, &mut listing, &mut budget));
        let done = group.await?;
        if !done {
            store::save_listing(db, Some(&listing), None).await?;
            return Ok(());
        }
        listing.chunk += 1;
        listing.after = None;
    }
    let mut cursor = (listing.started - OVERLAP_SECS).max(listing.since);
    if let Some(failed) = listing.oldest_failed {
        cursor = cursor.min(failed);
    }
    store::save_listing(db, None, Some(cursor)).await?;
    Ok(())
}

type Group<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, CycleError>> + Send + 'a>>;

/// Lists one group of types page by page, applying each page, until the group is done
/// (`true`) or the budget is spent (`false`: the listing goes on next cycle).
async fn list_group(
    state: &AppState,
    report: &mut Report,
    types: &[String],
    listing: &mut Listing,
    budget: &mut usize,
) -> Result<bool, CycleError> {
    loop {
        if *budget == 0 {
            return Ok(false);
        }
        let mut request = ListEvent::new()
            .created(RangeQueryTs::Bounds(RangeBoundsTs {
                gte: Some(listing.since),
                ..RangeBoundsTs::default()
            }))
            .delivery_success(false)
            .types(types.to_vec())
            .limit(i64::try_from(PAGE.min(*budget)).unwrap_or(1));
        if let Some(after) = &listing.after {
            request = request.starting_after(after.as_str());
        }
        let page = match request.send(&state.stripe).await {
            Ok(page) => page,
            // The event the listing left off at is gone (older than Stripe keeps): this
            // group starts over.
            Err(::stripe::StripeError::Stripe(_, 400 | 404)) if listing.after.is_some() => {
                tracing::warn!("reconcile: the listing's place is gone from Stripe; listing again");
                listing.after = None;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        *budget = budget.saturating_sub(page.data.len());
        report.events_listed += page.data.len();
        let next = match page.data.last() {
            Some(last) if page.has_more => Some(last.id.to_string()),
            _ => None,
        };
        let livemode = state.config.stripe.mode.livemode();
        let envelopes = envelopes_of(page.data, livemode);
        apply_page(state, report, envelopes, listing).await?;
        match next {
            Some(after) => listing.after = Some(after),
            None => return Ok(true),
        }
    }
}

/// The events of a page this app acts on (its mode, a handled type), as deliveries.
fn envelopes_of(page: Vec<Event>, livemode: bool) -> Vec<Envelope> {
    page.into_iter()
        .filter(|e| e.livemode == livemode && Kind::of(e.type_.as_str()).is_some())
        .filter_map(|e| match Envelope::parse(body_of(&e).into()) {
            Ok(envelope) => Some(envelope),
            Err(err) => {
                tracing::warn!(event_id = %e.id, error = %err, "reconcile: a listed event does not read as one");
                None
            }
        })
        .collect()
}

/// Applies the events of one page not recorded yet, oldest first, as Stripe would have
/// delivered them; sets aside those that failed too often.
async fn apply_page(
    state: &AppState,
    report: &mut Report,
    page: Vec<Envelope>,
    listing: &mut Listing,
) -> Result<(), CycleError> {
    let livemode = state.config.stripe.mode.livemode();
    let done = recorded(&state.db, &page).await?;
    let mut missed: Vec<Envelope> = page.into_iter().filter(|e| !done.contains(&e.id)).collect();
    missed.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));

    let p = Pipeline {
        db: &state.db,
        stripe: &state.stripe,
        livemode,
    };
    for envelope in missed {
        report.events_processed += 1;
        let (id, created) = (envelope.id.clone(), envelope.created);
        // Through the customer's lane, as a delivery of the event would go: one writer per
        // customer, whichever way its events arrive.
        let failed = match batch::process(p, envelope).await {
            // Stripe refused a request it needs: recorded as failed like any other failure.
            Ok(done) => done.outcome == Outcome::Failed,
            Err(e) => {
                tracing::warn!(event_id = %id, error = %e, "reconcile: a missed event failed");
                true
            }
        };
        if !failed {
            continue;
        }
        report.events_failed += 1;
        if set_aside_if_spent(&state.db, &id).await? {
            tracing::warn!(event_id = %id, "reconcile: a missed event failed {SET_ASIDE_AFTER} times and is set aside");
            report.events_set_aside += 1;
        } else {
            listing.oldest_failed = Some(listing.oldest_failed.map_or(created, |o| o.min(created)));
        }
    }
    Ok(())
}

/// Sets a failed event aside if it has failed [`SET_ASIDE_AFTER`] times; true if it is.
async fn set_aside_if_spent(
    db: &DatabaseConnection,
    event_id: &str,
) -> Result<bool, sea_orm::DbErr> {
    use webhook_event::Column as C;
    let txn = begin_write(db).await?;
    let set = webhook_event::Entity::update_many()
        .col_expr(
            C::Outcome,
            sea_orm::sea_query::Expr::value(Outcome::SetAside),
        )
        .filter(C::Id.eq(event_id))
        .filter(C::Outcome.eq(Outcome::Failed))
        .filter(C::Attempts.gte(SET_ASIDE_AFTER))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(set > 0)
}

/// The ids among `events` already recorded with an outcome that needs nothing more (all
/// but `failed`, which the pipeline takes over again; `set_aside` waits for an operator).
async fn recorded(
    db: &DatabaseConnection,
    events: &[Envelope],
) -> Result<Vec<String>, sea_orm::DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::Id)
        .filter(webhook_event::Column::Id.is_in(ids))
        .filter(webhook_event::Column::Outcome.ne(Outcome::Failed))
        .into_tuple()
        .all(db)
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
