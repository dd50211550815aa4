//! The reconciler's cycles, one row each: who ran it, when it started and ended (to the
//! millisecond, inside its lock), and what it did. Operators read it; the proof checks from
//! it that no two replicas ran a cycle at the same time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReconcileRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ReconcileRuns::Id))
                    .col(string(ReconcileRuns::Runner))
                    .col(big_integer(ReconcileRuns::StartedAtMs))
                    .col(big_integer(ReconcileRuns::FinishedAtMs))
                    .col(boolean(ReconcileRuns::Succeeded))
                    .col(integer(ReconcileRuns::EventsProcessed))
                    .col(integer(ReconcileRuns::CustomersCompared))
                    .col(integer(ReconcileRuns::Drift))
                    .col(text_null(ReconcileRuns::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_reconcile_runs_started_at_ms")
                    .table(ReconcileRuns::Table)
                    .col(ReconcileRuns::StartedAtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReconcileRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ReconcileRuns {
    Table,
    Id,
    Runner,
    StartedAtMs,
    FinishedAtMs,
    Succeeded,
    EventsProcessed,
    CustomersCompared,
    Drift,
    Error,
}
