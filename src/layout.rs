//! The signed-in area's layout.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::{
    auth::{email_proof::UnprovenAddressBanner, LogoutButton},
    domain::OrgChoice,
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
    /// Every organisation the user belongs to, for the header's switcher (read by the page's
    /// own loader: none, and the header links to the organisation page instead).
    #[prop(optional)]
    choices: Vec<OrgChoice>,
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
                    <OrgSwitcher org choices/>
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

const ORG_LINK: &str = "rounded-md border border-slate-200 px-2 py-1 text-sm font-medium text-slate-700 hover:bg-slate-50";

/// The current organisation in the header, and the others the user belongs to: each a plain
/// form that makes it current and comes back to this page (no JavaScript needed). Without the
/// list, the page's own name for the organisation, linking to the organisation page.
#[component]
fn OrgSwitcher(org: Option<String>, choices: Vec<OrgChoice>) -> impl IntoView {
    if choices.is_empty() {
        return org
            .map(|org| {
                view! {
                    <A href="/settings/organization" attr:class=ORG_LINK attr:data-testid="current-org" attr:title="Switch organisation">{org}</A>
                }
            })
            .into_any();
    }
    let here = use_location().pathname.get_untracked();
    switcher(choices, here).into_any()
}

fn switcher(list: Vec<OrgChoice>, here: String) -> impl IntoView {
    let current = list
        .iter()
        .find(|c| c.current)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let others: Vec<_> = list
        .into_iter()
        .filter(|c| !c.current)
        .map(|c| {
            let here = here.clone();
            view! {
                <li>
                    <form method="post" action="/api/org/switch">
                        <input type="hidden" name="organization_id" value=c.id.to_string()/>
                        <input type="hidden" name="next" value=here/>
                        <button type="submit" class="block w-full rounded px-3 py-1.5 text-left text-sm text-slate-700 hover:bg-slate-100" data-testid="switch-org">
                            {c.name}
                        </button>
                    </form>
                </li>
            }
        })
        .collect();
    view! {
        <details class="relative" data-testid="org-switcher">
            <summary class=format!("{ORG_LINK} cursor-pointer list-none") data-testid="current-org" title="Switch organisation">{current}</summary>
            <ul class="absolute right-0 z-10 mt-1 w-56 rounded-md border border-slate-200 bg-white py-1 shadow-lg">
                {others}
                <li class="border-t border-slate-100 mt-1 pt-1">
                    <A href="/settings/organization" attr:class="block px-3 py-1.5 text-sm text-indigo-700 hover:bg-slate-100">"Manage organisations"</A>
                </li>
            </ul>
        </details>
    }
}
