//! The real binary, started as an operator would: what it refuses to start with, and what a
//! deployment in test mode does not have (the mounted double, the demo account).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{app::browser_client, stripe_stand_in::StripeStandIn};

const BIN: &str = env!("CARGO_BIN_EXE_billfold");
/// The repository's billing file (the plans for sale), wherever the binary runs.
const BILLING_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/billing.toml");

/// The binary with only these settings: a clean environment and a directory of its own, so
/// no `.env` of the developer's leaks in.
fn billfold(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/billfold.db?mode=rwc", dir.display()),
        )
        .env("LOG_LEVEL", "warn")
        .env("BILLING_FILE", BILLING_FILE)
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to its end (it must refuse quickly) and returns its exit code and stderr.
fn refused(vars: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = billfold(dir.path(), vars)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run billfold");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Settings, command-line arguments, and the variable the refusal must name.
type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn it_refuses_to_start_without_a_mode_and_names_the_setting() {
    let cases: &[Refusal] = &[
        // No key, no choice: both ways out are named.
        (&[], &[], "STRIPE_SECRET_KEY"),
        (&[("STRIPE_SECRET_KEY", "")], &[], "STRIPE_SECRET_KEY"),
        (&[("STRIPE_SECRET_KEY", "  ")], &[], "STRIPE_SECRET_KEY"),
        // Simulated mode is for this machine only.
        (
            &[
                ("STRIPE_MODE", "simulated"),
                ("APP_URL", "https://billing.example.com"),
            ],
            &[],
            "APP_URL",
        ),
        (
            &[("STRIPE_MODE", "simulated"), ("BIND_ADDR", "0.0.0.0:3000")],
            &[],
            "BIND_ADDR",
        ),
        (
            &[
                ("STRIPE_MODE", "simulated"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_real"),
            ],
            &[],
            "STRIPE_WEBHOOK_SECRET",
        ),
        (
            &[
                ("STRIPE_MODE", "simulated"),
                ("STRIPE_SECRET_KEY", "sk_test_real"),
            ],
            &[],
            "STRIPE_SECRET_KEY",
        ),
        // The flag is the same choice, with the same refusals.
        (
            &[
                ("STRIPE_SECRET_KEY", "sk_test_real"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ],
            &["--simulated"],
            "STRIPE_SECRET_KEY",
        ),
        // A chosen mode must agree with the key.
        (
            &[
                ("STRIPE_MODE", "live"),
                ("STRIPE_SECRET_KEY", "sk_test_real"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ],
            &[],
            "STRIPE_MODE",
        ),
        // In test mode mail must leave: an SMTP server, or the log chosen explicitly.
        (
            &[
                ("STRIPE_SECRET_KEY", "sk_test_real"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ],
            &[],
            "SMTP_URL",
        ),
        (
            &[
                ("STRIPE_SECRET_KEY", "sk_test_real"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
                ("SMTP_URL", "smtp://mail.example.com:587"),
            ],
            &[],
            "MAIL_FROM",
        ),
    ];
    for (vars, args, names) in cases {
        let (code, stderr) = refused(vars, args);
        assert_eq!(
            code,
            Some(2),
            "{vars:?} {args:?} must refuse to start: {stderr}"
        );
        assert!(
            stderr.contains(&format!("configuration error: {names}")),
            "{vars:?}: the refusal names {names}: {stderr}"
        );
        assert!(
            !stderr.contains("sk_test_real") && !stderr.contains("whsec_real"),
            "{stderr}"
        );
    }
    let (_, stderr) = refused(&[], &[]);
    assert!(stderr.contains("STRIPE_MODE=simulated"), "{stderr}");
}

#[test]
fn it_refuses_to_start_without_a_valid_catalogue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nowhere.toml");
    let invalid = dir.path().join("billing.toml");
    let text = std::fs::read_to_string(BILLING_FILE).expect("the repository's billing.toml");
    std::fs::write(
        &invalid,
        text.replace("currency = \"usd\"", "currency = \"dollars\""),
    )
    .expect("write");
    for (file, says) in [
        (&missing, "cannot read"),
        (
            &invalid,
            "currency `dollars` must be three lowercase letters",
        ),
    ] {
        let file = file.to_str().expect("utf-8 path");
        let (code, stderr) = refused(
            &[("STRIPE_MODE", "simulated"), ("BILLING_FILE", file)],
            &["migrate"],
        );
        assert_eq!(code, Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains("configuration error: BILLING_FILE"),
            "{file}: {stderr}"
        );
        assert!(stderr.contains(says), "{file}: {stderr}");
    }
}

/// A free loopback port (bound, then released for the child to take).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A running binary, killed (by its PID, through the handle) when dropped.
struct Running {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(vars: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut all = vec![("BIND_ADDR", addr.as_str()), ("APP_URL", base.as_str())];
    all.extend_from_slice(vars);
    let child = billfold(dir.path(), &all)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start billfold");
    let running = Running {
        child,
        base,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        let up = client
            .get(format!("{}/healthz", running.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if up {
            return running;
        }
        assert!(Instant::now() < deadline, "billfold did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_in_as_demo(base: &str) -> reqwest::Response {
    browser_client()
        .post(format!("{base}/api/login"))
        .form(&[
            ("email", "demo@billfold.test"),
            ("password", "billfold-demo"),
        ])
        .send()
        .await
        .expect("log in")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_mode_has_no_double_and_no_demo_account() {
    let stripe = StripeStandIn::start().await;
    let app = start(&[
        ("STRIPE_SECRET_KEY", "sk_test_startup"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_startup"),
        ("MAIL_DELIVERY", "log"),
        ("STRIPE_API_BASE", stripe.proxy_base.as_str()),
    ])
    .await;
    let http = reqwest::Client::new();
    for path in [
        "/_stripe-sim/",
        "/_stripe-sim/v1/customers",
        "/_stripe-sim/_admin/deliveries",
    ] {
        let res = http
            .get(format!("{}{path}", app.base))
            .bearer_auth("sk_test_anything")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404, "{path} in test mode");
    }
    let res = log_in_as_demo(&app.base).await;
    assert_eq!(
        res.status(),
        403,
        "the demo login does not exist in test mode"
    );
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_mode_mounts_the_double_and_seeds_the_demo_account() {
    let app = start(&[("STRIPE_MODE", "simulated")]).await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/_stripe-sim/v1/customers", app.base))
        .bearer_auth("sk_test_anything")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "the double is mounted in simulated mode");
    // The demo account is seeded in the background once the listener is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = log_in_as_demo(&app.base).await;
        if res.status().as_u16() < 400 {
            assert!(res.headers().get("set-cookie").is_some(), "a session");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo login never worked: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
