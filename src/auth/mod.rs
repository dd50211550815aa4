//! Log-in, log-out and the session behind them.
//!
//! The server functions sit at fixed endpoints (`/api/login`, `/api/logout`) and take plain
//! form fields, so the forms work before hydration, without JavaScript, and from scripts.
//! Sign-up, which also opens a billing account, sits above this module, in `accounts`.
//! Proving an address ([`email_proof`]) and resetting a password ([`reset`]) go by mail.

pub mod email_proof;
#[cfg(feature = "ssr")]
pub mod org;
pub mod reset;
pub mod validate;

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    error::AppError,
    forms::refusal,
    ui::form::{submit_class, AuthCard, Field, FormError},
};

/// Signs in and goes back to where the user was headed (`next`), or to the billing settings.
#[server(name = LogIn, prefix = "/api", endpoint = "login")]
pub async fn log_in(
    #[server(default)] email: String,
    #[server(default)] password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    let state = crate::web::app_state()?;
    let client = crate::web::client_key(&crate::web::request_parts()?, &state.config);
    let user = ssr::log_in(&state, &email, &password, &client).await?;
    ssr::start_session(&state, user.id).await?;
    leptos_axum::redirect(&validate::safe_next(next.as_deref()));
    Ok(())
}

/// Ends this browser's session.
#[server(name = LogOut, prefix = "/api", endpoint = "logout")]
pub async fn log_out() -> Result<(), AppError> {
    let state = crate::web::app_state()?;
    if let Some(signed_in) = crate::web::signed_in() {
        ssr::delete_session(&state.db, &signed_in.token_hash).await?;
    }
    crate::web::set_response_header(
        axum::http::header::SET_COOKIE,
        ssr::clear_session_cookie(state.config.secure_cookies()),
    );
    leptos_axum::redirect("/login");
    Ok(())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map().read_untracked();
    let next = query.get("next").unwrap_or_default();
    // A mailed link that no longer works (`/fix-payment`) sends the browser here; the text
    // is ours, whatever the address says.
    let link_spent = query.get("link").as_deref() == Some("spent");
    view! {
        <leptos_meta::Title text="Log in · Billfold"/>
        <AuthCard title="Log in">
            {link_spent.then(|| view! {
                <p role="status" class="mb-4 rounded-md border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-900" data-testid="link-spent">
                    "That link has been used or has expired. Log in, and update your card on the billing page."
                </p>
            })}
            <LoginForm next/>
            <p class="mt-4 text-sm">
                <A href="/forgot-password" attr:class="font-medium text-indigo-600">"Forgot password?"</A>
            </p>
            <p class="mt-6 text-sm text-slate-600">
                "New here? " <A href="/signup" attr:class="font-medium text-indigo-600">"Create an account"</A>
            </p>
        </AuthCard>
    }
}

/// The log-in form: a plain HTML form; answered in place by the page's script, which shows
/// a refusal and keeps the email typed.
#[component]
fn LoginForm(next: String) -> impl IntoView {
    let error = refusal(LogIn::PATH);
    view! {
        <form method="post" action=LogIn::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <input type="hidden" name="next" value=next/>
            <Field name="email" label="Email" kind="email" autocomplete="email" error=error.clone()/>
            <Field
                name="password"
                label="Password"
                kind="password"
                autocomplete="current-password"
                error
            />
            <button type="submit" class=submit_class() data-busy="Logging in…">"Log in"</button>
        </form>
    }
}

/// The log-out button: a form, so it works without JavaScript too.
#[component]
pub fn LogoutButton() -> impl IntoView {
    view! {
        <form method="post" action=LogOut::PATH>
            <button type="submit" class="rounded-md px-3 py-1.5 text-sm font-medium text-slate-600 hover:bg-slate-100 hover:text-slate-900">
                "Log out"
            </button>
        </form>
    }
}
