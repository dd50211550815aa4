//! Who may pay: only an organisation's owners and billing admins open Checkout, switch plans,
//! or open the portal (and its flows). Members see the plan and who to ask. The rule is
//! [`Role::manages_billing`]; [`require_billing_manager`] enforces it in the services, so every
//! way in (server function, form, deep link) is refused the same.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::{
    db::entities::{membership, user},
    domain::Role,
    error::AppError,
    state::AppState,
    web::CurrentUser,
};

/// The addresses of the members who manage `org_id`'s billing, owners first.
pub async fn billing_contacts(
    conn: &impl ConnectionTrait,
    org_id: i64,
) -> Result<Vec<String>, DbErr> {
    let managers = Role::ALL
        .into_iter()
        .filter(|r| r.manages_billing())
        .map(Role::as_str);
    let mut rows: Vec<(membership::Model, Option<user::Model>)> = membership::Entity::find()
        .find_also_related(user::Entity)
        .filter(membership::Column::OrganizationId.eq(org_id))
        .filter(membership::Column::Role.is_in(managers))
        .order_by_asc(membership::Column::CreatedAt)
        .order_by_asc(membership::Column::Id)
        .all(conn)
        .await?;
    rows.sort_by_key(|(m, _)| m.role != Role::Owner.as_str());
    Ok(rows
        .into_iter()
        .filter_map(|(_, u)| u.map(|u| u.email))
        .collect())
}

/// 403 for a member who does not manage the current organisation's billing, naming who does.
pub async fn require_billing_manager(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    if user.org.role.manages_billing() {
        return Ok(());
    }
    let contacts = billing_contacts(&state.db, user.org.id).await?;
    Err(AppError::Forbidden(refusal(&user.org.name, &contacts)))
}

/// What a member who may not change billing is told.
pub fn refusal(org_name: &str, contacts: &[String]) -> String {
    let ask = if contacts.is_empty() {
        "an owner".to_owned()
    } else {
        contacts.join(", ")
    };
    format!("Only the owners and billing admins of {org_name} can change its billing. Ask {ask}.")
}
