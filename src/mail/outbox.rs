//! `mail_outbox`: every mail is a row first. [`enqueue`] runs inside the transaction of the
//! change that causes the mail; its key makes it unique, so a cause seen twice (an event
//! delivered again, a replay, a retried request) queues nothing more. The sender claims due
//! rows one at a time ([`claim`]), so on several replicas each row is sent by one of them.

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::Kind;
use crate::db::{clock, entities::mail_outbox};

pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

/// How long a replica's claim on a row holds: longer than one SMTP conversation may take, so
/// a claim only lapses when its replica died mid-send.
pub const CLAIM_SECS: i64 = 120;

/// The longest key: keys are made by the app (`payment_failed:in_…`), never taken from a
/// request, but bounded all the same.
const MAX_KEY: usize = 200;

/// A mail to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// What makes it unique, e.g. `verify_email:7:1765000000`.
    pub key: String,
    pub kind: Kind,
    pub user_id: Option<i64>,
    pub to: String,
    /// What the message needs besides the recipient (no secrets).
    pub params: serde_json::Value,
}

/// Queues `mail` unless one with its key is queued or sent already. Returns whether it was
/// queued now. Call inside the transaction of the change that causes it.
pub async fn enqueue(db: &impl ConnectionTrait, mail: NewMail) -> Result<bool, DbErr> {
    let key: String = mail.key.chars().take(MAX_KEY).collect();
    let now = clock::now();
    let inserted = mail_outbox::Entity::insert(mail_outbox::ActiveModel {
        id: NotSet,
        key: Set(key),
        kind: Set(mail.kind.as_str().to_owned()),
        user_id: Set(mail.user_id),
        to_address: Set(mail.to),
        params: Set(mail.params.to_string()),
        status: Set(QUEUED.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_by: Set(None),
        claimed_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(mail_outbox::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await;
    match inserted {
        Ok(rows) => Ok(rows > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Rows due now and not claimed by a live replica: the oldest first, at most `limit`.
pub async fn due(db: &DatabaseConnection, limit: u64) -> Result<Vec<mail_outbox::Model>, DbErr> {
    let now = clock::now();
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.eq(QUEUED))
        .filter(mail_outbox::Column::NextAttemptAt.lte(now))
        .filter(unclaimed(now))
        .order_by_asc(mail_outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

fn unclaimed(now: i64) -> Condition {
    Condition::any()
        .add(mail_outbox::Column::ClaimedUntil.is_null())
        .add(mail_outbox::Column::ClaimedUntil.lt(now))
}

/// Takes the row for `replica` if it is still queued and unclaimed: one compare-and-set, so of
/// replicas racing for a row exactly one gets it.
pub async fn claim(db: &impl ConnectionTrait, id: i64, replica: &str) -> Result<bool, DbErr> {
    let now = clock::now();
    let taken = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::ClaimedBy, Expr::value(replica))
        .col_expr(
            mail_outbox::Column::ClaimedUntil,
            Expr::value(now + CLAIM_SECS),
        )
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(mail_outbox::Column::Status.eq(QUEUED))
        .filter(unclaimed(now))
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// What became of a claimed row's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Try again at `at` (unix seconds).
    Retry {
        at: i64,
        error: String,
    },
    Failed {
        error: String,
    },
}

/// Records an attempt on a row this replica claimed.
pub async fn record(db: &impl ConnectionTrait, id: i64, outcome: Outcome) -> Result<(), DbErr> {
    let now = clock::now();
    let mut update = mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::Attempts,
            Expr::col(mail_outbox::Column::Attempts).add(1),
        )
        .col_expr(
            mail_outbox::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            mail_outbox::Column::ClaimedUntil,
            Expr::value(Option::<i64>::None),
        );
    update = match outcome {
        Outcome::Sent => update
            .col_expr(mail_outbox::Column::Status, Expr::value(SENT))
            .col_expr(mail_outbox::Column::SentAt, Expr::value(now)),
        Outcome::Retry { at, error } => update
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(at))
            .col_expr(mail_outbox::Column::LastError, Expr::value(error)),
        Outcome::Failed { error } => update
            .col_expr(mail_outbox::Column::Status, Expr::value(FAILED))
            .col_expr(mail_outbox::Column::LastError, Expr::value(error)),
    };
    update
        .filter(mail_outbox::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The newest rows, for the operators' page.
pub async fn newest(
    db: &DatabaseConnection,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<mail_outbox::Model>, DbErr> {
    let mut query = mail_outbox::Entity::find().order_by_desc(mail_outbox::Column::Id);
    if let Some(status) = status {
        query = query.filter(mail_outbox::Column::Status.eq(status));
    }
    query.limit(limit).all(db).await
}
