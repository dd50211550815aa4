//! Small pieces of UI that pages of every feature share. It imports no feature (only the
//! error type the forms show).

pub mod form;

use leptos::prelude::*;
use leptos_meta::Title;
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

/// The page any unknown address gets, with status 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found · Billfold"/>
        <div class="mx-auto mt-24 max-w-md text-center">
            <h1 class="text-2xl font-semibold">"Page not found"</h1>
            <p class="mt-2 text-slate-600">"There is nothing at this address."</p>
            <A href="/" attr:class="mt-6 inline-block font-medium text-indigo-600">"Back to Billfold"</A>
        </div>
    }
}
