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
//! Every `apply_*` function runs inside the caller's transaction. Writes check the
//! watermark in the `UPDATE`'s own `WHERE`, so two writers racing on one row cannot let
//! the older one win.

use std::{
    sync::{Arc, LazyLock},
    time::{SystemTime, UNIX_EPOCH},
};

use sea_orm::{
    sea_query::{Expr, ExprTrait, Func, OnConflict, Query},
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};
use stripe_shared::{
    CheckoutSession, Customer, Invoice, PaymentMethod, Price, Product, Subscription,
    SubscriptionStatus,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::db::entities::{invoice, payment_method, price, stripe_customer, subscription, user};

/// Why an object could not be applied. Both kinds are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("Stripe API error: {0}")]
    Stripe(#[from] ::stripe::StripeError),
}

impl SyncError {
    /// Whether Stripe said the object does not exist (as opposed to being unreachable).
    fn is_missing(&self) -> bool {
        matches!(self, SyncError::Stripe(e) if is_missing(e))
    }
}

fn is_missing(err: &::stripe::StripeError) -> bool {
    matches!(err, ::stripe::StripeError::Stripe(_, 404))
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
}

/// Where an object comes from, which decides how it is ordered against the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The object inside an event `created` at this unix second. A tie with the row's
    /// watermark re-fetches the object from the API.
    Event(i64),
    /// The object as the API returned it, read at (or, for a re-fetch, on behalf of an
    /// event created at) this unix second: the truth, applied unless the row is newer.
    Api(i64),
}

impl Source {
    /// The watermark the written row gets.
    pub fn at(self) -> i64 {
        match self {
            Source::Event(t) | Source::Api(t) => t,
        }
    }
}

/// What to do with an object given the row's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply,
    Stale,
    Refetch,
}

/// The ordering rule, on its own: no row or an older one → apply; a newer row → stale;
/// the same second → re-fetch (an event) or apply (the API's answer is the truth).
pub fn decide(watermark: Option<i64>, source: Source) -> Decision {
    match (watermark, source) {
        (None, _) => Decision::Apply,
        (Some(w), s) if s.at() > w => Decision::Apply,
        (Some(w), s) if s.at() < w => Decision::Stale,
        (Some(_), Source::Event(_)) => Decision::Refetch,
        (Some(_), Source::Api(_)) => Decision::Apply,
    }
}

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Write transactions
// ---------------------------------------------------------------------------------------

/// SQLite has one writer at a time. Queueing writers here, in process, is much faster than
/// letting them collide in SQLite and back off on its busy timeout.
static SQLITE_WRITER: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

/// A transaction that may write the billing tables. On SQLite it holds the in-process
/// writer lock and the database's write lock (`BEGIN IMMEDIATE`) from the start, so a
/// transaction that reads before it writes can never fail to upgrade.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        let WriteTxn { txn, _writer } = self;
        txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        let WriteTxn { txn, _writer } = self;
        txn.rollback().await
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Starts a [`WriteTxn`].
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        let writer = SQLITE_WRITER.clone().lock_owned().await;
        let txn = db
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await?;
        Ok(WriteTxn {
            txn,
            _writer: Some(writer),
        })
    } else {
        Ok(WriteTxn {
            txn: db.begin().await?,
            _writer: None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------

/// Expansions that give a subscription's product name in one request.
fn subscription_expand() -> Vec<String> {
    vec!["items.data.price.product".to_owned()]
}

async fn fetch_subscription(
    stripe: &::stripe::Client,
    id: &str,
) -> Result<Subscription, ::stripe::StripeError> {
    stripe_billing::subscription::RetrieveSubscription::new(id)
        .expand(subscription_expand())
        .send(stripe)
        .await
}

/// The columns of a subscription row that decide how a new object is applied.
type SubscriptionHead = (i64, bool, Option<String>, Option<String>);

async fn subscription_head(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<SubscriptionHead>, DbErr> {
    subscription::Entity::find_by_id(id)
        .select_only()
        .columns([
            subscription::Column::StripeEventAt,
            subscription::Column::Deleted,
            subscription::Column::PriceId,
            subscription::Column::PlanName,
        ])
        .into_tuple::<SubscriptionHead>()
        .one(conn)
        .await
}

/// A price's product name as `prices` holds it: (price id, product name).
type KnownPrice = (String, String);

/// The subscription row's head and, in the same statement, the product name `prices` holds
/// for `price_id`: one round trip where the write needs both.
async fn subscription_context(
    conn: &impl ConnectionTrait,
    id: &str,
    price_id: Option<&str>,
) -> Result<(Option<SubscriptionHead>, Option<KnownPrice>), DbErr> {
    let backend = conn.get_database_backend();
    let (sub_param, price_param) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    // The one-row derived table makes the statement answer even without a subscription row.
    let sql = format!(
        "SELECT s.stripe_event_at, s.deleted, s.price_id, s.plan_name, \
         (SELECT p.product_name FROM prices p WHERE p.id = {price_param}) \
         FROM (SELECT 1 AS one) AS d LEFT JOIN subscriptions s ON s.id = {sub_param}"
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [id.into(), price_id.map(str::to_owned).into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok((None, None));
    };
    let watermark: Option<i64> = row.try_get_by_index(0)?;
    let head = match watermark {
        Some(w) => Some((
            w,
            row.try_get_by_index::<bool>(1)?,
            row.try_get_by_index::<Option<String>>(2)?,
            row.try_get_by_index::<Option<String>>(3)?,
        )),
        None => None,
    };
    let known = match (price_id, row.try_get_by_index::<Option<String>>(4)?) {
        (Some(p), Some(name)) => Some((p.to_owned(), name)),
        _ => None,
    };
    Ok((head, known))
}

/// Applies a subscription. `deletion` marks a `customer.subscription.deleted` event:
/// deletion is final, so it applies whatever its order and leaves a tombstone.
pub async fn apply_subscription(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    sub: &Subscription,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = sub.id.as_str();
    // On PostgreSQL each statement is a round trip, so the common case, a newer object for
    // a live row (or a new row), is written straight away and only a refused write reads
    // the row to tell why. SQLite reads in process for next to nothing, and there the
    // read-then-write path measured faster than the `RETURNING` upsert.
    if !deletion && conn.get_database_backend() == DbBackend::Postgres {
        let guard = match source {
            Source::Event(_) => WriteGuard::Newer,
            Source::Api(_) => WriteGuard::NotOlder,
        };
        if try_write_subscription(conn, stripe, sub, source.at(), guard).await? {
            return Ok(Applied::Applied);
        }
    }
    let price_id = sub.items.data.first().map(|i| i.price.id.as_str());
    let (head, known) = subscription_context(conn, id, price_id).await?;
    let known = known.as_ref();
    if let Some((_, true, _, _)) = head {
        return Ok(Applied::Stale);
    }
    if deletion {
        let at = head
            .as_ref()
            .map_or(source.at(), |h| std::cmp::Ord::max(h.0, source.at()));
        write_subscription(
            conn,
            stripe,
            sub,
            at,
            head.as_ref(),
            known,
            WriteGuard::Deletion,
        )
        .await?;
        return Ok(Applied::Applied);
    }
    match decide(head.as_ref().map(|h| h.0), source) {
        Decision::Stale => Ok(Applied::Stale),
        Decision::Refetch => {
            refetch_subscription(conn, stripe, sub, source.at(), head, known).await
        }
        Decision::Apply => {
            let guard = match source {
                Source::Event(_) => WriteGuard::Newer,
                Source::Api(_) => WriteGuard::NotOlder,
            };
            if write_subscription(conn, stripe, sub, source.at(), head.as_ref(), known, guard)
                .await?
            {
                return Ok(Applied::Applied);
            }
            // Another writer got there first: decide again against what it wrote.
            let head = subscription_head(conn, id).await?;
            match head {
                Some((_, true, _, _)) => Ok(Applied::Stale),
                Some((w, _, _, _)) if w == source.at() && matches!(source, Source::Event(_)) => {
                    refetch_subscription(conn, stripe, sub, source.at(), head, known).await
                }
                _ => Ok(Applied::Stale),
            }
        }
    }
}

/// A same-second tie: the API's current object is applied with the event's watermark. If
/// Stripe no longer has the object, the event's copy is the best truth left.
async fn refetch_subscription(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    event_copy: &Subscription,
    at: i64,
    head: Option<SubscriptionHead>,
    known: Option<&KnownPrice>,
) -> Result<Applied, SyncError> {
    let fetched = match fetch_subscription(stripe, event_copy.id.as_str()).await {
        Ok(s) => Some(s),
        Err(e) if is_missing(&e) => None,
        Err(e) => return Err(e.into()),
    };
    let sub = fetched.as_ref().unwrap_or(event_copy);
    if write_subscription(
        conn,
        stripe,
        sub,
        at,
        head.as_ref(),
        known,
        WriteGuard::NotOlder,
    )
    .await?
    {
        Ok(Applied::Applied)
    } else {
        Ok(Applied::Stale)
    }
}

/// Which rows a write may replace.
#[derive(Clone, Copy)]
enum WriteGuard {
    /// Only rows with an older watermark (an event's object).
    Newer,
    /// Rows with an older or equal watermark (the API's truth).
    NotOlder,
    /// Any row that is not already a tombstone (a deletion).
    Deletion,
}

/// Writes the subscription row; false when the guard kept the existing row.
async fn write_subscription(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    sub: &Subscription,
    at: i64,
    head: Option<&SubscriptionHead>,
    known: Option<&KnownPrice>,
    guard: WriteGuard,
) -> Result<bool, SyncError> {
    use subscription::Column as C;

    let item = sub.items.data.first();
    let price = item.map(|i| &i.price);
    let plan_name = match price {
        Some(p) => {
            let cached = head.and_then(|(_, _, price_id, name)| {
                (price_id.as_deref() == Some(p.id.as_str()))
                    .then(|| name.clone())
                    .flatten()
            });
            // A name `prices` holds under this very price id needs no lookup and nothing
            // remembered; an expanded product in the object still wins over it.
            let known = known
                .filter(|(id, _)| id == p.id.as_str() && p.product.as_object().is_none())
                .map(|(_, name)| name.clone());
            match cached.or(known) {
                Some(name) => Some(name),
                None => Some(product_name_for(conn, stripe, p).await?),
            }
        }
        None => None,
    };
    let deleted = matches!(guard, WriteGuard::Deletion) || is_terminal(&sub.status);
    let row = subscription_row(sub, at, deleted, plan_name);
    let written = subscription::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns(SUBSCRIPTION_UPDATES)
                .action_and_where(subscription_guard(at, guard))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(written > 0)
}

/// Writes the subscription row in one statement without reading it first; false when the
/// guard kept the existing row (stale, a same-second tie or a tombstone), and nothing was
/// written. The plan name is worked out by the statement itself: the row's own while its
/// price stays the same, else the expanded product's, else the one `prices` holds for the
/// price. Only when none of those has it is the name looked up as [`write_subscription`]
/// would, and set on the row just written.
async fn try_write_subscription(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    sub: &Subscription,
    at: i64,
    guard: WriteGuard,
) -> Result<bool, SyncError> {
    use subscription::Column as C;

    let price = sub.items.data.first().map(|i| &i.price);
    let expanded = price
        .and_then(|p| p.product.as_object())
        .map(|product| product.name.clone());
    let row = subscription_row(sub, at, is_terminal(&sub.status), expanded.clone());
    let mut columns = Vec::with_capacity(23);
    let mut values = Vec::with_capacity(23);
    for column in C::iter() {
        let value = match (column, price, &expanded) {
            (C::PlanName, Some(p), None) => Expr::SubQuery(
                None,
                Box::new(
                    Query::select()
                        .column(price::Column::ProductName)
                        .from(price::Entity)
                        .and_where(Expr::col(price::Column::Id).eq(p.id.as_str()))
                        .to_owned()
                        .into(),
                ),
            ),
            _ => match row.get(column).into_value() {
                Some(v) => Expr::val(v),
                None => continue,
            },
        };
        columns.push(column);
        values.push(value);
    }
    let own_name = Expr::case(
        Expr::col((subscription::Entity, C::PriceId)).eq(Expr::cust("excluded.price_id")),
        Expr::col((subscription::Entity, C::PlanName)),
    )
    .finally(Expr::val(Option::<String>::None));
    let mut insert = Query::insert()
        .into_table(subscription::Entity)
        .columns(columns)
        .values(values)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns(
                    SUBSCRIPTION_UPDATES
                        .into_iter()
                        .filter(|c| !matches!(c, C::PlanName)),
                )
                .value(
                    C::PlanName,
                    Func::coalesce([own_name.into(), Expr::cust("excluded.plan_name")]),
                )
                .action_and_where(subscription_guard(at, guard))
                .to_owned(),
        )
        .to_owned();
    insert.returning_col(C::PlanName);
    let backend = conn.get_database_backend();
    let Some(written) = conn.query_one_raw(backend.build(&insert)).await? else {
        return Ok(false);
    };
    let plan_name: Option<String> = written.try_get_by_index(0)?;
    if let (Some(p), None) = (price, plan_name) {
        let name = product_name_for(conn, stripe, p).await?;
        subscription::Entity::update_many()
            .col_expr(C::PlanName, Expr::value(name))
            .filter(C::Id.eq(sub.id.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(true)
}

/// The columns an accepted write replaces; `id` stays.
const SUBSCRIPTION_UPDATES: [subscription::Column; 21] = {
    use subscription::Column as C;
    [
        C::CustomerId,
        C::Status,
        C::PriceId,
        C::PlanName,
        C::UnitAmount,
        C::Currency,
        C::Interval,
        C::CurrentPeriodStart,
        C::CurrentPeriodEnd,
        C::CancelAtPeriodEnd,
        C::CancelAt,
        C::CanceledAt,
        C::EndedAt,
        C::TrialStart,
        C::TrialEnd,
        C::DefaultPaymentMethod,
        C::LatestInvoiceId,
        C::Livemode,
        C::Deleted,
        C::StripeEventAt,
        C::UpdatedAt,
    ]
};

/// The `ON CONFLICT … WHERE` of a subscription write: which existing rows it may replace.
fn subscription_guard(at: i64, guard: WriteGuard) -> Expr {
    use subscription::Column as C;
    let watermark = Expr::col((subscription::Entity, C::StripeEventAt));
    let not_deleted = Expr::col((subscription::Entity, C::Deleted)).eq(false);
    match guard {
        WriteGuard::Newer => watermark.lt(at).and(not_deleted),
        WriteGuard::NotOlder => watermark.lte(at).and(not_deleted),
        WriteGuard::Deletion => not_deleted,
    }
}

/// A subscription's row as the object says, with the watermark `at`.
fn subscription_row(
    sub: &Subscription,
    at: i64,
    deleted: bool,
    plan_name: Option<String>,
) -> subscription::ActiveModel {
    let item = sub.items.data.first();
    let price = item.map(|i| &i.price);
    subscription::ActiveModel {
        id: Set(sub.id.as_str().to_owned()),
        customer_id: Set(sub.customer.id().as_str().to_owned()),
        status: Set(sub.status.as_str().to_owned()),
        price_id: Set(price.map(|p| p.id.as_str().to_owned())),
        plan_name: Set(plan_name),
        unit_amount: Set(price.and_then(|p| p.unit_amount)),
        currency: Set(price.map(|p| p.currency.to_string())),
        interval: Set(price
            .and_then(|p| p.recurring.as_ref())
            .map(|r| r.interval.as_str().to_owned())),
        current_period_start: Set(item.map(|i| i.current_period_start)),
        current_period_end: Set(item.map(|i| i.current_period_end)),
        cancel_at_period_end: Set(sub.cancel_at_period_end),
        cancel_at: Set(sub.cancel_at),
        canceled_at: Set(sub.canceled_at),
        ended_at: Set(sub.ended_at),
        trial_start: Set(sub.trial_start),
        trial_end: Set(sub.trial_end),
        default_payment_method: Set(sub
            .default_payment_method
            .as_ref()
            .map(|pm| pm.id().as_str().to_owned())),
        latest_invoice_id: Set(sub
            .latest_invoice
            .as_ref()
            .and_then(|inv| inv.id().as_ref())
            .map(|id| id.as_str().to_owned())),
        livemode: Set(sub.livemode),
        deleted: Set(deleted),
        stripe_event_at: Set(at),
        updated_at: Set(now()),
    }
}

/// Stripe never brings a canceled or expired subscription back.
fn is_terminal(status: &SubscriptionStatus) -> bool {
    matches!(
        status,
        SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
    )
}

/// The product name for a price: from the expanded product, from a price we already know,
/// or from the API (and then remembered, with the price, in `prices`).
async fn product_name_for(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    p: &Price,
) -> Result<String, SyncError> {
    if let Some(product) = p.product.as_object() {
        return Ok(product.name.clone());
    }
    let known: Option<String> = price::Entity::find()
        .select_only()
        .column(price::Column::ProductName)
        .filter(
            price::Column::Id
                .eq(p.id.as_str())
                .or(price::Column::ProductId.eq(p.product.id().as_str())),
        )
        .into_tuple()
        .one(conn)
        .await?;
    if let Some(name) = known {
        remember_price(conn, p, &name, None).await?;
        return Ok(name);
    }
    let product = stripe_product::product::RetrieveProduct::new(p.product.id().as_str())
        .send(stripe)
        .await?;
    remember_price(conn, p, &product.name, Some(product.active)).await?;
    Ok(product.name)
}

/// Records a price seen inside another object if `prices` does not have it yet. It gets no
/// watermark: any price event about it is newer.
async fn remember_price(
    conn: &impl ConnectionTrait,
    p: &Price,
    product_name: &str,
    product_active: Option<bool>,
) -> Result<(), DbErr> {
    let mut row = price_row(p, product_name, product_active.unwrap_or(true), None);
    row.stripe_event_at = Set(None);
    price::Entity::insert(row)
        .on_conflict(
            OnConflict::column(price::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn price_row(
    p: &Price,
    product_name: &str,
    product_active: bool,
    at: Option<i64>,
) -> price::ActiveModel {
    let recurring = p.recurring.as_ref();
    price::ActiveModel {
        id: Set(p.id.as_str().to_owned()),
        product_id: Set(p.product.id().as_str().to_owned()),
        product_name: Set(product_name.to_owned()),
        product_active: Set(product_active),
        nickname: Set(p.nickname.clone()),
        unit_amount: Set(p.unit_amount),
        currency: Set(p.currency.to_string()),
        interval: Set(recurring.map(|r| r.interval.as_str().to_owned())),
        interval_count: Set(recurring.and_then(|r| i32::try_from(r.interval_count).ok())),
        trial_period_days: Set(recurring
            .and_then(|r| r.trial_period_days)
            .and_then(|d| i32::try_from(d).ok())),
        active: Set(p.active),
        livemode: Set(p.livemode),
        stripe_event_at: Set(at),
        updated_at: Set(now()),
    }
}

// ---------------------------------------------------------------------------------------
// Prices and products
// ---------------------------------------------------------------------------------------

/// Applies a price (`price.created|updated|deleted`, or one read from the API). A deleted
/// price stays as a row, inactive, because subscriptions may still point at it.
pub async fn apply_price(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    p: &Price,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let existing: Option<(Option<i64>, String, bool)> = price::Entity::find_by_id(p.id.as_str())
        .select_only()
        .columns([
            price::Column::StripeEventAt,
            price::Column::ProductName,
            price::Column::ProductActive,
        ])
        .into_tuple()
        .one(conn)
        .await?;
    let mut source = source;
    let mut fetched = None;
    match decide(existing.as_ref().and_then(|e| e.0), source) {
        Decision::Stale => return Ok(Applied::Stale),
        Decision::Apply => {}
        Decision::Refetch => {
            match stripe_product::price::RetrievePrice::new(p.id.as_str())
                .expand(vec!["product".to_owned()])
                .send(stripe)
                .await
            {
                Ok(f) => fetched = Some(f),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
            source = Source::Api(source.at());
        }
    }
    let p = fetched.as_ref().unwrap_or(p);
    let (name, product_active) = match (p.product.as_object(), &existing) {
        (Some(product), _) => (product.name.clone(), product.active),
        (None, Some((_, name, active))) => (name.clone(), *active),
        (None, None) => {
            let name = product_name_for(conn, stripe, p).await?;
            (name, true)
        }
    };
    let mut row = price_row(p, &name, product_active, Some(source.at()));
    if deletion {
        row.active = Set(false);
    }
    let watermark = Expr::col((price::Entity, price::Column::StripeEventAt));
    let condition = match source {
        Source::Event(at) => watermark.clone().is_null().or(watermark.lt(at)),
        Source::Api(at) => watermark.clone().is_null().or(watermark.lte(at)),
    };
    let written = price::Entity::insert(row)
        .on_conflict(
            OnConflict::column(price::Column::Id)
                .update_columns([
                    price::Column::ProductId,
                    price::Column::ProductName,
                    price::Column::ProductActive,
                    price::Column::Nickname,
                    price::Column::UnitAmount,
                    price::Column::Currency,
                    price::Column::Interval,
                    price::Column::IntervalCount,
                    price::Column::TrialPeriodDays,
                    price::Column::Active,
                    price::Column::Livemode,
                    price::Column::StripeEventAt,
                    price::Column::UpdatedAt,
                ])
                .action_and_where(condition)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(if written > 0 {
        Applied::Applied
    } else {
        Applied::Stale
    })
}

/// Applies a product (`product.created|updated|deleted`): its name and active flag on
/// every price of it, and the plan name of every subscription on those prices. Billfold
/// keeps no product rows of its own, so a product with no known price changes nothing.
pub async fn apply_product(
    conn: &impl ConnectionTrait,
    product: &Product,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = product.id.as_str();
    let active = product.active && !deletion;
    let prices = price::Entity::update_many()
        .col_expr(
            price::Column::ProductName,
            Expr::value(product.name.clone()),
        )
        .col_expr(price::Column::ProductActive, Expr::value(active))
        .col_expr(price::Column::UpdatedAt, Expr::value(now()))
        .filter(price::Column::ProductId.eq(id))
        .exec(conn)
        .await?;
    if prices.rows_affected == 0 {
        return Ok(Applied::Ignored);
    }
    subscription::Entity::update_many()
        .col_expr(
            subscription::Column::PlanName,
            Expr::value(product.name.clone()),
        )
        .filter(
            subscription::Column::PriceId.in_subquery(
                price::Entity::find()
                    .select_only()
                    .column(price::Column::Id)
                    .filter(price::Column::ProductId.eq(id))
                    .into_query(),
            ),
        )
        .exec(conn)
        .await?;
    Ok(Applied::Applied)
}

// ---------------------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------------------

/// Applies `customer.updated` (or a customer read from the API): email, name, and which
/// payment method is the default. Customers Billfold has not linked to a user are ignored.
pub async fn apply_customer(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    cus: &Customer,
    source: Source,
) -> Result<Applied, SyncError> {
    let id = cus.id.as_str();
    let existing: Option<Option<i64>> = stripe_customer::Entity::find()
        .select_only()
        .column(stripe_customer::Column::StripeEventAt)
        .filter(stripe_customer::Column::CustomerId.eq(id))
        .into_tuple()
        .one(conn)
        .await?;
    let Some(watermark) = existing else {
        return Ok(Applied::Ignored);
    };
    let mut source = source;
    let mut fetched = None;
    match decide(watermark, source) {
        Decision::Stale => return Ok(Applied::Stale),
        Decision::Apply => {}
        Decision::Refetch => {
            match stripe_core::customer::RetrieveCustomer::new(id)
                .send(stripe)
                .await
            {
                Ok(stripe_core::customer::RetrieveCustomerReturned::Customer(c)) => {
                    fetched = Some(c)
                }
                Ok(stripe_core::customer::RetrieveCustomerReturned::DeletedCustomer(_)) => {
                    return apply_customer_deleted(conn, id).await;
                }
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
            source = Source::Api(source.at());
        }
    }
    let cus = fetched.as_ref().unwrap_or(cus);
    let watermark = Expr::col((
        stripe_customer::Entity,
        stripe_customer::Column::StripeEventAt,
    ));
    let newer = match source {
        Source::Event(at) => watermark.clone().is_null().or(watermark.lt(at)),
        Source::Api(at) => watermark.clone().is_null().or(watermark.lte(at)),
    };
    let written = stripe_customer::Entity::update_many()
        .col_expr(
            stripe_customer::Column::Email,
            Expr::value(cus.email.clone()),
        )
        .col_expr(stripe_customer::Column::Name, Expr::value(cus.name.clone()))
        .col_expr(
            stripe_customer::Column::StripeEventAt,
            Expr::value(source.at()),
        )
        .filter(stripe_customer::Column::CustomerId.eq(id))
        .filter(newer)
        .exec(conn)
        .await?;
    if written.rows_affected == 0 {
        return Ok(Applied::Stale);
    }
    let default_pm = cus
        .invoice_settings
        .as_ref()
        .and_then(|s| s.default_payment_method.as_ref())
        .map(|pm| pm.id().as_str().to_owned());
    set_default_payment_method(conn, id, default_pm.as_deref()).await?;
    Ok(Applied::Applied)
}

/// Marks exactly one (or no) payment method of a customer as the default.
async fn set_default_payment_method(
    conn: &impl ConnectionTrait,
    customer_id: &str,
    default_pm: Option<&str>,
) -> Result<(), DbErr> {
    let is_default = match default_pm {
        Some(pm) => Expr::col(payment_method::Column::Id).eq(pm),
        None => Expr::value(false),
    };
    payment_method::Entity::update_many()
        .col_expr(payment_method::Column::IsDefault, is_default)
        .filter(payment_method::Column::CustomerId.eq(customer_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Applies `customer.deleted`. Final, like a subscription's deletion: the mapping to the
/// user stays (marked deleted) so invoices and history still resolve.
pub async fn apply_customer_deleted(
    conn: &impl ConnectionTrait,
    customer_id: &str,
) -> Result<Applied, SyncError> {
    let written = stripe_customer::Entity::update_many()
        .col_expr(stripe_customer::Column::Deleted, Expr::value(true))
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .exec(conn)
        .await?;
    Ok(if written.rows_affected > 0 {
        Applied::Applied
    } else {
        Applied::Ignored
    })
}

// ---------------------------------------------------------------------------------------
// Payment methods
// ---------------------------------------------------------------------------------------

/// Applies a payment method (`payment_method.attached|updated|automatically_updated`, or
/// `detached` with `detached = true`, or one read from the API). A detached method keeps
/// its row, without a customer, so a late `attached` cannot bring it back.
pub async fn apply_payment_method(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    pm: &PaymentMethod,
    source: Source,
    detached: bool,
) -> Result<Applied, SyncError> {
    use payment_method::Column as C;
    let id = pm.id.as_str();
    let watermark: Option<Option<i64>> = payment_method::Entity::find_by_id(id)
        .select_only()
        .column(C::StripeEventAt)
        .into_tuple()
        .one(conn)
        .await?;
    let mut source = source;
    let mut fetched = None;
    match decide(watermark.flatten(), source) {
        Decision::Stale => return Ok(Applied::Stale),
        Decision::Apply => {}
        Decision::Refetch => {
            match stripe_payment::payment_method::RetrievePaymentMethod::new(id)
                .send(stripe)
                .await
            {
                Ok(f) => fetched = Some(f),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
            source = Source::Api(source.at());
        }
    }
    let pm = fetched.as_ref().unwrap_or(pm);
    let customer_id = if detached && fetched.is_none() {
        None
    } else {
        pm.customer.as_ref().map(|c| c.id().as_str().to_owned())
    };
    // A new method is the default if a subscription of its customer already pays with
    // it; otherwise `customer.updated` (or a sync) says which one is.
    let is_default = match (&customer_id, watermark.is_some()) {
        (Some(cus), false) => subscription::Entity::find()
            .filter(subscription::Column::CustomerId.eq(cus.as_str()))
            .filter(subscription::Column::DefaultPaymentMethod.eq(id))
            .filter(subscription::Column::Deleted.eq(false))
            .one(conn)
            .await?
            .is_some(),
        _ => false,
    };
    let card = pm.card.as_ref();
    let row = payment_method::ActiveModel {
        id: Set(id.to_owned()),
        customer_id: Set(customer_id.clone()),
        brand: Set(card.map(|c| c.brand.clone())),
        last4: Set(card.map(|c| c.last4.clone())),
        exp_month: Set(card.and_then(|c| i32::try_from(c.exp_month).ok())),
        exp_year: Set(card.and_then(|c| i32::try_from(c.exp_year).ok())),
        is_default: Set(is_default),
        livemode: Set(pm.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let mut update = vec![
        C::CustomerId,
        C::Brand,
        C::Last4,
        C::ExpMonth,
        C::ExpYear,
        C::Livemode,
        C::StripeEventAt,
        C::UpdatedAt,
    ];
    if customer_id.is_none() {
        update.push(C::IsDefault);
    }
    let watermark = Expr::col((payment_method::Entity, C::StripeEventAt));
    let condition = match source {
        Source::Event(at) => watermark.clone().is_null().or(watermark.lt(at)),
        Source::Api(at) => watermark.clone().is_null().or(watermark.lte(at)),
    };
    let written = payment_method::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns(update)
                .action_and_where(condition)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(if written > 0 {
        Applied::Applied
    } else {
        Applied::Stale
    })
}

// ---------------------------------------------------------------------------------------
// Invoices
// ---------------------------------------------------------------------------------------

/// The subscription an invoice bills, wherever this API version puts it.
fn invoice_subscription(inv: &Invoice) -> Option<String> {
    inv.parent
        .as_ref()
        .and_then(|p| p.subscription_details.as_ref())
        .map(|d| d.subscription.id().as_str().to_owned())
        .or_else(|| {
            inv.subscription
                .as_ref()
                .map(|s| s.id().as_str().to_owned())
        })
}

/// Applies an invoice (`invoice.paid|payment_succeeded|payment_failed|
/// payment_action_required|finalized`, or one read from the API).
pub async fn apply_invoice(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    inv: &Invoice,
    source: Source,
) -> Result<Applied, SyncError> {
    use invoice::Column as C;
    let (Some(id), Some(_)) = (inv.id.as_ref(), inv.customer.as_ref()) else {
        // A preview invoice has no id; one without a customer is nobody's bill here.
        return Ok(Applied::Ignored);
    };
    let watermark: Option<Option<i64>> = invoice::Entity::find_by_id(id.as_str())
        .select_only()
        .column(C::StripeEventAt)
        .into_tuple()
        .one(conn)
        .await?;
    let mut source = source;
    let mut fetched = None;
    match decide(watermark.flatten(), source) {
        Decision::Stale => return Ok(Applied::Stale),
        Decision::Apply => {}
        Decision::Refetch => {
            match stripe_billing::invoice::RetrieveInvoice::new(id.as_str())
                .send(stripe)
                .await
            {
                Ok(f) => fetched = Some(f),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
            source = Source::Api(source.at());
        }
    }
    let inv = fetched.as_ref().unwrap_or(inv);
    let Some(customer) = inv.customer.as_ref() else {
        return Ok(Applied::Ignored);
    };
    let row = invoice::ActiveModel {
        id: Set(id.as_str().to_owned()),
        customer_id: Set(customer.id().as_str().to_owned()),
        subscription_id: Set(invoice_subscription(inv)),
        status: Set(inv
            .status
            .as_ref()
            .map_or_else(|| "draft".to_owned(), |s| s.as_str().to_owned())),
        amount_due: Set(inv.amount_due),
        amount_paid: Set(inv.amount_paid),
        currency: Set(inv.currency.to_string()),
        hosted_invoice_url: Set(inv.hosted_invoice_url.clone()),
        period_start: Set(Some(inv.period_start)),
        period_end: Set(Some(inv.period_end)),
        created: Set(inv.created),
        livemode: Set(inv.livemode),
        stripe_event_at: Set(Some(source.at())),
        updated_at: Set(now()),
    };
    let watermark = Expr::col((invoice::Entity, C::StripeEventAt));
    let condition = match source {
        Source::Event(at) => watermark.clone().is_null().or(watermark.lt(at)),
        Source::Api(at) => watermark.clone().is_null().or(watermark.lte(at)),
    };
    let written = invoice::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Id)
                .update_columns([
                    C::CustomerId,
                    C::SubscriptionId,
                    C::Status,
                    C::AmountDue,
                    C::AmountPaid,
                    C::Currency,
                    C::HostedInvoiceUrl,
                    C::PeriodStart,
                    C::PeriodEnd,
                    C::Created,
                    C::Livemode,
                    C::StripeEventAt,
                    C::UpdatedAt,
                ])
                .action_and_where(condition)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(if written > 0 {
        Applied::Applied
    } else {
        Applied::Stale
    })
}

// ---------------------------------------------------------------------------------------
// Checkout
// ---------------------------------------------------------------------------------------

/// Applies `checkout.session.completed`: links the customer to the user named by
/// `client_reference_id` (a user id) when Billfold does not know the customer yet, then
/// applies the subscription the session created (re-fetched unless expanded).
pub async fn apply_checkout_session(
    conn: &impl ConnectionTrait,
    stripe: &::stripe::Client,
    cs: &CheckoutSession,
    created: i64,
) -> Result<Applied, SyncError> {
    let Some(customer) = cs.customer.as_ref() else {
        return Ok(Applied::Ignored);
    };
    let customer_id = customer.id().as_str();
    let known = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::CustomerId.eq(customer_id))
        .one(conn)
        .await?
        .is_some();
    let user_id = cs
        .client_reference_id
        .as_deref()
        .and_then(|r| r.trim().parse::<i64>().ok());
    if let (false, Some(user_id)) = (known, user_id) {
        if user::Entity::find_by_id(user_id).one(conn).await?.is_some() {
            let email = cs
                .customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .or_else(|| cs.customer_email.clone());
            // A user who already has a customer in this mode keeps it; the unique
            // (user_id, livemode) key turns this insert into nothing.
            stripe_customer::Entity::insert(stripe_customer::ActiveModel {
                id: NotSet,
                user_id: Set(user_id),
                livemode: Set(cs.livemode),
                customer_id: Set(customer_id.to_owned()),
                email: Set(email),
                name: Set(None),
                deleted: Set(false),
                created_at: Set(now()),
                stripe_event_at: Set(None),
            })
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
        }
    }
    let Some(sub) = cs.subscription.as_ref() else {
        return Ok(Applied::Applied);
    };
    // The session's own copy of the subscription (if expanded) is as old as the session;
    // the API's is the truth. Either is ordered as of the event's time.
    let fetched;
    let sub = match sub.as_object() {
        Some(s) => s,
        None => {
            fetched = fetch_subscription(stripe, sub.id().as_str()).await?;
            &fetched
        }
    };
    apply_subscription(conn, stripe, sub, Source::Api(created), false).await?;
    Ok(Applied::Applied)
}

// ---------------------------------------------------------------------------------------
// Re-sync from the API
// ---------------------------------------------------------------------------------------

/// What a re-sync wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub customers: usize,
    pub subscriptions: usize,
    pub payment_methods: usize,
    pub invoices: usize,
    pub prices: usize,
    /// Customers that could not be synced, with the reason (for `--all`).
    pub failed: Vec<(String, String)>,
}

impl SyncReport {
    fn add(&mut self, other: SyncReport) {
        self.customers += other.customers;
        self.subscriptions += other.subscriptions;
        self.payment_methods += other.payment_methods;
        self.invoices += other.invoices;
        self.prices += other.prices;
        self.failed.extend(other.failed);
    }
}

/// How many of a customer's latest invoices a re-sync reads.
const SYNC_INVOICES: i64 = 24;

fn count(report: &mut usize, applied: Applied) {
    if applied == Applied::Applied {
        *report += 1;
    }
}

/// Re-reads one customer from the Stripe API — the customer, every subscription (all
/// statuses), its payment methods (and which is the default), its latest invoices and the
/// prices they use — and applies it all in one transaction. Everything is fetched before
/// the transaction starts, so no lock is held while Stripe answers.
pub async fn sync_customer(
    db: &DatabaseConnection,
    stripe: &::stripe::Client,
    customer_id: &str,
) -> Result<SyncReport, SyncError> {
    // Taken before reading: an event created after this moment may carry a newer state
    // than what the API returns, so it must still apply.
    let read_at = now();

    let customer = stripe_core::customer::RetrieveCustomer::new(customer_id)
        .send(stripe)
        .await?;
    let customer = match customer {
        stripe_core::customer::RetrieveCustomerReturned::Customer(c) => c,
        stripe_core::customer::RetrieveCustomerReturned::DeletedCustomer(_) => {
            let txn = begin_write(db).await?;
            let applied = apply_customer_deleted(&*txn, customer_id).await?;
            txn.commit().await?;
            let mut report = SyncReport::default();
            count(&mut report.customers, applied);
            return Ok(report);
        }
    };

    // Not expanded down to the product: Stripe expands at most four levels deep. Product
    // names come from `prices`, filled first below.
    let mut subscriptions = Vec::new();
    let mut starting_after: Option<String> = None;
    loop {
        let mut req = stripe_billing::subscription::ListSubscription::new()
            .customer(customer_id)
            .status(stripe_billing::subscription::ListSubscriptionStatus::All)
            .limit(100);
        if let Some(after) = starting_after.take() {
            req = req.starting_after(after);
        }
        let page = req.send(stripe).await?;
        let last = page.data.last().map(|s| s.id.as_str().to_owned());
        subscriptions.extend(page.data);
        match (page.has_more, last) {
            (true, Some(last)) => starting_after = Some(last),
            _ => break,
        }
    }

    let mut payment_methods = Vec::new();
    let mut starting_after: Option<String> = None;
    loop {
        let mut req = stripe_payment::payment_method::ListPaymentMethod::new()
            .customer(customer_id)
            .limit(100);
        if let Some(after) = starting_after.take() {
            req = req.starting_after(after);
        }
        let page = req.send(stripe).await?;
        let last = page.data.last().map(|p| p.id.as_str().to_owned());
        payment_methods.extend(page.data);
        match (page.has_more, last) {
            (true, Some(last)) => starting_after = Some(last),
            _ => break,
        }
    }

    let invoices = stripe_billing::invoice::ListInvoice::new()
        .customer(customer_id)
        .limit(SYNC_INVOICES)
        .send(stripe)
        .await?
        .data;

    // Prices the subscriptions use, with their products, unless `prices` has them.
    let mut prices: Vec<Price> = Vec::new();
    for sub in &subscriptions {
        for item in &sub.items.data {
            let id = item.price.id.as_str();
            if prices.iter().any(|p| p.id.as_str() == id) {
                continue;
            }
            if price::Entity::find_by_id(id).one(db).await?.is_some() {
                continue;
            }
            let p = if item.price.product.is_object() {
                item.price.clone()
            } else {
                stripe_product::price::RetrievePrice::new(id)
                    .expand(vec!["product".to_owned()])
                    .send(stripe)
                    .await?
            };
            prices.push(p);
        }
    }

    let source = Source::Api(read_at);
    let mut report = SyncReport::default();
    let txn = begin_write(db).await?;
    let result: Result<(), SyncError> = async {
        for p in &prices {
            count(
                &mut report.prices,
                apply_price(&*txn, stripe, p, source, false).await?,
            );
        }
        count(
            &mut report.customers,
            apply_customer(&*txn, stripe, &customer, source).await?,
        );
        for sub in &subscriptions {
            count(
                &mut report.subscriptions,
                apply_subscription(&*txn, stripe, sub, source, false).await?,
            );
        }
        let listed: Vec<&str> = payment_methods.iter().map(|p| p.id.as_str()).collect();
        for pm in &payment_methods {
            count(
                &mut report.payment_methods,
                apply_payment_method(&*txn, stripe, pm, source, false).await?,
            );
        }
        // Methods we still hold for this customer that Stripe no longer lists are gone.
        payment_method::Entity::update_many()
            .col_expr(
                payment_method::Column::CustomerId,
                Expr::value(Option::<String>::None),
            )
            .col_expr(payment_method::Column::IsDefault, Expr::value(false))
            .col_expr(payment_method::Column::StripeEventAt, Expr::value(read_at))
            .filter(payment_method::Column::CustomerId.eq(customer_id))
            .filter(payment_method::Column::Id.is_not_in(listed))
            .filter(
                payment_method::Column::StripeEventAt
                    .is_null()
                    .or(payment_method::Column::StripeEventAt.lte(read_at)),
            )
            .exec(&*txn)
            .await?;
        let default_pm = customer
            .invoice_settings
            .as_ref()
            .and_then(|s| s.default_payment_method.as_ref())
            .map(|pm| pm.id().as_str().to_owned());
        set_default_payment_method(&*txn, customer_id, default_pm.as_deref()).await?;
        for inv in &invoices {
            count(
                &mut report.invoices,
                apply_invoice(&*txn, stripe, inv, source).await?,
            );
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            txn.commit().await?;
            Ok(report)
        }
        Err(e) => {
            txn.rollback().await?;
            Err(e)
        }
    }
}

/// Re-syncs every customer Billfold knows in one mode (`billfold sync --all`). A customer
/// that fails is reported and the rest carry on.
pub async fn sync_all(
    db: &DatabaseConnection,
    stripe: &::stripe::Client,
    livemode: bool,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut after = 0i64;
    loop {
        // Paged by primary key so a large table never sits in memory at once.
        let page: Vec<(i64, String)> = stripe_customer::Entity::find()
            .select_only()
            .columns([
                stripe_customer::Column::Id,
                stripe_customer::Column::CustomerId,
            ])
            .filter(stripe_customer::Column::Livemode.eq(livemode))
            .filter(stripe_customer::Column::Deleted.eq(false))
            .filter(stripe_customer::Column::Id.gt(after))
            .order_by_asc(stripe_customer::Column::Id)
            .limit(200)
            .into_tuple()
            .all(db)
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (_, customer_id) in page {
            match sync_customer(db, stripe, &customer_id).await {
                Ok(r) => report.add(r),
                Err(e) => {
                    tracing::warn!(customer = %customer_id, error = %e, "customer re-sync failed");
                    report.failed.push((customer_id, e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

impl SyncError {
    /// True when retrying later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        !self.is_missing()
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
            (Some(10), Source::Api(10), Decision::Apply),
            (Some(11), Source::Api(10), Decision::Stale),
        ];
        for (watermark, source, expected) in cases {
            assert_eq!(
                decide(watermark, source),
                expected,
                "{watermark:?} {source:?}"
            );
        }
    }

    #[test]
    fn canceled_and_expired_subscriptions_are_final() {
        assert!(is_terminal(&SubscriptionStatus::Canceled));
        assert!(is_terminal(&SubscriptionStatus::IncompleteExpired));
        assert!(!is_terminal(&SubscriptionStatus::Active));
        assert!(!is_terminal(&SubscriptionStatus::PastDue));
    }
}
