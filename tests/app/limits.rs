//! Nobody is who they only claim to be, and limits cost an attacker more than us: behind a
//! trusted proxy the client is what the named header says, whatever else a client writes;
//! log-in limits count failures per (email, client), so a stranger's guesses never lock the
//! owner out from their own address; IPv6 clients count per /64; and a flood of huge
//! "emails" is refused with 4xx while the limiter's key store stays small.

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::app::{browser_client, unique_email, Backend, TestApp};

const PASSWORD: &str = "correct horse battery";

/// The app behind a proxy on loopback that appends the peer to `X-Forwarded-For`.
async fn behind_a_proxy(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32, ::1"),
            ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
        ],
    )
    .await
}

/// One log-in as the proxy would pass it on: the `X-Forwarded-For` it ends with (raw bytes,
/// so a client's garbage can be in it) and any other headers the client sent.
async fn log_in(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: &[u8],
    extra: &[(&str, &str)],
) -> u16 {
    let mut req = browser_client()
        .post(app.url("/api/login"))
        .header(
            "X-Forwarded-For",
            reqwest::header::HeaderValue::from_bytes(forwarded_for).expect("header bytes"),
        )
        .form(&[("email", email), ("password", password)]);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request").status().as_u16()
}

/// A client's own `Forwarded` header (which an `X-Forwarded-For` proxy passes on untouched)
/// and garbage it puts in `X-Forwarded-For` before the proxy's hop change nothing: ten wrong
/// passwords from one client, each claiming another address, lock that client out for that
/// email; another client is not affected.
async fn a_client_cannot_choose_its_own_address(backend: Backend) {
    let app = behind_a_proxy(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    for n in 0..10u8 {
        let forged = format!("for=203.0.113.{n}");
        let mut xff = vec![b'1', b'.', b'2', 0xff, 0xfe, n + b'0'];
        xff.extend_from_slice(b", 198.51.100.1");
        let status = log_in(
            &app,
            &email,
            "wrong password",
            &xff,
            &[("Forwarded", &forged)],
        )
        .await;
        assert_eq!(status, 403, "attempt {n}: a wrong password, counted");
    }
    assert_eq!(
        log_in(
            &app,
            &email,
            PASSWORD,
            b"198.51.100.1",
            &[("Forwarded", "for=203.0.113.99")]
        )
        .await,
        429,
        "the same client, whatever it claims"
    );
    assert_eq!(
        log_in(
            &app,
            &email,
            "wrong password",
            b"\xc3\x28, 198.51.100.1",
            &[]
        )
        .await,
        429,
        "non-ASCII before the proxy's hop hides nothing"
    );
    let other = log_in(&app, &email, PASSWORD, b"198.51.100.2", &[]).await;
    assert!(
        (200..400).contains(&other),
        "another client logs in: {other}"
    );
    app.stop().await;
}

/// An attacker's wrong guesses for a victim's email, from the attacker's address, lock out
/// the attacker only: the victim logs in from theirs. A success clears the email's count.
async fn an_attacker_cannot_lock_the_owner_out(backend: Backend) {
    let app = behind_a_proxy(backend).await;
    let victim = unique_email();
    app.sign_up(&victim, PASSWORD).await;
    let attacker = b"203.0.113.66";
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(log_in(&app, &victim, "guess", attacker, &[]).await);
    }
    assert_eq!(&statuses[..10], &[403; 10], "{statuses:?}");
    assert_eq!(
        &statuses[10..],
        &[429; 5],
        "the attacker is stopped: {statuses:?}"
    );

    let owner = log_in(&app, &victim, PASSWORD, b"198.51.100.7", &[]).await;
    assert!((200..400).contains(&owner), "the owner logs in: {owner}");

    // Nine typos and a success from the owner's address leave the owner a full ten again.
    for _ in 0..9 {
        assert_eq!(
            log_in(&app, &victim, "typo", b"198.51.100.7", &[]).await,
            403
        );
    }
    let owner = log_in(&app, &victim, PASSWORD, b"198.51.100.7", &[]).await;
    assert!((200..400).contains(&owner), "{owner}");
    for n in 0..10 {
        assert_eq!(
            log_in(&app, &victim, "typo", b"198.51.100.7", &[]).await,
            403,
            "typo {n} after a success"
        );
    }
    app.stop().await;
}

/// Addresses in one IPv6 /64 are one client (one host usually holds the whole /64); another
/// /64 is another client; an IPv4 address written as IPv6 is the IPv4 address.
async fn one_ipv6_64_is_one_client(backend: Backend) {
    let app = behind_a_proxy(backend).await;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    for n in 0..10 {
        let from = format!("2001:db8:1:2::{:x}", n * 4099 + 1);
        assert_eq!(
            log_in(&app, &email, "guess", from.as_bytes(), &[]).await,
            403
        );
    }
    assert_eq!(
        log_in(
            &app,
            &email,
            "guess",
            b"2001:db8:1:2:ffff:ffff:ffff:fffe",
            &[]
        )
        .await,
        429,
        "the same /64"
    );
    assert_eq!(
        log_in(&app, &email, "guess", b"2001:db8:1:3::1", &[]).await,
        403,
        "the next /64 is another client"
    );

    let email = unique_email();
    for n in 0..10 {
        let from = if n % 2 == 0 {
            "198.51.100.9"
        } else {
            "::ffff:198.51.100.9"
        };
        assert_eq!(
            log_in(&app, &email, "guess", from.as_bytes(), &[]).await,
            403
        );
    }
    assert_eq!(
        log_in(&app, &email, "guess", b"198.51.100.9", &[]).await,
        429
    );
    app.stop().await;
}

/// 2,000 log-ins, each with its own 1 MB "email", are all refused with 4xx (never a 500,
/// which is what a key too long for PostgreSQL's index gave), and the limiter keeps a
/// handful of short keys, not two gigabytes of them.
async fn a_flood_of_huge_emails_is_refused_and_stores_little(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..2_000)
        .map(|n| {
            let url = app.url("/api/login");
            async move {
                let mut email = format!("{n:08}");
                email.push_str(&"x".repeat(1_000_000));
                browser_client()
                    .post(url)
                    .form(&[("email", email.as_str()), ("password", "whatever it is")])
                    .send()
                    .await
                    .expect("request")
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let server_errors = statuses.iter().filter(|s| **s >= 500).count();
    assert_eq!(server_errors, 0, "no 5xx: {statuses:?}");
    assert!(statuses.iter().all(|s| (400..500).contains(s)));
    assert!(statuses.contains(&429), "the client is limited");

    let (keys, longest) = match backend {
        Backend::Sqlite => {
            let (keys, longest) = app.state.limits.local_key_sizes();
            (keys as i64, longest as i64)
        }
        Backend::Postgres => {
            let row = app
                .db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*)::bigint AS n, coalesce(max(length(key)), 0)::bigint AS longest \
                     FROM rate_limits",
                ))
                .await
                .expect("query")
                .expect("a row");
            (
                row.try_get::<i64>("", "n").expect("n"),
                row.try_get::<i64>("", "longest").expect("longest"),
            )
        }
    };
    assert!(keys <= 100, "{keys} keys for one client's flood");
    assert!(
        (1..=300).contains(&longest),
        "the longest key is {longest} bytes"
    );
    app.stop().await;
}

crate::support::on_both_databases!(
    a_client_cannot_choose_its_own_address,
    an_attacker_cannot_lock_the_owner_out,
    one_ipv6_64_is_one_client,
    a_flood_of_huge_emails_is_refused_and_stores_little,
);
