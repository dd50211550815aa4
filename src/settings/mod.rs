//! The signed-in area: the settings layout and its billing page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Redirect, A};

use crate::{
    app::Brand,
    auth::{current_user, CurrentUser, LogoutButton},
};

/// Header and side navigation around every settings page.
#[component]
pub fn SettingsLayout(user: CurrentUser, children: Children) -> impl IntoView {
    view! {
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-5xl items-center justify-between px-6 py-4">
                <Brand/>
                <div class="flex items-center gap-3">
                    <span class="text-sm text-slate-600" data-testid="user-email">{user.email}</span>
                    <LogoutButton/>
                </div>
            </div>
        </header>
        <div class="mx-auto flex max-w-5xl gap-8 px-6 py-8">
            <nav class="w-44 shrink-0 text-sm" aria-label="Settings">
                <p class="mb-2 font-semibold uppercase tracking-wide text-slate-500 text-xs">"Settings"</p>
                <A href="/settings/billing" attr:class="block rounded-md px-3 py-2 font-medium text-slate-900 bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700">"Billing"</A>
            </nav>
            <section class="min-w-0 flex-1">{children()}</section>
        </div>
    }
}

/// `/settings/billing`: where a user sees and manages their subscription.
#[component]
pub fn BillingSettingsPage() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    view! {
        <Title text="Billing · Billfold"/>
        <Suspense fallback=|| view! { <p class="p-8 text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(user)) => view! {
                        <SettingsLayout user>
                            <h1 class="text-2xl font-semibold">"Billing"</h1>
                            <p class="mt-1 text-slate-600">"Your plan, payment method and invoices."</p>
                        </SettingsLayout>
                    }.into_any(),
                    Ok(None) => view! { <Redirect path="/login?next=/settings/billing"/> }.into_any(),
                    Err(e) => view! {
                        <p role="alert" class="p-8 text-red-700">{e.to_string()}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
