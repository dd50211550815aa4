//! One runner at a time: an in-process guard, and on PostgreSQL a session-level advisory
//! lock on a connection of the cycle's own, so one replica runs a cycle at a time.
//!
//! The lock is held across Stripe calls, which is fine: it is no transaction and locks no
//! row. Its connection is taken out of the pool, so however the cycle ends (even dropped
//! mid-way) closing that connection releases the lock; nothing goes back to the pool
//! still holding it.

use sea_orm::{
    sqlx::{self, Connection},
    DbBackend, DbErr,
};
use tokio::sync::OwnedMutexGuard;

use crate::state::AppState;

/// The advisory lock's key: "billfold" in ASCII, so it reads in `pg_locks`.
const ADVISORY_KEY: i64 = 0x6269_6c6c_666f_6c64;

/// The right to run a cycle; [`Guard::release`] gives it back.
pub(super) struct Guard {
    _in_process: OwnedMutexGuard<()>,
    postgres: Option<sqlx::PgConnection>,
}

/// Takes the right to run a cycle, or `None` if a cycle runs elsewhere already.
pub(super) async fn try_acquire(state: &AppState) -> Result<Option<Guard>, DbErr> {
    let Ok(in_process) = state.reconcile_running.clone().try_lock_owned() else {
        return Ok(None);
    };
    let postgres = match state.db.get_database_backend() {
        DbBackend::Postgres => {
            let mut conn = state
                .db
                .get_postgres_connection_pool()
                .acquire()
                .await
                .map_err(sql)?
                .detach();
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(ADVISORY_KEY)
                .fetch_one(&mut conn)
                .await
                .map_err(sql)?;
            if !locked {
                let _ = conn.close().await;
                return Ok(None);
            }
            Some(conn)
        }
        _ => None,
    };
    Ok(Some(Guard {
        _in_process: in_process,
        postgres,
    }))
}

impl Guard {
    pub(super) async fn release(self) {
        if let Some(mut conn) = self.postgres {
            if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(ADVISORY_KEY)
                .execute(&mut conn)
                .await
            {
                tracing::warn!(error = %e, "reconcile: could not unlock; closing the connection releases it");
            }
            let _ = conn.close().await;
        }
    }
}

fn sql(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("reconcile lock: {e}"))
}
