//! Which organisation a signed-in user acts for: the one they chose (`users.current_organization_id`)
//! if they still belong to it, else their personal one. Every account has a personal
//! organisation, made with the account ([`create_personal`]).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};

use crate::{
    db::entities::{membership, organization, user},
    domain::{CurrentOrg, Role},
};

/// Makes `user_id`'s personal organisation with them as its owner; its id. Call in the
/// transaction that makes the account.
pub async fn create_personal(
    conn: &impl ConnectionTrait,
    user_id: i64,
    at: i64,
) -> Result<i64, DbErr> {
    let org = organization::Entity::insert(organization::ActiveModel {
        name: Set("Personal".to_owned()),
        personal_of: Set(Some(user_id)),
        billing_email: Set(None),
        created_at: Set(at),
        ..Default::default()
    })
    .exec(conn)
    .await?
    .last_insert_id;
    add_member(conn, org, user_id, Role::Owner, at).await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::CurrentOrganizationId,
            sea_orm::sea_query::Expr::value(org),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(org)
}

/// Makes `user_id` a member of `org` with `role`.
pub async fn add_member(
    conn: &impl ConnectionTrait,
    org: i64,
    user_id: i64,
    role: Role,
    at: i64,
) -> Result<(), DbErr> {
    membership::Entity::insert(membership::ActiveModel {
        organization_id: Set(org),
        user_id: Set(user_id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(at),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Makes `org_id` the user's current organisation if they belong to it with a role that
/// manages its billing; whether it did.
pub async fn choose_for_billing(
    db: &DatabaseConnection,
    user_id: i64,
    org_id: i64,
) -> Result<bool, DbErr> {
    let role = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(membership::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .and_then(|m| Role::parse(&m.role));
    if !role.is_some_and(Role::manages_billing) {
        return Ok(false);
    }
    let txn = crate::db::begin_write(db).await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::CurrentOrganizationId,
            sea_orm::sea_query::Expr::value(org_id),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}

/// The organisation `user` acts for now: their choice if they still belong to it, else their
/// personal organisation; made now (through the one write path) for an account without one.
pub async fn current(db: &DatabaseConnection, user: &user::Model) -> Result<CurrentOrg, DbErr> {
    if let Some(found) = find_current(db, user).await? {
        return Ok(found);
    }
    let txn = crate::db::begin_write(db).await?;
    let found = match find_current(&*txn, user).await? {
        Some(found) => found,
        None => {
            let id = create_personal(&*txn, user.id, crate::db::clock::now()).await?;
            CurrentOrg {
                id,
                name: "Personal".to_owned(),
                personal: true,
                role: Role::Owner,
            }
        }
    };
    txn.commit().await?;
    Ok(found)
}

async fn find_current(
    conn: &impl ConnectionTrait,
    user: &user::Model,
) -> Result<Option<CurrentOrg>, DbErr> {
    let mut candidates = membership::Entity::find()
        .find_also_related(organization::Entity)
        .filter(membership::Column::UserId.eq(user.id))
        .filter(
            sea_orm::Condition::any()
                .add(organization::Column::PersonalOf.eq(user.id))
                .add(
                    membership::Column::OrganizationId
                        .eq(user.current_organization_id.unwrap_or(0)),
                ),
        )
        .all(conn)
        .await?;
    // The chosen one first, then the personal one.
    candidates.sort_by_key(|(m, _)| Some(m.organization_id) != user.current_organization_id);
    Ok(candidates.into_iter().find_map(|(m, o)| {
        o.map(|o| CurrentOrg {
            id: o.id,
            personal: o.personal_of == Some(user.id),
            name: o.name,
            role: Role::parse(&m.role).unwrap_or(Role::Member),
        })
    }))
}
