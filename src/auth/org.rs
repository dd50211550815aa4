//! Which organisation a signed-in user acts for: the one they chose (`users.current_organization_id`)
//! if they still belong to it, else their personal one. Every account has a personal
//! organisation, made with the account ([`create_personal`]).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use crate::{
    db::entities::{membership, organization, user},
    domain::{CurrentOrg, OrgChoice, Role},
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

/// The organisation `user` acts for now (their choice if they still belong to it, else their
/// personal organisation), and every organisation they belong to, in the order they joined
/// them, the current one marked: one statement.
pub async fn current(
    db: &DatabaseConnection,
    user: &user::Model,
) -> Result<(CurrentOrg, Vec<OrgChoice>), DbErr> {
    let orgs = belongs_to(db, user).await?;
    current_among(db, user, orgs).await
}

/// [`current`] for a user whose organisations were read already (with the session, in the
/// order they joined them): no statement unless the personal organisation must be made.
pub(super) async fn current_among(
    db: &DatabaseConnection,
    user: &user::Model,
    mut orgs: Vec<OrgChoice>,
) -> Result<(CurrentOrg, Vec<OrgChoice>), DbErr> {
    match mark_current(user, &mut orgs) {
        Some(found) => Ok((found, orgs)),
        None => with_personal(db, user).await,
    }
}

/// For an account without a personal organisation: makes it now (through the one write path),
/// unless another request made it meanwhile, and answers as [`current`].
async fn with_personal(
    db: &DatabaseConnection,
    user: &user::Model,
) -> Result<(CurrentOrg, Vec<OrgChoice>), DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let mut orgs = belongs_to(&*txn, user).await?;
    let found = match mark_current(user, &mut orgs) {
        Some(found) => found,
        None => {
            let id = create_personal(&*txn, user.id, crate::db::clock::now()).await?;
            let found = CurrentOrg {
                id,
                name: "Personal".to_owned(),
                personal: true,
                role: Role::Owner,
            };
            orgs.push(OrgChoice {
                id,
                name: found.name.clone(),
                personal: true,
                role: Role::Owner,
                current: true,
            });
            found
        }
    };
    txn.commit().await?;
    Ok((found, orgs))
}

/// One organisation `user_id` belongs to, as their list shows it (not marked current).
pub(super) fn choice(
    user_id: i64,
    (id, name, personal_of): (i64, String, Option<i64>),
    role: &str,
) -> OrgChoice {
    OrgChoice {
        personal: personal_of == Some(user_id),
        id,
        name,
        role: Role::parse(role).unwrap_or(Role::Member),
        current: false,
    }
}

/// The organisations `user` belongs to, in the order they joined them (none marked current).
async fn belongs_to(
    conn: &impl ConnectionTrait,
    user: &user::Model,
) -> Result<Vec<OrgChoice>, DbErr> {
    Ok(membership::Entity::find()
        .find_also_related(organization::Entity)
        .filter(membership::Column::UserId.eq(user.id))
        .order_by_asc(membership::Column::CreatedAt)
        .order_by_asc(membership::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|(m, o)| o.map(|o| choice(user.id, (o.id, o.name, o.personal_of), &m.role)))
        .collect())
}

/// The chosen organisation if `user` still belongs to it, else their personal one; marked
/// current in `orgs`.
fn mark_current(user: &user::Model, orgs: &mut [OrgChoice]) -> Option<CurrentOrg> {
    let chosen = orgs
        .iter()
        .position(|o| Some(o.id) == user.current_organization_id)
        .or_else(|| orgs.iter().position(|o| o.personal))?;
    let o = &mut orgs[chosen];
    o.current = true;
    Some(CurrentOrg {
        id: o.id,
        name: o.name.clone(),
        personal: o.personal,
        role: o.role,
    })
}
