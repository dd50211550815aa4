//! Subscriptions: the rows access is decided on. A deletion (or a final status) leaves a
//! tombstone that nothing brings back.

use sea_orm::{
    sea_query::{Expr, ExprTrait, Func, OnConflict, Query},
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Iterable, QueryFilter,
    QuerySelect, Statement,
};
use stripe_shared::Subscription;

use super::{
    decide,
    price::{apply_embedded_product, product_name_for},
    write::{newer_than, upsert_guarded_with},
    Applied, Decision, Fetched, Source, SyncError,
};
use crate::{
    billing::model::SubscriptionStatus,
    db::{
        clock::now,
        entities::{price, product, subscription},
    },
};

/// Whether the object's status is final (see [`SubscriptionStatus::is_terminal`]).
fn is_terminal(sub: &Subscription) -> bool {
    SubscriptionStatus::parse(sub.status.as_str()).is_terminal()
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

/// A price's product name as Billfold knows it: (price id, product name), from the
/// product's own (ordered) row, else from what `prices` holds for the price.
type KnownPrice = (String, String);

/// The subscription row's head and, in the same statement, the product name Billfold holds
/// for `price` (see [`KnownPrice`]): one round trip where the write needs both.
async fn subscription_context(
    conn: &impl ConnectionTrait,
    id: &str,
    price: Option<&stripe_shared::Price>,
) -> Result<(Option<SubscriptionHead>, Option<KnownPrice>), DbErr> {
    let backend = conn.get_database_backend();
    // On PostgreSQL the product's row is read under a share lock (see `apply_product`).
    let (sub_param, price_param, product_param, lock) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3", " FOR SHARE"),
        _ => ("?1", "?2", "?3", ""),
    };
    let price_id = price.map(|p| p.id.as_str());
    let product_id = price.map(|p| p.product.id().as_str().to_owned());
    // The one-row derived table makes the statement answer even without a subscription row.
    let sql = format!(
        "SELECT s.stripe_event_at, s.deleted, s.price_id, s.plan_name, \
         COALESCE((SELECT pr.name FROM products pr WHERE pr.id = {product_param}{lock}), \
                  (SELECT p.product_name FROM prices p WHERE p.id = {price_param})) \
         FROM (SELECT 1 AS one) AS d LEFT JOIN subscriptions s ON s.id = {sub_param}"
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                id.into(),
                price_id.map(str::to_owned).into(),
                product_id.into(),
            ],
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

/// The [`KnownPrice`] for `p`, read on its own (after a re-fetch changed the price).
async fn known_name(
    conn: &impl ConnectionTrait,
    p: &stripe_shared::Price,
) -> Result<Option<KnownPrice>, DbErr> {
    let own: Option<String> = product::Entity::find_by_id(p.product.id().as_str())
        .select_only()
        .column(product::Column::Name)
        .lock_shared()
        .into_tuple()
        .one(conn)
        .await?;
    let name = match own {
        Some(name) => Some(name),
        None => {
            price::Entity::find_by_id(p.id.as_str())
                .select_only()
                .column(price::Column::ProductName)
                .into_tuple()
                .one(conn)
                .await?
        }
    };
    Ok(name.map(|n| (p.id.as_str().to_owned(), n)))
}

/// Applies a subscription. `deletion` marks a `customer.subscription.deleted` event:
/// deletion is final, so it applies whatever its order and leaves a tombstone.
pub async fn apply_subscription(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    sub: &Subscription,
    source: Source,
    deletion: bool,
) -> Result<Applied, SyncError> {
    let id = sub.id.as_str();
    // An expanded product is ordered on its own row first; the plan name is then read from it.
    if let Some(product) = sub
        .items
        .data
        .first()
        .and_then(|i| i.price.product.as_object())
    {
        apply_embedded_product(conn, fetched, product, source).await?;
    }
    // On PostgreSQL each statement is a round trip, so the common case, a newer object for
    // a live row (or a new row), is written straight away and only a refused write reads
    // the row to tell why. SQLite reads in process for next to nothing, and there the
    // read-then-write path measured faster than the `RETURNING` upsert.
    if !deletion
        && conn.get_database_backend() == DbBackend::Postgres
        && try_write_subscription(conn, fetched, sub, source).await?
    {
        return Ok(Applied::Applied);
    }
    let price = sub.items.data.first().map(|i| &i.price);
    let (head, known) = subscription_context(conn, id, price).await?;
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
            fetched,
            sub,
            at,
            head.as_ref(),
            known,
            Guard::Deletion,
        )
        .await?;
        return Ok(Applied::Applied);
    }
    match decide(head.as_ref().map(|h| h.0), source) {
        Decision::Stale => Ok(Applied::Stale),
        Decision::Refetch => {
            let at = source.refetched(head.as_ref().map(|h| h.0));
            refetch_subscription(conn, fetched, sub, at, head, known).await
        }
        Decision::Apply => {
            let guard = Guard::Ordered(source);
            let written =
                write_subscription(conn, fetched, sub, source.at(), head.as_ref(), known, guard)
                    .await?;
            if written == Applied::Applied {
                return Ok(Applied::Applied);
            }
            // Another writer got there first: decide again against what it wrote.
            let head = subscription_head(conn, id).await?;
            match head {
                Some((_, true, _, _)) => Ok(Applied::Stale),
                Some((w, _, _, _)) if decide(Some(w), source) == Decision::Refetch => {
                    let at = source.refetched(Some(w));
                    refetch_subscription(conn, fetched, sub, at, head, known).await
                }
                _ => Ok(Applied::Stale),
            }
        }
    }
}

/// A write the clocks cannot order (see [`decide`]): the API's current object is applied as
/// the re-fetch `at` (see [`Source::refetched`]). If Stripe no longer has the object, the
/// copy in hand is the best truth left.
async fn refetch_subscription(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    event_copy: &Subscription,
    at: Source,
    head: Option<SubscriptionHead>,
    known: Option<&KnownPrice>,
) -> Result<Applied, SyncError> {
    let current = fetched.subscription(event_copy.id.as_str(), head.as_ref().map(|h| h.0))?;
    let sub = current.as_ref().unwrap_or(event_copy);
    if let Some(product) = current
        .as_ref()
        .and_then(|s| s.items.data.first())
        .and_then(|i| i.price.product.as_object())
    {
        apply_embedded_product(conn, fetched, product, at).await?;
    }
    let price = sub.items.data.first().map(|i| &i.price);
    let known = match (current.is_some(), price) {
        (true, Some(p)) => known_name(conn, p).await?,
        _ => known.cloned(),
    };
    let guard = Guard::Ordered(at);
    write_subscription(
        conn,
        fetched,
        sub,
        at.at(),
        head.as_ref(),
        known.as_ref(),
        guard,
    )
    .await
}

/// Which rows a write may replace.
#[derive(Clone, Copy)]
enum Guard {
    /// Rows the source is newer than (see [`newer_than`]).
    Ordered(Source),
    /// Any row that is not already a tombstone (a deletion).
    Deletion,
}

/// The `ON CONFLICT … WHERE` of a subscription write: which existing rows it may replace.
/// A tombstone is never replaced.
fn subscription_guard(guard: Guard) -> Expr {
    use subscription::Column as C;
    let not_deleted = Expr::col((subscription::Entity, C::Deleted)).eq(false);
    match guard {
        Guard::Ordered(source) => {
            newer_than(Expr::col((subscription::Entity, C::StripeEventAt)), source).and(not_deleted)
        }
        Guard::Deletion => not_deleted,
    }
}

/// Writes the subscription row with the watermark `at`; stale when the guard kept the
/// existing row.
async fn write_subscription(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    sub: &Subscription,
    at: i64,
    head: Option<&SubscriptionHead>,
    known: Option<&KnownPrice>,
    guard: Guard,
) -> Result<Applied, SyncError> {
    let price = sub.items.data.first().map(|i| &i.price);
    let plan_name = match price {
        Some(p) => {
            let cached = head.and_then(|(_, _, price_id, name)| {
                (price_id.as_deref() == Some(p.id.as_str()))
                    .then(|| name.clone())
                    .flatten()
            });
            // The product's own row (kept in order by `apply_product`, which has already
            // seen an expanded product) wins over the name the row last cached.
            let known = known
                .filter(|(id, _)| id == p.id.as_str())
                .map(|(_, name)| name.clone());
            match known.or(cached) {
                Some(name) => Some(name),
                None => Some(product_name_for(conn, fetched, p).await?),
            }
        }
        None => None,
    };
    let deleted = matches!(guard, Guard::Deletion) || is_terminal(sub);
    let row = subscription_row(sub, at, deleted, plan_name);
    Ok(upsert_guarded_with(
        conn,
        row,
        SUBSCRIPTION_UPDATES,
        [(
            subscription::Column::QuantityLoweredAt,
            quantity_lowered_at(),
        )],
        subscription_guard(guard),
    )
    .await?)
}

/// `quantity_lowered_at` as an accepted write leaves it: the event's time when its quantity is
/// lower than the row's (someone took seats away), else what the row had. The seat policy
/// counts from it ([`crate::billing::seats::holds_seat`]). Both write paths use it.
fn quantity_lowered_at() -> Expr {
    use subscription::Column as C;
    Expr::case(
        Expr::cust("excluded.quantity").lt(Expr::col((subscription::Entity, C::Quantity))),
        Expr::cust("excluded.stripe_event_at"),
    )
    .finally(Expr::col((subscription::Entity, C::QuantityLoweredAt)))
    .into()
}

/// Writes the subscription row in one statement without reading it first; false when the
/// guard kept the existing row (stale, a same-second tie or a tombstone), and nothing was
/// written. The plan name is worked out by the statement itself: the row's own while its
/// price stays the same, else the expanded product's, else the one `prices` holds for the
/// price. Only when none of those has it is the name looked up as [`write_subscription`]
/// would, and set on the row just written.
async fn try_write_subscription(
    conn: &impl ConnectionTrait,
    fetched: &Fetched,
    sub: &Subscription,
    source: Source,
) -> Result<bool, SyncError> {
    use subscription::Column as C;

    let price = sub.items.data.first().map(|i| &i.price);
    let expanded = price
        .and_then(|p| p.product.as_object())
        .map(|product| product.name.clone());
    let row = subscription_row(sub, source.at(), is_terminal(sub), expanded.clone());
    let mut columns = Vec::with_capacity(25);
    let mut values = Vec::with_capacity(25);
    for column in C::iter() {
        let value = match (column, price) {
            // The product's own row, else what `prices` holds, else the expanded name.
            (C::PlanName, Some(p)) => Func::coalesce([
                Expr::SubQuery(
                    None,
                    Box::new(
                        Query::select()
                            .column(product::Column::Name)
                            .from(product::Entity)
                            .and_where(Expr::col(product::Column::Id).eq(p.product.id().as_str()))
                            // A concurrent rename holds the row until it commits; the share
                            // lock waits for it and reads the new name (see `apply_product`).
                            .lock_shared()
                            .to_owned()
                            .into(),
                    ),
                ),
                Expr::SubQuery(
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
                Expr::val(expanded.clone()),
            ])
            .into(),
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
                    Func::coalesce([Expr::cust("excluded.plan_name"), own_name.into()]),
                )
                .value(C::QuantityLoweredAt, quantity_lowered_at())
                .action_and_where(subscription_guard(Guard::Ordered(source)))
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
        let name = product_name_for(conn, fetched, p).await?;
        subscription::Entity::update_many()
            .col_expr(C::PlanName, Expr::value(name))
            .filter(C::Id.eq(sub.id.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(true)
}

/// The columns an accepted write replaces; `id` stays.
const SUBSCRIPTION_UPDATES: [subscription::Column; 24] = {
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
        C::ProductId,
        C::Quantity,
        C::ItemId,
    ]
};

/// A subscription's row as the object says, with the watermark `at`. The status is kept
/// as Stripe spells it, so a status newer than this code survives the round trip.
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
        product_id: Set(price.map(|p| p.product.id().as_str().to_owned())),
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
        quantity: Set(item
            .and_then(|i| i.quantity)
            .and_then(|q| i64::try_from(q).ok())),
        item_id: Set(item.map(|i| i.id.as_str().to_owned())),
        // Written by the upsert's own rule, from the stored quantity (see `write_subscription`).
        quantity_lowered_at: NotSet,
    }
}
