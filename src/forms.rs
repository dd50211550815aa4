//! Forms that post to a server function: plain HTML forms without JavaScript, and in an
//! island, answered in place.
//!
//! Hydrated, a submit is sent with `fetch` as the same urlencoded body the browser would
//! post, asking for JSON. The server function then answers with a URL to go to (its value,
//! or a redirect it set), nothing, or an [`AppError`] shown in the form. Leptos's own
//! `ActionForm` does the same through the server-function client, whose encoders and
//! decoders were most of the bytes the browser downloaded; this needs the browser's own
//! `FormData`, `fetch` and `JSON` only.

use leptos::prelude::*;

use crate::error::AppError;

/// What a form is doing: in flight, on its way to another page, or refused.
#[derive(Clone, Copy)]
pub struct FormState {
    pending: RwSignal<bool>,
    leaving: RwSignal<bool>,
    error: RwSignal<Option<AppError>>,
}

impl FormState {
    /// A form posting to the server function at `path` (its `ServerFn::PATH`). Rendered on
    /// the server after that function refused a plain form post, it shows the refusal (the
    /// framework sends the browser back with it in the query).
    pub fn new(path: &str) -> Self {
        FormState {
            pending: RwSignal::new(false),
            leaving: RwSignal::new(false),
            error: RwSignal::new(refused_by(path)),
        }
    }

    /// Sent and not answered yet, or answered with a page the browser is now loading: the
    /// submit button stays disabled.
    pub fn busy(&self) -> bool {
        self.pending.get() || self.leaving.get()
    }

    /// The last refusal, until the next submit.
    pub fn error(&self) -> Signal<Option<AppError>> {
        self.error.into()
    }

    /// The form's submit handler: sends the form in the background and handles the answer.
    pub fn on_submit(self) -> impl Fn(leptos::ev::SubmitEvent) + 'static {
        move |ev| {
            #[cfg(feature = "hydrate")]
            {
                use wasm_bindgen::JsCast;
                let Some(form) = ev
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
                else {
                    return;
                };
                ev.prevent_default();
                if self.busy() {
                    return;
                }
                self.pending.set(true);
                self.error.set(None);
                leptos::task::spawn_local(async move {
                    let answer = browser::post(&form).await;
                    self.pending.set(false);
                    match answer {
                        Ok(Some(url)) => {
                            self.leaving.set(true);
                            if window().location().set_href(&url).is_err() {
                                self.leaving.set(false);
                                self.error.set(Some(AppError::Transport));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => self.error.set(Some(e)),
                    }
                });
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = ev;
        }
    }
}

/// The refusal a plain form post to `path` came back with (`?__path=…&__err=…`).
#[cfg(feature = "ssr")]
fn refused_by(path: &str) -> Option<AppError> {
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

/// In the browser, an island starts with no refusal: a submit it sent itself is answered in
/// place, never through the query.
#[cfg(not(feature = "ssr"))]
fn refused_by(_path: &str) -> Option<AppError> {
    None
}

/// The parts of an error as the server function sends it (serde's externally tagged enum:
/// `"Unauthorized"`, `{"Forbidden": "…"}`, `{"Invalid": {"field": …, "message": "…"}}`).
pub struct WireError {
    pub variant: String,
    pub field: Option<String>,
    pub message: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl From<WireError> for AppError {
    fn from(w: WireError) -> Self {
        let message = || w.message.clone().unwrap_or_default();
        match w.variant.as_str() {
            "Invalid" => AppError::Invalid {
                field: w.field.clone(),
                message: message(),
            },
            "Unauthorized" => AppError::Unauthorized,
            "Forbidden" => AppError::Forbidden(message()),
            "NotFound" => AppError::NotFound(message()),
            "Conflict" => AppError::Conflict(message()),
            "RateLimited" => AppError::RateLimited {
                message: message(),
                retry_after_secs: w.retry_after_secs.unwrap_or(0),
            },
            "Unavailable" => AppError::Unavailable(message()),
            "Busy" => AppError::Busy {
                message: message(),
                retry_after_secs: w.retry_after_secs.unwrap_or(0),
            },
            "Upstream" => AppError::Upstream(message()),
            "Transport" => AppError::Transport,
            _ => AppError::Internal,
        }
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use js_sys::{Object, Reflect, JSON};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{FormData, HtmlFormElement, RequestInit, Response, UrlSearchParams};

    use super::WireError;
    use crate::error::AppError;

    /// Posts `form` to its action as a server function call; `Some(url)` is where to go.
    pub async fn post(form: &HtmlFormElement) -> Result<Option<String>, AppError> {
        let response = send(form).await.map_err(|_| AppError::Transport)?;
        let headers = response.headers();
        let text = match response.text() {
            Ok(p) => JsFuture::from(p)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let body = JSON::parse(&text).unwrap_or(JsValue::NULL);
        if !response.ok() {
            return Err(decode_error(&body));
        }
        let redirect = headers
            .has("serverfnredirect")
            .unwrap_or(false)
            .then(|| headers.get("location").ok().flatten())
            .flatten();
        Ok(redirect.or_else(|| body.as_string()))
    }

    async fn send(form: &HtmlFormElement) -> Result<Response, JsValue> {
        let data = FormData::new_with_form(form)?;
        let body = UrlSearchParams::new_with_str_sequence_sequence(&data)?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_body(&body);
        let headers = web_sys::Headers::new()?;
        headers.set("Accept", "application/json")?;
        init.set_headers(&headers);
        let response = JsFuture::from(
            leptos::prelude::window().fetch_with_str_and_init(&form.action(), &init),
        )
        .await?;
        response.dyn_into::<Response>()
    }

    fn decode_error(body: &JsValue) -> AppError {
        if let Some(variant) = body.as_string() {
            return WireError {
                variant,
                field: None,
                message: None,
                retry_after_secs: None,
            }
            .into();
        }
        let Some(object) = body.dyn_ref::<Object>() else {
            return AppError::Internal;
        };
        let Some(variant) = Object::keys(object).get(0).as_string() else {
            return AppError::Internal;
        };
        let inner = Reflect::get(body, &JsValue::from_str(&variant)).unwrap_or(JsValue::NULL);
        let field = |name: &str| {
            Reflect::get(&inner, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_string())
        };
        let (field, message) = match inner.as_string() {
            Some(message) => (None, Some(message)),
            None => (field("field"), field("message")),
        };
        let retry_after_secs = Reflect::get(&inner, &JsValue::from_str("retry_after_secs"))
            .ok()
            .and_then(|v| v.as_f64())
            .map(|secs| secs as u64);
        WireError {
            variant,
            field,
            message,
            retry_after_secs,
        }
        .into()
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    /// What the browser side reads out of an error's JSON, done here on `serde_json` the way
    /// `browser::decode_error` does it on the browser's `JSON`.
    fn wire(value: &serde_json::Value) -> WireError {
        match value {
            serde_json::Value::String(variant) => WireError {
                variant: variant.clone(),
                field: None,
                message: None,
                retry_after_secs: None,
            },
            serde_json::Value::Object(map) => {
                let (variant, inner) = map.iter().next().expect("one variant");
                let text = |name: &str| inner.get(name).and_then(|v| v.as_str()).map(String::from);
                match inner.as_str() {
                    Some(message) => WireError {
                        variant: variant.clone(),
                        field: None,
                        message: Some(message.into()),
                        retry_after_secs: None,
                    },
                    None => WireError {
                        variant: variant.clone(),
                        field: text("field"),
                        message: text("message"),
                        retry_after_secs: inner.get("retry_after_secs").and_then(|v| v.as_u64()),
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

    #[test]
    fn every_error_reads_back_as_itself_in_the_browser() {
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
            assert_eq!(AppError::from(wire(&json)), e, "{json}");
        }
    }
}
