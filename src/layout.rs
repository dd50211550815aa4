//! The signed-in area's layout.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{auth::LogoutButton, ui::Brand};

/// Header and side navigation around every settings page.
#[component]
pub fn SettingsLayout(email: String, children: Children) -> impl IntoView {
    view! {
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-5xl items-center justify-between px-6 py-4">
                <Brand/>
                <div class="flex items-center gap-3">
                    <span class="text-sm text-slate-600" data-testid="user-email">{email}</span>
                    <LogoutButton/>
                </div>
            </div>
        </header>
        <div class="mx-auto flex max-w-5xl gap-8 px-6 py-8">
            <nav class="w-44 shrink-0 text-sm" aria-label="Settings">
                <p class="mb-2 font-semibold uppercase tracking-wide text-slate-500 text-xs">"Settings"</p>
                <A href="/settings/billing" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Billing"</A>
                <A href="/app" attr:class="block rounded-md px-3 py-2 font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Pro features"</A>
            </nav>
            <section class="min-w-0 flex-1">{children()}</section>
        </div>
    }
}
