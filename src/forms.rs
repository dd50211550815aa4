//! Forms that post to a server function: plain HTML forms, answered in place by a few
//! hundred bytes of script when the browser runs it.
//!
//! A form marked `data-enhance` is sent by the page's script ([`SCRIPT`], inline under the
//! page's nonce) with `fetch` as the same urlencoded body the browser would post, asking for
//! JSON. The server function then answers with a URL to go to (its value, or a redirect it
//! set), nothing, or an [`AppError`] shown in the form: under its field
//! (`data-error-for="name"`), else in the form's `data-form-error` slot. While a request is
//! out, and while the browser leaves for the answer's URL, the submit button is disabled and
//! says its `data-busy` text. Without the script the same form posts as a plain form, and a
//! refusal comes back in the page's address ([`refusal`]).
//!
//! No page loads WASM: the browser's own forms do the work, and this script only answers
//! them in place (it replaced the islands, whose reactive runtime and renderer were almost
//! all of the bytes a page downloaded).

#[cfg(feature = "ssr")]
use leptos::prelude::*;

use crate::error::AppError;

/// The script that answers `data-enhance` forms in place, with the fixed texts of the errors
/// that carry none (as the server words them: one text per error, wherever it shows).
#[cfg(feature = "ssr")]
pub static SCRIPT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let texts = serde_json::json!({
        "Unauthorized": AppError::Unauthorized.to_string(),
        "Internal": AppError::Internal.to_string(),
        "Transport": AppError::Transport.to_string(),
    });
    // Sent in every page: without its comments and indentation (each line kept whole).
    include_str!("forms.js")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("__TEXTS__", &texts.to_string())
});

/// The refusal a plain form post to the server function at `path` came back with, when the
/// page renders after it (the framework sends the browser back with `?__path=…&__err=…`).
#[cfg(feature = "ssr")]
pub fn refusal(path: &str) -> Option<AppError> {
    use leptos::{server::ServerActionError, server_fn::error::ServerFnUrlError};
    use_context::<ServerActionError>()
        .filter(|e| e.path() == path)
        .map(|e| fixed_refusal(path, ServerFnUrlError::<AppError>::decode_err(e.err())))
}

/// The refusal a form shows when it arrived in the page's address: the same kind of error
/// (and field), with a message of our own. Anyone can make a link carrying any text, so the
/// text the address carries is never shown.
#[cfg(feature = "ssr")]
pub fn fixed_refusal(path: &str, claimed: AppError) -> AppError {
    let login = path.ends_with("/login");
    let signup = path.ends_with("/signup");
    let projects = path.ends_with("/app/projects/create");
    let reset = path.ends_with("/password/reset");
    let email_change = path.ends_with("/account/email");
    let text = |s: &str| s.to_owned();
    match claimed {
        AppError::Invalid { field, .. } => {
            let message = match field.as_deref() {
                Some("email") if login => "Enter your email address.",
                Some("email") => "Enter a valid email address, like name@example.com.",
                Some("password") if login => "Enter your password.",
                Some("password") if email_change => "Your current password is not correct.",
                Some("new_email") => "Enter a valid email address you do not use already.",
                Some("password") => "Use between 8 and 1024 characters for your password.",
                Some("price_id") => crate::error::NOT_FOR_SALE,
                Some("name") if projects => "Give the project a name of up to 80 characters, on one line.",
                None if reset => "This link no longer works. Ask for a new one: Forgot password? on the log-in page.",
                _ => "Check what you entered and try again.",
            };
            AppError::Invalid {
                field,
                message: text(message),
            }
        }
        AppError::Forbidden(_) if login => AppError::Forbidden(text("Email or password is incorrect.")),
        AppError::Forbidden(_) if projects => AppError::Forbidden(text(
            "Your plan allows no more projects. A bigger plan on the billing page allows more.",
        )),
        AppError::Forbidden(_) => AppError::Forbidden(text("That is not allowed for your account.")),
        AppError::NotFound(_) => {
            AppError::NotFound(text("That could not be found. Reload the page and try again."))
        }
        AppError::Conflict(_) if email_change => {
            AppError::Conflict(text("That address belongs to another account."))
        }
        AppError::Conflict(_) if signup => AppError::Conflict(text(
            "An account with this email already exists. Log in instead?",
        )),
        AppError::Conflict(_) => AppError::Conflict(text(
            "That changed in the meantime. Reload the page and try again.",
        )),
        AppError::RateLimited { .. } => AppError::RateLimited {
            message: text("Too many attempts. Wait a minute and try again."),
            retry_after_secs: 60,
        },
        AppError::Busy { .. } => AppError::busy(std::time::Duration::from_secs(5)),
        AppError::Unavailable(_) => AppError::Unavailable(text(
            "The service is temporarily unavailable. Please try again in a moment.",
        )),
        AppError::Upstream(_) => AppError::Upstream(text(
            "Stripe refused the request. Please try again, or contact support if it keeps happening.",
        )),
        known @ (AppError::Unauthorized | AppError::Internal | AppError::Transport) => known,
    }
}

/// Off the server there is no request to read a refusal from.
#[cfg(not(feature = "ssr"))]
pub fn refusal(_path: &str) -> Option<AppError> {
    None
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    /// What the page's script reads out of an error's JSON (field, text), done here on
    /// `serde_json` the way `read` in `forms.js` does it on the browser's `JSON`.
    fn read(body: &serde_json::Value, texts: &serde_json::Value) -> (Option<String>, String) {
        let fixed = |variant: &str| {
            texts
                .get(variant)
                .or_else(|| texts.get("Internal"))
                .and_then(|t| t.as_str())
                .expect("a fixed text")
                .to_owned()
        };
        match body {
            serde_json::Value::String(variant) => (None, fixed(variant)),
            serde_json::Value::Object(map) => {
                let (variant, inner) = map.iter().next().expect("one variant");
                match inner {
                    serde_json::Value::String(message) => (None, message.clone()),
                    inner => match inner.get("message").and_then(|m| m.as_str()) {
                        Some(message) => (
                            inner
                                .get("field")
                                .and_then(|f| f.as_str())
                                .map(String::from),
                            message.to_owned(),
                        ),
                        None => (None, fixed(variant)),
                    },
                }
            }
            other => panic!("not an error's shape: {other}"),
        }
    }

    /// Fails to compile when `AppError` gains a variant, so the list below grows with it.
    fn listed(e: &AppError) {
        match e {
            AppError::Invalid { .. }
            | AppError::Unauthorized
            | AppError::Forbidden(_)
            | AppError::NotFound(_)
            | AppError::Conflict(_)
            | AppError::RateLimited { .. }
            | AppError::Unavailable(_)
            | AppError::Busy { .. }
            | AppError::Upstream(_)
            | AppError::Internal
            | AppError::Transport => {}
        }
    }

    #[test]
    fn a_refusal_in_the_address_shows_our_text_never_the_address_text() {
        let forged = "Your account is locked. Call +1 555 0100 and give them your password.";
        let claims = [
            AppError::invalid("email", forged),
            AppError::invalid("password", forged),
            AppError::invalid("anything", forged),
            AppError::Forbidden(forged.into()),
            AppError::NotFound(forged.into()),
            AppError::Conflict(forged.into()),
            AppError::RateLimited {
                message: forged.into(),
                retry_after_secs: 9,
            },
            AppError::Busy {
                message: forged.into(),
                retry_after_secs: 9,
            },
            AppError::Unavailable(forged.into()),
            AppError::Upstream(forged.into()),
            AppError::Unauthorized,
            AppError::Internal,
        ];
        for path in ["/api/login", "/api/signup", "/api/billing/portal"] {
            for claim in claims.clone() {
                let shown = fixed_refusal(path, claim.clone());
                assert!(!shown.to_string().contains("555"), "{path}: {shown}");
                assert_eq!(
                    std::mem::discriminant(&shown),
                    std::mem::discriminant(&claim),
                    "the kind is kept"
                );
                assert_eq!(shown.is_field_error(), claim.is_field_error());
            }
        }
        assert_eq!(
            fixed_refusal("/api/login", AppError::Forbidden(forged.into())).to_string(),
            "Email or password is incorrect."
        );
        assert!(
            fixed_refusal("/api/signup", AppError::Conflict(forged.into()))
                .to_string()
                .starts_with("An account with this email already exists")
        );
    }

    /// The script shows each error as the server words it, under the field it names.
    #[test]
    fn every_error_reads_back_as_itself_in_the_browser() {
        let script = SCRIPT.as_str();
        assert!(
            !script.contains("__TEXTS__") && !script.contains("</"),
            "{script}"
        );
        let at = script.find("const TEXT = ").expect("the texts") + "const TEXT = ".len();
        let end = at + script[at..].find(";\n").expect("the texts end");
        let texts: serde_json::Value = serde_json::from_str(&script[at..end]).expect("JSON texts");
        let all = [
            AppError::invalid("email", "Enter a valid email address."),
            AppError::Invalid {
                field: None,
                message: "The form could not be read.".into(),
            },
            AppError::Unauthorized,
            AppError::Forbidden("Email or password is incorrect.".into()),
            AppError::NotFound("No such plan.".into()),
            AppError::Conflict("An account with this email already exists.".into()),
            AppError::rate_limited("Too many attempts.", std::time::Duration::from_secs(42)),
            AppError::Unavailable("Billing is temporarily unavailable.".into()),
            AppError::busy(std::time::Duration::from_secs(3)),
            AppError::Upstream("Stripe refused to start Checkout.".into()),
            AppError::Internal,
            AppError::Transport,
        ];
        for e in all {
            listed(&e);
            let json = serde_json::to_value(&e).expect("errors serialize");
            let field = match &e {
                AppError::Invalid { field, .. } => field.clone(),
                _ => None,
            };
            assert_eq!(read(&json, &texts), (field, e.to_string()), "{json}");
        }
    }
}
