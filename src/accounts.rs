//! Sign-up: creates the account, signs it in, then opens its Stripe customer.
//!
//! It sits above both `auth` (the user and the session) and `billing` (the customer), so
//! neither of those imports the other.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::components::A;

use crate::{
    error::AppError,
    forms::FormState,
    ui::form::{submit_class, AuthCard, Field, FormError},
};

/// Creates an account, signs it in and goes to the billing settings.
#[server(name = SignUp, prefix = "/api", endpoint = "signup")]
pub async fn sign_up(
    #[server(default)] email: String,
    #[server(default)] password: String,
) -> Result<(), AppError> {
    let state = crate::web::app_state()?;
    let client = crate::web::client_key(&crate::web::request_parts()?, &state.config);
    ssr::sign_up(&state, &email, &password, &client).await?;
    leptos_axum::redirect("/settings/billing");
    Ok(())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::{
        auth::ssr::{register, start_session},
        billing::customer::create_customer_at_sign_up,
        error::AppError,
        state::AppState,
        web::CurrentUser,
    };

    /// The user first, then their session, then (best effort, never failing the sign-up)
    /// their Stripe customer: a user who signed up can always log in, even while Stripe is down.
    pub async fn sign_up(
        state: &AppState,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<CurrentUser, AppError> {
        let user = register(state, email, password, client).await?;
        start_session(state, user.id).await?;
        let user = CurrentUser {
            id: user.id,
            email: user.email,
            email_verified: false,
        };
        create_customer_at_sign_up(state, &user).await;
        Ok(user)
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    view! {
        <leptos_meta::Title text="Create your account · Billfold"/>
        <AuthCard title="Create your account">
            <SignupForm/>
            <p class="mt-6 text-sm text-slate-600">
                "Already have an account? " <A href="/login" attr:class="font-medium text-indigo-600">"Log in"</A>
            </p>
        </AuthCard>
    }
}

/// The sign-up form: a plain HTML form without JavaScript; in the browser (an island), it
/// shows errors in place and keeps what was typed.
#[island]
fn SignupForm() -> impl IntoView {
    let form = FormState::new(SignUp::PATH);
    let error = form.error();
    view! {
        <form method="post" action=SignUp::PATH class="space-y-4" novalidate=true on:submit=form.on_submit()>
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
            <button type="submit" class=submit_class() disabled=move || form.busy()>
                {move || if form.busy() { "Creating account…" } else { "Create account" }}
            </button>
        </form>
    }
}
