//! Proven addresses. Sign-up queues a mail with a link ([`crate::mail::links`], a day, single
//! use); following it proves the address. Until then the account works, with a banner on the
//! signed-in pages and a "send again" (three an hour).

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    error::AppError,
    forms::refusal,
    ui::form::{AuthCard, ErrorLine},
};

/// Uses a proving link: answers with the address it proved.
#[server(name = ConfirmEmail, prefix = "/api", endpoint = "email/confirm")]
pub async fn confirm_email(#[server(default)] token: String) -> Result<String, AppError> {
    ssr::confirm(&crate::web::app_state()?, &token).await
}

/// Sends the signed-in user a new proving link; back to the billing page, which says so.
#[server(name = ResendProof, prefix = "/api", endpoint = "email/resend")]
pub async fn resend_proof() -> Result<(), AppError> {
    let user = crate::web::require_user()?.user;
    ssr::resend(&crate::web::app_state()?, &user).await?;
    leptos_axum::redirect("/settings/billing?proof=sent");
    Ok(())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::Duration;

    use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

    use crate::{
        auth::ssr::{link_refused, proving_mail},
        db::{begin_write, clock, entities::user},
        error::AppError,
        limits::Rule,
        mail::{
            links::{self, Purpose},
            outbox,
        },
        state::AppState,
        web::CurrentUser,
    };

    /// New proving links a user may ask for.
    pub static RESENDS_PER_USER: Rule = Rule::new("proof-resend", 3, Duration::from_secs(3600));

    /// Uses the link: the user's address is proven if it is still the one the link was sent
    /// to. A used, expired or unknown link is refused with what to do.
    pub async fn confirm(state: &AppState, token: &str) -> Result<String, AppError> {
        let txn = begin_write(&state.db).await?;
        let row = match links::redeem(&*txn, Purpose::VerifyEmail, token.trim()).await? {
            Ok(row) => row,
            Err(refused) => {
                txn.rollback().await?;
                return Err(link_refused(refused.message()));
            }
        };
        let current = user::Entity::find_by_id(row.user_id).one(&*txn).await?;
        if current.as_ref().map(|u| u.email.as_str()) != Some(row.email.as_str()) {
            txn.rollback().await?;
            return Err(link_refused(
                "This link proves an address that is no longer your account's.",
            ));
        }
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerifiedAt, Expr::value(clock::now()))
            .filter(user::Column::Id.eq(row.user_id))
            .filter(user::Column::EmailVerifiedAt.is_null())
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(row.email)
    }

    /// Queues a new proving mail for a user whose address is not proven yet (three an hour).
    pub async fn resend(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
        if user.email_verified {
            return Ok(());
        }
        state
            .limits
            .enforce(
                &[RESENDS_PER_USER.on(user.id.to_string())],
                "We sent you several links already: use the newest mail, or wait an hour.",
            )
            .await?;
        let txn = begin_write(&state.db).await?;
        let Some(row) = user::Entity::find_by_id(user.id).one(&*txn).await? else {
            txn.rollback().await?;
            return Err(AppError::Unauthorized);
        };
        outbox::enqueue(&*txn, proving_mail(&row, clock::now_ms())).await?;
        txn.commit().await?;
        state.mail.wake();
        Ok(())
    }
}

/// `/verify-email?token=…`: uses the link and says what became of it.
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let token = use_query_map()
        .read_untracked()
        .get("token")
        .unwrap_or_default();
    let confirmed = AsyncDerived::new(move || confirm_email(token.clone()));
    view! {
        <leptos_meta::Title text="Confirm your email · Billfold"/>
        <AuthCard title="Confirm your email">
            <Suspense fallback=|| view! { <p class="text-slate-500">"Checking…"</p> }>
                {move || Suspend::new(async move {
                    match confirmed.await {
                        Ok(email) => view! {
                            <p class="text-slate-700" data-testid="email-confirmed">
                                {format!("{email} is confirmed. Thank you.")}
                            </p>
                            <A href="/settings/billing" attr:class="mt-4 inline-block font-medium text-indigo-600">"Go to billing"</A>
                        }.into_any(),
                        Err(e) => view! {
                            <p role="alert" class="text-red-700" data-testid="email-link-refused">{e.to_string()}</p>
                            <p class="mt-4 text-sm text-slate-600">
                                "Signed in, the billing page sends a new link. "
                                <A href="/login?next=%2Fsettings%2Fbilling" attr:class="font-medium text-indigo-600">"Log in"</A>
                            </p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </AuthCard>
    }
}

/// Above the signed-in pages until the address is proven: where the link went, and a
/// "send again".
#[component]
pub fn UnprovenAddressBanner(email: String) -> impl IntoView {
    let resent = use_query_map().read_untracked().get("proof").as_deref() == Some("sent");
    view! {
        <div role="status" class="border-b border-amber-200 bg-amber-50" data-testid="unproven-address">
            <div class="mx-auto flex max-w-5xl flex-wrap items-center justify-between gap-3 px-6 py-3 text-sm text-amber-900">
                <p>
                    {if resent {
                        format!("We sent a new link to {email}. Open it to confirm your address.")
                    } else {
                        format!("Confirm your email address: open the link we sent to {email}.")
                    }}
                </p>
                <ResendProofButton/>
            </div>
        </div>
    }
}

/// "Send again": a plain form; the page's script shows a refusal (too many links) in place.
#[component]
fn ResendProofButton() -> impl IntoView {
    view! {
        <form method="post" action=ResendProof::PATH data-enhance="">
            <button type="submit" class="rounded-md border border-amber-300 bg-white px-3 py-1.5 font-medium text-amber-900 hover:bg-amber-100 disabled:opacity-60" data-busy="Sending…">
                "Send again"
            </button>
            <ErrorLine error=refusal(ResendProof::PATH) class="mt-1 text-red-700"/>
        </form>
    }
}
