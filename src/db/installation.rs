//! This installation's own id: made by the first process that starts on a database, and
//! the same for every replica and restart after. Stripe idempotency keys carry it, so two
//! installations that share a Stripe account never replay each other's requests.

use sea_orm::{
    sea_query::{Alias, Expr, ExprTrait, OnConflict, Query},
    ConnectionTrait, DatabaseConnection, DbErr,
};

use super::clock;

/// Reads the installation id, creating it on first start. Concurrent first starts agree:
/// only one insert wins, and every process reads the winner's id.
pub async fn installation_id(db: &DatabaseConnection) -> Result<String, DbErr> {
    let table = Alias::new("installations");
    let id = Alias::new("id");
    let installation_id = Alias::new("installation_id");
    let fresh = format!("{:016x}", rand::random::<u64>());
    let insert = Query::insert()
        .into_table(table.clone())
        .columns([
            id.clone(),
            installation_id.clone(),
            Alias::new("created_at"),
        ])
        .values([1.into(), fresh.into(), clock::now().into()])
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(OnConflict::column(id.clone()).do_nothing().to_owned())
        .to_owned();
    let backend = db.get_database_backend();
    db.execute_raw(backend.build(&insert)).await?;
    let select = Query::select()
        .column(installation_id)
        .from(table)
        .and_where(Expr::col(id).eq(1))
        .to_owned();
    let row = db
        .query_one_raw(backend.build(&select))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the installations row".into()))?;
    row.try_get_by_index(0)
}
