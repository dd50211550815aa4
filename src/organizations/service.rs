//! The rules of organisations, on the server: who may create, switch, invite, accept, change
//! roles, remove and leave. Every function takes the signed-in user and checks what they may
//! do in the organisation itself; nothing is decided by what a page showed.

use std::time::Duration;

use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};

use super::{InvitationPreview, InvitationRow, MemberRow, OrganizationView, SeatsView};
use crate::{
    auth::{org::add_member, ssr::link_refused, validate::Email},
    billing::seats,
    db::{
        begin_write, clock,
        entities::{invitation, membership, organization, user},
    },
    domain::Role,
    error::AppError,
    limits::Rule,
    mail::{
        links::{self, Purpose},
        notice,
        outbox::{self, NewMail},
        Kind,
    },
    state::AppState,
    web::{CurrentUser, SignedIn},
};

/// Team organisations one user may create.
pub static CREATES_PER_USER: Rule = Rule::new("org-create", 10, Duration::from_secs(3600));
/// Invitations one organisation may send: each mails a stranger's address.
pub static INVITES_PER_ORG: Rule = Rule::new("org-invite", 30, Duration::from_secs(3600));

/// How long an invitation works.
pub const INVITATION_SECS: i64 = 7 * 86_400;

/// The longest organisation name, in characters.
const MAX_NAME: usize = 80;

const NOT_A_MEMBER: &str = "You are not a member of that organisation.";
const NEEDS_AN_OWNER: &str = "An organisation needs an owner: make someone else an owner first.";

/// Everything `/settings/organization` shows for the user's current organisation.
pub async fn view(state: &AppState, signed_in: &SignedIn) -> Result<OrganizationView, AppError> {
    let db = &state.db;
    let user = &signed_in.user;
    let choices = signed_in.orgs.clone();
    let members = membership::Entity::find()
        .find_also_related(user::Entity)
        .filter(membership::Column::OrganizationId.eq(user.org.id))
        .order_by_asc(membership::Column::CreatedAt)
        .order_by_asc(membership::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(m, u)| {
            u.map(|u| MemberRow {
                you: u.id == user.id,
                user_id: u.id,
                email: u.email,
                role: Role::parse(&m.role).unwrap_or(Role::Member),
            })
        })
        .collect();
    let invitations = if user.org.role.manages_members() {
        pending(db, user.org.id)
            .await?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id,
                email: i.email,
                role: Role::parse(&i.role).unwrap_or(Role::Member),
                expires_at: i.expires_at,
            })
            .collect()
    } else {
        Vec::new()
    };
    let org = organization::Entity::find_by_id(user.org.id)
        .one(db)
        .await?;
    let seats = seats_view(state, user.org.id).await?;
    Ok(OrganizationView {
        seats,
        email: user.email.clone(),
        email_verified: user.email_verified,
        current: user.org.clone(),
        billing_email: org.and_then(|o| o.billing_email),
        choices,
        members,
        invitations,
    })
}

/// Seats used and paid, when the organisation's live plan is priced per seat.
async fn seats_view(state: &AppState, org_id: i64) -> Result<Option<SeatsView>, AppError> {
    use crate::db::entities::stripe_customer;
    let catalog = &state.config.catalog;
    let customers: Vec<stripe_customer::Model> = stripe_customer::Entity::find()
        .filter(stripe_customer::Column::OrganizationId.eq(org_id))
        .filter(stripe_customer::Column::Livemode.eq(state.config.stripe.mode.livemode()))
        .filter(stripe_customer::Column::Deleted.eq(false))
        .all(&state.db)
        .await?;
    for customer in customers {
        if let Some((sub, plan_seats)) =
            seats::per_seat_subscription(&state.db, catalog, &customer.customer_id).await?
        {
            let used = seats::seat_count(&state.db, org_id, &catalog.seat_policy).await?;
            return Ok(Some(SeatsView {
                used,
                paid: sub.quantity.and_then(|q| u64::try_from(q).ok()),
                maximum: plan_seats.maximum,
            }));
        }
    }
    Ok(None)
}

/// The organisation's invitations still waiting for an answer.
async fn pending(
    conn: &impl ConnectionTrait,
    org_id: i64,
) -> Result<Vec<invitation::Model>, sea_orm::DbErr> {
    invitation::Entity::find()
        .filter(invitation::Column::OrganizationId.eq(org_id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(clock::now()))
        .order_by_asc(invitation::Column::Id)
        .all(conn)
        .await
}

/// A name as given: trimmed, 1 to 80 characters, on one line.
fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("name", "Give the organisation a name."));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "Use up to 80 characters, on one line, for the name.",
        ));
    }
    Ok(name.to_owned())
}

/// Creates a team organisation with the user as its owner (its billing address theirs), and
/// makes it their current one.
pub async fn create(state: &AppState, user: &CurrentUser, raw_name: &str) -> Result<i64, AppError> {
    let name = parse_name(raw_name)?;
    state
        .limits
        .enforce(
            &[CREATES_PER_USER.on(user.id.to_string())],
            "You created several organisations in the last hour: wait a while.",
        )
        .await?;
    let now = clock::now();
    let txn = begin_write(&state.db).await?;
    let org = organization::Entity::insert(organization::ActiveModel {
        name: Set(name),
        personal_of: Set(None),
        billing_email: Set(Some(user.email.clone())),
        created_at: Set(now),
        ..Default::default()
    })
    .exec(&*txn)
    .await?
    .last_insert_id;
    add_member(&*txn, org, user.id, Role::Owner, now).await?;
    set_current(&*txn, user.id, Some(org)).await?;
    txn.commit().await?;
    Ok(org)
}

async fn set_current(
    conn: &impl ConnectionTrait,
    user_id: i64,
    org: Option<i64>,
) -> Result<(), sea_orm::DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::CurrentOrganizationId, Expr::value(org))
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The user's role in `org_id`, if they belong to it.
async fn role_in(
    conn: &impl ConnectionTrait,
    org_id: i64,
    user_id: i64,
) -> Result<Option<Role>, sea_orm::DbErr> {
    Ok(membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(membership::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .and_then(|m| Role::parse(&m.role)))
}

/// Makes `raw_org` the user's current organisation, if they belong to it.
pub async fn switch(state: &AppState, user: &CurrentUser, raw_org: &str) -> Result<(), AppError> {
    let org: i64 = raw_org
        .trim()
        .parse()
        .map_err(|_| AppError::invalid("organization_id", "Choose an organisation."))?;
    if role_in(&state.db, org, user.id).await?.is_none() {
        return Err(AppError::NotFound(NOT_A_MEMBER.into()));
    }
    let txn = begin_write(&state.db).await?;
    set_current(&*txn, user.id, Some(org)).await?;
    txn.commit().await?;
    Ok(())
}

/// Owners only (of the current organisation): 403 saying so.
fn require_owner(user: &CurrentUser) -> Result<(), AppError> {
    if user.org.role.manages_members() {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "Only the owners of {} can manage its members.",
            user.org.name
        )))
    }
}

fn parse_role(raw: &str) -> Result<Role, AppError> {
    Role::parse(raw.trim())
        .ok_or_else(|| AppError::invalid("role", "Choose a role: member, billing admin or owner."))
}

/// Invites `raw_email` to the current organisation as `raw_role`: a mail with a link that
/// works once, for a week. A pending invitation of the same address is replaced.
pub async fn invite(
    state: &AppState,
    user: &CurrentUser,
    raw_email: &str,
    raw_role: &str,
) -> Result<(), AppError> {
    require_owner(user)?;
    if user.org.personal {
        return Err(AppError::invalid(
            "email",
            "A personal organisation has only you: create a team organisation to invite people.",
        ));
    }
    if !user.email_verified {
        return Err(AppError::Forbidden(
            "Confirm your own address first: open the link we mailed you.".into(),
        ));
    }
    let email = Email::parse(raw_email).map_err(|m| AppError::invalid("email", m))?;
    let role = parse_role(raw_role)?;
    let already = membership::Entity::find()
        .inner_join(user::Entity)
        .filter(membership::Column::OrganizationId.eq(user.org.id))
        .filter(user::Column::Email.eq(email.as_str()))
        .count(&state.db)
        .await?;
    if already > 0 {
        return Err(AppError::Conflict(format!(
            "{email} is a member of {} already.",
            user.org.name
        )));
    }
    if let Err(full) =
        seats::room_for_one_more(&state.db, &state.config.catalog, user.org.id).await?
    {
        return Err(AppError::Forbidden(full));
    }
    state
        .limits
        .enforce(
            &[INVITES_PER_ORG.on(user.org.id.to_string())],
            "This organisation sent many invitations in the last hour: wait a while.",
        )
        .await?;
    let now = clock::now();
    let txn = begin_write(&state.db).await?;
    invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(now))
        .filter(invitation::Column::OrganizationId.eq(user.org.id))
        .filter(invitation::Column::Email.eq(email.as_str()))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(&*txn)
        .await?;
    let id = invitation::Entity::insert(invitation::ActiveModel {
        organization_id: Set(user.org.id),
        email: Set(email.as_str().to_owned()),
        role: Set(role.as_str().to_owned()),
        invited_by: Set(user.id),
        created_at: Set(now),
        expires_at: Set(now + INVITATION_SECS),
        accepted_at: Set(None),
        revoked_at: Set(None),
        ..Default::default()
    })
    .exec(&*txn)
    .await?
    .last_insert_id;
    let facts = notice::Invitation {
        invitation_id: id,
        organization: user.org.name.clone(),
        invited_by: user.email.clone(),
        role: role.label().to_owned(),
    };
    let policy = &state.config.catalog.seat_policy;
    if policy.count_pending_invitations {
        seats::queue_sync(&*txn, user.org.id, policy).await?;
    }
    outbox::enqueue(
        &*txn,
        NewMail {
            key: format!("invitation:{id}"),
            kind: Kind::Invitation,
            // The link's token is made for the member who invited (the invitee may have no
            // account yet); accepting checks the address it went to.
            user_id: Some(user.id),
            to: email.as_str().to_owned(),
            params: serde_json::to_value(facts).unwrap_or_default(),
        },
    )
    .await?;
    txn.commit().await?;
    state.mail.wake();
    Ok(())
}

/// Revokes a pending invitation of the current organisation.
pub async fn revoke(state: &AppState, user: &CurrentUser, raw_id: &str) -> Result<(), AppError> {
    require_owner(user)?;
    let id: i64 = raw_id
        .trim()
        .parse()
        .map_err(|_| AppError::invalid("invitation_id", "Choose an invitation."))?;
    let txn = begin_write(&state.db).await?;
    let done = invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(clock::now()))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::OrganizationId.eq(user.org.id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(&*txn)
        .await?;
    let policy = &state.config.catalog.seat_policy;
    if policy.count_pending_invitations && done.rows_affected > 0 {
        seats::queue_sync(&*txn, user.org.id, policy).await?;
    }
    txn.commit().await?;
    if done.rows_affected == 0 {
        return Err(AppError::NotFound(
            "That invitation is not pending any more.".into(),
        ));
    }
    Ok(())
}

fn parse_user(raw: &str) -> Result<i64, AppError> {
    raw.trim()
        .parse()
        .map_err(|_| AppError::invalid("user_id", "Choose a member."))
}

/// How many owners `org_id` has.
async fn owners(conn: &impl ConnectionTrait, org_id: i64) -> Result<u64, sea_orm::DbErr> {
    membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .count(conn)
        .await
}

/// Gives a member another role (an owner's call). The last owner keeps the role: ownership
/// moves by making another member owner first.
pub async fn change_role(
    state: &AppState,
    user: &CurrentUser,
    raw_user: &str,
    raw_role: &str,
) -> Result<(), AppError> {
    require_owner(user)?;
    let target = parse_user(raw_user)?;
    let role = parse_role(raw_role)?;
    let txn = begin_write(&state.db).await?;
    let Some(was) = role_in(&*txn, user.org.id, target).await? else {
        txn.rollback().await?;
        return Err(AppError::NotFound(
            "That person is not a member any more.".into(),
        ));
    };
    if was == Role::Owner && role != Role::Owner && owners(&*txn, user.org.id).await? <= 1 {
        txn.rollback().await?;
        return Err(AppError::invalid("role", NEEDS_AN_OWNER));
    }
    membership::Entity::update_many()
        .col_expr(membership::Column::Role, Expr::value(role.as_str()))
        .filter(membership::Column::OrganizationId.eq(user.org.id))
        .filter(membership::Column::UserId.eq(target))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Removes a member (an owner's call); not oneself (that is leaving), never the last owner.
pub async fn remove(state: &AppState, user: &CurrentUser, raw_user: &str) -> Result<(), AppError> {
    require_owner(user)?;
    let target = parse_user(raw_user)?;
    if target == user.id {
        return Err(AppError::invalid(
            "user_id",
            "To leave the organisation, use Leave.",
        ));
    }
    end_membership(state, user.org.id, target).await
}

/// The user leaves their current organisation: not a personal one, and not as its last owner.
pub async fn leave(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    if user.org.personal {
        return Err(AppError::invalid(
            "organization_id",
            "Your personal organisation is yours for good.",
        ));
    }
    end_membership(state, user.org.id, user.id).await
}

async fn end_membership(state: &AppState, org_id: i64, target: i64) -> Result<(), AppError> {
    let txn = begin_write(&state.db).await?;
    let Some(role) = role_in(&*txn, org_id, target).await? else {
        txn.rollback().await?;
        return Err(AppError::NotFound(
            "That person is not a member any more.".into(),
        ));
    };
    if role == Role::Owner && owners(&*txn, org_id).await? <= 1 {
        txn.rollback().await?;
        return Err(AppError::invalid("user_id", NEEDS_AN_OWNER));
    }
    membership::Entity::delete_many()
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(membership::Column::UserId.eq(target))
        .exec(&*txn)
        .await?;
    seats::queue_sync(&*txn, org_id, &state.config.catalog.seat_policy).await?;
    // Back to their personal organisation, if this was their current one.
    user::Entity::update_many()
        .col_expr(
            user::Column::CurrentOrganizationId,
            Expr::value(Option::<i64>::None),
        )
        .filter(user::Column::Id.eq(target))
        .filter(user::Column::CurrentOrganizationId.eq(org_id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    state.stripe_updates.notify_one();
    Ok(())
}

/// The invitation a live link is for, still pending; refused with what to do otherwise.
async fn live_invitation(
    conn: &impl ConnectionTrait,
    token: &str,
) -> Result<(invitation::Model, organization::Model, user::Model), AppError> {
    let row = match links::check(conn, Purpose::Invitation, token).await? {
        Ok(row) => row,
        Err(refused) => return Err(link_refused(refused.message())),
    };
    let gone = || link_refused("This invitation was withdrawn or has been answered already.");
    let id: i64 = row
        .subject
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(gone)?;
    let Some(inv) = invitation::Entity::find_by_id(id).one(conn).await? else {
        return Err(gone());
    };
    if inv.accepted_at.is_some() || inv.revoked_at.is_some() || inv.email != row.email {
        return Err(gone());
    }
    if inv.expires_at <= clock::now() {
        return Err(link_refused(links::Refused::Expired.message()));
    }
    let org = organization::Entity::find_by_id(inv.organization_id)
        .one(conn)
        .await?
        .ok_or_else(gone)?;
    let by = user::Entity::find_by_id(inv.invited_by)
        .one(conn)
        .await?
        .ok_or_else(gone)?;
    Ok((inv, org, by))
}

/// What an invitation link offers, for its page.
pub async fn preview(state: &AppState, token: &str) -> Result<InvitationPreview, AppError> {
    let (inv, org, by) = live_invitation(&state.db, token.trim()).await?;
    Ok(InvitationPreview {
        organization: org.name,
        email: inv.email,
        role: Role::parse(&inv.role).unwrap_or(Role::Member),
        invited_by: by.email,
    })
}

/// Accepts: only signed in with the address the invitation went to. Following the link proves
/// that address. The user joins with the invitation's role, and the organisation becomes
/// their current one.
pub async fn accept(state: &AppState, user: &CurrentUser, token: &str) -> Result<(), AppError> {
    let token = token.trim();
    let (inv, org, _) = live_invitation(&state.db, token).await?;
    if inv.email != user.email {
        return Err(AppError::Forbidden(format!(
            "This invitation is for {}. Sign in with that address to accept it.",
            inv.email
        )));
    }
    let now = clock::now();
    let txn = begin_write(&state.db).await?;
    if let Err(refused) = links::redeem(&*txn, Purpose::Invitation, token).await? {
        txn.rollback().await?;
        return Err(link_refused(refused.message()));
    }
    let taken = invitation::Entity::update_many()
        .col_expr(invitation::Column::AcceptedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(inv.id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(&*txn)
        .await?;
    if taken.rows_affected != 1 {
        txn.rollback().await?;
        return Err(link_refused(
            "This invitation was withdrawn or has been answered already.",
        ));
    }
    if role_in(&*txn, org.id, user.id).await?.is_none() {
        let role = Role::parse(&inv.role).unwrap_or(Role::Member);
        add_member(&*txn, org.id, user.id, role, now).await?;
        seats::queue_sync(&*txn, org.id, &state.config.catalog.seat_policy).await?;
    }
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user.id))
        .filter(user::Column::Email.eq(inv.email.as_str()))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(&*txn)
        .await?;
    set_current(&*txn, user.id, Some(org.id)).await?;
    txn.commit().await?;
    state.stripe_updates.notify_one();
    Ok(())
}
