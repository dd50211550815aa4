//! The one writer of the billing tables: applies Stripe objects (from webhook events or
//! from the API) to the database so that it ends up equal to Stripe whatever order,
//! duplication or delay the events arrive in.
//!
//! Ordering: every synced row keeps a watermark, `stripe_event_at`, the `created` time of
//! the event (or the time of the API read) that last wrote it. An event older than the
//! watermark is stale and changes nothing. An event from the same second cannot be ordered
//! against the one that wrote the row, so the object is re-fetched from the API and that
//! truth is applied. A deleted subscription is a tombstone: nothing brings it back.
//!
//! Every `apply_*` is the same four steps — read the row's watermark, [`decide`], build the
//! row, and write it with [`write::upsert_guarded`] — and runs inside the caller's
//! transaction. Writes check the watermark in the `UPDATE`'s own `WHERE`
//! ([`write::newer_than`]), so two writers racing on one row cannot let the older one win.

mod alert;
mod checkout;
mod customer;
mod entitlements;
mod fetch;
mod invoice;
mod open_checkout;
mod payment_method;
mod price;
mod raw_list;
mod resync;
mod schedule;
mod subscription;
mod write;

pub use crate::db::write::{begin_write, WriteTxn};
pub use alert::{raise_alert, Alert, CUSTOMER_NOT_IN_ACCOUNT, SECOND_LIVE_SUBSCRIPTION};
pub use checkout::{apply_checkout_session, checkout_reference};
pub use customer::{
    apply_customer, apply_customer_deleted, link_customer, replace_customer, NewCustomer,
};
pub use entitlements::{apply_entitlements, EntitlementFacts};
pub use fetch::{FetchLoop, Fetched, FetchedObject, MayNeedFetch, Wanted};
pub use invoice::{apply_invoice, DELETED as INVOICE_DELETED};
pub use open_checkout::{checkout_expiry_done, checkout_expiry_failed, record_open_checkout};
pub use payment_method::apply_payment_method;
pub use price::{apply_price, apply_product};
pub use resync::{sync_all, sync_catalogue, sync_customer, SyncReport};
pub use schedule::{apply_schedule, ScheduleFacts};
pub use subscription::apply_subscription;

use sea_orm::DbErr;

/// Why an object could not be applied. Every kind is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("Stripe API error: {0}")]
    Stripe(#[from] ::stripe::StripeError),
    /// The write needs this object from the API first (see [`fetch`]): not a failure, a
    /// request to roll back, fetch, and run the write again.
    #[error("needs {0} from the Stripe API first")]
    NeedsFetch(Wanted),
    /// The rows kept moving while the objects a write needed were fetched.
    #[error("gave up after {0} fetches from the Stripe API; a row kept moving")]
    TooManyFetches(usize),
}

/// Whether Stripe said the object does not exist (as opposed to being unreachable).
fn is_missing(err: &::stripe::StripeError) -> bool {
    matches!(err, ::stripe::StripeError::Stripe(_, 404))
}

/// Whether Stripe refused the request in a way no retry changes: 401 (the key), 403 (a
/// restricted key without the permission), or 400 (a request it will never accept). Only
/// fixing the key (or the code) helps; 404 is [`is_missing`], and 409, 429 and 5xx pass.
pub fn refused_permanently(err: &::stripe::StripeError) -> bool {
    matches!(err, ::stripe::StripeError::Stripe(_, 400 | 401 | 403))
}

/// Stripe's refusal in a line an operator can act on: the status, Stripe's error type and
/// code, and its message (`None` for any other error).
pub fn refusal(err: &::stripe::StripeError) -> Option<String> {
    let ::stripe::StripeError::Stripe(e, status) = err else {
        return None;
    };
    if !refused_permanently(err) {
        return None;
    }
    let code = e.code.as_ref().map(|c| format!(", {}", c.as_str()));
    Some(format!(
        "Stripe refused a request this event needs (HTTP {status}, {}{}): {}",
        e.type_.as_str(),
        code.unwrap_or_default(),
        e.message.as_deref().unwrap_or("no message"),
    ))
}

/// The second an API read starts in, by the database's clock rather than this server's: a
/// server clock running ahead would stamp the read later than the events Stripe creates
/// after it, and drop them as stale. (On SQLite the database's clock is this machine's;
/// `billfold doctor` checks it against Stripe's.)
pub async fn read_clock(conn: &impl sea_orm::ConnectionTrait) -> Result<i64, DbErr> {
    use sea_orm::{DbBackend, Statement};
    let backend = conn.get_database_backend();
    let sql = match backend {
        // `clock_timestamp()`, not `now()`: the latter stands still inside a transaction.
        DbBackend::Postgres => {
            "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)"
        }
        _ => "SELECT CAST(strftime('%s', 'now') AS INTEGER)",
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("the database did not tell the time".into()))?;
    row.try_get_by_index::<i64>(0)
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The row now reflects the object.
    Applied,
    /// The row already reflects something newer (or the subscription is deleted).
    Stale,
    /// Nothing here is about anything Billfold keeps (e.g. a customer it does not know).
    Ignored,
    /// Deliberately not applied, for this reason (recorded with the event): e.g. a
    /// Checkout Session Billfold did not create.
    Refused(&'static str),
}

/// Where an object comes from, which decides how it is ordered against the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The object inside an event `created` at this unix second. A tie with the row's
    /// watermark re-fetches the object from the API.
    Event(i64),
    /// The object as an API read returned it; the second is taken *before* the request.
    /// Newer than any row stamped before that second. A row stamped in that second (or
    /// later: a test clock, a server clock behind Stripe's) may hold an event the read did
    /// not see, so the object is re-fetched rather than written over it.
    Api(i64),
    /// The object as the API returned it after the row stamped at this second was read:
    /// at least as new as whatever wrote that row, so it wins a tie.
    Refetch(i64),
}

impl Source {
    /// The watermark the written row gets.
    pub fn at(self) -> i64 {
        match self {
            Source::Event(t) | Source::Api(t) | Source::Refetch(t) => t,
        }
    }

    /// What a re-fetch made on this source's behalf, against a row stamped `watermark`,
    /// writes with: the later of the two seconds, so it replaces that row and no older one.
    pub fn refetched(self, watermark: Option<i64>) -> Source {
        Source::Refetch(watermark.map_or(self.at(), |w| w.max(self.at())))
    }
}

/// What to do with an object given the row's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply,
    Stale,
    Refetch,
}

/// The ordering rule, on its own: no row or an older one → apply. A newer row → stale for
/// an event or a re-fetch. The same second → re-fetch for an event (it cannot tell which of
/// two same-second changes came last). For an API read, a row of its second or later → re-fetch:
/// the read may predate an event of that second, and rows may be stamped ahead of this
/// server's clock (test clocks), which a re-sync must still heal.
pub fn decide(watermark: Option<i64>, source: Source) -> Decision {
    match (watermark, source) {
        (None, _) => Decision::Apply,
        (Some(w), s) if s.at() > w => Decision::Apply,
        (Some(_), Source::Api(_)) => Decision::Refetch,
        (Some(w), s) if s.at() < w => Decision::Stale,
        (Some(_), Source::Event(_)) => Decision::Refetch,
        (Some(_), Source::Refetch(_)) => Decision::Apply,
    }
}

/// What [`decide_or_refetch`] leaves to write: the source to write with and, after a
/// same-second tie, the API's copy (`None` if Stripe no longer has the object, so the
/// event's copy is the best truth left).
enum Plan<T> {
    Stale,
    Write { source: Source, fetched: Option<T> },
}

/// [`decide`], and the re-fetch it may ask for: `refetch(watermark)` looks the object up in
/// [`Fetched`] (`None`: Stripe no longer has it). What is written after a re-fetch is
/// ordered as [`Source::refetched`].
fn decide_or_refetch<T>(
    watermark: Option<i64>,
    source: Source,
    refetch: impl FnOnce(Option<i64>) -> Result<Option<T>, SyncError>,
) -> Result<Plan<T>, SyncError> {
    match decide(watermark, source) {
        Decision::Stale => Ok(Plan::Stale),
        Decision::Apply => Ok(Plan::Write {
            source,
            fetched: None,
        }),
        Decision::Refetch => {
            let fetched = refetch(watermark)?;
            Ok(Plan::Write {
                source: source.refetched(watermark),
                fetched,
            })
        }
    }
}

/// Runs `apply` a second time if its guarded write was refused because another writer of
/// the same second got there first (concurrent transactions on PostgreSQL): the second run
/// reads that row, and a same-second tie re-fetches instead of being called stale.
/// `watermark` reads the row's watermark as it is now.
async fn again_on_tie<A, W>(
    source: Source,
    apply: impl Fn() -> A,
    watermark: impl FnOnce() -> W,
) -> Result<Applied, SyncError>
where
    A: std::future::Future<Output = Result<Applied, SyncError>>,
    W: std::future::Future<Output = Result<Option<i64>, DbErr>>,
{
    let first = apply().await?;
    if first != Applied::Stale || matches!(source, Source::Refetch(_)) {
        return Ok(first);
    }
    match decide(watermark().await?, source) {
        Decision::Refetch => apply().await,
        _ => Ok(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_rule() {
        let cases = [
            (None, Source::Event(10), Decision::Apply),
            (None, Source::Api(10), Decision::Apply),
            (Some(9), Source::Event(10), Decision::Apply),
            (Some(11), Source::Event(10), Decision::Stale),
            (Some(10), Source::Event(10), Decision::Refetch),
            (Some(9), Source::Api(10), Decision::Apply),
            (Some(10), Source::Api(10), Decision::Refetch),
            (Some(11), Source::Api(10), Decision::Refetch),
            (None, Source::Refetch(10), Decision::Apply),
            (Some(10), Source::Refetch(10), Decision::Apply),
            (Some(11), Source::Refetch(10), Decision::Stale),
        ];
        for (watermark, source, expected) in cases {
            assert_eq!(
                decide(watermark, source),
                expected,
                "{watermark:?} {source:?}"
            );
        }
    }
}
