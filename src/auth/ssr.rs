//! Server side of accounts: password hashing, sessions, cookies, and the request middleware
//! that turns a session cookie into a [`SignedIn`] request extension and guards the pages
//! that need (or have no use for) a signed-in user.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
    time::Duration,
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, Request},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, SqlErr,
};
use sha2::{Digest, Sha256};

use super::validate::{safe_next, Email, Password, PASSWORD_MAX_CHARS};
use crate::{
    db::{
        begin_write, clock,
        entities::{session, user},
    },
    error::AppError,
    limits::Rule,
    mail::{
        outbox::{self, NewMail},
        Kind,
    },
    state::AppState,
    web::{set_response_header, CurrentUser, SignedIn},
};

pub const SESSION_COOKIE: &str = "billfold_session";
/// Sessions live 30 days from their last use.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// A used session's expiry is pushed forward at most once a day, to keep reads read-only.
const SLIDE_AFTER_SECS: i64 = 24 * 3600;

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

/// How many argon2 computations run at once: one per core. Each takes ~19 MiB and a core for
/// a while; more at once only makes every one of them slower.
fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// The slots for argon2, and how many requests wait for one.
struct HashingGate {
    slots: tokio::sync::Semaphore,
    permits: usize,
    waiting: AtomicUsize,
    wait: Duration,
}

/// At most this many requests wait for a slot (per core); the next is refused at once.
const WAITING_PER_PERMIT: usize = 8;
/// The longest a request waits for a slot before it is refused.
const HASHING_WAIT: Duration = Duration::from_secs(2);

impl HashingGate {
    fn new(permits: usize, wait: Duration) -> Self {
        HashingGate {
            slots: tokio::sync::Semaphore::new(permits),
            permits,
            waiting: AtomicUsize::new(0),
            wait,
        }
    }

    /// A slot to run argon2 in, or a quick 503 with `Retry-After` when every slot is taken
    /// and the queue is full (or the wait too long): a flood of log-ins costs the flood, not
    /// the server's memory.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let busy = || AppError::busy(Duration::from_secs(1));
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= WAITING_PER_PERMIT * self.permits {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let permit = tokio::time::timeout(self.wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }
}

/// This process's gate: one slot per core.
async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, AppError> {
    static GATE: OnceLock<HashingGate> = OnceLock::new();
    GATE.get_or_init(|| HashingGate::new(hashing_permits(), HASHING_WAIT))
        .slot()
        .await
}

/// argon2id with a fresh salt; runs on the blocking pool (it is deliberately slow), in one of
/// the gate's slots.
pub async fn hash_password(password: Password) -> Result<String, AppError> {
    let _slot = hashing_slot().await?;
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
    let _slot = hashing_slot().await?;
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

/// Whether a new account's address is proven yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// Claimed at sign-up: a mail with a link that proves it is queued with the account.
    Claimed,
    /// Known to be the owner's (the demo account, an account made on the server).
    Proven,
}

/// Creates the account; a claimed address gets its proving mail queued in the same
/// transaction. The same email twice is a [`AppError::Conflict`] the user can act on.
pub async fn create_user(
    db: &DatabaseConnection,
    email: &Email,
    password: Password,
    address: Address,
) -> Result<user::Model, AppError> {
    // argon2 first: no transaction waits on it.
    let password_hash = hash_password(password).await?;
    let now = clock::now();
    let row = user::ActiveModel {
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        created_at: Set(now),
        email_verified_at: Set((address == Address::Proven).then_some(now)),
        ..Default::default()
    };
    let txn = begin_write(db).await?;
    let user = match user::Entity::insert(row).exec_with_returning(&*txn).await {
        Ok(model) => model,
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            txn.rollback().await?;
            return Err(AppError::Conflict(
                "An account with this email already exists. Log in instead?".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let org = super::org::create_personal(&*txn, user.id, now).await?;
    let user = user::Model {
        current_organization_id: Some(org),
        ..user
    };
    if address == Address::Claimed {
        outbox::enqueue(&*txn, proving_mail(&user, now)).await?;
    }
    txn.commit().await?;
    Ok(user)
}

/// The account as the request code sees it: with the organisation it acts for now.
pub async fn current_user(
    db: &DatabaseConnection,
    user: user::Model,
) -> Result<CurrentUser, AppError> {
    let (org, _) = super::org::current(db, &user).await?;
    Ok(CurrentUser {
        id: user.id,
        email: user.email,
        email_verified: user.email_verified_at.is_some(),
        org,
    })
}

/// A mailed link that does not work (any more): a form-level refusal saying what to do.
pub fn link_refused(message: &str) -> AppError {
    AppError::Invalid {
        field: None,
        message: message.to_owned(),
    }
}

/// The mail that proves `user`'s address, unique per request (`at`).
pub fn proving_mail(user: &user::Model, at: i64) -> NewMail {
    NewMail {
        key: format!("verify_email:{}:{at}", user.id),
        kind: Kind::VerifyEmail,
        user_id: Some(user.id),
        to: user.email.clone(),
        params: serde_json::json!({}),
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
    // No password that long was ever accepted: nothing to hash.
    if password.len() > 4 * PASSWORD_MAX_CHARS {
        return Err(wrong());
    }
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

/// Log-in attempts per email from one client address: the strict limit.
pub static LOGIN_PER_EMAIL_AND_CLIENT: Rule = Rule::new("login", 10, Duration::from_secs(600));
/// Log-in attempts per email from anywhere: a much higher ceiling, so guesses from one
/// address never lock the owner out from theirs.
pub static LOGIN_PER_EMAIL: Rule = Rule::new("login-email", 100, Duration::from_secs(3600));
/// Log-in attempts per client address, whatever the email.
pub static LOGIN_PER_CLIENT: Rule = Rule::new("login-client", 30, Duration::from_secs(600));
/// Sign-ups per client address: each costs an argon2 hash and a Stripe customer.
pub static SIGNUPS_PER_CLIENT: Rule = Rule::new("signup", 20, Duration::from_secs(3600));

/// What a typed email is counted under: the address itself when it is one (at most 254
/// bytes), else a digest of what was typed. Never the raw input.
pub fn email_key(raw: &str) -> String {
    match Email::parse(raw) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => format!(
            "unparsed:{}",
            hex::encode(&Sha256::digest(raw.trim().to_lowercase().as_bytes())[..16])
        ),
    }
}

/// Sign-up: checks the form, then creates the account.
pub async fn register(
    state: &AppState,
    email: &str,
    password: &str,
    client: &str,
) -> Result<user::Model, AppError> {
    let email = Email::parse(email).map_err(|m| AppError::invalid("email", m))?;
    let password = Password::parse(password).map_err(|m| AppError::invalid("password", m))?;
    // Counted once the input is valid: what follows (argon2, and a Stripe customer) is what
    // the limit protects.
    state
        .limits
        .enforce(
            &[SIGNUPS_PER_CLIENT.on(client)],
            "Too many sign-ups from your network.",
        )
        .await?;
    let user = create_user(&state.db, &email, password, Address::Claimed).await?;
    state.mail.wake();
    Ok(user)
}

/// Log-in. Each attempt is counted per (email, client address), per email and per client
/// before the password is checked; a wrong password keeps its count, a right one clears the
/// email's counts and gives the client its attempt back, and an attempt that could not be
/// checked at all (the server busy or failing) is given back everywhere.
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
    let email_key = email_key(email);
    let per_email = [
        LOGIN_PER_EMAIL_AND_CLIENT.on(format!("{email_key}|{client}")),
        LOGIN_PER_EMAIL.on(email_key),
    ];
    let per_client = [LOGIN_PER_CLIENT.on(client)];
    let all = [per_email.as_slice(), per_client.as_slice()].concat();
    state
        .limits
        .enforce(&all, "Too many log-in attempts.")
        .await?;
    let result = authenticate(&state.db, email, password).await;
    let settled = match &result {
        Ok(_) => {
            let reset = state.limits.reset(&per_email).await;
            reset.and(state.limits.refund(&per_client).await)
        }
        Err(AppError::Forbidden(_)) => Ok(()),
        Err(_) => state.limits.refund(&all).await,
    };
    if let Err(e) = settled {
        tracing::warn!(error = ?e, "log-in limits: could not settle an attempt's counts");
    }
    result
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
    let now = clock::now();
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
    let Some((expires_at, user, orgs)) = session_user_and_orgs(db, &token_hash).await? else {
        return Ok(Resolved::Invalid);
    };
    let now = clock::now();
    if expires_at <= now {
        session::Entity::delete_by_id(token_hash).exec(db).await?;
        return Ok(Resolved::Invalid);
    }
    let slid = now + SESSION_TTL_SECS - expires_at >= SLIDE_AFTER_SECS;
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
    let (org, orgs) = super::org::current_among(db, &user, orgs).await?;
    Ok(Resolved::Valid {
        signed_in: SignedIn {
            user: CurrentUser {
                id: user.id,
                email: user.email,
                email_verified: user.email_verified_at.is_some(),
                org,
            },
            orgs,
            token_hash,
        },
        slid,
    })
}

/// A session's expiry, its user, and the organisations the user belongs to (in the order they
/// joined them): one statement, the one every signed-in request runs first.
async fn session_user_and_orgs(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<(i64, user::Model, Vec<crate::domain::OrgChoice>)>, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let param = match backend {
        DbBackend::Postgres => "$1",
        _ => "?1",
    };
    let sql = format!(
        "SELECT s.expires_at, u.id, u.email, u.password_hash, u.created_at, u.email_verified_at, \
         u.current_organization_id, m.role, o.id, o.name, o.personal_of \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN memberships m ON m.user_id = u.id \
         LEFT JOIN organizations o ON o.id = m.organization_id \
         WHERE s.token_hash = {param} ORDER BY m.created_at, m.id"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [token_hash.into()],
        ))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let expires_at: i64 = first.try_get_by_index(0)?;
    let user = user::Model {
        id: first.try_get_by_index(1)?,
        email: first.try_get_by_index(2)?,
        password_hash: first.try_get_by_index(3)?,
        created_at: first.try_get_by_index(4)?,
        email_verified_at: first.try_get_by_index(5)?,
        current_organization_id: first.try_get_by_index(6)?,
    };
    let mut orgs = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(role), Some(id), Some(name)) = (
            row.try_get_by_index::<Option<String>>(7)?,
            row.try_get_by_index::<Option<i64>>(8)?,
            row.try_get_by_index::<Option<String>>(9)?,
        ) else {
            continue;
        };
        let personal_of = row.try_get_by_index::<Option<i64>>(10)?;
        orgs.push(super::org::choice(user.id, (id, name, personal_of), &role));
    }
    Ok(Some((expires_at, user, orgs)))
}

pub async fn delete_session(db: &DatabaseConnection, token_hash: &str) -> Result<(), AppError> {
    session::Entity::delete_by_id(token_hash.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Middleware for every page and server function a browser uses: resolves the session cookie
/// once per request, slides the cookie's expiry and clears a cookie that no longer names a
/// session. Responses are never cached: they are about one user.
pub async fn session_layer(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
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

/// Route layer for pages that need a signed-in user (under [`session_layer`]): anyone else
/// is sent to `/login?next=…`.
pub async fn require_sign_in(req: Request<Body>, next: Next) -> Response {
    if req.method() != Method::GET || req.extensions().get::<SignedIn>().is_some() {
        return next.run(req).await;
    }
    let wanted = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let target = format!("/login?next={}", urlencode(&safe_next(Some(&wanted))));
    Redirect::to(&target).into_response()
}

/// Route layer for the log-in and sign-up pages (under [`session_layer`]): someone already
/// signed in has no use for them and goes on to where they were headed.
pub async fn signed_out_only(req: Request<Body>, next: Next) -> Response {
    if req.method() != Method::GET || req.extensions().get::<SignedIn>().is_none() {
        return next.run(req).await;
    }
    let next_target = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    Redirect::to(&safe_next(next_target.as_deref())).into_response()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_waits_briefly_for_a_slot_then_says_busy() {
        let gate = HashingGate::new(2, Duration::from_millis(50));
        let a = gate.slot().await.expect("a free slot");
        let _b = gate.slot().await.expect("the other free slot");
        // Every slot taken: a request waits for one, and gets it when one is freed.
        let freed = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(a);
        };
        let (slot, ()) = tokio::join!(gate.slot(), freed);
        let _c = slot.expect("the freed slot");
        // None is freed within the wait: 503 with Retry-After, no hash computed.
        let refused = gate.slot().await.expect_err("busy");
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.retry_after(), Some(1));
        // A full queue is refused at once: with an hour's wait, an answer at all says it
        // did not wait.
        let patient = HashingGate::new(1, Duration::from_secs(3600));
        let _held = patient.slot().await.expect("the one slot");
        patient.waiting.store(WAITING_PER_PERMIT, Ordering::Release);
        let answer = tokio::time::timeout(Duration::from_secs(30), patient.slot()).await;
        let refused = answer.expect("answered without waiting").expect_err("busy");
        assert_eq!(refused.status(), 503);
    }

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
}
