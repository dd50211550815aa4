//! `stripe_outbox`: the changes Billfold owes Stripe (a customer's new email; later, seat
//! counts), written in the transaction of the change that causes them and sent by a task.
//! One row per target (`key`); a newer change to the same target bumps `generation`, so the
//! row goes out again with the newest value and an attempt of an older generation never
//! closes it. `window_started_at`/`window_count` count the updates sent in the current hour,
//! for a budget per target.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StripeOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(StripeOutbox::Id))
                    .col(string_uniq(StripeOutbox::Key))
                    .col(string(StripeOutbox::Kind))
                    .col(string(StripeOutbox::CustomerId))
                    .col(integer(StripeOutbox::Generation))
                    .col(string(StripeOutbox::Status))
                    .col(integer(StripeOutbox::Attempts))
                    .col(big_integer(StripeOutbox::NextAttemptAt))
                    .col(string_null(StripeOutbox::ClaimedBy))
                    .col(big_integer_null(StripeOutbox::ClaimedUntil))
                    .col(text_null(StripeOutbox::LastError))
                    .col(big_integer(StripeOutbox::CreatedAt))
                    .col(big_integer(StripeOutbox::UpdatedAt))
                    .col(big_integer_null(StripeOutbox::DoneAt))
                    .col(big_integer_null(StripeOutbox::WindowStartedAt))
                    .col(integer(StripeOutbox::WindowCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_stripe_outbox_due")
                    .table(StripeOutbox::Table)
                    .col(StripeOutbox::Status)
                    .col(StripeOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StripeOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum StripeOutbox {
    Table,
    Id,
    Key,
    Kind,
    CustomerId,
    Generation,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimedUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
    DoneAt,
    WindowStartedAt,
    WindowCount,
}
