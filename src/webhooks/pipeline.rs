//! What happens to a verified delivery: parse → record → apply → record the outcome, in one
//! transaction, exactly once per event id.
//!
//! The event id is the primary key of `webhook_events`, and the transaction's first
//! statement inserts it. A second delivery of the same event (even a concurrent one, even
//! on another replica) cannot insert it again: on PostgreSQL its insert waits for the first
//! transaction and then finds the row; on SQLite writers take turns. Only an event whose
//! last attempt failed is claimed again.

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use axum::body::Bytes;

use super::{
    event::{self, ApplyError, Envelope, Kind, NotAnEvent},
    group_commit,
};
use crate::{
    billing::sync::{self, Applied},
    db::entities::webhook_event,
};

/// What became of a delivery; stored in `webhook_events.outcome` and sent back to Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Seen before and already dealt with: nothing was applied again.
    Duplicate,
    /// Older than what the rows already show: recorded, not applied.
    Stale,
    /// A type Billfold does not act on, or about something it does not keep.
    Ignored,
    Failed,
    /// A live event at a test-mode app, or the other way round.
    ModeMismatch,
    /// Only ever inside an uncommitted transaction.
    Processing,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
            Outcome::ModeMismatch => "mode_mismatch",
            Outcome::Processing => "processing",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Stale,
            Outcome::Ignored,
            Outcome::Failed,
            Outcome::ModeMismatch,
            Outcome::Processing,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Applied> for Outcome {
    fn from(a: Applied) -> Self {
        match a {
            Applied::Applied => Outcome::Applied,
            Applied::Stale => Outcome::Stale,
            Applied::Ignored => Outcome::Ignored,
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

/// Why an event was not processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The body is not a Stripe event (answered with 400).
    #[error(transparent)]
    NotAnEvent(#[from] NotAnEvent),
    /// Applying failed; recorded as `failed` so a redelivery applies it (answered with 500).
    #[error("event {event_id} failed: {error}")]
    Failed { event_id: String, error: String },
}

/// Processes one delivery end to end.
pub async fn process(
    p: Pipeline<'_>,
    body: &[u8],
    delivery: Delivery,
) -> Result<Processed, ProcessError> {
    let envelope = Envelope::parse(body)?;
    let event_id = envelope.id.clone();
    let event_type = envelope.event_type.clone();
    match attempt(p, body, envelope, delivery).await {
        Ok(outcome) => Ok(Processed {
            event_id,
            event_type,
            outcome,
        }),
        Err(error) => Err(failed(p.db, body, event_id, &event_type, &error).await),
    }
}

/// Processes a delivery from Stripe through its database's group commit (see
/// [`super::group_commit`]), or on its own should no writer take it.
pub async fn process_webhook(p: Pipeline<'_>, body: Bytes) -> Result<Processed, ProcessError> {
    if let Some(key) = group_commit::database_key(p.db) {
        let envelope = Envelope::parse(&body)?;
        let job = group_commit::Job::new(p, body.clone(), envelope);
        if let Some(result) = group_commit::submit(key, job).await {
            return result;
        }
    }
    process(p, &body, Delivery::Webhook).await
}

/// Records a failed attempt on its own, since the attempt's transaction is gone, so that
/// the failure survives with the attempt counted.
pub(super) async fn failed(
    db: &DatabaseConnection,
    body: &[u8],
    event_id: String,
    event_type: &str,
    error: &AttemptError,
) -> ProcessError {
    let error = error.to_string();
    if let Err(e) = record_failure(db, body, &event_id, event_type, &error).await {
        tracing::error!(event_id = %event_id, error = %e, "could not record a failed event");
    }
    ProcessError::Failed { event_id, error }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

async fn attempt(
    p: Pipeline<'_>,
    body: &[u8],
    envelope: Envelope,
    delivery: Delivery,
) -> Result<Outcome, AttemptError> {
    let txn = sync::begin_write(p.db).await?;
    match record_and_apply(&*txn, p.stripe, p.livemode, body, envelope, delivery).await {
        Ok(outcome) => {
            txn.commit().await?;
            Ok(outcome)
        }
        Err(e) => {
            txn.rollback().await?;
            Err(e)
        }
    }
}

/// The part of an attempt that runs inside the caller's transaction: claim the event id,
/// apply the event, leave the row with its outcome. Nothing here commits.
pub(super) async fn record_and_apply(
    conn: &impl sea_orm::ConnectionTrait,
    stripe: &::stripe::Client,
    livemode: bool,
    body: &[u8],
    envelope: Envelope,
    delivery: Delivery,
) -> Result<Outcome, AttemptError> {
    let expected = expected_outcome(&envelope, livemode);
    let claimed = claim(conn, body, &envelope, expected, sync::now(), delivery).await?;
    if !claimed {
        return Ok(Outcome::Duplicate);
    }
    apply_claimed(conn, stripe, livemode, envelope).await
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

/// Applies an event this attempt has claimed, whose row carries [`expected_outcome`], and
/// corrects the row if the outcome differs.
async fn apply_claimed(
    conn: &impl sea_orm::ConnectionTrait,
    stripe: &::stripe::Client,
    livemode: bool,
    envelope: Envelope,
) -> Result<Outcome, AttemptError> {
    let expected = expected_outcome(&envelope, livemode);
    let kind = Kind::of(&envelope.event_type);
    let event_id = envelope.id.clone();
    let outcome = match (expected, kind) {
        (Outcome::Applied, Some(kind)) => {
            Outcome::from(event::apply(conn, stripe, kind, envelope).await?)
        }
        (other, _) => other,
    };
    if outcome != expected {
        set_outcome(conn, &event_id, outcome).await?;
    }
    Ok(outcome)
}

/// A new `webhook_events` row for a delivery.
fn event_row(
    body: &[u8],
    envelope: &Envelope,
    outcome: Outcome,
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
        outcome: Set(outcome.as_str().to_owned()),
        error: Set(None),
        attempts: Set(1),
        payload: Set(String::from_utf8_lossy(body).into_owned()),
    }
}

/// Records the event and claims it for this attempt: true if this attempt should apply it.
async fn claim(
    conn: &impl sea_orm::ConnectionTrait,
    body: &[u8],
    envelope: &Envelope,
    outcome: Outcome,
    now: i64,
    delivery: Delivery,
) -> Result<bool, sea_orm::DbErr> {
    use webhook_event::Column as C;
    let row = event_row(body, envelope, outcome, now);
    let inserted = webhook_event::Entity::insert(row)
        .on_conflict(OnConflict::column(C::Id).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    if inserted > 0 {
        return Ok(true);
    }
    // Seen before. A Stripe redelivery only takes over a failed attempt; the condition is
    // in the UPDATE itself so two redeliveries cannot both take it.
    let mut retake = webhook_event::Entity::update_many()
        .col_expr(C::Outcome, Expr::value(outcome.as_str()))
        .col_expr(C::Error, Expr::value(Option::<String>::None))
        .col_expr(C::ProcessedAt, Expr::value(now))
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .filter(C::Id.eq(envelope.id.as_str()));
    if delivery == Delivery::Webhook {
        retake = retake
            .filter(C::Outcome.is_in([Outcome::Failed.as_str(), Outcome::Processing.as_str()]));
    }
    Ok(retake.exec(conn).await?.rows_affected > 0)
}

async fn set_outcome(
    conn: &impl sea_orm::ConnectionTrait,
    event_id: &str,
    outcome: Outcome,
) -> Result<(), sea_orm::DbErr> {
    webhook_event::Entity::update_many()
        .col_expr(
            webhook_event::Column::Outcome,
            Expr::value(outcome.as_str()),
        )
        .filter(webhook_event::Column::Id.eq(event_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Writes a failed attempt: a new row, or one more attempt on a row that was failed
/// already. A row another attempt has since applied is left alone.
async fn record_failure(
    db: &DatabaseConnection,
    body: &[u8],
    event_id: &str,
    event_type: &str,
    error: &str,
) -> Result<(), sea_orm::DbErr> {
    use webhook_event::Column as C;
    let Ok(envelope) = Envelope::parse(body) else {
        return Ok(());
    };
    let now = sync::now();
    let row = webhook_event::ActiveModel {
        id: Set(event_id.to_owned()),
        event_type: Set(event_type.to_owned()),
        livemode: Set(envelope.livemode),
        created: Set(envelope.created),
        api_version: Set(envelope.api_version.clone()),
        received_at: Set(now),
        processed_at: Set(Some(now)),
        outcome: Set(Outcome::Failed.as_str().to_owned()),
        error: Set(Some(error.to_owned())),
        attempts: Set(1),
        payload: Set(String::from_utf8_lossy(body).into_owned()),
    };
    let txn = sync::begin_write(db).await?;
    webhook_event::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .value(C::Outcome, Expr::value(Outcome::Failed.as_str()))
                .value(C::Error, Expr::value(error))
                .value(C::ProcessedAt, Expr::value(now))
                .value(
                    C::Attempts,
                    Expr::col((webhook_event::Entity, C::Attempts)).add(1),
                )
                .action_and_where(
                    Expr::col((webhook_event::Entity, C::Outcome))
                        .is_in([Outcome::Failed.as_str(), Outcome::Processing.as_str()]),
                )
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for o in [
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Stale,
            Outcome::Ignored,
            Outcome::Failed,
            Outcome::ModeMismatch,
            Outcome::Processing,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("nope"), None);
    }
}
