//! The signed-in area's layout.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{
    auth::{email_proof::UnprovenAddressBanner, LogoutButton},
    ui::Brand,
};

/// Header and side navigation around every settings page; above them, until the address is
/// proven, the banner that says where the link went.
#[component]
pub fn SettingsLayout(
    email: String,
    email_verified: bool,
    /// The organisation the user acts for, named in the header.
    #[prop(optional, into)]
    org: Option<String>,
    children: Children,
) -> impl IntoView {
    let unproven =
        (!email_verified).then(|| view! { <UnprovenAddressBanner email=email.clone()/> });
    view! {
        {unproven}
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-5xl items-center justify-between px-6 py-4">
                <Brand/>
                <div class="flex items-center gap-3">
                    {org.map(|org| view! {
                        <A href="/settings/organization" attr:class="rounded-md border border-slate-200 px-2 py-1 text-sm font-medium text-slate-700 hover:bg-slate-50" attr:data-testid="current-org" attr:title="Switch organisation">{org}</A>
                    })}
                    <span class="text-sm text-slate-600" data-testid="user-email">{email}</span>
                    <LogoutButton/>
                </div>
            </div>
        </header>
        <div class="mx-auto flex max-w-5xl gap-8 px-6 py-8">
            <nav class="w-44 shrink-0 text-sm" aria-label="Settings">
                <p class="mb-2 font-semibold uppercase tracking-wide text-slate-500 text-xs">"Settings"</p>
                <A href="/settings/billing" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Billing"</A>
                <A href="/settings/organization" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Organisation"</A>
                <A href="/settings/account" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Account"</A>
                <A href="/app" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Pro features"</A>
            </nav>
            <section class="min-w-0 flex-1">{children()}</section>
        </div>
    }
}
