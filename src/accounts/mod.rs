//! Sign-up: creates the account, signs it in, then opens its Stripe customer. The link of a
//! payment-failed mail, which signs the user in and opens the portal's card update. And
//! changing the account's email ([`email_change`]), which the Stripe customer follows.
//!
//! It sits above both `auth` (the user and the session) and `billing` (the customer), so
//! neither of those imports the other.

pub mod email_change;

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::components::A;

use crate::{
    error::AppError,
    forms::refusal,
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
    use axum::{
        extract::{Query, State},
        http::{header, StatusCode},
        response::{IntoResponse, Response},
    };
    use sea_orm::EntityTrait;

    use crate::{
        auth::ssr::{create_session, current_user, session_cookie},
        auth::ssr::{register, start_session},
        billing::customer::create_customer_at_sign_up,
        billing::{portal::open_portal, PortalFlow},
        db::{begin_write, entities::user},
        error::AppError,
        mail::links::{self, Purpose},
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
        let user = current_user(&state.db, user).await?;
        create_customer_at_sign_up(state, &user).await;
        Ok(user)
    }

    /// `?token=…` of a payment-failed mail's link.
    #[derive(serde::Deserialize)]
    pub struct FixPayment {
        #[serde(default)]
        token: String,
        /// The organisation whose payment failed (its billing opens, for a member who
        /// manages it); anything else is ignored.
        #[serde(default)]
        org: String,
    }

    /// `GET /fix-payment?token=…`: the link works once, within three days, for the address it
    /// was sent to; it signs that user in (a new session) and sends the browser to the portal's
    /// card update (or, if Stripe cannot be reached, to the billing page). A link that does not
    /// work goes to the log-in page, which says so, headed for the billing page.
    pub async fn fix_payment(
        State(state): State<AppState>,
        Query(FixPayment { token, org }): Query<FixPayment>,
    ) -> Response {
        let see_other = |to: &str| (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]);
        let user = match redeem(&state, token.trim(), org.trim().parse().ok()).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return see_other("/login?next=%2Fsettings%2Fbilling&link=spent").into_response()
            }
            Err(e) => return e.into_response(),
        };
        let session = match create_session(&state.db, user.id).await {
            Ok(token) => token,
            Err(e) => return e.into_response(),
        };
        let cookie = session_cookie(&session, state.config.secure_cookies());
        let to = open_portal(&state, &user, Some(PortalFlow::PaymentMethodUpdate), None)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the payment link could not open the portal");
                "/settings/billing".to_owned()
            });
        (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, to),
                (
                    header::SET_COOKIE,
                    cookie.to_str().unwrap_or_default().to_owned(),
                ),
            ],
        )
            .into_response()
    }

    /// The link's user, if it is live and still for the account's address; used up. With
    /// `org`, the user acts for that organisation if they manage its billing.
    async fn redeem(
        state: &AppState,
        token: &str,
        org: Option<i64>,
    ) -> Result<Option<CurrentUser>, AppError> {
        let txn = begin_write(&state.db).await?;
        let row = match links::redeem(&*txn, Purpose::FixPayment, token).await? {
            Ok(row) => row,
            Err(_) => {
                txn.rollback().await?;
                return Ok(None);
            }
        };
        let account = user::Entity::find_by_id(row.user_id).one(&*txn).await?;
        txn.commit().await?;
        let Some(mut account) = account.filter(|u| u.email == row.email) else {
            return Ok(None);
        };
        if let Some(org) = org {
            if crate::auth::org::choose_for_billing(&state.db, account.id, org).await? {
                account.current_organization_id = Some(org);
            }
        }
        Ok(Some(current_user(&state.db, account).await?))
    }

    /// The accounts' plain Axum route: `GET /fix-payment`.
    pub fn routes() -> axum::Router<AppState> {
        axum::Router::new().route("/fix-payment", axum::routing::get(fix_payment))
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

/// The sign-up form: a plain HTML form; answered in place by the page's script, which shows
/// errors and keeps what was typed.
#[component]
fn SignupForm() -> impl IntoView {
    let error = refusal(SignUp::PATH);
    view! {
        <form method="post" action=SignUp::PATH class="space-y-4" novalidate=true data-enhance="">
            <FormError error=error.clone()/>
            <Field name="email" label="Email" kind="email" autocomplete="email" error=error.clone()/>
            <Field
                name="password"
                label="Password"
                kind="password"
                autocomplete="new-password"
                error
                hint="At least 8 characters."
            />
            <button type="submit" class=submit_class() data-busy="Creating account…">"Create account"</button>
        </form>
    }
}
