//! The reconciler: drift heals itself (DESIGN, Flow 3).
//!
//! Every `RECONCILE_EVERY` (5 minutes unless told; `0` turns it off) one cycle:
//! 1. recovers missed events ([`events`]): lists Stripe's events of the handled types since
//!    its cursor that have not been delivered everywhere, a page at a time and at most
//!    [`events::CYCLE_CAP`] a cycle, and applies each one not recorded yet through the same
//!    pipeline as a delivery (exactly-once rests on the same event-id insert); an event that
//!    keeps failing is set aside for an operator;
//! 2. compares a slice of customers with the API, oldest-checked first, sized so that every
//!    customer is compared within a day; heals them through `billing::sync` and records each
//!    field that differed ([`compare`]);
//! 3. empties the payloads of events older than `WEBHOOK_PAYLOAD_RETENTION` ([`retention`]),
//!    keeping their rows, so a late redelivery is still a duplicate;
//! 4. expires the replaced Checkout sessions Stripe would not expire when they were replaced
//!    ([`checkouts`]), so none stays payable.
//!
//! One runner at a time: on PostgreSQL a cycle holds a session-level advisory lock on a
//! connection of its own (so any replica may run it, one at a time); on SQLite the one
//! process runs it. Within a process, a cycle already under way is never started twice.
//! No transaction is held across a call to Stripe: every write is a short transaction of
//! the pipeline or of `billing::sync`, after its fetches.

mod checkouts;
pub mod compare;
pub mod drift;
pub mod events;
mod lock;
pub mod retention;
mod store;

use std::time::{Duration, Instant};

use sea_orm::{ActiveValue::Set, DbErr};
use tokio::sync::watch;

use crate::{
    db::{
        clock::{now, now_ms},
        entities::reconcile_run,
    },
    state::AppState,
};

pub use store::{last_run, last_success};

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// False when another runner held the lock, so this one did nothing.
    pub ran: bool,
    /// Events Stripe listed as not delivered everywhere, since the cursor.
    pub events_listed: usize,
    /// Of those, events that were not recorded yet (or had failed) and went through the pipeline.
    pub events_processed: usize,
    /// Events whose processing failed (recorded as failed; the next cycle tries again).
    pub events_failed: usize,
    /// Of those, events that have now failed too often and are set aside.
    pub events_set_aside: usize,
    /// Event payloads emptied for being older than the retention period.
    pub payloads_removed: usize,
    /// Customers re-read from the API and healed.
    pub customers_compared: usize,
    /// Fields found different from Stripe (each recorded in `drift_records`).
    pub drift: usize,
    /// Customers that could not be compared, with the reason.
    pub failed_customers: Vec<(String, String)>,
    /// Replaced Checkout sessions expired at Stripe (their first attempt had failed).
    pub checkouts_expired: usize,
    /// Replaced Checkout sessions Stripe still would not expire (the next cycle tries again).
    pub checkouts_not_expired: usize,
    /// How long the cycle took.
    pub elapsed: Duration,
}

impl Report {
    /// Whether everything the cycle tried went through.
    pub fn succeeded(&self) -> bool {
        self.ran && self.events_failed == 0 && self.failed_customers.is_empty()
    }
}

/// Why a cycle stopped.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("Stripe API error: {0}")]
    Stripe(#[from] ::stripe::StripeError),
}

/// Runs one cycle now (the background loop calls it; tests and operators may too).
/// Returns with `ran: false` if another runner holds the lock.
pub async fn run_cycle(state: &AppState) -> Result<Report, CycleError> {
    run_cycle_capped(state, events::CYCLE_CAP).await
}

/// [`run_cycle`], listing at most `cap` missed events.
pub async fn run_cycle_capped(state: &AppState, cap: usize) -> Result<Report, CycleError> {
    let started = Instant::now();
    let Some(guard) = lock::try_acquire(state).await? else {
        return Ok(Report::default());
    };
    let started_at_ms = now_ms();
    let result = cycle(state, cap).await.map(|mut report| {
        report.ran = true;
        report
    });
    // Recorded while the lock is still held, so recorded cycles never overlap.
    let run = run_row(started_at_ms, &result);
    if let Err(e) = store::record_run(&state.db, run).await {
        tracing::warn!(error = %e, "reconcile: could not record the cycle");
    }
    guard.release().await;
    match &result {
        Ok(r) => crate::metrics::reconcile_cycle(r.succeeded(), r.drift),
        Err(_) => crate::metrics::reconcile_cycle(false, 0),
    }
    let mut report = result?;
    report.elapsed = started.elapsed();
    if report.succeeded() {
        store::set_last_success(&state.db, now()).await?;
    }
    Ok(report)
}

/// The `reconcile_runs` row for a cycle that started at `started_at_ms` and ends now.
fn run_row(started_at_ms: i64, result: &Result<Report, CycleError>) -> reconcile_run::ActiveModel {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let (succeeded, events, customers, drift, error) = match result {
        Ok(r) => (
            r.succeeded(),
            count(r.events_processed),
            count(r.customers_compared),
            count(r.drift),
            r.failed_customers
                .first()
                .map(|(customer, why)| format!("{customer}: {why}")),
        ),
        Err(e) => (false, 0, 0, 0, Some(e.to_string())),
    };
    reconcile_run::ActiveModel {
        runner: Set(crate::db::process_name().to_owned()),
        started_at_ms: Set(started_at_ms),
        finished_at_ms: Set(now_ms()),
        succeeded: Set(succeeded),
        events_processed: Set(events),
        customers_compared: Set(customers),
        drift: Set(drift),
        error: Set(error),
        ..Default::default()
    }
}

async fn cycle(state: &AppState, cap: usize) -> Result<Report, CycleError> {
    let mut report = Report::default();
    events::recover(state, &mut report, cap).await?;
    compare::compare_slice(state, &mut report).await?;
    report.payloads_removed =
        retention::remove_old_payloads(&state.db, state.config.webhook_payload_retention).await?;
    checkouts::expire_replaced(state, &mut report).await?;
    Ok(report)
}

/// The background loop: a cycle every `RECONCILE_EVERY` until `stop` turns true (or its
/// sender is gone). A cycle under way when the server stops is dropped: its transactions
/// roll back and its lock's connection closes.
pub async fn run_every(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    // Soon after start (to catch what was missed while down), but not before the listener
    // serves: in simulated mode "Stripe" is this very app.
    let mut wait = every.min(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        wait = every;
        tokio::select! {
            result = run_cycle(&state) => log(result),
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

fn log(result: Result<Report, CycleError>) {
    match result {
        Ok(r) if !r.ran => tracing::debug!("reconcile: another runner holds the lock"),
        Ok(r) => {
            let level_warn = !r.succeeded() || r.drift > 0;
            let msg = "reconcile cycle";
            if level_warn {
                tracing::warn!(
                    events_processed = r.events_processed,
                    events_failed = r.events_failed,
                    customers = r.customers_compared,
                    drift = r.drift,
                    failed_customers = r.failed_customers.len(),
                    elapsed_ms = r.elapsed.as_millis() as u64,
                    "{msg}"
                );
            } else {
                tracing::debug!(
                    events_processed = r.events_processed,
                    customers = r.customers_compared,
                    elapsed_ms = r.elapsed.as_millis() as u64,
                    "{msg}"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "reconcile cycle failed"),
    }
}
