//! Writing the billing tables: the write transaction, and the guarded upsert every
//! `apply_*` ends in.

use std::sync::{Arc, LazyLock};

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, Iterable, PrimaryKeyToColumn, PrimaryKeyTrait, QuerySelect, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Applied, Source};

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
    let rows = <A::Entity as EntityTrait>::insert(row)
        .on_conflict(
            OnConflict::columns(
                <A::Entity as EntityTrait>::PrimaryKey::iter().map(|key| key.into_column()),
            )
            .update_columns(updates)
            .action_and_where(guard)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(written(rows))
}
