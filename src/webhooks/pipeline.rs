//! What happens to a verified, parsed delivery: record → apply → record the outcome, in one
//! transaction, exactly once per event id.
//!
//! The event id is the primary key of `webhook_events`, and the transaction's first
//! statement inserts it. A second delivery of the same event (even a concurrent one, even
//! on another replica) cannot insert it again: on PostgreSQL its insert waits for the first
//! transaction and then finds the row; on SQLite writers take turns. Only an event whose
//! last attempt failed is claimed again.
//!
//! The pipeline runs one event in a transaction of its own ([`process`]) or inside a
//! transaction its caller holds ([`record_and_apply`]); it knows nothing of who batches.

use std::collections::HashSet;

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryTrait,
};

use super::event::{self, ApplyError, Envelope, Kind, ObjectFrom};
use crate::{
    billing::sync::{self, Applied, FetchLoop, Fetched, MayNeedFetch, SyncError, Wanted},
    db::{clock::now, entities::webhook_event},
};

pub use crate::db::entities::webhook_event::Outcome;

impl From<Applied> for Outcome {
    fn from(a: Applied) -> Self {
        match a {
            Applied::Applied => Outcome::Applied,
            Applied::Stale => Outcome::Stale,
            Applied::Ignored | Applied::Refused(_) => Outcome::Ignored,
        }
    }
}

/// Where events are applied: the database, the Stripe API for re-fetches, and the mode
/// this app runs in.
#[derive(Clone, Copy)]
pub struct Pipeline<'a> {
    pub db: &'a DatabaseConnection,
    pub stripe: &'a ::stripe::Client,
    pub livemode: bool,
}

/// A Stripe delivery, or an operator's replay of a recorded event (which re-applies it
/// whatever it did before; the ordering rules still decide what it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Webhook,
    Replay,
}

/// A processed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub event_id: String,
    pub event_type: String,
    pub outcome: Outcome,
}

impl Processed {
    pub(super) fn of(envelope: &Envelope, outcome: Outcome) -> Processed {
        Processed {
            event_id: envelope.id.clone(),
            event_type: envelope.event_type.clone(),
            outcome,
        }
    }
}

/// Why an event was not processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Applying failed; recorded as `failed` so a redelivery applies it (answered with 500).
    #[error("event {event_id} failed: {error}")]
    Failed { event_id: String, error: String },
}

/// Processes one event in a transaction of its own.
///
/// An event Stripe refuses a request for in a way no retry changes (see
/// [`sync::refused_permanently`]) is recorded `failed` with the reason and answered as
/// processed: a 5xx would only have Stripe deliver it again for three days, to the same
/// refusal, and then disable the endpoint. Once the key is fixed, a replay applies it.
pub async fn process(
    p: Pipeline<'_>,
    envelope: &Envelope,
    delivery: Delivery,
) -> Result<Processed, ProcessError> {
    match attempt(p, envelope, delivery).await {
        Ok(outcome) => Ok(Processed::of(envelope, outcome)),
        Err(error) => match error.refusal() {
            Some(reason) => match record_failure(p.db, envelope, &reason, true).await {
                Ok(()) => {
                    tracing::error!(event_id = %envelope.id, %reason, "Stripe refused a request an event needs; recorded as failed until replayed");
                    Ok(Processed::of(envelope, Outcome::Failed))
                }
                Err(e) => Err(ProcessError::Failed {
                    event_id: envelope.id.clone(),
                    error: format!("{reason}; and recording it failed: {e}"),
                }),
            },
            None => Err(failed(p.db, envelope, &error).await),
        },
    }
}

/// Records a failed attempt on its own, since the attempt's transaction is gone, so that
/// the failure survives with the attempt counted.
pub(super) async fn failed(
    db: &DatabaseConnection,
    envelope: &Envelope,
    error: &AttemptError,
) -> ProcessError {
    let unreachable = error.is_unreachable();
    let error = error.to_string();
    // With no connection to be had, recording the failure would only wait as long again
    // before the answer; the redelivery is what matters, and it comes either way.
    if unreachable {
        return ProcessError::Failed {
            event_id: envelope.id.clone(),
            error,
        };
    }
    if let Err(e) = record_failure(db, envelope, &error, false).await {
        tracing::error!(event_id = %envelope.id, error = %e, "could not record a failed event");
    }
    ProcessError::Failed {
        event_id: envelope.id.clone(),
        error,
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl From<SyncError> for AttemptError {
    fn from(e: SyncError) -> Self {
        AttemptError::Apply(ApplyError::Sync(e))
    }
}

impl AttemptError {
    /// The database's own error, wherever in applying it came from.
    fn db(&self) -> Option<&sea_orm::DbErr> {
        match self {
            AttemptError::Db(e) | AttemptError::Apply(ApplyError::Sync(SyncError::Db(e))) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// Stripe's permanent refusal of a request applying needs, as the event records it.
    fn refusal(&self) -> Option<String> {
        match self {
            AttemptError::Apply(ApplyError::Sync(SyncError::Stripe(e))) => sync::refusal(e),
            _ => None,
        }
    }

    /// The database could not be reached at all (no connection to be had in time): every
    /// other attempt now would fail the same way, after the same wait.
    pub(super) fn is_unreachable(&self) -> bool {
        self.db().is_some_and(crate::db::unreachable)
    }

    /// The transaction lost to a concurrent one (a deadlock): running it again is the cure,
    /// not a 5xx and a redelivery.
    pub(super) fn lost_to_concurrency(&self) -> bool {
        self.db().is_some_and(crate::db::lost_to_concurrency)
    }
}

impl MayNeedFetch for AttemptError {
    fn wanted(&self) -> Option<&Wanted> {
        match self {
            AttemptError::Apply(ApplyError::Sync(e)) => e.wanted(),
            _ => None,
        }
    }
}

/// One event in a transaction of its own; what it needs from Stripe is fetched between
/// transactions, never inside one (see [`FetchLoop`]).
async fn attempt(
    p: Pipeline<'_>,
    envelope: &Envelope,
    delivery: Delivery,
) -> Result<Outcome, AttemptError> {
    let mut lost = 0;
    loop {
        match attempt_once(p, envelope, delivery).await {
            Err(e) if e.lost_to_concurrency() && lost < MAX_CONCURRENCY_RETRIES => {
                lost += 1;
                tracing::debug!(event_id = %envelope.id, error = %e, "transaction lost to a concurrent one; running it again");
            }
            result => return result,
        }
    }
}

/// How often one event's transaction runs again after losing to a concurrent one.
const MAX_CONCURRENCY_RETRIES: u32 = 3;

async fn attempt_once(
    p: Pipeline<'_>,
    envelope: &Envelope,
    delivery: Delivery,
) -> Result<Outcome, AttemptError> {
    let mut writes = FetchLoop::default();
    loop {
        let txn = crate::db::begin_write(p.db).await?;
        let result =
            record_and_apply(&*txn, writes.fetched(), p.livemode, envelope, delivery).await;
        if let Some(outcome) = writes.settle(txn, result, p.stripe).await? {
            return Ok(outcome);
        }
    }
}

/// The part of an attempt that runs inside the caller's transaction: claim the event id,
/// apply the event, leave the row with its outcome. Nothing here commits.
pub(super) async fn record_and_apply(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    livemode: bool,
    envelope: &Envelope,
    delivery: Delivery,
) -> Result<Outcome, AttemptError> {
    let expected = expected_outcome(envelope, livemode);
    let claimed = claim(conn, envelope, expected, now(), delivery).await?;
    if !claimed {
        return Ok(Outcome::Duplicate);
    }
    apply_claimed(conn, fetched, livemode, envelope).await
}

/// Inserts the rows of events never seen before, all in one statement, as [`claim`] would
/// one by one: the ids inserted, each now claimed by this transaction (see
/// [`apply_claimed`]). An event seen before is left to [`record_and_apply`], which decides
/// whether to take it over, in its turn.
pub(super) async fn claim_new<'e>(
    conn: &impl ConnectionTrait,
    events: impl IntoIterator<Item = (&'e Envelope, bool)>,
) -> Result<HashSet<String>, sea_orm::DbErr> {
    use webhook_event::Column as C;
    let now = now();
    let rows: Vec<webhook_event::ActiveModel> = events
        .into_iter()
        .map(|(envelope, livemode)| {
            event_row(envelope, expected_outcome(envelope, livemode), None, now)
        })
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let mut insert = webhook_event::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(C::Id).do_nothing().to_owned())
        .into_query();
    insert.returning_col(C::Id);
    let backend = conn.get_database_backend();
    conn.query_all_raw(backend.build(&insert))
        .await?
        .into_iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

/// Applies an event this transaction has claimed (its row holds the expected outcome) and
/// leaves the row with the outcome applying gave.
pub(super) async fn apply_claimed(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    livemode: bool,
    envelope: &Envelope,
) -> Result<Outcome, AttemptError> {
    let expected = expected_outcome(envelope, livemode);
    let (applied, from) = match (expected, Kind::of(&envelope.event_type)) {
        (Outcome::Applied, Some(kind)) => event::apply(conn, fetched, kind, envelope).await?,
        (other, _) => return Ok(other),
    };
    let reason = match applied {
        Applied::Refused(reason) => Some(reason),
        _ => None,
    };
    let outcome = Outcome::from(applied);
    let from_api = from == ObjectFrom::Api;
    if outcome != expected || reason.is_some() || from_api {
        set_outcome(conn, &envelope.id, outcome, reason, from_api).await?;
    }
    Ok(outcome)
}

/// The outcome an event's row is inserted with: right unless applying says otherwise, and
/// the row never outlives the transaction if applying fails. One write saved per event.
fn expected_outcome(envelope: &Envelope, livemode: bool) -> Outcome {
    match (
        envelope.livemode == livemode,
        Kind::of(&envelope.event_type),
    ) {
        (false, _) => Outcome::ModeMismatch,
        (true, None) => Outcome::Ignored,
        (true, Some(_)) => Outcome::Applied,
    }
}

/// A new `webhook_events` row for a delivery.
fn event_row(
    envelope: &Envelope,
    outcome: Outcome,
    error: Option<String>,
    now: i64,
) -> webhook_event::ActiveModel {
    webhook_event::ActiveModel {
        id: Set(envelope.id.clone()),
        event_type: Set(envelope.event_type.clone()),
        livemode: Set(envelope.livemode),
        created: Set(envelope.created),
        api_version: Set(envelope.api_version.clone()),
        received_at: Set(now),
        processed_at: Set(Some(now)),
        outcome: Set(outcome),
        error: Set(error),
        attempts: Set(1),
        applied_from_api: Set(false),
        payload: Set(envelope.stored_payload().to_owned()),
        stripe_refused: Set(false),
        payload_removed_at: Set(None),
    }
}

/// Records the event and claims it for this attempt: true if this attempt should apply it.
async fn claim(
    conn: &impl ConnectionTrait,
    envelope: &Envelope,
    outcome: Outcome,
    now: i64,
    delivery: Delivery,
) -> Result<bool, sea_orm::DbErr> {
    use webhook_event::Column as C;
    let row = event_row(envelope, outcome, None, now);
    let inserted = webhook_event::Entity::insert(row)
        .on_conflict(OnConflict::column(C::Id).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    if inserted > 0 {
        return Ok(true);
    }
    // Seen before. A Stripe redelivery only takes over a failed (or set-aside) attempt;
    // the condition is in the UPDATE itself so two redeliveries cannot both take it.
    let mut retake = webhook_event::Entity::update_many()
        .col_expr(C::Outcome, Expr::value(outcome))
        .col_expr(C::Error, Expr::value(Option::<String>::None))
        .col_expr(C::StripeRefused, Expr::value(false))
        .col_expr(C::ProcessedAt, Expr::value(now))
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .filter(C::Id.eq(envelope.id.as_str()));
    if delivery == Delivery::Webhook {
        retake = retake.filter(C::Outcome.is_in([Outcome::Failed, Outcome::SetAside]));
    }
    Ok(retake.exec(conn).await?.rows_affected > 0)
}

async fn set_outcome(
    conn: &impl ConnectionTrait,
    event_id: &str,
    outcome: Outcome,
    reason: Option<&str>,
    from_api: bool,
) -> Result<(), sea_orm::DbErr> {
    webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::Outcome, Expr::value(outcome))
        .col_expr(webhook_event::Column::Error, Expr::value(reason))
        .col_expr(webhook_event::Column::AppliedFromApi, Expr::value(from_api))
        .filter(webhook_event::Column::Id.eq(event_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Writes a failed attempt: a new row, or one more attempt on a row that was failed (or set
/// aside) already. A row another attempt has since applied is left alone. `refused`: Stripe
/// refused a request in a way no retry changes (see [`sync::refused_permanently`]).
async fn record_failure(
    db: &DatabaseConnection,
    envelope: &Envelope,
    error: &str,
    refused: bool,
) -> Result<(), sea_orm::DbErr> {
    use webhook_event::Column as C;
    let now = now();
    let mut row = event_row(envelope, Outcome::Failed, Some(error.to_owned()), now);
    row.stripe_refused = Set(refused);
    let txn = crate::db::begin_write(db).await?;
    webhook_event::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .value(C::Outcome, Expr::value(Outcome::Failed))
                .value(C::Error, Expr::value(error))
                .value(C::StripeRefused, Expr::value(refused))
                .value(C::ProcessedAt, Expr::value(now))
                .value(
                    C::Attempts,
                    Expr::col((webhook_event::Entity, C::Attempts)).add(1),
                )
                .action_and_where(
                    Expr::col((webhook_event::Entity, C::Outcome))
                        .is_in([Outcome::Failed, Outcome::SetAside]),
                )
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await
}
