//! "Forgot password?": a link by mail (single use, an hour) that sets a new password and ends
//! every other session of the account. Asking answers the same whether or not an account has
//! the address; asking is limited per address and per client.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    error::AppError,
    forms::refusal,
    ui::form::{submit_class, AuthCard, Field, FormError},
};

/// Queues a reset link if an account has the address; answers the same either way.
#[server(name = RequestPasswordReset, prefix = "/api", endpoint = "password/forgot")]
pub async fn request_password_reset(#[server(default)] email: String) -> Result<(), AppError> {
    let state = crate::web::app_state()?;
    let client = crate::web::client_key(&crate::web::request_parts()?, &state.config);
    ssr::request(&state, &email, &client).await?;
    leptos_axum::redirect("/forgot-password?sent=1");
    Ok(())
}

/// Whether a reset link still works (the page asks before showing its form).
#[server(name = CheckResetLink, prefix = "/api", endpoint = "password/check")]
pub async fn check_reset_link(#[server(default)] token: String) -> Result<(), AppError> {
    ssr::check(&crate::web::app_state()?, &token).await
}

/// Sets the new password through the link, ends every other session, signs this browser in.
#[server(name = ResetPassword, prefix = "/api", endpoint = "password/reset")]
pub async fn reset_password(
    #[server(default)] token: String,
    #[server(default)] password: String,
) -> Result<(), AppError> {
    let state = crate::web::app_state()?;
    let user_id = ssr::reset(&state, &token, &password).await?;
    crate::auth::ssr::start_session(&state, user_id).await?;
    leptos_axum::redirect("/settings/billing");
    Ok(())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::Duration;

    use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

    use crate::{
        auth::{
            ssr::{email_key, hash_password, link_refused},
            validate::{Email, Password},
        },
        db::{
            begin_write, clock,
            entities::{session, user},
        },
        error::AppError,
        limits::Rule,
        mail::{
            links::{self, Purpose},
            outbox::{self, NewMail},
            Kind,
        },
        state::AppState,
    };

    /// Reset links asked for one address (whether or not an account has it).
    pub static RESETS_PER_EMAIL: Rule = Rule::new("reset-email", 3, Duration::from_secs(3600));
    /// Reset links asked for from one client, whatever the address.
    pub static RESETS_PER_CLIENT: Rule = Rule::new("reset-client", 10, Duration::from_secs(3600));

    /// Queues the link for the account with this address, if there is one.
    pub async fn request(state: &AppState, email: &str, client: &str) -> Result<(), AppError> {
        let email = Email::parse(email).map_err(|m| AppError::invalid("email", m))?;
        state
            .limits
            .enforce(
                &[
                    RESETS_PER_EMAIL.on(email_key(email.as_str())),
                    RESETS_PER_CLIENT.on(client),
                ],
                "Too many reset links asked for: wait an hour, or use the newest mail.",
            )
            .await?;
        let txn = begin_write(&state.db).await?;
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(&*txn)
            .await?;
        if let Some(user) = found {
            outbox::enqueue(
                &*txn,
                NewMail {
                    key: format!("password_reset:{}:{}", user.id, clock::now_ms()),
                    kind: Kind::PasswordReset,
                    user_id: Some(user.id),
                    to: user.email,
                    params: serde_json::json!({}),
                },
            )
            .await?;
        }
        txn.commit().await?;
        state.mail.wake();
        Ok(())
    }

    /// Whether the link still works: 400 with what to do if not.
    pub async fn check(state: &AppState, token: &str) -> Result<(), AppError> {
        match links::check(&state.db, Purpose::PasswordReset, token.trim()).await? {
            Ok(_) => Ok(()),
            Err(refused) => Err(link_refused(refused.message())),
        }
    }

    /// Uses the link: the new password set, the address proven (the link reached it), every
    /// session of the account ended, in one transaction. Returns the account's id.
    pub async fn reset(state: &AppState, token: &str, password: &str) -> Result<i64, AppError> {
        let token = token.trim();
        // Refused early, before the password is hashed.
        check(state, token).await?;
        let password = Password::parse(password).map_err(|m| AppError::invalid("password", m))?;
        let hash = hash_password(password).await?;
        let txn = begin_write(&state.db).await?;
        let row = match links::redeem(&*txn, Purpose::PasswordReset, token).await? {
            Ok(row) => row,
            Err(refused) => {
                txn.rollback().await?;
                return Err(link_refused(refused.message()));
            }
        };
        let Some(account) = user::Entity::find_by_id(row.user_id).one(&*txn).await? else {
            txn.rollback().await?;
            return Err(link_refused(links::Refused::Unknown.message()));
        };
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(account.id));
        if account.email == row.email && account.email_verified_at.is_none() {
            update = update.col_expr(user::Column::EmailVerifiedAt, Expr::value(clock::now()));
        }
        update.exec(&*txn).await?;
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(account.id))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(account.id)
    }
}

/// `/forgot-password`: the address to send a link to; afterwards, the same answer for any.
#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let sent = use_query_map().read_untracked().get("sent").is_some();
    view! {
        <leptos_meta::Title text="Forgot password · Billfold"/>
        <AuthCard title="Forgot your password?">
            {if sent {
                view! {
                    <p class="text-slate-700" data-testid="reset-sent">
                        "If an account has that address, we sent it a link to choose a new password. It works once, within an hour."
                    </p>
                    <A href="/login" attr:class="mt-4 inline-block font-medium text-indigo-600">"Back to log in"</A>
                }.into_any()
            } else {
                view! { <ForgotForm/> }.into_any()
            }}
        </AuthCard>
    }
}

#[component]
fn ForgotForm() -> impl IntoView {
    let error = refusal(RequestPasswordReset::PATH);
    view! {
        <form method="post" action=RequestPasswordReset::PATH class="space-y-4" novalidate=true data-enhance="">
            <p class="text-sm text-slate-600">"Enter your account's address; we will mail you a link to choose a new password."</p>
            <FormError error=error.clone()/>
            <Field name="email" label="Email" kind="email" autocomplete="email" error/>
            <button type="submit" class=submit_class() data-busy="Sending…">"Send the link"</button>
        </form>
    }
}

/// `/reset-password?token=…`: the new password, if the link still works.
#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let token = use_query_map()
        .read_untracked()
        .get("token")
        .unwrap_or_default();
    let form_token = token.clone();
    let live = AsyncDerived::new(move || check_reset_link(token.clone()));
    view! {
        <leptos_meta::Title text="Choose a new password · Billfold"/>
        <AuthCard title="Choose a new password">
            <Suspense fallback=|| view! { <p class="text-slate-500">"Checking…"</p> }>
                {move || {
                    let token = form_token.clone();
                    Suspend::new(async move {
                        match live.await {
                            Ok(()) => view! { <ResetForm token/> }.into_any(),
                            Err(e) => view! {
                                <p role="alert" class="text-red-700" data-testid="reset-link-refused">{e.to_string()}</p>
                                <A href="/forgot-password" attr:class="mt-4 inline-block font-medium text-indigo-600">"Ask for a new link"</A>
                            }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </AuthCard>
    }
}

#[component]
fn ResetForm(token: String) -> impl IntoView {
    let error = refusal(ResetPassword::PATH);
    view! {
        <form method="post" action=ResetPassword::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <input type="hidden" name="token" value=token/>
            <Field
                name="password"
                label="New password"
                kind="password"
                autocomplete="new-password"
                error
                hint="At least 8 characters. Every other session of your account ends."
            />
            <button type="submit" class=submit_class() data-busy="Saving…">"Set the new password"</button>
        </form>
    }
}
