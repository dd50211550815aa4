//! The one way to start a transaction that writes: on SQLite it queues writers in process
//! and takes the database's write lock up front; on PostgreSQL it is a plain transaction.
//! Every writer (billing sync, webhooks, the reconciler) begins here.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// SQLite has one writer at a time per database. Queueing writers here, in process, is much
/// faster than letting them collide in SQLite and back off on its busy timeout. One queue per
/// database file: a process with several databases (the tests' apps) never queues one
/// database's writers behind another's.
static SQLITE_WRITERS: LazyLock<std::sync::Mutex<HashMap<std::path::PathBuf, Arc<Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// The writer queue of the SQLite database `db` opens.
fn sqlite_writer(db: &DatabaseConnection) -> Arc<Mutex<()>> {
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    let mut all = SQLITE_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(file).or_default().clone()
}

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
        let writer = sqlite_writer(db).lock_owned().await;
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
