//! Changing the account's email. The new address is proven before it takes effect: asking
//! (with the current password) mails a link to the new address (a day, single use); following
//! it makes the change, proves the address, tells the old address, and queues the Stripe
//! customer's email to follow (through `billing::stripe_outbox`, in the same transaction), so
//! receipts and invoices go to the new address too.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_meta::Title;
use leptos_router::{
    components::{Redirect, A},
    hooks::use_query_map,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::AppError,
    forms::refusal,
    layout::SettingsLayout,
    ui::form::{submit_class, AuthCard, Field, FormError},
};

/// The account as its settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    pub email_verified: bool,
}

/// The signed-in user's account.
#[server(name = GetAccount, prefix = "/api", endpoint = "account")]
pub async fn get_account() -> Result<Account, AppError> {
    let user = crate::web::require_user()?.user;
    Ok(Account {
        email: user.email,
        email_verified: user.email_verified,
    })
}

/// Mails a link to `new_email` that makes it the account's address; nothing changes until
/// it is followed. Asks for the current password.
#[server(name = RequestEmailChange, prefix = "/api", endpoint = "account/email")]
pub async fn request_email_change(
    #[server(default)] new_email: String,
    #[server(default)] password: String,
) -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    ssr::request(&crate::web::app_state()?, &user, &new_email, &password).await?;
    leptos_axum::redirect("/settings/account?change=sent");
    Ok(())
}

/// Uses the link: answers with the account's new address.
#[server(name = ConfirmEmailChange, prefix = "/api", endpoint = "account/email/confirm")]
pub async fn confirm_email_change(#[server(default)] token: String) -> Result<String, AppError> {
    ssr::confirm(&crate::web::app_state()?, &token).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::Duration;

    use sea_orm::{sea_query::Expr, ColumnTrait, DbErr, EntityTrait, QueryFilter, SqlErr};

    use crate::{
        auth::{
            ssr::{link_refused, verify_password},
            validate::Email,
        },
        billing::stripe_outbox,
        db::{begin_write, clock, entities::user},
        error::AppError,
        limits::Rule,
        mail::{
            links::{self, Purpose},
            notice::EmailChanged,
            outbox::{self, NewMail},
            Kind,
        },
        state::AppState,
        web::CurrentUser,
    };

    /// Changes a user may ask for: each one mails a stranger's address, and checks a password.
    pub static CHANGES_PER_USER: Rule = Rule::new("email-change", 5, Duration::from_secs(3600));

    const TAKEN: &str = "That address belongs to another account.";

    /// Checks the request and queues the link to the new address.
    pub async fn request(
        state: &AppState,
        user: &CurrentUser,
        new_email: &str,
        password: &str,
    ) -> Result<(), AppError> {
        let new_email = Email::parse(new_email).map_err(|m| AppError::invalid("new_email", m))?;
        if new_email.as_str() == user.email {
            return Err(AppError::invalid(
                "new_email",
                "That is your address already.",
            ));
        }
        state
            .limits
            .enforce(
                &[CHANGES_PER_USER.on(user.id.to_string())],
                "You asked for several changes already: use the newest mail, or wait an hour.",
            )
            .await?;
        let Some(account) = user::Entity::find_by_id(user.id).one(&state.db).await? else {
            return Err(AppError::Unauthorized);
        };
        if password.len() > 4096
            || !verify_password(account.password_hash, password.to_owned()).await?
        {
            return Err(AppError::invalid(
                "password",
                "Your current password is not correct.",
            ));
        }
        let txn = begin_write(&state.db).await?;
        let taken = user::Entity::find()
            .filter(user::Column::Email.eq(new_email.as_str()))
            .one(&*txn)
            .await?
            .is_some();
        if taken {
            txn.rollback().await?;
            return Err(AppError::Conflict(TAKEN.into()));
        }
        outbox::enqueue(
            &*txn,
            NewMail {
                key: format!("confirm_new_email:{}:{}", user.id, clock::now_ms()),
                kind: Kind::ConfirmNewEmail,
                user_id: Some(user.id),
                to: new_email.as_str().to_owned(),
                params: serde_json::json!({}),
            },
        )
        .await?;
        txn.commit().await?;
        state.mail.wake();
        Ok(())
    }

    /// Uses the link, in one transaction: the address becomes the account's (proven, as the
    /// link reached it), the old address is told, and the Stripe customer's email is queued
    /// to follow. Returns the new address.
    pub async fn confirm(state: &AppState, token: &str) -> Result<String, AppError> {
        let txn = begin_write(&state.db).await?;
        let row = match links::redeem(&*txn, Purpose::ChangeEmail, token.trim()).await? {
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
        if account.email == row.email {
            // Followed twice through two links: the change is made already.
            txn.commit().await?;
            return Ok(row.email);
        }
        let changed = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(row.email.clone()))
            .col_expr(user::Column::EmailVerifiedAt, Expr::value(clock::now()))
            .filter(user::Column::Id.eq(account.id))
            .exec(&*txn)
            .await;
        match changed {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                txn.rollback().await?;
                return Err(AppError::Conflict(format!(
                    "{TAKEN} It was taken after the link was sent."
                )));
            }
            Err(e) => return Err(e.into()),
        }
        outbox::enqueue(
            &*txn,
            NewMail {
                key: format!("email_changed:{}:{}", account.id, clock::now_ms()),
                kind: Kind::EmailChanged,
                user_id: Some(account.id),
                to: account.email.clone(),
                params: serde_json::to_value(EmailChanged {
                    new_email: row.email.clone(),
                })
                .unwrap_or_default(),
            },
        )
        .await?;
        stripe_outbox::queue_customer_email(&*txn, account.id).await?;
        txn.commit().await?;
        state.mail.wake();
        state.stripe_updates.notify_one();
        Ok(row.email)
    }

    fn unique_violation(e: &DbErr) -> bool {
        matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
    }
}

/// `/settings/account`: the address, whether it is proven, and the change form.
#[component]
pub fn AccountPage() -> impl IntoView {
    let account = AsyncDerived::new(get_account);
    let sent = use_query_map().read_untracked().get("change").as_deref() == Some("sent");
    view! {
        <Title text="Account · Billfold"/>
        <Suspense fallback=|| view! { <p class="p-8 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    Ok(a) => {
                        let email = a.email.clone();
                        let email_verified = a.email_verified;
                        view! {
                            <SettingsLayout email email_verified>
                                <AccountSettings account=a sent/>
                            </SettingsLayout>
                        }.into_any()
                    }
                    Err(AppError::Unauthorized) => {
                        view! { <Redirect path="/login?next=%2Fsettings%2Faccount"/> }.into_any()
                    }
                    Err(e) => view! {
                        <div role="alert" class="m-8 rounded-md border border-red-200 bg-red-50 p-4 text-red-800">
                            {e.to_string()}
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AccountSettings(account: Account, sent: bool) -> impl IntoView {
    let proven = if account.email_verified {
        "Confirmed."
    } else {
        "Not confirmed yet: open the link we mailed you."
    };
    view! {
        <div class="space-y-4">
            <h1 class="text-2xl font-semibold">"Account"</h1>
            <section class="rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
                <h2 class="text-lg font-semibold">"Email address"</h2>
                <p class="mt-1 text-slate-700" data-testid="account-email">{account.email}</p>
                <p class="text-sm text-slate-500">{proven}</p>
                {sent.then(|| view! {
                    <p role="status" class="mt-4 rounded-md border border-emerald-200 bg-emerald-50 px-3 py-2 text-sm text-emerald-900" data-testid="email-change-sent">
                        "We sent a link to the new address. Open it within a day to make the change; until then you sign in with this one."
                    </p>
                })}
                <h3 class="mt-6 font-medium">"Change your email address"</h3>
                <p class="text-sm text-slate-600">
                    "You sign in with it, and your receipts and invoices go to it. We mail a link to the new address first; the change happens when you open it."
                </p>
                <div class="mt-3 max-w-sm">
                    <ChangeEmailForm/>
                </div>
            </section>
        </div>
    }
}

/// The change form: a plain form; the page's script shows refusals in place.
#[component]
fn ChangeEmailForm() -> impl IntoView {
    let error = refusal(RequestEmailChange::PATH);
    view! {
        <form method="post" action=RequestEmailChange::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <Field name="new_email" label="New email" kind="email" autocomplete="email" error=error.clone()/>
            <Field name="password" label="Current password" kind="password" autocomplete="current-password" error/>
            <button type="submit" class=submit_class() data-busy="Sending…">"Send the link"</button>
        </form>
    }
}

/// `/confirm-email-change?token=…`: uses the link and says what became of it.
#[component]
pub fn ConfirmEmailChangePage() -> impl IntoView {
    let token = use_query_map()
        .read_untracked()
        .get("token")
        .unwrap_or_default();
    let confirmed = AsyncDerived::new(move || confirm_email_change(token.clone()));
    view! {
        <Title text="Confirm your new email · Billfold"/>
        <AuthCard title="Confirm your new email">
            <Suspense fallback=|| view! { <p class="text-slate-500">"Checking…"</p> }>
                {move || Suspend::new(async move {
                    match confirmed.await {
                        Ok(email) => view! {
                            <p class="text-slate-700" data-testid="email-changed">
                                {format!("Your account's address is now {email}. Sign in with it from now on.")}
                            </p>
                            <A href="/settings/account" attr:class="mt-4 inline-block font-medium text-indigo-600">"Go to your account"</A>
                        }.into_any(),
                        Err(e) => view! {
                            <p role="alert" class="text-red-700" data-testid="email-change-refused">{e.to_string()}</p>
                            <A href="/settings/account" attr:class="mt-4 inline-block font-medium text-indigo-600">"Ask again from your account"</A>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </AuthCard>
    }
}
