//! [`MailCatcher`]: a real SMTP server for the mail stories, MailDev from npm (installed by
//! `scripts/setup`), on loopback ports of its own, read through its web API. The app under test
//! is pointed at it with `SMTP_URL` ([`MailCatcher::env`]).
//!
//! Use it in any story that must see what the app mails; [`MailCatcher::start_on`] brings one
//! up on a chosen port, for an SMTP server that comes back after an outage.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

pub struct MailCatcher {
    child: Child,
    web: String,
    http: reqwest::Client,
    smtp_url: String,
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl MailCatcher {
    pub async fn start() -> MailCatcher {
        Self::start_on(free_port()).await
    }

    /// MailDev catching SMTP on `smtp_port`.
    pub async fn start_on(smtp_port: u16) -> MailCatcher {
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/node_modules/.bin/maildev");
        assert!(
            std::path::Path::new(bin).exists(),
            "MailDev is not installed: run scripts/setup (npm ci) first"
        );
        let web_port = free_port();
        let child = Command::new(bin)
            .args([
                "--smtp",
                &smtp_port.to_string(),
                "--web",
                &web_port.to_string(),
                "--ip",
                "127.0.0.1",
                "--silent",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start MailDev");
        let catcher = MailCatcher {
            child,
            web: format!("http://127.0.0.1:{web_port}"),
            http: reqwest::Client::new(),
            smtp_url: format!("smtp://127.0.0.1:{smtp_port}"),
        };
        let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
        while patience.another_try().await {
            let smtp_up = std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_ok();
            if smtp_up && catcher.http.get(catcher.url("/email")).send().await.is_ok() {
                return catcher;
            }
        }
        panic!("MailDev did not come up on port {smtp_port}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web)
    }

    /// What the app needs to send here.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("SMTP_URL", self.smtp_url.as_str()),
            ("MAIL_FROM", "Billfold Tests <billing@billfold.test>"),
        ]
    }

    /// Every mail caught so far.
    pub async fn all(&self) -> Vec<Value> {
        self.http
            .get(self.url("/email"))
            .send()
            .await
            .expect("MailDev answers")
            .json()
            .await
            .expect("a list")
    }

    /// The mails caught for `address`.
    pub async fn to(&self, address: &str) -> Vec<Value> {
        self.all()
            .await
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t["address"] == address))
            })
            .collect()
    }

    /// The mails caught for `address` whose subject contains `subject`.
    pub async fn about(&self, address: &str, subject: &str) -> Vec<Value> {
        self.to(address)
            .await
            .into_iter()
            .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
            .collect()
    }

    /// Waits (a bounded while) until `count` mails for `address` are caught; returns them.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Value> {
        let mut got = Vec::new();
        let mut patience = crate::support::patience::Patience::every(Duration::from_millis(50));
        while patience.another_try().await {
            got = self.to(address).await;
            if got.len() >= count {
                return got;
            }
        }
        panic!("{} mail(s) for {address}, not {count}: {got:?}", got.len());
    }
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first link in a mail's text part that goes to `path` (e.g. `/verify-email`).
pub fn link_to(mail: &Value, path: &str) -> String {
    let text = mail["text"].as_str().expect("a text part");
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains(path))
        .unwrap_or_else(|| panic!("no link to {path} in {text}"))
        .to_owned()
}
