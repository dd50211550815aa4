//! Webhook payloads hold personal data (names, emails, addresses), so they are kept only as
//! long as `WEBHOOK_PAYLOAD_RETENTION` says. Older ones are emptied; the event's row stays
//! (id, type, outcome, times), so a late redelivery of it is still a duplicate and nothing
//! is applied twice.

use std::time::Duration;

use sea_orm::{
    sea_query::Expr, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::{
    db::begin_write,
    db::{clock::now, entities::webhook_event},
};

/// Payloads emptied per transaction, so the writer lock is never held for long.
const BATCH: u64 = 500;

/// Empties the payloads of events received longer than `keep` ago; returns how many.
pub async fn remove_old_payloads(db: &DatabaseConnection, keep: Duration) -> Result<usize, DbErr> {
    use webhook_event::Column as C;
    let at = now();
    let before = at - i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
    let mut removed = 0;
    loop {
        let ids: Vec<String> = webhook_event::Entity::find()
            .select_only()
            .column(C::Id)
            .filter(C::ReceivedAt.lt(before))
            .filter(C::PayloadRemovedAt.is_null())
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(removed);
        }
        let txn = begin_write(db).await?;
        let n = webhook_event::Entity::update_many()
            .col_expr(C::Payload, Expr::value(""))
            .col_expr(C::PayloadRemovedAt, Expr::value(at))
            .filter(C::Id.is_in(ids.iter().map(String::as_str)))
            .filter(C::PayloadRemovedAt.is_null())
            .exec(&*txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        removed += usize::try_from(n).unwrap_or(usize::MAX);
        if (ids.len() as u64) < BATCH {
            return Ok(removed);
        }
    }
}
