//! The parts of the account forms (log-in, sign-up): a card, a labelled field with its own
//! error, a form-level error box and the submit button's look.

use leptos::prelude::*;

use crate::error::AppError;

/// A form-level error box, for errors that belong to no single field: the refusal a plain
/// post came back with, or (empty and hidden until then) the slot the page's script fills.
#[component]
pub fn FormError(error: Option<AppError>) -> impl IntoView {
    let shown = error.filter(|e| !e.is_field_error()).map(|e| e.to_string());
    let role = shown.is_some().then_some("alert");
    let hidden = shown.is_none();
    view! {
        <div
            data-form-error=""
            role=role
            hidden=hidden
            class="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800"
        >
            {shown}
        </div>
    }
}

/// A one-line refusal under a small form (a button, a select): any error, the field's too.
#[component]
pub fn ErrorLine(
    error: Option<AppError>,
    #[prop(into)] class: String,
    #[prop(optional)] testid: Option<&'static str>,
) -> impl IntoView {
    let shown = error.map(|e| e.to_string());
    let role = shown.is_some().then_some("alert");
    let hidden = shown.is_none();
    view! {
        <p data-form-error="" data-testid=testid role=role hidden=hidden class=class>
            {shown}
        </p>
    }
}

/// An input with its label and the field's own error message.
#[component]
pub fn Field(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    error: Option<AppError>,
    #[prop(optional, into)] hint: Option<&'static str>,
) -> impl IntoView {
    let message = error.and_then(|e| e.field_message(name));
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
                aria-invalid=message.is_some().to_string()
                aria-describedby=err_id.clone()
                class="block w-full rounded-md border border-slate-300 px-3 py-2 text-slate-900 shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-1 focus:ring-indigo-500"
            />
            {hint.map(|h| view! { <p class="text-xs text-slate-500">{h}</p> })}
            <p id=err_id data-error-for=name class="text-sm text-red-700">{message}</p>
        </div>
    }
}

/// The account forms share a card layout.
#[component]
pub fn AuthCard(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="mx-auto mt-16 w-full max-w-sm rounded-xl border border-slate-200 bg-white p-8 shadow-sm">
            <h1 class="mb-6 text-2xl font-semibold text-slate-900">{title}</h1>
            {children()}
        </div>
    }
}

pub fn submit_class() -> &'static str {
    "w-full rounded-md bg-indigo-600 px-4 py-2 font-medium text-white hover:bg-indigo-500 disabled:opacity-60"
}
