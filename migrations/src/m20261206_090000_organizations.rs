//! Organisations: the billing customer is an organisation's, not a user's. Every account gets a
//! personal organisation (`personal_of` = its user) with its user as the owner; the customer,
//! and so its subscriptions, cards, invoices and history, move to it, with the projects; each
//! user's current organisation is their personal one. Set-based statements, so the move takes
//! the same few statements for ten accounts or a million.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Organizations::Id))
                    .col(string(Organizations::Name))
                    .col(big_integer_null(Organizations::PersonalOf).unique_key())
                    .col(string_null(Organizations::BillingEmail))
                    .col(big_integer(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Memberships::Id))
                    .col(big_integer(Memberships::OrganizationId))
                    .col(big_integer(Memberships::UserId))
                    .col(string(Memberships::Role))
                    .col(big_integer(Memberships::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_org_user")
                    .table(Memberships::Table)
                    .col(Memberships::OrganizationId)
                    .col(Memberships::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_user")
                    .table(Memberships::Table)
                    .col(Memberships::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Invitations::Id))
                    .col(big_integer(Invitations::OrganizationId))
                    .col(string(Invitations::Email))
                    .col(string(Invitations::Role))
                    .col(big_integer(Invitations::InvitedBy))
                    .col(big_integer(Invitations::CreatedAt))
                    .col(big_integer(Invitations::ExpiresAt))
                    .col(big_integer_null(Invitations::AcceptedAt))
                    .col(big_integer_null(Invitations::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invitations::Table, Invitations::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_org")
                    .table(Invitations::Table)
                    .col(Invitations::OrganizationId)
                    .to_owned(),
            )
            .await?;
        // A subscription's quantity (seats) and the item it is on.
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(ColumnDef::new(Subscriptions::Quantity).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(ColumnDef::new(Subscriptions::ItemId).string().null())
                    .to_owned(),
            )
            .await?;
        // What a mailed link is about besides its account (an invitation's id).
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .add_column(ColumnDef::new(EmailTokens::Subject).string().null())
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (
                Users::Table.into_iden(),
                Users::CurrentOrganizationId.into_iden(),
            ),
            (
                StripeCustomers::Table.into_iden(),
                StripeCustomers::OrganizationId.into_iden(),
            ),
            (
                Projects::Table.into_iden(),
                Projects::OrganizationId.into_iden(),
            ),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }

        // Every account's personal organisation, its owner, and what moves to it.
        let db = manager.get_connection();
        for statement in [
            "INSERT INTO organizations (name, personal_of, billing_email, created_at) \
             SELECT 'Personal', id, NULL, created_at FROM users \
             WHERE id NOT IN (SELECT personal_of FROM organizations WHERE personal_of IS NOT NULL)",
            "INSERT INTO memberships (organization_id, user_id, role, created_at) \
             SELECT id, personal_of, 'owner', created_at FROM organizations \
             WHERE personal_of IS NOT NULL",
            "UPDATE stripe_customers SET organization_id = \
             (SELECT id FROM organizations WHERE personal_of = stripe_customers.user_id)",
            "UPDATE projects SET organization_id = \
             (SELECT id FROM organizations WHERE personal_of = projects.user_id)",
            "UPDATE users SET current_organization_id = \
             (SELECT id FROM organizations WHERE personal_of = users.id)",
        ] {
            db.execute_unprepared(statement).await?;
        }

        // One customer per organisation and mode (it was one per user and mode).
        manager
            .drop_index(
                Index::drop()
                    .name("idx_stripe_customers_user_mode")
                    .table(StripeCustomers::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_stripe_customers_org_mode")
                    .table(StripeCustomers::Table)
                    .col(StripeCustomers::OrganizationId)
                    .col(StripeCustomers::Livemode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_projects_org")
                    .table(Projects::Table)
                    .col(Projects::OrganizationId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_stripe_customers_org_mode",
                StripeCustomers::Table.into_iden(),
            ),
            ("idx_projects_org", Projects::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_stripe_customers_user_mode")
                    .table(StripeCustomers::Table)
                    .col(StripeCustomers::UserId)
                    .col(StripeCustomers::Livemode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (
                Users::Table.into_iden(),
                Users::CurrentOrganizationId.into_iden(),
            ),
            (
                StripeCustomers::Table.into_iden(),
                StripeCustomers::OrganizationId.into_iden(),
            ),
            (
                Projects::Table.into_iden(),
                Projects::OrganizationId.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .drop_column(EmailTokens::Subject)
                    .to_owned(),
            )
            .await?;
        for column in [Subscriptions::Quantity, Subscriptions::ItemId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subscriptions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Invitations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Memberships::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Organizations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    PersonalOf,
    BillingEmail,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    OrganizationId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    OrganizationId,
    Email,
    Role,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Quantity,
    ItemId,
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    Subject,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    CurrentOrganizationId,
}

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    UserId,
    OrganizationId,
    Livemode,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    OrganizationId,
}
