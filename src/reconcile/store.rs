//! The reconciler's named numbers in `reconcile_state` (its events cursor, where a listing of
//! missed events left off, and its last successful cycle), and its cycles in `reconcile_runs`.

use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};

use crate::{
    db::begin_write,
    db::entities::{reconcile_run, reconcile_state},
};

const EVENTS_CURSOR: &str = "events_cursor";
const EVENTS_LISTING: &str = "events_listing";
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
        text_value: Set(None),
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

/// A listing of missed events that takes more than one cycle: when it began (the cursor
/// moves to about then once it is done), and where it left off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Listing {
    /// This listing's lower bound (`created[gte]`).
    pub since: i64,
    /// When the listing began, by the database's clock.
    pub started: i64,
    /// Which group of event types (at most 20 a request) is being listed.
    pub chunk: usize,
    /// The last event listed in that group (`starting_after`): the next page is older.
    pub after: Option<String>,
    /// The oldest `created` of the events that failed in this listing and were not set
    /// aside: the next listing starts no later, so that they are tried again.
    pub oldest_failed: Option<i64>,
}

/// The listing under way, if any.
pub(super) async fn listing(db: &DatabaseConnection) -> Result<Option<Listing>, DbErr> {
    let row = reconcile_state::Entity::find_by_id(EVENTS_LISTING.to_owned())
        .one(db)
        .await?;
    Ok(row
        .and_then(|r| r.text_value)
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Keeps where a listing left off, or (`None`) ends it and moves the cursor to `cursor`.
pub(super) async fn save_listing(
    db: &DatabaseConnection,
    listing: Option<&Listing>,
    cursor: Option<i64>,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    match listing {
        Some(listing) => {
            let text = serde_json::to_string(listing)
                .map_err(|e| DbErr::Custom(format!("listing state: {e}")))?;
            reconcile_state::Entity::insert(reconcile_state::ActiveModel {
                key: Set(EVENTS_LISTING.to_owned()),
                value: Set(listing.started),
                text_value: Set(Some(text)),
            })
            .on_conflict(
                OnConflict::column(reconcile_state::Column::Key)
                    .update_columns([
                        reconcile_state::Column::Value,
                        reconcile_state::Column::TextValue,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&*txn)
            .await?;
        }
        None => {
            reconcile_state::Entity::delete_many()
                .filter(reconcile_state::Column::Key.eq(EVENTS_LISTING))
                .exec(&*txn)
                .await?;
        }
    }
    if let Some(at) = cursor {
        reconcile_state::Entity::insert(reconcile_state::ActiveModel {
            key: Set(EVENTS_CURSOR.to_owned()),
            value: Set(at),
            text_value: Set(None),
        })
        .on_conflict(
            OnConflict::column(reconcile_state::Column::Key)
                .update_column(reconcile_state::Column::Value)
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
    }
    txn.commit().await
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
