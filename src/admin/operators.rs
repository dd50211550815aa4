//! Who the operators are: users granted `/admin/billing` by a command run on the server
//! (`billfold admin add|remove|list`), stored in `operators`. An email someone signed up with
//! proves nothing, so nothing is ever granted for one, and only an account whose address is
//! proven (its owner followed the link mailed to it) is granted or let in; what operators do on
//! their pages (each view, each replay) is written down with who did it.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::{
    auth::validate::Email,
    db::{
        clock,
        entities::{operator, operator_action, user},
    },
    web::CurrentUser,
};

/// Why an operator could not be granted or revoked.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("`{0}` is not an email address")]
    NotAnEmail(String),
    #[error("no account has the email {0}: the person signs up first, then is granted")]
    NoAccount(String),
    #[error(
        "{0} has not proven its address yet: its owner follows the link mailed at sign-up (the \
         billing page sends a new one), then is granted"
    )]
    Unproven(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// One operator, for `billfold admin list` and `billfold doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub user_id: i64,
    pub email: String,
    pub granted_at: i64,
    pub granted_by: String,
}

async fn account(db: &impl ConnectionTrait, raw: &str) -> Result<user::Model, OperatorError> {
    let email = Email::parse(raw).map_err(|_| OperatorError::NotAnEmail(raw.to_owned()))?;
    user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| OperatorError::NoAccount(email.as_str().to_owned()))
}

/// Grants the account with `email` the operators' pages. `false` if it already had them.
pub async fn grant(
    db: &impl ConnectionTrait,
    email: &str,
    granted_by: &str,
) -> Result<bool, OperatorError> {
    let user = account(db, email).await?;
    if user.email_verified_at.is_none() {
        return Err(OperatorError::Unproven(user.email));
    }
    let inserted = operator::Entity::insert(operator::ActiveModel {
        user_id: Set(user.id),
        granted_at: Set(clock::now()),
        granted_by: Set(granted_by.to_owned()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(operator::Column::UserId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(inserted > 0)
}

/// Takes the operators' pages from the account with `email`. `false` if it did not have them.
pub async fn revoke(db: &impl ConnectionTrait, email: &str) -> Result<bool, OperatorError> {
    let user = account(db, email).await?;
    let deleted = operator::Entity::delete_by_id(user.id).exec(db).await?;
    Ok(deleted.rows_affected > 0)
}

/// Every operator, the longest-standing first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Operator>, DbErr> {
    let rows = operator::Entity::find()
        .find_also_related(user::Entity)
        .order_by_asc(operator::Column::GrantedAt)
        .order_by_asc(operator::Column::UserId)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(op, user)| Operator {
            user_id: op.user_id,
            email: user.map(|u| u.email).unwrap_or_default(),
            granted_at: op.granted_at,
            granted_by: op.granted_by,
        })
        .collect())
}

/// Whether the user has been granted the operators' pages and its address is proven (an
/// address changed since the grant is a claim again until proven).
pub async fn is_operator(db: &impl ConnectionTrait, user_id: i64) -> Result<bool, DbErr> {
    Ok(matches!(
        operator::Entity::find_by_id(user_id)
            .find_also_related(user::Entity)
            .one(db)
            .await?,
        Some((_, Some(user))) if user.email_verified_at.is_some()
    ))
}

/// Writes down what an operator did (`view` or `replay`) to what, and logs it.
pub async fn record(
    db: &impl ConnectionTrait,
    operator: &CurrentUser,
    action: &str,
    target: &str,
) -> Result<(), DbErr> {
    tracing::info!(
        operator = operator.id,
        email = %operator.email,
        action,
        target,
        "operator action"
    );
    operator_action::Entity::insert(operator_action::ActiveModel {
        user_id: Set(operator.id),
        email: Set(operator.email.clone()),
        action: Set(action.to_owned()),
        target: Set(Some(target.chars().take(500).collect())),
        at: Set(clock::now()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// The operators as a table for the terminal.
pub fn format_table(operators: &[Operator]) -> String {
    if operators.is_empty() {
        return "no operators: grant one with `billfold admin add EMAIL`\n".into();
    }
    let mut out = String::from("EMAIL  USER  GRANTED  BY\n");
    for op in operators {
        out.push_str(&format!(
            "{}  {}  {}  {}\n",
            op.email,
            op.user_id,
            clock::rfc3339(op.granted_at),
            op.granted_by
        ));
    }
    out
}
