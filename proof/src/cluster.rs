//! A private PostgreSQL cluster for the outage schedules: `initdb` into a temporary
//! directory, served on a free loopback port, stopped and started by this run alone. The
//! machine's shared PostgreSQL is never touched.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::Context;
use std::process::Command;

/// Where Debian keeps PostgreSQL's server programs; `PG_BIN_DIR` overrides it.
const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Creates and starts a cluster; its `postgres` database is the admin database.
    pub async fn start() -> anyhow::Result<Cluster> {
        let bin = PathBuf::from(
            std::env::var("PG_BIN_DIR").unwrap_or_else(|_| DEFAULT_BIN_DIR.to_owned()),
        );
        anyhow::ensure!(
            bin.join("initdb").is_file(),
            "no initdb in {} (set PG_BIN_DIR to PostgreSQL's server programs)",
            bin.display()
        );
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        std::fs::create_dir(&data)?;
        // PostgreSQL refuses to run as root; as root, run it as the `postgres` user.
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown of the cluster directory failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Cluster {
            bin,
            data,
            log,
            port,
            _dir: dir,
        };
        cluster
            .run(
                "initdb",
                &[
                    "-D",
                    path(&cluster.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                ],
            )
            .await?;
        cluster.up().await?;
        Ok(cluster)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn up(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=on",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.data),
                "-l",
                path(&self.log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await
    }

    /// Stops the server at once, as a crash would (`-m immediate`: no checkpoint, clients
    /// cut off); the next start recovers from the log.
    pub async fn down(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "immediate", "-w", "stop"],
        )
        .await
    }

    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).stdin(Stdio::null());
        // pg_ctl waits for the server: off the async workers.
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .with_context(|| format!("running {}", exe.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Stops the cluster for good (its directory goes with `self`).
    pub async fn stop(self) {
        let _ = self
            .run(
                "pg_ctl",
                &["-D", path(&self.data), "-m", "fast", "-w", "stop"],
            )
            .await;
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}
