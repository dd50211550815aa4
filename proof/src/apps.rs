//! The Billfold under test: one or more real `billfold` processes (replicas) on one
//! database, each on a loopback port of its own, which the proof can SIGKILL and restart.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use std::process::{Child, Command};
use stripe_sim::signature;
use tokio::sync::RwLock;

/// Settings every replica gets, besides its own port.
pub struct AppEnv {
    pub bin: PathBuf,
    pub vars: Vec<(String, String)>,
    pub logs: PathBuf,
}

struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

/// The replicas, each behind a lock only a kill and restart takes for writing, so that
/// deliveries to every replica and a kill can run at once.
pub struct Apps {
    env: AppEnv,
    replicas: Vec<RwLock<Replica>>,
    http: reqwest::Client,
    starts: AtomicUsize,
}

/// How a delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// A status the app chose: 5xx for what it could not record.
    Status(u16),
    /// No answer: the process was gone or the connection dropped.
    Silence,
}

impl Apps {
    pub async fn start(env: AppEnv, replicas: usize) -> anyhow::Result<Apps> {
        anyhow::ensure!(
            env.bin.is_file(),
            "no billfold binary at {} (build it with `cargo leptos build --bin-features ssr` \
             or `cargo build --bin billfold --features ssr`, or pass --app-bin)",
            env.bin.display()
        );
        let mut apps = Apps {
            env,
            replicas: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()?,
            starts: AtomicUsize::new(0),
        };
        for _ in 0..replicas {
            let r = apps.spawn().await?;
            apps.replicas.push(RwLock::new(r));
        }
        Ok(apps)
    }

    pub fn count(&self) -> usize {
        self.replicas.len()
    }

    async fn spawn(&self) -> anyhow::Result<Replica> {
        // A free port: bound and let go. Loopback only, and retried if taken meanwhile.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let n = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.env.logs.join(format!("replica-{n}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&self.env.bin);
        cmd.env_clear()
            .envs(
                std::env::vars()
                    .filter(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("LEPTOS_")),
            )
            .envs(self.env.vars.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .env("APP_URL", &base)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.env.bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("billfold exited at start ({status}): {}", tail(&log));
            }
            if let Ok(res) = self.http.get(format!("{base}/healthz")).send().await {
                if res.status().is_success() {
                    break;
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "billfold did not become healthy in 60 s: {}",
                tail(&log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Replica { child, base, log })
    }

    /// SIGKILL to replica `i`, as a crash or an OOM kill would (nothing flushed, nothing
    /// answered), then a new process in its place, on a new port.
    pub async fn kill_and_restart(&self, i: usize) -> anyhow::Result<()> {
        let mut r = self.replicas[i].write().await;
        r.child.kill()?;
        r.child.wait()?;
        *r = self.spawn().await?;
        Ok(())
    }

    /// Whether every replica's process is still running.
    pub async fn all_alive(&self) -> anyhow::Result<bool> {
        for r in &self.replicas {
            let mut r = r.write().await;
            if r.child.try_wait()?.is_some() {
                eprintln!("a replica exited: {}", tail(&r.log));
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn base(&self, i: usize) -> String {
        self.replicas[i].read().await.base.clone()
    }

    /// `/healthz`'s status on replica `i` (0 when it did not answer).
    pub async fn health(&self, i: usize) -> u16 {
        match self
            .http
            .get(format!("{}/healthz", self.base(i).await))
            .timeout(Duration::from_secs(15))
            .send()
            .await
        {
            Ok(res) => res.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Delivers one event body to replica `i`, signed now, as Stripe does.
    pub async fn deliver(&self, i: usize, secret: &str, body: &str) -> Answer {
        let header = signature::header_value(secret, billfold::db::clock::now(), body.as_bytes());
        let sent = self
            .http
            .post(format!("{}/api/webhooks/stripe", self.base(i).await))
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Answer::Ok,
            Ok(res) => Answer::Status(res.status().as_u16()),
            Err(_) => Answer::Silence,
        }
    }
}

/// A replica is stopped with SIGKILL when it goes (each was started by this run, by its
/// PID, and the scratch database is dropped next anyway), also when the run fails.
impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Apps {
    /// Why deliveries were answered 5xx, from every replica's log this lifecycle: each
    /// failed event's error, its ids and numbers left out, counted.
    pub fn failure_causes(&self) -> BTreeMap<String, u64> {
        let mut causes = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(&self.env.logs) else {
            return causes;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("replica-") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("Stripe will retry")) {
                let line = strip_ansi(line);
                let error = line
                    .split_once("error=")
                    .map_or(line.as_str(), |(_, e)| e)
                    .trim_matches('"');
                *causes.entry(cause(error)).or_default() += 1;
            }
        }
        causes
    }
}

/// A log line without terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An error message with what varies (ids, numbers, quoted values) taken out.
fn cause(error: &str) -> String {
    let mut out = String::new();
    for word in error.split_whitespace() {
        let varies = word.chars().any(|c| c.is_ascii_digit());
        out.push_str(if varies { "…" } else { word });
        out.push(' ');
        if out.len() > 160 {
            break;
        }
    }
    out.trim_end().to_owned()
}

/// The last lines of a replica's log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
