//! Small pieces of UI that pages of every feature share. A leaf: it imports no feature.

use leptos::prelude::*;
use leptos_router::components::A;

/// The brand mark used in every header.
#[component]
pub fn Brand() -> impl IntoView {
    view! {
        <A href="/" attr:class="flex items-center gap-2 text-lg font-semibold text-slate-900">
            <span class="inline-flex h-7 w-7 items-center justify-center rounded-md bg-indigo-600 text-sm font-bold text-white">"B"</span>
            "Billfold"
        </A>
    }
}
