//! What became of an event, told more exactly: whether its failure was Stripe refusing a
//! request that no retry can change (a key without the permission), and when its payload
//! was removed for being older than the retention period. Events the reconciler sets aside
//! are an outcome (`set_aside`), which needs no column. And where the reconciler's listing of
//! missed events left off, which an event id (text) says.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const RECEIVED_INDEX: &str = "idx_webhook_events_received_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            boolean(WebhookEvents::StripeRefused)
                .default(false)
                .to_owned(),
            big_integer_null(WebhookEvents::PayloadRemovedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookEvents::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ReconcileState::Table)
                    .add_column(text_null(ReconcileState::TextValue))
                    .to_owned(),
            )
            .await?;
        // The retention sweep looks for the oldest payloads still held.
        manager
            .create_index(
                Index::create()
                    .name(RECEIVED_INDEX)
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(RECEIVED_INDEX)
                    .table(WebhookEvents::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            WebhookEvents::StripeRefused,
            WebhookEvents::PayloadRemovedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ReconcileState::Table)
                    .drop_column(ReconcileState::TextValue)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    ReceivedAt,
    StripeRefused,
    PayloadRemovedAt,
}

#[derive(DeriveIden)]
enum ReconcileState {
    Table,
    TextValue,
}
