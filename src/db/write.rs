//! The one way to start a transaction that writes: on SQLite it queues writers in process
//! and takes the database's write lock up front; on PostgreSQL it is a plain transaction.
//! Every writer (billing sync, webhooks, the reconciler) begins here.

use std::sync::{Arc, LazyLock};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

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
