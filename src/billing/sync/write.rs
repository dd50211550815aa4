//! Writing the billing tables: the guarded upsert every `apply_*` ends in (inside the
//! database's one write transaction, [`crate::db::write`]).

use super::{Applied, Source};
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, Iterable, PrimaryKeyToColumn,
    PrimaryKeyTrait, QuerySelect,
};

/// The watermark (`column`, the row's `stripe_event_at`) of the row `id` of `E`: `None` when
/// there is no such row or it has none yet.
pub(super) async fn watermark_of<E>(
    conn: &impl ConnectionTrait,
    id: &str,
    column: E::Column,
) -> Result<Option<i64>, DbErr>
where
    E: EntityTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<String>,
{
    let found: Option<Option<i64>> = E::find_by_id(id.to_owned())
        .select_only()
        .column(column)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(found.flatten())
}

/// The guard of a write from `source` on a row whose watermark is `watermark`: the row has
/// none yet or an older one — or, for a re-fetch, one from the same second. An event never
/// wins a tie (it cannot tell which of two same-second changes came last), and neither does
/// an API read (an event of its second may be newer than what it read).
pub(super) fn newer_than(watermark: Expr, source: Source) -> Expr {
    match source {
        Source::Event(at) | Source::Api(at) => watermark.clone().is_null().or(watermark.lt(at)),
        Source::Refetch(at) => watermark.clone().is_null().or(watermark.lte(at)),
    }
}

/// What a guarded write did: a row written is applied, none means the guard kept a newer
/// (or final) row.
pub(super) fn written(rows: u64) -> Applied {
    if rows > 0 {
        Applied::Applied
    } else {
        Applied::Stale
    }
}

/// `INSERT … ON CONFLICT (primary key) DO UPDATE SET updates … WHERE guard`: a new row, or
/// the existing one replaced only if `guard` lets it.
pub(super) async fn upsert_guarded<A>(
    conn: &impl ConnectionTrait,
    row: A,
    updates: impl IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
    guard: Expr,
) -> Result<Applied, DbErr>
where
    A: ActiveModelTrait + Send,
{
    upsert_guarded_with(conn, row, updates, [], guard).await
}

/// [`upsert_guarded`], with columns an update sets by an expression of its own (over the
/// existing row and `excluded`) rather than to the new row's value.
pub(super) async fn upsert_guarded_with<A>(
    conn: &impl ConnectionTrait,
    row: A,
    updates: impl IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
    computed: impl IntoIterator<Item = (<A::Entity as EntityTrait>::Column, Expr)>,
    guard: Expr,
) -> Result<Applied, DbErr>
where
    A: ActiveModelTrait + Send,
{
    let mut on_conflict = OnConflict::columns(
        <A::Entity as EntityTrait>::PrimaryKey::iter().map(|key| key.into_column()),
    );
    on_conflict.update_columns(updates);
    for (column, value) in computed {
        on_conflict.value(column, value);
    }
    let rows = <A::Entity as EntityTrait>::insert(row)
        .on_conflict(on_conflict.action_and_where(guard).to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(written(rows))
}
