//! The HTML shell, the routes and the pages that belong to no feature.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, SsrMode,
};

use crate::organizations::{AcceptInvitationPage, OrganizationPage};
use crate::{
    accounts::{
        email_change::{AccountPage, ConfirmEmailChangePage},
        SignupPage,
    },
    admin::page::AdminBillingPage,
    auth::{
        email_proof::VerifyEmailPage,
        reset::{ForgotPasswordPage, ResetPasswordPage},
        LoginPage,
    },
    billing::page::{AppPage, BillingPage},
    ui::{Brand, NotFound},
};

/// Pages only a signed-in user may see; anyone else is sent to log in first. The server
/// layers its sign-in guard on exactly these routes.
pub const SIGNED_IN_PAGES: &[&str] = &[
    "/settings/billing",
    "/settings/account",
    "/settings/organization",
    "/app",
];
/// Pages for signed-out visitors; someone signed in goes on to where they were headed.
pub const SIGNED_OUT_PAGES: &[&str] = &["/login", "/signup"];
/// Pages for operators only (granted with `billfold admin add`); anyone else, signed in or not, gets the
/// not-found page any unknown path gets. The server layers its admin guard on exactly these.
pub const ADMIN_PAGES: &[&str] = &[crate::admin::ADMIN_BILLING];

/// The document around every server-rendered page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // A fresh nonce for the page's one inline script (the forms script), and the
    // Content-Security-Policy naming it.
    #[cfg(feature = "ssr")]
    crate::web::headers::page_policy();
    #[cfg(feature = "ssr")]
    let forms_script = crate::forms::SCRIPT.as_str();
    #[cfg(not(feature = "ssr"))]
    let forms_script = "";
    let nonce = leptos::nonce::use_nonce();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options/>
                <script nonce=nonce inner_html=forms_script></script>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <MetaTags/>
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased">
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/billfold.css"/>
        <Title text="Billfold"/>
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/signup") view=SignupPage/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/forgot-password") view=ForgotPasswordPage/>
                    // Each uses or checks the mailed link before it renders.
                    <Route path=path!("/verify-email") view=VerifyEmailPage ssr=SsrMode::Async/>
                    <Route path=path!("/reset-password") view=ResetPasswordPage ssr=SsrMode::Async/>
                    <Route path=path!("/confirm-email-change") view=ConfirmEmailChangePage ssr=SsrMode::Async/>
                    <Route path=path!("/accept-invitation") view=AcceptInvitationPage ssr=SsrMode::Async/>
                    // Rendered whole before sending (not streamed), so the page reads the same
                    // without JavaScript.
                    <Route path=path!("/settings/billing") view=BillingPage ssr=SsrMode::Async/>
                    <Route path=path!("/settings/account") view=AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/settings/organization") view=OrganizationPage ssr=SsrMode::Async/>
                    <Route path=path!("/app") view=AppPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/billing") view=AdminBillingPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn HomePage() -> impl IntoView {
    view! {
        <header class="mx-auto flex max-w-5xl items-center justify-between px-6 py-5">
            <Brand/>
            <nav class="flex items-center gap-3 text-sm">
                <A href="/login" attr:class="rounded-md px-3 py-1.5 font-medium text-slate-700 hover:bg-slate-100">"Log in"</A>
                <A href="/signup" attr:class="rounded-md bg-indigo-600 px-3 py-1.5 font-medium text-white hover:bg-indigo-500">"Sign up"</A>
            </nav>
        </header>
        <section class="mx-auto max-w-5xl px-6 py-20">
            <h1 class="max-w-2xl text-4xl font-bold tracking-tight text-slate-900">
                "Your plan, your card, your invoices — in one place."
            </h1>
            <p class="mt-4 max-w-2xl text-lg text-slate-600">
                "See exactly where your subscription stands, start a plan, update your card or cancel, without writing to support."
            </p>
            <div class="mt-8 flex gap-3">
                <A href="/signup" attr:class="rounded-md bg-indigo-600 px-5 py-2.5 font-medium text-white hover:bg-indigo-500">"Create an account"</A>
                <A href="/settings/billing" attr:class="rounded-md border border-slate-300 bg-white px-5 py-2.5 font-medium text-slate-700 hover:bg-slate-50">"Go to billing"</A>
            </div>
        </section>
    }
}
