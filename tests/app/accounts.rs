use billfold::db::entities::session;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::support::app::{location, set_cookies, unique_email, Backend, TestApp};

const PASSWORD: &str = "correct horse battery";

async fn sign_up_signs_in_and_lands_on_billing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    let res = app
        .sign_up(&format!("  {}  ", email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/settings/billing");
    let cookies = set_cookies(&res);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("billfold_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(!session.contains("Secure"), "plain http app");

    let page = app.get("/settings/billing").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(&email), "the page shows the normalised email");

    // Signed in, the account forms send the user on instead.
    for form in ["/login", "/signup"] {
        let res = app.get(form).await;
        assert_eq!(res.status(), 303, "{form}");
        assert_eq!(location(&res), "/settings/billing");
    }
    assert_eq!(location(&app.get("/login?next=%2Fapp").await), "/app");

    // Only a hash of the token is stored.
    let token = session
        .trim_start_matches("billfold_session=")
        .split(';')
        .next()
        .expect("value");
    let stored = session::Entity::find()
        .all(&app.db)
        .await
        .expect("sessions");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, token);
    assert_eq!(stored[0].token_hash.len(), 64);
    app.stop().await;
}

async fn duplicate_sign_up_is_refused_with_a_clear_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);

    // As a script: the status and the message.
    let res = app
        .client
        .post(app.url("/api/signup"))
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 409);
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("An account with this email already exists"));

    // As a browser without JavaScript (signed out): back to the form, which shows the message.
    app.post_form("/api/logout", "/settings/billing", &[]).await;
    let res = app.sign_up(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(res.status(), 302);
    let back = location(&res);
    assert!(back.starts_with(&app.url("/signup?")), "{back}");
    let html = app
        .client
        .get(&back)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(html.contains("An account with this email already exists"));
    app.stop().await;
}

async fn bad_input_gets_field_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (email, password, field, message) in [
        (
            "not-an-email",
            PASSWORD,
            "email",
            "Enter a valid email address",
        ),
        ("", PASSWORD, "email", "Enter your email address"),
        (
            "a@example.com",
            "short",
            "password",
            "at least 8 characters",
        ),
    ] {
        let res = app
            .client
            .post(app.url("/api/signup"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 400, "{email} / {password}");
        let body: serde_json::Value = res.json().await.expect("json error");
        let err = &body["Invalid"];
        assert_eq!(err["field"], field);
        assert!(err["message"].as_str().expect("message").contains(message));
    }
    // A missing field is a clear 400, not a 500.
    let res = app
        .client
        .post(app.url("/api/signup"))
        .form(&[("email", "a@example.com")])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    let long = "x".repeat(1025);
    let res = app
        .client
        .post(app.url("/api/signup"))
        .form(&[("email", "a@example.com"), ("password", long.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    app.stop().await;
}

async fn wrong_password_and_unknown_email_read_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let fresh = crate::support::app::browser_client();
    let mut bodies = Vec::new();
    for (e, p) in [
        (email.as_str(), "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let res = fresh
            .post(app.url("/api/login"))
            .form(&[("email", e), ("password", p)])
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403);
        assert!(
            set_cookies(&res).is_empty(),
            "no session for a failed log-in"
        );
        bodies.push(res.text().await.expect("body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(bodies[0].contains("Email or password is incorrect"));
    app.stop().await;
}

async fn log_out_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    assert_eq!(app.get("/settings/billing").await.status(), 200);

    let res = app.post_form("/api/logout", "/settings/billing", &[]).await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/login");
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(
        session::Entity::find().count(&app.db).await.expect("count"),
        0
    );

    let res = app.get("/settings/billing").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Fsettings%2Fbilling");

    // Logging back in returns to where the user was headed.
    let res = app
        .post_form(
            "/api/login",
            "/login?next=%2Fsettings%2Fbilling",
            &[
                ("email", &email),
                ("password", PASSWORD),
                ("next", "/settings/billing"),
            ],
        )
        .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/settings/billing");
    assert_eq!(app.get("/settings/billing").await.status(), 200);
    app.stop().await;
}

async fn an_expired_session_is_logged_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up(&unique_email(), PASSWORD).await;
    session::Entity::update_many()
        .col_expr(
            session::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(1_i64),
        )
        .filter(session::Column::ExpiresAt.gt(0))
        .exec(&app.db)
        .await
        .expect("expire");
    let res = app.get("/settings/billing").await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login?next="));
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(
        session::Entity::find().count(&app.db).await.expect("count"),
        0
    );
    app.stop().await;
}

async fn a_session_slides_forward_when_used(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_up(&unique_email(), PASSWORD).await;
    let soon = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    session::Entity::update_many()
        .col_expr(
            session::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(soon),
        )
        .filter(session::Column::ExpiresAt.gt(0))
        .exec(&app.db)
        .await
        .expect("shorten");
    let res = app.get("/settings/billing").await;
    assert_eq!(res.status(), 200);
    assert!(set_cookies(&res)
        .iter()
        .any(|c| c.contains("Max-Age=2592000")));
    let row = session::Entity::find()
        .one(&app.db)
        .await
        .expect("q")
        .expect("row");
    assert!(row.expires_at > soon + 29 * 24 * 3600);
    app.stop().await;
}

async fn cross_origin_posts_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (header, value) in [
        ("Origin", "https://evil.example"),
        ("Origin", "null"),
        ("Referer", "https://evil.example/form"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let res = app
            .client
            .post(app.url("/api/signup"))
            .header(header, value)
            .form(&[("email", unique_email().as_str()), ("password", PASSWORD)])
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "{header}: {value}");
    }
    let users = billfold::db::entities::user::Entity::find()
        .count(&app.db)
        .await
        .expect("count");
    assert_eq!(users, 0, "nothing was created");
    app.stop().await;
}

async fn billing_requires_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/settings/billing").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Fsettings%2Fbilling");
    // The login page carries `next` in its form.
    let html = app
        .get("/login?next=%2Fsettings%2Fbilling")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains(r#"name="next""#) && html.contains("/settings/billing"));
    // A forged or garbled cookie is not a session.
    let res = app
        .client
        .get(app.url("/settings/billing"))
        .header(
            "Cookie",
            "billfold_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 303);
    app.stop().await;
}

async fn log_in_attempts_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let mut last = None;
    for _ in 0..11 {
        let res = crate::support::app::browser_client()
            .post(app.url("/api/login"))
            .form(&[("email", email.as_str()), ("password", "wrong password")])
            .send()
            .await
            .expect("request");
        last = Some(res);
    }
    let res = last.expect("response");
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("Too many log-in attempts"));
    // Even the right password waits out the limit.
    let res = crate::support::app::browser_client()
        .post(app.url("/api/login"))
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 429);
    app.stop().await;
}

/// Pages cannot be framed or sniffed, leak no referrer off-site, and run only their own
/// scripts: the one inline script carries the nonce the policy names.
async fn pages_carry_security_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.sign_up(&unique_email(), PASSWORD).await.status(), 302);
    for path in [
        "/",
        "/login?next=%2Fapp",
        "/settings/billing",
        "/no-such-page",
    ] {
        let res = app.get(path).await;
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(
            header("strict-transport-security"),
            "",
            "{path}: plain http"
        );
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        if res.status() == 303 {
            continue;
        }
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{path}: a page's policy names its nonce: {csp}"))
            .to_owned();
        let html = res.text().await.expect("html");
        assert!(
            html.contains(&format!("<script nonce=\"{nonce}\">")),
            "{path}: the forms script carries the policy's nonce"
        );
        assert!(
            !csp.contains("wasm") && !html.contains(".wasm") && !html.contains("/pkg/billfold.js"),
            "{path}: a page loads no WASM"
        );
        assert_eq!(
            html.matches("<script").count(),
            html.matches(&format!("nonce=\"{nonce}\"")).count(),
            "{path}: every script carries the nonce"
        );
    }
    let form = app
        .client
        .post(app.url("/api/logout"))
        .header("Origin", &app.base)
        .send()
        .await
        .expect("log out");
    assert_eq!(form.headers()["x-frame-options"], "DENY");
    app.stop().await;
}

/// Junk log-ins (each for another email) from one address behind the proxy, one more than
/// the per-client limit lets through.
async fn junk_log_ins_from(app: &TestApp, forwarded_for: &str) -> u16 {
    let mut status = 0;
    for _ in 0..=billfold::auth::ssr::LOGIN_PER_CLIENT.burst {
        status = crate::support::app::browser_client()
            .post(app.url("/api/login"))
            .header("X-Forwarded-For", forwarded_for)
            .form(&[
                ("email", unique_email().as_str()),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
    }
    status
}

async fn log_in_as(app: &TestApp, email: &str, forwarded_for: &str) -> u16 {
    crate::support::app::browser_client()
        .post(app.url("/api/login"))
        .header("X-Forwarded-For", forwarded_for)
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// The app behind a proxy on loopback that appends to `X-Forwarded-For`.
const BEHIND_A_PROXY: &[(&str, &str)] = &[
    ("TRUSTED_PROXIES", "127.0.0.1/32, ::1"),
    ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
];

/// Behind a trusted proxy, the log-in limit is per client, not one limit for everyone; and
/// `X-Forwarded-For` from anyone else is not believed.
async fn the_log_in_limit_is_per_client_behind_a_trusted_proxy(backend: Backend) {
    let app = TestApp::spawn_with(backend, BEHIND_A_PROXY).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    assert_eq!(junk_log_ins_from(&app, "198.51.100.1").await, 429);
    let other_client = log_in_as(&app, &email, "198.51.100.2").await;
    assert!(
        (200..400).contains(&other_client),
        "another client behind the same proxy is not locked out: {other_client}"
    );
    assert_eq!(
        log_in_as(&app, &email, "6.6.6.6, 198.51.100.1").await,
        429,
        "a forged hop changes nothing"
    );
    app.stop().await;

    // No trusted proxy (the default): the header is the client's own claim, and ignored.
    let app = TestApp::spawn(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    assert_eq!(junk_log_ins_from(&app, "198.51.100.1").await, 429);
    assert_eq!(log_in_as(&app, &email, "198.51.100.2").await, 429);
    app.stop().await;
}

/// Sign-ups are limited per client address (each costs an argon2 hash and a Stripe
/// customer); refused input does not count, and another client is not affected.
async fn sign_ups_are_limited_per_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, BEHIND_A_PROXY).await;
    let sign_up_from = |client: &'static str, email: String| {
        let url = app.url("/api/signup");
        async move {
            crate::support::app::browser_client()
                .post(url)
                .header("X-Forwarded-For", client)
                .form(&[("email", email.as_str()), ("password", PASSWORD)])
                .send()
                .await
                .expect("request")
        }
    };
    for _ in 0..3 {
        let res = sign_up_from("198.51.100.1", "not-an-email".into()).await;
        assert_eq!(
            res.status(),
            400,
            "invalid input is refused, and not counted"
        );
    }
    for n in 0..20 {
        let res = sign_up_from("198.51.100.1", unique_email()).await;
        assert_eq!(res.status(), 200, "sign-up {n}");
    }
    let res = sign_up_from("198.51.100.1", unique_email()).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("Too many sign-ups from your network"));
    let res = sign_up_from("198.51.100.2", unique_email()).await;
    assert_eq!(res.status(), 200, "another client signs up");
    app.stop().await;
}

/// On PostgreSQL every replica counts against one log-in limit: attempts spread over two
/// replicas are limited as if they hit one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_the_log_in_limit() {
    let one = TestApp::spawn(Backend::Postgres).await;
    let other = one.spawn_replica(&[]).await;
    assert!(one.state.limits.is_shared());
    let email = unique_email();
    one.sign_up(&email, PASSWORD).await;
    let attempt = |app: &TestApp| {
        let url = app.url("/api/login");
        let email = email.clone();
        async move {
            crate::support::app::browser_client()
                .post(url)
                .form(&[("email", email.as_str()), ("password", "wrong password")])
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    for n in 0..10 {
        let app = if n % 2 == 0 { &one } else { &other };
        assert_eq!(attempt(app).await, 403, "attempt {n}");
    }
    assert_eq!(
        attempt(&other).await,
        429,
        "the eleventh, on either replica"
    );
    assert_eq!(attempt(&one).await, 429);
    other.stop().await;
    one.stop().await;
}

/// On SQLite (one process owns the file) the limits stay in the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_limits_stay_in_the_process() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(!app.state.limits.is_shared());
    app.stop().await;
}

/// A link can carry a form's error (`?__path=…&__err=…`, how a plain form post comes back
/// refused); anyone can make one, so the form shows our text for that kind of error, never
/// the text the link carries.
async fn an_error_in_a_link_shows_our_text(backend: Backend) {
    use base64::{engine::general_purpose::URL_SAFE, Engine};
    let app = TestApp::spawn(backend).await;
    let forged = "Your account is locked. Call +1 555 0100 and read them your password.";
    for (page, path, error, ours) in [
        (
            "/login",
            "/api/login",
            serde_json::json!({ "Forbidden": forged }),
            "Email or password is incorrect.",
        ),
        (
            "/signup",
            "/api/signup",
            serde_json::json!({ "Invalid": { "field": "email", "message": forged } }),
            "Enter a valid email address, like name@example.com.",
        ),
    ] {
        let err = URL_SAFE.encode(error.to_string());
        let url = format!("{page}?__path={path}&__err={err}");
        let res = app.get(&url).await;
        assert_eq!(res.status(), 200, "{url}");
        let body = res.text().await.expect("body");
        assert!(!body.contains("555 0100"), "{page} shows the link's text");
        assert!(body.contains(ours), "{page} shows our message: {body}");
    }
    app.stop().await;
}

crate::support::on_both_databases!(
    an_error_in_a_link_shows_our_text,
    sign_ups_are_limited_per_client,
    the_log_in_limit_is_per_client_behind_a_trusted_proxy,
    pages_carry_security_headers,
    sign_up_signs_in_and_lands_on_billing,
    duplicate_sign_up_is_refused_with_a_clear_message,
    bad_input_gets_field_messages,
    wrong_password_and_unknown_email_read_the_same,
    log_out_ends_the_session,
    an_expired_session_is_logged_out,
    a_session_slides_forward_when_used,
    cross_origin_posts_are_refused,
    billing_requires_a_session,
    log_in_attempts_are_rate_limited,
);
