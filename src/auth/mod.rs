//! Log-in, log-out and the session behind them; the form parts the account pages share.
//!
//! The server functions sit at fixed endpoints (`/api/login`, `/api/logout`) and take plain
//! form fields, so the forms work before hydration, without JavaScript, and from scripts.
//! Sign-up, which also opens a billing account, sits above this module, in `accounts`.

pub mod validate;

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{components::A, hooks::use_query_map};

use crate::{error::AppError, forms::FormState};

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
pub(crate) fn Field(
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
pub(crate) fn AuthCard(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="mx-auto mt-16 w-full max-w-sm rounded-xl border border-slate-200 bg-white p-8 shadow-sm">
            <h1 class="mb-6 text-2xl font-semibold text-slate-900">{title}</h1>
            {children()}
        </div>
    }
}

pub(crate) fn submit_class() -> &'static str {
    "w-full rounded-md bg-indigo-600 px-4 py-2 font-medium text-white hover:bg-indigo-500 disabled:opacity-60"
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let next = use_query_map()
        .read_untracked()
        .get("next")
        .unwrap_or_default();
    view! {
        <leptos_meta::Title text="Log in · Billfold"/>
        <AuthCard title="Log in">
            <LoginForm next/>
            <p class="mt-6 text-sm text-slate-600">
                "New here? " <A href="/signup" attr:class="font-medium text-indigo-600">"Create an account"</A>
            </p>
        </AuthCard>
    }
}

/// The log-in form: a plain HTML form without JavaScript; in the browser (an island), it
/// shows a refusal in place and keeps the email typed.
#[island]
fn LoginForm(next: String) -> impl IntoView {
    let form = FormState::new(LogIn::PATH);
    let error = form.error();
    view! {
        <form method="post" action=LogIn::PATH class="space-y-4" novalidate=true on:submit=form.on_submit()>
            <FormError error/>
            <input type="hidden" name="next" value=next/>
            <Field name="email" label="Email" kind="email" autocomplete="email" error/>
            <Field
                name="password"
                label="Password"
                kind="password"
                autocomplete="current-password"
                error
            />
            <button type="submit" class=submit_class() disabled=move || form.busy()>
                {move || if form.busy() { "Logging in…" } else { "Log in" }}
            </button>
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
