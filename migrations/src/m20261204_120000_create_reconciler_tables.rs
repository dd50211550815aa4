//! The reconciler's own tables: what drift it found, when it last compared each customer,
//! and its cursor and last good cycle.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per field found different from Stripe (and healed).
        manager
            .create_table(
                Table::create()
                    .table(DriftRecords::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DriftRecords::Id))
                    .col(big_integer(DriftRecords::DetectedAt))
                    .col(string(DriftRecords::CustomerId))
                    .col(string(DriftRecords::ObjectType))
                    .col(string(DriftRecords::ObjectId))
                    .col(string(DriftRecords::Field))
                    .col(string(DriftRecords::EventType))
                    .col(text_null(DriftRecords::DatabaseValue))
                    .col(text_null(DriftRecords::StripeValue))
                    .to_owned(),
            )
            .await?;
        // `billfold drift --since …`
        manager
            .create_index(
                Index::create()
                    .name("idx_drift_records_detected_at")
                    .table(DriftRecords::Table)
                    .col(DriftRecords::DetectedAt)
                    .to_owned(),
            )
            .await?;

        // When each customer was last compared with Stripe: oldest first is next.
        manager
            .create_table(
                Table::create()
                    .table(CustomerChecks::Table)
                    .if_not_exists()
                    .col(string(CustomerChecks::CustomerId).primary_key())
                    .col(big_integer(CustomerChecks::CheckedAt))
                    .to_owned(),
            )
            .await?;

        // A few named numbers: the events cursor, the last successful cycle.
        manager
            .create_table(
                Table::create()
                    .table(ReconcileState::Table)
                    .if_not_exists()
                    .col(string(ReconcileState::Key).primary_key())
                    .col(big_integer(ReconcileState::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DriftRecords::Table.into_iden(),
            CustomerChecks::Table.into_iden(),
            ReconcileState::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum DriftRecords {
    Table,
    Id,
    DetectedAt,
    CustomerId,
    ObjectType,
    ObjectId,
    Field,
    EventType,
    DatabaseValue,
    StripeValue,
}

#[derive(DeriveIden)]
enum CustomerChecks {
    Table,
    CustomerId,
    CheckedAt,
}

#[derive(DeriveIden)]
enum ReconcileState {
    Table,
    Key,
    Value,
}
