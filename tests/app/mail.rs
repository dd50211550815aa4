//! E-mail through a real SMTP server (MailDev): sign-up's proving link, password reset, and
//! the outbox under an outage, a restart and two replicas.

use std::time::Duration;

use billfold::db::entities::mail_outbox;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::support::{
    app::{browser_client, location, set_cookies, unique_email, Backend, TestApp},
    billing::{call, PASSWORD},
    mail_catcher::{free_port, link_to, MailCatcher},
};

/// The path and query of an absolute link into the app.
fn path_of(link: &str) -> String {
    let after_scheme = link.split_once("://").expect("absolute").1;
    after_scheme[after_scheme.find('/').expect("a path")..].to_owned()
}

/// Signs up `email` from a browser of its own.
async fn sign_up_fresh(app: &TestApp, email: &str) -> u16 {
    browser_client()
        .post(app.url("/api/signup"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up")
        .status()
        .as_u16()
}

async fn page(app: &TestApp, path: &str) -> String {
    app.get(path).await.text().await.expect("html")
}

async fn signing_up_sends_one_link_that_proves_the_address_once(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);
    let first = catcher.wait_for(&email, 1).await;
    assert_eq!(
        first[0]["subject"],
        "Confirm your email address for Billfold"
    );
    assert!(first[0]["html"]
        .as_str()
        .is_some_and(|h| h.contains("Confirm my address")));
    let billing = page(&app, "/settings/billing").await;
    assert!(
        billing.contains("data-testid=\"unproven-address\""),
        "the banner"
    );
    assert!(billing.contains(&format!("open the link we sent to {email}")));

    // "Send again": three an hour.
    for n in 2..=4 {
        let (status, body) = call(&app, "/api/email/resend", &[]).await;
        assert!(status < 400, "{status} {body}");
        catcher.wait_for(&email, n).await;
    }
    let (status, body) = call(&app, "/api/email/resend", &[]).await;
    assert_eq!(status, 429, "{body}");
    let mails = catcher.to(&email).await;
    assert_eq!(mails.len(), 4);

    // The newest link, expired: refused with what to do.
    let newest = path_of(&link_to(&mails[3], "/verify-email"));
    let token = newest.split("token=").nth(1).expect("a token");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    app.db
        .execute_unprepared(&format!(
            "UPDATE email_tokens SET expires_at = 0 WHERE token_hash = '{hash}'"
        ))
        .await
        .expect("expire the newest link");
    let refused = page(&app, &newest).await;
    assert!(refused.contains("This link has expired"), "{refused}");

    // The first link proves the address, once.
    let link = path_of(&link_to(&mails[0], "/verify-email"));
    let confirmed = page(&app, &link).await;
    assert!(
        confirmed.contains(&format!("{email} is confirmed")),
        "{confirmed}"
    );
    assert!(!page(&app, "/settings/billing")
        .await
        .contains("unproven-address"));
    let again = page(&app, &link).await;
    assert!(again.contains("This link has been used already"), "{again}");
    let forged = page(&app, "/verify-email?token=not-a-token").await;
    assert!(forged.contains("This link is not valid"), "{forged}");
    app.stop().await;
}

async fn a_reset_link_works_once_within_the_hour_and_ends_every_session(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let email = unique_email();
    assert_eq!(app.sign_up(&email, PASSWORD).await.status(), 302);
    // Another browser, signed in too.
    let other = browser_client();
    let login = other
        .post(app.url("/api/login"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("log in");
    assert_eq!(login.status(), 302);
    let signed_in = |client: &reqwest::Client| {
        let client = client.clone();
        let url = app.url("/settings/billing");
        async move { client.get(url).send().await.expect("page").status() }
    };
    assert_eq!(signed_in(&other).await, 200);

    // The same answer for an account and for nobody; a mail only for the account.
    let stranger = unique_email();
    for address in [email.as_str(), stranger.as_str()] {
        let res = browser_client()
            .post(app.url("/api/password/forgot"))
            .header("Origin", &app.base)
            .header("Accept", "text/html")
            .form(&[("email", address)])
            .send()
            .await
            .expect("forgot");
        assert_eq!(res.status(), 302, "{address}");
        assert_eq!(location(&res), "/forgot-password?sent=1", "{address}");
    }
    catcher.wait_for(&email, 2).await;
    let resets = catcher.about(&email, "Reset your Billfold password").await;
    assert_eq!(resets.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(catcher.to(&stranger).await.is_empty(), "nobody, no mail");

    let link = path_of(&link_to(&resets[0], "/reset-password"));
    let form = page(&app, &link).await;
    assert!(form.contains("Set the new password"), "{form}");
    let token = link.split("token=").nth(1).expect("a token").to_owned();
    let new_password = "a much newer password";
    let browser = browser_client();
    let reset = browser
        .post(app.url("/api/password/reset"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("token", token.as_str()), ("password", new_password)])
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 302);
    assert_eq!(location(&reset), "/settings/billing");
    assert!(
        set_cookies(&reset)
            .iter()
            .any(|c| c.starts_with("billfold_session=")),
        "this browser is signed in"
    );
    assert_eq!(signed_in(&browser).await, 200);
    assert_eq!(signed_in(&other).await, 303, "every other session ended");
    assert_eq!(
        signed_in(&app.client).await,
        303,
        "the sign-up's session too"
    );
    // The link reached the address: it is proven.
    assert!(!browser
        .get(app.url("/settings/billing"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
        .contains("unproven-address"));

    // Once only; and a new link expires within the hour.
    let again = page(&app, &link).await;
    assert!(again.contains("This link has been used already"), "{again}");
    let (status, _) = call(
        &app,
        "/api/password/reset",
        &[
            ("token", token.as_str()),
            ("password", "yet another password"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let lifetime = crate::support::rows::scalar(
        &app,
        "SELECT MAX(expires_at - created_at) FROM email_tokens WHERE purpose = 'password_reset'",
    )
    .await
    .expect("a lifetime");
    assert_eq!(lifetime, "3600");
    let old = app
        .client
        .post(app.url("/api/login"))
        .header("Origin", &app.base)
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("log in");
    assert_eq!(old.status(), 403, "the old password is gone");
    app.stop().await;
}

/// The rows of the outbox, by status.
async fn outbox(app: &TestApp) -> Vec<mail_outbox::Model> {
    mail_outbox::Entity::find()
        .all(&app.db)
        .await
        .expect("outbox")
}

async fn an_smtp_outage_and_a_restart_lose_nothing_and_send_once(backend: Backend) {
    let port = free_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let env = [
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_FROM", "Billfold Tests <billing@billfold.test>"),
    ];
    let app = TestApp::spawn_with(backend, &env).await;
    let people: Vec<String> = (0..3).map(|_| unique_email()).collect();
    for email in &people {
        let fresh = sign_up_fresh(&app, email).await;
        assert_eq!(fresh, 302);
    }
    // Nobody listens: each mail is tried, kept, and given a later try.
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        let rows = outbox(&app).await;
        if rows.len() == 3 && rows.iter().all(|r| r.attempts >= 1) {
            break;
        }
    }
    for row in outbox(&app).await {
        assert_eq!(row.status, "queued", "{row:?}");
        assert!(row.attempts >= 1 && row.last_error.is_some(), "{row:?}");
        assert!(row.next_attempt_at > billfold::db::clock::now(), "{row:?}");
    }

    // A restart, then the server is back and the back-off has passed.
    let app = app.restart(&env).await;
    let catcher = MailCatcher::start_on(port).await;
    app.db
        .execute_unprepared("UPDATE mail_outbox SET next_attempt_at = 0")
        .await
        .expect("the back-off has passed");
    for email in &people {
        catcher.wait_for(email, 1).await;
    }
    // Two more polls: nothing is sent twice.
    tokio::time::sleep(billfold::mail::sender::POLL * 2).await;
    assert_eq!(catcher.all().await.len(), 3);
    for row in outbox(&app).await {
        assert_eq!(row.status, "sent", "{row:?}");
    }
    app.stop().await;
}

async fn a_permanent_refusal_is_recorded_and_never_retried(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    billfold::mail::outbox::enqueue(
        &app.db,
        billfold::mail::outbox::NewMail {
            key: "test:unsendable".into(),
            kind: billfold::mail::Kind::PasswordReset,
            user_id: None,
            to: "not an address".into(),
            params: serde_json::json!({}),
        },
    )
    .await
    .expect("queued");
    app.state.mail.wake();
    let mut row = None;
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        let found = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Key.eq("test:unsendable"))
            .one(&app.db)
            .await
            .expect("row")
            .expect("queued");
        if found.status != "queued" {
            row = Some(found);
            break;
        }
    }
    let row = row.expect("attempted");
    assert_eq!(row.status, "failed");
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.is_some(), "{row:?}");
    app.stop().await;
}

async fn two_replicas_send_each_mail_once(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let replica = app.spawn_replica(&catcher.env()).await;
    let people: Vec<String> = (0..8).map(|_| unique_email()).collect();
    for (n, email) in people.iter().enumerate() {
        let via = if n % 2 == 0 { &app } else { &replica };
        assert_eq!(sign_up_fresh(via, email).await, 302);
    }
    for email in &people {
        catcher.wait_for(email, 1).await;
    }
    tokio::time::sleep(billfold::mail::sender::POLL * 2).await;
    assert_eq!(catcher.all().await.len(), people.len(), "each mail once");
    replica.stop().await;
    app.stop().await;
}

/// Changing the address: the password asked for, the new address proven by its link before
/// anything changes, the old address told, the Stripe customer's email following, and the
/// link good once.
async fn a_new_address_takes_effect_once_proven_and_stripe_follows(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::spawn_with(backend, &catcher.env()).await;
    let (old, customer) = crate::support::billing::sign_up_with_customer(&app).await;
    let new = unique_email();
    let other = unique_email();
    assert_eq!(sign_up_fresh(&app, &other).await, 302);

    // Refused, each with what to do: a wrong password, an address in use, the same address,
    // not an address at all.
    for (fields, status, says) in [
        (
            [("new_email", new.as_str()), ("password", "not my password")],
            400,
            "Your current password is not correct.",
        ),
        (
            [("new_email", other.as_str()), ("password", PASSWORD)],
            409,
            "That address belongs to another account.",
        ),
        (
            [("new_email", old.as_str()), ("password", PASSWORD)],
            400,
            "That is your address already.",
        ),
        (
            [("new_email", "not-an-address"), ("password", PASSWORD)],
            400,
            "new_email",
        ),
    ] {
        let (got, body) = call(&app, "/api/account/email", &fields).await;
        assert_eq!(got, status, "{body}");
        assert!(body.contains(says), "{body}");
    }
    // Signed out: nothing.
    let (status, _) = {
        let res = browser_client()
            .post(app.url("/api/account/email"))
            .header("Origin", &app.base)
            .form(&[("new_email", new.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .expect("request");
        (res.status().as_u16(), ())
    };
    assert_eq!(status, 401);

    // Asked as a plain form: back to the account page, which says a link went out.
    let asked = app
        .client
        .post(app.url("/api/account/email"))
        .header("Origin", &app.base)
        .header("Accept", "text/html")
        .form(&[("new_email", new.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("ask");
    assert_eq!(asked.status(), 302);
    assert_eq!(location(&asked), "/settings/account?change=sent");
    let account = page(&app, "/settings/account?change=sent").await;
    assert!(
        account.contains("We sent a link to the new address"),
        "{account}"
    );
    assert!(account.contains(&old), "nothing changed yet");
    let mails = catcher.wait_for(&new, 1).await;
    assert!(
        mails[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Confirm your new email address")),
        "{}",
        mails[0]
    );
    let row = app
        .user_by_email(&old)
        .await
        .expect("still the old address");
    assert!(app.user_by_email(&new).await.is_none());

    // The link: the change, proven; the old address told; Stripe's customer follows.
    let link = path_of(&link_to(&mails[0], "/confirm-email-change"));
    let done = page(&app, &link).await;
    assert!(
        done.contains(&format!("Your account's address is now {new}")),
        "{done}"
    );
    let changed = app.user_by_email(&new).await.expect("the new address");
    assert_eq!(changed.id, row.id);
    assert!(changed.email_verified_at.is_some(), "proven by its link");
    let told = catcher.wait_for(&old, 2).await;
    assert!(
        told.iter().any(|m| m["subject"]
            .as_str()
            .is_some_and(|s| s.contains("email address was changed"))
            && m["text"].as_str().is_some_and(|t| t.contains(&new))),
        "{told:?}"
    );
    let mut email = None;
    let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
    while patience.another_try().await {
        let object: serde_json::Value = reqwest::Client::new()
            .get(app.url(&format!("/_stripe-sim/v1/customers/{customer}")))
            .bearer_auth("sk_test_through_the_double")
            .send()
            .await
            .expect("customer")
            .json()
            .await
            .expect("json");
        email = object["email"].as_str().map(str::to_owned);
        if email.as_deref() == Some(new.as_str()) {
            break;
        }
    }
    assert_eq!(
        email.as_deref(),
        Some(new.as_str()),
        "Stripe's customer follows"
    );
    let queued = billfold::db::entities::stripe_outbox::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].status, "done");

    // Once only; and the new address signs in, the old one no more.
    let again = page(&app, &link).await;
    assert!(again.contains("This link has been used already"), "{again}");
    for (address, status) in [(new.as_str(), 200), (old.as_str(), 403)] {
        let res = browser_client()
            .post(app.url("/api/login"))
            .header("Origin", &app.base)
            .form(&[("email", address), ("password", PASSWORD)])
            .send()
            .await
            .expect("log in");
        assert_eq!(res.status().as_u16(), status, "{address}");
    }
    app.stop().await;
}

crate::support::on_both_databases!(
    signing_up_sends_one_link_that_proves_the_address_once,
    a_reset_link_works_once_within_the_hour_and_ends_every_session,
    an_smtp_outage_and_a_restart_lose_nothing_and_send_once,
    a_permanent_refusal_is_recorded_and_never_retried,
    two_replicas_send_each_mail_once,
    a_new_address_takes_effect_once_proven_and_stripe_follows,
);
