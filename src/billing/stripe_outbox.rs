//! The changes Billfold owes Stripe, through an outbox: a feature never calls Stripe to
//! update a customer; it queues the change ([`queue_customer_email`]) in the transaction of
//! the change that causes it, and the task here ([`run`]) sends it, on any replica (a row is
//! claimed by one), retried with back-off while Stripe is unreachable, busy or failing, and
//! recorded as failed when Stripe refuses it for good.
//!
//! One row per target (`customer_email:cus_…`). The value is read when the row is sent, so it
//! is always the newest; a change queued while an attempt is under way bumps the row's
//! generation, and that attempt then leaves the row queued for the next one. Ten changes in a
//! minute are one or two requests, never ten.

use std::time::Duration;

use ::stripe::StripeError;
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tokio::sync::watch;

use super::stripe_errors::send_idempotent;
use crate::{
    db::{
        begin_write, clock,
        entities::{organization, stripe_customer, stripe_outbox as row},
    },
    state::AppState,
};

pub const QUEUED: &str = "queued";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// How often the outbox is read when nothing wakes the task.
pub const POLL: Duration = Duration::from_secs(2);

/// How long a replica's claim holds: longer than a request to Stripe with its quick retries.
const CLAIM_SECS: i64 = 120;

/// The waits after each temporary failure, in seconds (30 s up to 4 h, about 8 h in all);
/// once they run out the change is recorded as failed (and shown on the operators' page).
const BACKOFF_SECS: [i64; 9] = [30, 60, 120, 300, 900, 1800, 3600, 7200, 14_400];

/// Rows read at a time.
const BATCH: u64 = 20;

/// What a row changes in Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The customer's `email`: its organisation's billing address (receipts and invoices go
    /// there).
    CustomerEmail,
    /// The quantity of the customer's per-seat subscription: its organisation's seat count,
    /// under the catalogue's seat policy ([`super::seats`]).
    SeatQuantity,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CustomerEmail => "customer_email",
            Kind::SeatQuantity => "seat_quantity",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::CustomerEmail, Kind::SeatQuantity]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Queues "the customer's email is its billing address now" for every live customer of
/// `user_id`'s personal organisation (one per mode), whose billing address is the user's.
/// Call inside the transaction that changes the address; wake the task
/// ([`AppState::stripe_updates`]) after the commit.
pub async fn queue_customer_email(conn: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    let customers: Vec<String> = stripe_customer::Entity::find()
        .select_only()
        .column(stripe_customer::Column::CustomerId)
        .inner_join(organization::Entity)
        .filter(organization::Column::PersonalOf.eq(user_id))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .into_tuple()
        .all(conn)
        .await?;
    for customer in customers {
        enqueue(conn, Kind::CustomerEmail, &customer, 0).await?;
    }
    Ok(())
}

/// Queues `kind` for `customer`, to go `delay_secs` from now: a new row, or the target's row
/// queued again with its generation bumped. A row already queued keeps an earlier time, so
/// changes within the delay ride on it (coalesced).
pub(super) async fn enqueue(
    conn: &impl ConnectionTrait,
    kind: Kind,
    customer: &str,
    delay_secs: i64,
) -> Result<(), DbErr> {
    use row::Column as C;
    let now = clock::now();
    let at = now + delay_secs;
    let next = Expr::case(
        Expr::col((row::Entity, C::Status))
            .eq(QUEUED)
            .and(Expr::col((row::Entity, C::NextAttemptAt)).lt(at)),
        Expr::col((row::Entity, C::NextAttemptAt)),
    )
    .finally(Expr::val(at));
    row::Entity::insert(row::ActiveModel {
        id: NotSet,
        key: Set(format!("{}:{customer}", kind.as_str())),
        kind: Set(kind.as_str().to_owned()),
        customer_id: Set(customer.to_owned()),
        generation: Set(1),
        status: Set(QUEUED.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(at),
        claimed_by: Set(None),
        claimed_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        done_at: Set(None),
        window_started_at: Set(None),
        window_count: Set(0),
    })
    .on_conflict(
        OnConflict::column(C::Key)
            .value(
                C::Generation,
                Expr::col((row::Entity, C::Generation)).add(1),
            )
            .value(C::Status, QUEUED)
            .value(C::Attempts, 0)
            .value(C::NextAttemptAt, next)
            .value(C::LastError, Option::<String>::None)
            .value(C::UpdatedAt, now)
            .value(C::DoneAt, Option::<i64>::None)
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %e, "stripe updates: could not read the outbox");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = state.stripe_updates.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends every row due now that no live replica holds. Returns how many were attempted.
pub async fn deliver_due(state: &AppState) -> Result<usize, DbErr> {
    let mut attempted = 0;
    loop {
        let now = clock::now();
        let due = row::Entity::find()
            .filter(row::Column::Status.eq(QUEUED))
            .filter(row::Column::NextAttemptAt.lte(now))
            .filter(unclaimed(now))
            .order_by_asc(row::Column::Id)
            .limit(BATCH)
            .all(&state.db)
            .await?;
        if due.is_empty() {
            return Ok(attempted);
        }
        let mut claimed_any = false;
        for due in due {
            if !claim(&state.db, &due).await? {
                continue;
            }
            claimed_any = true;
            attempted += 1;
            let outcome = attempt(state, &due).await?;
            crate::metrics::stripe_update(&due.kind, outcome.word());
            if let Outcome::Failed(error) = &outcome {
                tracing::warn!(id = due.id, kind = %due.kind, customer = %due.customer_id, %error, "stripe updates: refused, and will not be retried");
            }
            record(&state.db, &due, outcome).await?;
        }
        if !claimed_any {
            return Ok(attempted);
        }
    }
}

fn unclaimed(now: i64) -> Condition {
    Condition::any()
        .add(row::Column::ClaimedUntil.is_null())
        .add(row::Column::ClaimedUntil.lt(now))
}

/// Takes the row for this process if it is still queued, unclaimed and of the generation read:
/// one compare-and-set, so of replicas racing for a row exactly one gets it.
async fn claim(db: &DatabaseConnection, due: &row::Model) -> Result<bool, DbErr> {
    let now = clock::now();
    let txn = begin_write(db).await?;
    let taken = row::Entity::update_many()
        .col_expr(
            row::Column::ClaimedBy,
            Expr::value(crate::db::process_name()),
        )
        .col_expr(row::Column::ClaimedUntil, Expr::value(now + CLAIM_SECS))
        .filter(row::Column::Id.eq(due.id))
        .filter(row::Column::Status.eq(QUEUED))
        .filter(row::Column::Generation.eq(due.generation))
        .filter(unclaimed(now))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(taken.rows_affected == 1)
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Stripe has the value; `sent`: a request went out (it counts towards the hour's budget).
    Done {
        sent: bool,
    },
    /// Not yet, by the policy (the hour's budget spent, seats released at the period's end):
    /// tried at `at`, with `why`; no failure.
    Defer {
        at: i64,
        why: String,
    },
    Retry {
        at: i64,
        error: String,
    },
    Failed(String),
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::Defer { .. } => "deferred",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// One attempt at a claimed row: the newest value read, then sent with an idempotency key
/// that names the target and its generation.
async fn attempt(state: &AppState, due: &row::Model) -> Result<Outcome, DbErr> {
    let Some(kind) = Kind::parse(&due.kind) else {
        return Ok(Outcome::Failed(
            "a kind of change this version does not know".into(),
        ));
    };
    match kind {
        Kind::SeatQuantity => super::seats::attempt(state, due).await,
        Kind::CustomerEmail => {
            let Some(email) = billing_address(&state.db, &due.customer_id).await? else {
                // Nothing left to change: the customer (or its organisation) is gone.
                return Ok(Outcome::Done { sent: false });
            };
            let request =
                stripe_core::customer::UpdateCustomer::new(due.customer_id.as_str()).email(email);
            let key = format!(
                "billfold-{}-{}-{}",
                state.installation_id, due.key, due.generation
            );
            let sent = send_idempotent(state, &request, &key).await;
            crate::metrics::stripe_request("customers.update", &sent);
            Ok(match sent {
                Ok(_) => Outcome::Done { sent: true },
                Err(e) => after_failure(due, &e),
            })
        }
    }
}

/// The customer's organisation's billing address now ([`super::customer::billing_address`]).
async fn billing_address(db: &DatabaseConnection, customer: &str) -> Result<Option<String>, DbErr> {
    let Some((_, Some(org))) = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .find_also_related(organization::Entity)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    super::customer::billing_address(db, &org).await
}

/// A failure Stripe may get over (unreachable, rate limiting, its own errors, a request
/// under way with the same key) is tried again later; a refusal is final.
pub(super) fn after_failure(due: &row::Model, e: &StripeError) -> Outcome {
    let error = match e {
        StripeError::Stripe(err, status) => format!(
            "Stripe answered {status}: {}",
            err.message.as_deref().unwrap_or("no message")
        ),
        other => other.to_string(),
    };
    let temporary = match e {
        StripeError::Stripe(_, status) => matches!(status, 409 | 429) || *status >= 500,
        _ => true,
    };
    if !temporary {
        return Outcome::Failed(error);
    }
    match BACKOFF_SECS.get(usize::try_from(due.attempts).unwrap_or(0)) {
        Some(wait) => Outcome::Retry {
            at: clock::now() + wait,
            error,
        },
        None => Outcome::Failed(format!(
            "gave up after {} attempts: {error}",
            due.attempts + 1
        )),
    }
}

/// Records an attempt. If a newer change came in meanwhile (the generation moved), only the
/// claim is released: the row stays queued for the newer value.
async fn record(db: &DatabaseConnection, due: &row::Model, outcome: Outcome) -> Result<(), DbErr> {
    use row::Column as C;
    let now = clock::now();
    let txn = begin_write(db).await?;
    let mut update = row::Entity::update_many()
        .col_expr(C::ClaimedBy, Expr::value(Option::<String>::None))
        .col_expr(C::ClaimedUntil, Expr::value(Option::<i64>::None))
        .col_expr(C::UpdatedAt, Expr::value(now));
    if !matches!(outcome, Outcome::Defer { .. }) {
        update = update.col_expr(C::Attempts, Expr::col(C::Attempts).add(1));
    }
    let sent = matches!(outcome, Outcome::Done { sent: true });
    update = match outcome {
        Outcome::Done { .. } => update
            .col_expr(C::Status, Expr::value(DONE))
            .col_expr(C::DoneAt, Expr::value(now))
            .col_expr(C::LastError, Expr::value(Option::<String>::None)),
        Outcome::Defer { at, why } => update
            .col_expr(C::NextAttemptAt, Expr::value(at))
            .col_expr(C::LastError, Expr::value(why)),
        Outcome::Retry { at, error } => update
            .col_expr(C::NextAttemptAt, Expr::value(at))
            .col_expr(C::LastError, Expr::value(error)),
        Outcome::Failed(error) => update
            .col_expr(C::Status, Expr::value(FAILED))
            .col_expr(C::LastError, Expr::value(error)),
    };
    let closed = update
        .filter(C::Id.eq(due.id))
        .filter(C::Generation.eq(due.generation))
        .exec(&*txn)
        .await?;
    if closed.rows_affected == 0 {
        row::Entity::update_many()
            .col_expr(C::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(C::ClaimedUntil, Expr::value(Option::<i64>::None))
            .filter(C::Id.eq(due.id))
            .exec(&*txn)
            .await?;
    }
    if sent {
        // The hour's count of updates sent (whatever generation the row is at now): a new
        // hour starts the count again.
        let fresh = due
            .window_started_at
            .is_none_or(|start| now - start >= super::seats::BUDGET_WINDOW_SECS);
        let count = if fresh {
            row::Entity::update_many()
                .col_expr(C::WindowStartedAt, Expr::value(now))
                .col_expr(C::WindowCount, Expr::value(1))
        } else {
            row::Entity::update_many().col_expr(C::WindowCount, Expr::col(C::WindowCount).add(1))
        };
        count.filter(C::Id.eq(due.id)).exec(&*txn).await?;
    }
    txn.commit().await
}

/// The newest rows, for the operators' page.
pub async fn newest(db: &DatabaseConnection, limit: u64) -> Result<Vec<row::Model>, DbErr> {
    row::Entity::find()
        .order_by_desc(row::Column::UpdatedAt)
        .order_by_desc(row::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
