//! Accounts: sign-up, log-in, log-out and the session behind them.
//!
//! The server functions sit at fixed endpoints (`/api/signup`, `/api/login`, `/api/logout`)
//! and take plain form fields, so the forms work before hydration, without JavaScript, and
//! from scripts.

pub mod validate;

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::{form::ActionForm, prelude::*};
use leptos_router::{components::A, hooks::use_query_map};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The signed-in user as the pages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
}

/// Creates an account, signs it in and goes to the billing settings.
#[server(name = SignUp, prefix = "/api", endpoint = "signup")]
pub async fn sign_up(
    #[server(default)] email: String,
    #[server(default)] password: String,
) -> Result<(), AppError> {
    let state = ssr::app_state()?;
    let user = ssr::register(&state, &email, &password).await?;
    ssr::start_session(&state, user.id).await?;
    crate::billing::ssr::create_customer_at_sign_up(
        &state,
        &CurrentUser {
            id: user.id,
            email: user.email,
        },
    )
    .await;
    leptos_axum::redirect("/settings/billing");
    Ok(())
}

/// Signs in and goes back to where the user was headed (`next`), or to the billing settings.
#[server(name = LogIn, prefix = "/api", endpoint = "login")]
pub async fn log_in(
    #[server(default)] email: String,
    #[server(default)] password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    let state = ssr::app_state()?;
    let client = ssr::client_addr(&ssr::request_parts()?);
    let user = ssr::log_in(&state, &email, &password, &client).await?;
    ssr::start_session(&state, user.id).await?;
    leptos_axum::redirect(&validate::safe_next(next.as_deref()));
    Ok(())
}

/// Ends this browser's session.
#[server(name = LogOut, prefix = "/api", endpoint = "logout")]
pub async fn log_out() -> Result<(), AppError> {
    let state = ssr::app_state()?;
    if let Some(signed_in) = ssr::signed_in() {
        ssr::delete_session(&state.db, &signed_in.token_hash).await?;
    }
    ssr::set_response_header(
        axum::http::header::SET_COOKIE,
        ssr::clear_session_cookie(state.config.secure_cookies()),
    );
    leptos_axum::redirect("/login");
    Ok(())
}

/// Who is signed in on this request, if anyone.
#[server(name = GetCurrentUser, prefix = "/api", endpoint = "me")]
pub async fn current_user() -> Result<Option<CurrentUser>, AppError> {
    Ok(ssr::signed_in().map(|s| s.user))
}

/// A form-level error box, for errors that belong to no single field.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|e| !e.is_field_error())
            .map(|e| {
                view! {
                    <div role="alert" class="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
                        {e.to_string()}
                    </div>
                }
            })
    }
}

/// An input with its label and the field's own error message.
#[component]
fn Field(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    #[prop(into)] error: Signal<Option<AppError>>,
    #[prop(optional, into)] hint: Option<&'static str>,
) -> impl IntoView {
    let message = move || error.get().and_then(|e| e.field_message(name));
    let id = format!("field-{name}");
    let err_id = format!("field-{name}-error");
    view! {
        <div class="space-y-1">
            <label for=id.clone() class="block text-sm font-medium text-slate-700">{label}</label>
            <input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                required=true
                aria-invalid=move || message().is_some().to_string()
                aria-describedby=err_id.clone()
                class="block w-full rounded-md border border-slate-300 px-3 py-2 text-slate-900 shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-1 focus:ring-indigo-500"
            />
            {hint.map(|h| view! { <p class="text-xs text-slate-500">{h}</p> })}
            <p id=err_id class="text-sm text-red-700">{message}</p>
        </div>
    }
}

/// The account forms share a card layout.
#[component]
fn AuthCard(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="mx-auto mt-16 w-full max-w-sm rounded-xl border border-slate-200 bg-white p-8 shadow-sm">
            <h1 class="mb-6 text-2xl font-semibold text-slate-900">{title}</h1>
            {children()}
        </div>
    }
}

fn submit_class() -> &'static str {
    "w-full rounded-md bg-indigo-600 px-4 py-2 font-medium text-white hover:bg-indigo-500 disabled:opacity-60"
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    view! {
        <leptos_meta::Title text="Create your account · Billfold"/>
        <AuthCard title="Create your account">
            <ActionForm action=action attr:class="space-y-4" attr:novalidate=true>
                <FormError error/>
                <Field name="email" label="Email" kind="email" autocomplete="email" error/>
                <Field
                    name="password"
                    label="Password"
                    kind="password"
                    autocomplete="new-password"
                    error
                    hint="At least 8 characters."
                />
                <button type="submit" class=submit_class() disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Creating account…" } else { "Create account" }}
                </button>
            </ActionForm>
            <p class="mt-6 text-sm text-slate-600">
                "Already have an account? " <A href="/login" attr:class="font-medium text-indigo-600">"Log in"</A>
            </p>
        </AuthCard>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<LogIn>::new();
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <leptos_meta::Title text="Log in · Billfold"/>
        <AuthCard title="Log in">
            <ActionForm action=action attr:class="space-y-4" attr:novalidate=true>
                <FormError error/>
                <input type="hidden" name="next" prop:value=next value=next/>
                <Field name="email" label="Email" kind="email" autocomplete="email" error/>
                <Field
                    name="password"
                    label="Password"
                    kind="password"
                    autocomplete="current-password"
                    error
                />
                <button type="submit" class=submit_class() disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Logging in…" } else { "Log in" }}
                </button>
            </ActionForm>
            <p class="mt-6 text-sm text-slate-600">
                "New here? " <A href="/signup" attr:class="font-medium text-indigo-600">"Create an account"</A>
            </p>
        </AuthCard>
    }
}

/// The log-out button: a form, so it works without JavaScript too.
#[component]
pub fn LogoutButton() -> impl IntoView {
    let action = ServerAction::<LogOut>::new();
    view! {
        <ActionForm action=action>
            <button type="submit" class="rounded-md px-3 py-1.5 text-sm font-medium text-slate-600 hover:bg-slate-100 hover:text-slate-900">
                "Log out"
            </button>
        </ActionForm>
    }
}
