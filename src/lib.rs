//! Billfold: billing self-service for a SaaS's end users.
//!
//! Shared code (pages, DTOs, server function signatures) compiles for both the server
//! (`ssr`) and the browser (`hydrate`); server-only modules sit behind `ssr`. Pages are
//! rendered on the server alone and load no WASM: their forms work as plain HTML forms, and a
//! few hundred bytes of inline script answer them in place ([`forms`]).

// The reconciler's cycle is one future over many of async-stripe's deeply nested types;
// proving it `Send` takes more than the default 128 steps.
#![recursion_limit = "256"]

pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod billing;
pub mod domain;
pub mod error;
pub mod forms;
pub mod layout;
pub mod organizations;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod alloc;
#[cfg(feature = "ssr")]
pub mod billing_file;
#[cfg(feature = "ssr")]
pub mod commands;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "stripe-sim")]
pub mod demo_account;
#[cfg(feature = "ssr")]
pub mod limits;
#[cfg(feature = "ssr")]
pub mod mail;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod reconcile;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod stripe_api;
#[cfg(feature = "ssr")]
pub mod web;
#[cfg(feature = "ssr")]
pub mod webhooks;

/// The browser entry point cargo-leptos builds for every project. No page loads it: the
/// shell ships the forms script instead ([`forms::SCRIPT`]); an `#[island]`, if one is ever
/// needed again, would be hydrated from here once the shell loads the bundle on its page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
