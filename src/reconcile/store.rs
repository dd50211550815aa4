//! The reconciler's named numbers in `reconcile_state` (its events cursor and its last
//! successful cycle), and its cycles in `reconcile_runs`.

use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryOrder,
};

use crate::{
    billing::sync::begin_write,
    db::entities::{reconcile_run, reconcile_state},
};

const EVENTS_CURSOR: &str = "events_cursor";
const LAST_SUCCESS: &str = "last_success_at";

async fn get(db: &impl ConnectionTrait, key: &str) -> Result<Option<i64>, DbErr> {
    Ok(reconcile_state::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|row| row.value))
}

async fn set(db: &DatabaseConnection, key: &str, value: i64) -> Result<(), DbErr> {
    // Through the writers' queue, so SQLite never makes it wait on its busy timeout.
    let txn = begin_write(db).await?;
    reconcile_state::Entity::insert(reconcile_state::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value),
    })
    .on_conflict(
        OnConflict::column(reconcile_state::Column::Key)
            .update_column(reconcile_state::Column::Value)
            .to_owned(),
    )
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await
}

/// Events created at or after this second are listed next (`None`: never listed yet).
pub(super) async fn events_cursor(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    get(db, EVENTS_CURSOR).await
}

pub(super) async fn set_events_cursor(db: &DatabaseConnection, at: i64) -> Result<(), DbErr> {
    set(db, EVENTS_CURSOR, at).await
}

/// When the last cycle that did everything it tried ended (unix seconds), on any replica.
pub async fn last_success(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    get(db, LAST_SUCCESS).await
}

pub(super) async fn set_last_success(db: &DatabaseConnection, at: i64) -> Result<(), DbErr> {
    set(db, LAST_SUCCESS, at).await
}

/// The latest cycle recorded, on any replica.
pub async fn last_run(db: &DatabaseConnection) -> Result<Option<reconcile_run::Model>, DbErr> {
    reconcile_run::Entity::find()
        .order_by_desc(reconcile_run::Column::FinishedAtMs)
        .order_by_desc(reconcile_run::Column::Id)
        .one(db)
        .await
}

/// Records one cycle that held the lock from `started_at_ms` to `finished_at_ms`.
pub(super) async fn record_run(
    db: &DatabaseConnection,
    run: reconcile_run::ActiveModel,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    reconcile_run::Entity::insert(run)
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await
}
