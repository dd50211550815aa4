//! Operators by proof: who may open `/admin/billing` is granted on the server
//! (`billfold admin add EMAIL`) and stored here, never read from an email someone signed up
//! with. Every operator page view and replay is written to `operator_actions`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Operators::Table)
                    .if_not_exists()
                    .col(big_integer(Operators::UserId).primary_key())
                    .col(big_integer(Operators::GrantedAt))
                    .col(string(Operators::GrantedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Operators::Table, Operators::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OperatorActions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OperatorActions::Id))
                    .col(big_integer(OperatorActions::UserId))
                    .col(string(OperatorActions::Email))
                    .col(string(OperatorActions::Action))
                    .col(string_null(OperatorActions::Target))
                    .col(big_integer(OperatorActions::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_operator_actions_at")
                    .table(OperatorActions::Table)
                    .col(OperatorActions::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OperatorActions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Operators::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Operators {
    Table,
    UserId,
    GrantedAt,
    GrantedBy,
}

#[derive(DeriveIden)]
enum OperatorActions {
    Table,
    Id,
    UserId,
    Email,
    Action,
    Target,
    At,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
