//! The demo app's projects, capped by the catalogue's `projects` limit: a user may have as many
//! as the plan allows ([`Included::limit`]), none without access. It shows the way a host app
//! reads a limit: ask the one loader what the plan includes, then count under a guard so two
//! requests at once cannot both take the last place.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Statement,
};

use super::{
    entitlement,
    guard::BILLING_PAGE,
    summary::{Included, Projects},
};
use crate::{
    db::{begin_write, clock, entities::project},
    error::AppError,
    state::AppState,
    web::CurrentUser,
};

/// The catalogue's limit that caps projects.
pub const LIMIT: &str = "projects";

/// The longest project name, in characters.
const MAX_NAME: usize = 80;

/// The current organisation's projects, oldest first, and how many its plan allows now.
pub async fn list(state: &AppState, user: &CurrentUser) -> Result<Projects, AppError> {
    let loaded = entitlement::load_all(state, user).await?;
    let included = entitlement::included(state, &loaded).await?;
    let names = project::Entity::find()
        .filter(project::Column::OrganizationId.eq(user.org.id))
        .order_by_asc(project::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    Ok(Projects {
        names,
        limit: included.limit(LIMIT),
        refusal: refusal(state, &included),
    })
}

/// A project's name as given: trimmed, 1 to 80 characters, no control characters.
fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("name", "Give the project a name."));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "Use up to 80 characters, on one line, for the name.",
        ));
    }
    Ok(name.to_owned())
}

/// Adds a project, if the plan allows one more: 403 naming the plans that allow more when
/// the limit is reached (or with no plan).
pub async fn create(state: &AppState, user: &CurrentUser, raw_name: &str) -> Result<(), AppError> {
    let name = parse_name(raw_name)?;
    let loaded = entitlement::load_all(state, user).await?;
    let included = entitlement::included(state, &loaded).await?;
    let cap = included.limit(LIMIT);
    let txn = begin_write(&state.db).await?;
    // One writer per organisation while counting: on SQLite the write lock is already held;
    // on PostgreSQL the organisation's row is locked, so two requests at once count one after
    // the other.
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM organizations WHERE id = $1 FOR UPDATE",
            [user.org.id.into()],
        ))
        .await?;
    }
    let have = project::Entity::find()
        .filter(project::Column::OrganizationId.eq(user.org.id))
        .count(&*txn)
        .await?;
    if let Some(cap) = cap.filter(|&cap| have >= cap) {
        txn.rollback().await?;
        return Err(AppError::Forbidden(at_limit(state, &included, cap)));
    }
    project::Entity::insert(project::ActiveModel {
        id: NotSet,
        user_id: Set(user.id),
        organization_id: Set(Some(user.org.id)),
        name: Set(name),
        created_at: Set(clock::now()),
    })
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await?;
    Ok(())
}

/// What a user at the limit is told, `None` when the plan sets no cap.
fn refusal(state: &AppState, included: &Included) -> Option<String> {
    included
        .limit(LIMIT)
        .map(|cap| at_limit(state, included, cap))
}

/// How many the plan allows (`cap`), and which plans allow more.
fn at_limit(state: &AppState, included: &Included, cap: u64) -> String {
    let more: Vec<String> = state
        .config
        .catalog
        .plans
        .iter()
        .filter_map(|p| match p.limits.get(LIMIT) {
            None => Some(format!("{} (no limit)", p.name)),
            Some(&n) if n > cap => Some(format!("{} ({n})", p.name)),
            Some(_) => None,
        })
        .collect();
    let now = if !included.granted {
        "Projects need an active plan.".to_owned()
    } else {
        format!(
            "Your plan allows {cap} project{}.",
            if cap == 1 { "" } else { "s" }
        )
    };
    let which = match more.as_slice() {
        [] => String::new(),
        [one] => format!(" {one} allows more."),
        [rest @ .., last] => format!(" {} and {last} allow more.", rest.join(", ")),
    };
    format!("{now}{which} Choose a plan on the billing page: {BILLING_PAGE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_short_line() {
        assert_eq!(parse_name("  Website  ").expect("ok"), "Website");
        for bad in ["", "   ", "a\nb", &"x".repeat(81)] {
            assert!(
                matches!(parse_name(bad), Err(AppError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_name(&"é".repeat(80)).is_ok(), "characters, not bytes");
    }
}
