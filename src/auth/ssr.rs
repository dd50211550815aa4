//! Server side of accounts: password hashing, sessions, cookies, rate limits and the
//! request middleware that turns a session cookie into a [`SignedIn`] request extension.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use leptos::prelude::use_context;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, SqlErr,
};
use sha2::{Digest, Sha256};

use super::{
    validate::{safe_next, Email, Password},
    CurrentUser,
};
use crate::{
    db::entities::{session, user},
    error::AppError,
    server::AppState,
};

pub const SESSION_COOKIE: &str = "billfold_session";
/// Sessions live 30 days from their last use.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// A used session's expiry is pushed forward at most once a day, to keep reads read-only.
const SLIDE_AFTER_SECS: i64 = 24 * 3600;

/// Pages that need a signed-in user; anyone else is sent to `/login?next=…`.
const PROTECTED_PREFIXES: &[&str] = &["/settings", "/app"];

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A session token as it travels in the cookie: 256 random bits, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only what [`SessionToken::generate`] could have produced.
    pub fn from_cookie_value(value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(value).ok()?;
        (decoded.len() == 32).then(|| SessionToken(value.to_owned()))
    }

    /// What the database stores: SHA-256 of the token, hex. A leaked table grants nothing.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// The signed-in user of this request, put into the request's extensions by [`session_layer`].
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: CurrentUser,
    pub token_hash: String,
}

/// `Set-Cookie` for a fresh or slid session.
pub fn session_cookie(token: &SessionToken, secure: bool) -> HeaderValue {
    cookie_value(token.as_str(), SESSION_TTL_SECS, secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    cookie_value("", 0, secure)
}

fn cookie_value(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let raw = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    // Only base64url characters and fixed text go in, so this cannot fail.
    HeaderValue::from_str(&raw).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The session token carried by a request's `Cookie` headers, if well-formed.
pub fn token_from_headers(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| SessionToken::from_cookie_value(value))
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// argon2id with a fresh salt; runs on the blocking pool (it is deliberately slow).
pub async fn hash_password(password: Password) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

/// Checks a password against a stored hash. A malformed hash never matches.
pub async fn verify_password(hash: String, password: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(AppError::internal)
}

/// A hash to verify against when the email is unknown, so both failures take equally long.
fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(b"not-a-real-password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// Creates the account. The same email twice is a [`AppError::Conflict`] the user can act on.
pub async fn create_user(
    db: &DatabaseConnection,
    email: &Email,
    password: Password,
) -> Result<user::Model, AppError> {
    let password_hash = hash_password(password).await?;
    let row = user::ActiveModel {
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        created_at: Set(now_unix()),
        ..Default::default()
    };
    match user::Entity::insert(row).exec_with_returning(db).await {
        Ok(model) => Ok(model),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
            AppError::Conflict("An account with this email already exists. Log in instead?".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// The user whose email and password match; the same error for an unknown email and a wrong
/// password, after the same amount of work.
pub async fn authenticate(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> Result<user::Model, AppError> {
    let wrong = || AppError::Forbidden("Email or password is incorrect.".into());
    let found = match Email::parse(email) {
        Ok(email) => {
            user::Entity::find()
                .filter(user::Column::Email.eq(email.as_str()))
                .one(db)
                .await?
        }
        Err(_) => None,
    };
    let hash = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(dummy_hash);
    let matches = verify_password(hash, password.to_owned()).await?;
    match found {
        Some(user) if matches => Ok(user),
        _ => Err(wrong()),
    }
}

/// Sign-up: checks the form, then creates the account.
pub async fn register(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<user::Model, AppError> {
    let email = Email::parse(email).map_err(|m| AppError::invalid("email", m))?;
    let password = Password::parse(password).map_err(|m| AppError::invalid("password", m))?;
    create_user(&state.db, &email, password).await
}

/// Log-in, limited per email and per client address.
pub async fn log_in(
    state: &AppState,
    email: &str,
    password: &str,
    client: &str,
) -> Result<user::Model, AppError> {
    if email.trim().is_empty() {
        return Err(AppError::invalid("email", "Enter your email address."));
    }
    if password.is_empty() {
        return Err(AppError::invalid("password", "Enter your password."));
    }
    let keys = [
        format!("email:{}", email.trim().to_lowercase()),
        format!("ip:{client}"),
    ];
    state.login_limiter.check(&keys).map_err(|wait| {
        AppError::RateLimited(format!(
            "Too many log-in attempts. Try again in {} seconds.",
            wait.as_secs().max(1)
        ))
    })?;
    authenticate(&state.db, email, password).await
}

/// Creates a session for the user and sets its cookie on the response.
pub async fn start_session(state: &AppState, user_id: i64) -> Result<(), AppError> {
    let token = create_session(&state.db, user_id).await?;
    set_response_header(
        header::SET_COOKIE,
        session_cookie(&token, state.config.secure_cookies()),
    );
    Ok(())
}

pub async fn create_session(
    db: &DatabaseConnection,
    user_id: i64,
) -> Result<SessionToken, AppError> {
    let token = SessionToken::generate();
    let now = now_unix();
    // Housekeeping: this user's expired sessions go when a new one is made.
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    session::Entity::insert(session::ActiveModel {
        token_hash: Set(token.hash()),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(now + SESSION_TTL_SECS),
    })
    .exec(db)
    .await?;
    Ok(token)
}

/// What a cookie's token resolves to.
pub enum Resolved {
    Valid { signed_in: SignedIn, slid: bool },
    Invalid,
}

/// Looks the token up; an expired session is deleted; a live one slides forward daily.
pub async fn resolve_session(
    db: &DatabaseConnection,
    token: &SessionToken,
) -> Result<Resolved, sea_orm::DbErr> {
    let token_hash = token.hash();
    let Some((sess, Some(user))) = session::Entity::find_by_id(token_hash.clone())
        .find_also_related(user::Entity)
        .one(db)
        .await?
    else {
        return Ok(Resolved::Invalid);
    };
    let now = now_unix();
    if sess.expires_at <= now {
        session::Entity::delete_by_id(token_hash).exec(db).await?;
        return Ok(Resolved::Invalid);
    }
    let slid = now + SESSION_TTL_SECS - sess.expires_at >= SLIDE_AFTER_SECS;
    if slid {
        session::Entity::update_many()
            .col_expr(
                session::Column::ExpiresAt,
                sea_orm::sea_query::Expr::value(now + SESSION_TTL_SECS),
            )
            .filter(session::Column::TokenHash.eq(token_hash.clone()))
            .exec(db)
            .await?;
    }
    Ok(Resolved::Valid {
        signed_in: SignedIn {
            user: CurrentUser {
                id: user.id,
                email: user.email,
            },
            token_hash,
        },
        slid,
    })
}

pub async fn delete_session(db: &DatabaseConnection, token_hash: &str) -> Result<(), AppError> {
    session::Entity::delete_by_id(token_hash.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Middleware: resolves the session cookie once per request, guards protected pages,
/// slides the cookie's expiry and clears a cookie that no longer names a session.
pub async fn session_layer(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    if is_static_or_machine_path(req.uri().path()) {
        return next.run(req).await;
    }
    let secure = state.config.secure_cookies();
    let mut set_cookie = None;
    if let Some(token) = token_from_headers(req.headers()) {
        match resolve_session(&state.db, &token).await {
            Ok(Resolved::Valid { signed_in, slid }) => {
                if slid {
                    set_cookie = Some(session_cookie(&token, secure));
                }
                req.extensions_mut().insert(signed_in);
            }
            Ok(Resolved::Invalid) => set_cookie = Some(clear_session_cookie(secure)),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return AppError::Unavailable("The service is temporarily unavailable.".into())
                    .into_response();
            }
        }
    }

    let path = req.uri().path();
    let protected = PROTECTED_PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if protected && req.method() == Method::GET && req.extensions().get::<SignedIn>().is_none() {
        let wanted = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| path.to_owned());
        let target = format!("/login?next={}", urlencode(&safe_next(Some(&wanted))));
        let mut res = Redirect::to(&target).into_response();
        if let Some(c) = set_cookie {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
        return res;
    }
    // Someone already signed in has no use for the log-in and sign-up forms.
    let signed_in = req.extensions().get::<SignedIn>().is_some();
    if signed_in && req.method() == Method::GET && (path == "/login" || path == "/signup") {
        let next = req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
        });
        return Redirect::to(&safe_next(next.as_deref())).into_response();
    }

    let mut res = next.run(req).await;
    if let Some(c) = set_cookie {
        // A handler that set its own session cookie (log-in, log-out) wins.
        let handler_set_session = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(SESSION_COOKIE.as_bytes()));
        if !handler_set_session {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    res.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Paths that never act for a user: static files, webhooks, health checks, the Stripe double.
fn is_static_or_machine_path(path: &str) -> bool {
    path.starts_with("/pkg/")
        || path.starts_with("/api/webhooks/")
        || path.starts_with("/_stripe-sim/")
        || path == "/healthz"
        || path == "/favicon.ico"
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Middleware: state-changing requests from another origin are refused (CSRF).
///
/// A browser always sends `Origin` on a cross-origin POST; it must equal `APP_URL`'s origin
/// (or the origin the request was addressed to). Requests with neither `Origin` nor `Referer`
/// come from non-browser clients, which carry no ambient cookies to abuse.
pub async fn origin_guard(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let safe_method = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let exempt = req.uri().path().starts_with("/api/webhooks/")
        || req.uri().path().starts_with("/_stripe-sim/");
    if safe_method || exempt || same_origin(req.headers(), &state.config.app_origin()) {
        return next.run(req).await;
    }
    tracing::warn!(path = %req.uri().path(), "cross-origin request refused");
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": "Cross-origin request refused." })),
    )
        .into_response()
}

/// Whether a request's `Sec-Fetch-Site`, `Origin` and `Referer` say it came from this site.
pub fn same_origin(headers: &HeaderMap, app_origin: &str) -> bool {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header_str("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    let host_origin = header_str("host").map(|h| format!("//{h}"));
    let matches = |origin: &str| {
        origin == app_origin
            || host_origin
                .as_deref()
                .is_some_and(|h| origin.split_once(':').is_some_and(|(_, rest)| rest == h))
    };
    if let Some(origin) = header_str("origin") {
        return origin != "null" && matches(origin);
    }
    if let Some(referer) = header_str("referer") {
        return url::Url::parse(referer)
            .map(|u| matches(&u.origin().ascii_serialization()))
            .unwrap_or(false);
    }
    true
}

/// Counts attempts per key in a sliding window; in memory, per process.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt for every key; refuses (with the wait) if any key is over its limit.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 50_000 {
            hits.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let mut wait = None;
        for key in keys {
            let q = hits.entry(key.clone()).or_default();
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.len() >= self.max {
                let oldest = q.front().copied().unwrap_or(now);
                let w = self.window.saturating_sub(now.duration_since(oldest));
                wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        for key in keys {
            hits.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }
}

/// The app state, from the server function's context.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
}

/// The request being served, from the server function's context.
pub fn request_parts() -> Result<axum::http::request::Parts, AppError> {
    use_context::<axum::http::request::Parts>()
        .ok_or_else(|| AppError::internal("request parts missing from context"))
}

/// The signed-in user of the current request, if any.
pub fn signed_in() -> Option<SignedIn> {
    use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<SignedIn>().cloned())
}

/// The signed-in user, or [`AppError::Unauthorized`]: every protected server function starts here.
pub fn require_user() -> Result<SignedIn, AppError> {
    signed_in().ok_or(AppError::Unauthorized)
}

/// The address the request came from.
pub fn client_addr(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Adds a response header from inside a server function.
pub fn set_response_header(name: header::HeaderName, value: HeaderValue) {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.append_header(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_256_bit_and_only_hashes_are_stored() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.as_str()).expect("base64url").len(),
            32
        );
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.as_str());
        assert_eq!(a.hash(), SessionToken(a.as_str().to_owned()).hash());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn cookie_values_are_checked_before_use() {
        let t = SessionToken::generate();
        assert!(SessionToken::from_cookie_value(t.as_str()).is_some());
        for bad in [
            "",
            "abc",
            "!!!!",
            &"A".repeat(44),
            &format!("{}x", t.as_str()),
        ] {
            assert!(SessionToken::from_cookie_value(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_httponly_lax_and_secure_on_https() {
        let t = SessionToken::generate();
        let c = session_cookie(&t, false);
        let c = c.to_str().expect("ascii");
        assert!(c.starts_with(&format!("{SESSION_COOKIE}={}", t.as_str())));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(c.contains("Max-Age=2592000") && !c.contains("Secure"));
        assert!(session_cookie(&t, true)
            .to_str()
            .expect("ascii")
            .ends_with("; Secure"));
        assert!(clear_session_cookie(false)
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0"));
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let t = SessionToken::generate();
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {SESSION_COOKIE}={}; b=2", t.as_str()))
                .expect("header"),
        );
        assert_eq!(token_from_headers(&h), Some(t));
        assert_eq!(token_from_headers(&HeaderMap::new()), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_checks() {
        let app = "http://127.0.0.1:3000";
        let host = ("host", "127.0.0.1:3000");
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:3000")]),
            app
        ));
        assert!(same_origin(
            &headers(&[
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000")
            ]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "https://evil.example")]),
            app
        ));
        assert!(!same_origin(&headers(&[host, ("origin", "null")]), app));
        assert!(same_origin(
            &headers(&[host, ("referer", "http://127.0.0.1:3000/login")]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("referer", "https://evil.example/x")]),
            app
        ));
        assert!(!same_origin(
            &headers(&[host, ("sec-fetch-site", "cross-site")]),
            app
        ));
        assert!(same_origin(&headers(&[host]), app), "non-browser clients");
    }

    #[test]
    fn the_rate_limiter_counts_each_key() {
        let rl = RateLimiter::new(3, Duration::from_secs(60));
        let keys = vec!["email:a@b.co".to_string(), "ip:1.2.3.4".to_string()];
        for _ in 0..3 {
            assert!(rl.check(&keys).is_ok());
        }
        let wait = rl.check(&keys).expect_err("fourth attempt refused");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        // Another email from the same address is still limited by the address.
        assert!(rl
            .check(&["email:c@d.co".to_string(), "ip:1.2.3.4".to_string()])
            .is_err());
        assert!(rl.check(&["email:c@d.co".to_string()]).is_ok());
    }
}
