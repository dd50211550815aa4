//! The Stripe API client: one per app, pointed at Stripe, a standalone double
//! (`STRIPE_API_BASE`) or the double mounted in this app (simulated mode). Billing code uses
//! it the same way in every mode: only the base URL and the key differ. [`raw`] reads the
//! same API as raw JSON, for the operator commands.

pub mod raw;

use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, StripeMode};

/// The key the app uses with its own mounted test double (it accepts any `sk_test_` key).
pub const SIMULATED_SECRET_KEY: &str = "sk_test_billfold_simulated";

/// Where the mounted double lives under the app.
pub const SIM_MOUNT: &str = "/_stripe-sim";

/// How long one Stripe request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The base URL the server itself calls. In simulated mode that is the app's own listener on
/// loopback, not `APP_URL`, which may be a public name the server cannot reach.
pub fn api_base(config: &Config) -> Option<String> {
    match config.stripe.mode {
        // Simulated mode only ever binds a loopback address (the config refuses others).
        StripeMode::Simulated => Some(format!("http://{}{SIM_MOUNT}/", config.bind_addr)),
        _ => config.stripe.api_base.as_ref().map(|u| {
            // async-stripe appends `v1/…` to the base as is: it must end in a slash.
            let s = u.as_str();
            if s.ends_with('/') {
                s.to_owned()
            } else {
                format!("{s}/")
            }
        }),
    }
}

/// The key every Stripe call is made with: the configured one, or the mounted double's.
pub fn secret_key(config: &Config) -> String {
    match &config.stripe.secret_key {
        Some(k) => k.expose().to_owned(),
        None => SIMULATED_SECRET_KEY.to_owned(),
    }
}

/// Where Stripe posts this app's webhooks: `APP_URL`'s origin, or in simulated mode this
/// listener on loopback (where the mounted double delivers them).
pub fn webhook_url(config: &Config) -> String {
    match config.stripe.mode {
        StripeMode::Simulated => format!("http://{}/api/webhooks/stripe", config.bind_addr),
        _ => config.url_for("/api/webhooks/stripe"),
    }
}

/// Builds the client from the config: base URL, key, timeout, app info.
pub fn client(config: &Config) -> anyhow::Result<::stripe::Client> {
    let mut builder = ::stripe::ClientBuilder::new(secret_key(config))
        .timeout(REQUEST_TIMEOUT)
        .app_info("Billfold", Some(env!("CARGO_PKG_VERSION").to_owned()), None);
    if let Some(base) = api_base(config) {
        builder = builder.url(base);
    }
    builder.build().context("cannot build the Stripe client")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("MAIL_DELIVERY".into(), "log".into());
        Config::from_lookup(|k| map.get(k).cloned()).expect("valid config")
    }

    #[cfg(feature = "stripe-sim")]
    #[test]
    fn simulated_mode_calls_its_own_listener() {
        let c = config(&[
            ("STRIPE_MODE", "simulated"),
            ("BIND_ADDR", "127.0.0.1:8080"),
            ("APP_URL", "http://localhost:8080"),
        ]);
        assert_eq!(
            api_base(&c).as_deref(),
            Some("http://127.0.0.1:8080/_stripe-sim/")
        );
    }

    #[test]
    fn a_standalone_double_gets_a_trailing_slash_and_stripe_gets_none() {
        let c = config(&[
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        ]);
        assert_eq!(api_base(&c).as_deref(), Some("http://127.0.0.1:12111/"));
        let c = config(&[
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ]);
        assert_eq!(api_base(&c), None);
    }
}
