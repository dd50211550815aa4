//! The one Checkout session a customer may pay, and the replaced ones still to be expired at
//! Stripe (`checkout_expiries`, an outbox): a session is remembered in the same transaction
//! that replaces it, and forgotten only once Stripe can no longer take a payment for it.

use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use super::begin_write;
use crate::db::{
    clock,
    entities::{checkout_expiry, stripe_customer},
};

/// Makes `session_id` the customer's open Checkout session and returns the one it replaces,
/// which is remembered to be expired in the same transaction. A compare-and-set on the row,
/// so concurrent starts form a chain: each replaces exactly the one recorded before it, and
/// every replaced session is remembered.
pub async fn record_open_checkout(
    db: &DatabaseConnection,
    customer_id: &str,
    session_id: &str,
) -> Result<Option<String>, DbErr> {
    use stripe_customer::Column as C;
    loop {
        let txn = begin_write(db).await?;
        let previous: Option<Option<String>> = stripe_customer::Entity::find()
            .select_only()
            .column(C::OpenCheckoutSession)
            .filter(C::CustomerId.eq(customer_id))
            .into_tuple()
            .one(&*txn)
            .await?;
        let Some(previous) = previous else {
            return Err(DbErr::RecordNotFound(format!(
                "Checkout for {customer_id}, which has no row"
            )));
        };
        let unchanged = match &previous {
            Some(p) => C::OpenCheckoutSession.eq(p.as_str()),
            None => C::OpenCheckoutSession.is_null(),
        };
        let swapped = stripe_customer::Entity::update_many()
            .col_expr(C::OpenCheckoutSession, Expr::value(session_id))
            .filter(C::CustomerId.eq(customer_id))
            .filter(unchanged)
            .exec(&*txn)
            .await?
            .rows_affected;
        if swapped != 1 {
            txn.rollback().await?;
            continue;
        }
        if let Some(previous) = &previous {
            remember_in(&*txn, previous, customer_id).await?;
        }
        txn.commit().await?;
        return Ok(previous);
    }
}

/// Remembers a session to expire (no change if it is remembered already).
pub(super) async fn remember_in(
    conn: &impl ConnectionTrait,
    session_id: &str,
    customer_id: &str,
) -> Result<(), DbErr> {
    checkout_expiry::Entity::insert(checkout_expiry::ActiveModel {
        session_id: Set(session_id.to_owned()),
        customer_id: Set(customer_id.to_owned()),
        attempts: Set(0),
        last_error: Set(None),
        created_at: Set(clock::now()),
    })
    .on_conflict(
        OnConflict::column(checkout_expiry::Column::SessionId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// An attempt to expire `session_id` failed with `error`: it stays remembered (or is
/// remembered now), one attempt more, for the reconciler's next cycle.
pub async fn checkout_expiry_failed(
    db: &DatabaseConnection,
    session_id: &str,
    customer_id: &str,
    error: &str,
) -> Result<(), DbErr> {
    use checkout_expiry::Column as C;
    let txn = begin_write(db).await?;
    checkout_expiry::Entity::insert(checkout_expiry::ActiveModel {
        session_id: Set(session_id.to_owned()),
        customer_id: Set(customer_id.to_owned()),
        attempts: Set(1),
        last_error: Set(Some(error.to_owned())),
        created_at: Set(clock::now()),
    })
    .on_conflict(
        OnConflict::column(C::SessionId)
            .value(
                C::Attempts,
                Expr::col((checkout_expiry::Entity, C::Attempts)).add(1),
            )
            .update_column(C::LastError)
            .to_owned(),
    )
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await
}

/// Stripe can no longer take a payment for `session_id` (expired, paid, or unknown to it):
/// nothing is left to do.
pub async fn checkout_expiry_done(db: &DatabaseConnection, session_id: &str) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    checkout_expiry::Entity::delete_by_id(session_id.to_owned())
        .exec(&*txn)
        .await?;
    txn.commit().await
}
