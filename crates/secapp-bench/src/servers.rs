//! Starting the measured processes and reading their memory.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BenchResult, RunArgs};

/// The token every benchmark server uses.
pub const TOKEN: &str = "bench-token";

/// A server process on loopback, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data dir (secapp only), removed on drop.
    pub data_dir: Option<tempfile::TempDir>,
    /// The token of [`REGISTERED_APP`] (secapp only).
    pub registered_token: Option<String>,
}

/// An application registered (with the `consume` role) before the server
/// starts, to measure polls with a per-application token.
pub const REGISTERED_APP: &str = "bench-registered";

impl Server {
    /// Starts the release secapp on a fresh data dir with high stream caps.
    pub async fn secapp(args: &RunArgs) -> BenchResult<Self> {
        Self::start_secapp(args, false, None, &[]).await
    }

    /// [`Server::secapp`] with more environment: another database, say.
    pub async fn secapp_with_env(args: &RunArgs, env: &[(&str, &str)]) -> BenchResult<Self> {
        Self::start_secapp(args, false, None, env).await
    }

    /// Stops the server (SIGKILL: every acknowledged publish is on disk)
    /// and starts it again on the same data dir with `env`.
    pub async fn restart_with_env(
        mut self,
        args: &RunArgs,
        env: &[(&str, &str)],
    ) -> BenchResult<Self> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = self.data_dir.take().ok_or("no data dir to restart on")?;
        Self::start_secapp_in(args, data_dir, false, None, env).await
    }

    /// [`Server::secapp`] in a process that may open at most `open_files`
    /// files (soft and hard limit), so running out of descriptors can be
    /// measured without running out of the harness's own.
    pub async fn secapp_with_open_files(args: &RunArgs, open_files: u32) -> BenchResult<Self> {
        Self::start_secapp(args, false, Some(open_files), &[]).await
    }

    /// [`Server::secapp`], with [`REGISTERED_APP`] registered before the
    /// start (by the offline command line, so a binary from before
    /// per-application tokens can still run the other benchmarks).
    pub async fn secapp_with_registered_app(args: &RunArgs) -> BenchResult<Self> {
        Self::start_secapp(args, true, None, &[]).await
    }

    async fn start_secapp(
        args: &RunArgs,
        with_registered_app: bool,
        open_files: Option<u32>,
        env: &[(&str, &str)],
    ) -> BenchResult<Self> {
        let data_dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        Self::start_secapp_in(args, data_dir, with_registered_app, open_files, env).await
    }

    async fn start_secapp_in(
        args: &RunArgs,
        data_dir: tempfile::TempDir,
        with_registered_app: bool,
        open_files: Option<u32>,
        env: &[(&str, &str)],
    ) -> BenchResult<Self> {
        let addr = free_addr()?;
        let registered_token = if with_registered_app {
            Some(register(args, data_dir.path())?)
        } else {
            None
        };
        let mut command = match open_files {
            None => Command::new(&args.secapp),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&args.secapp);
                shell
            }
        };
        let child = command
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data_dir.path())
            .env("SECAPP_API_TOKEN", TOKEN)
            .env("SECAPP_LOG", "warn")
            .env("SECAPP_MAX_STREAMS", "1000000")
            .env("SECAPP_MAX_STREAMS_PER_APP", "1000000")
            // One app name carries the whole load here: limits so high they
            // never refuse, but are still checked on every request.
            .env("SECAPP_PUBLISH_RATE", "1000000000")
            .env("SECAPP_READ_RATE", "1000000000")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", args.secapp.display()))?;
        let server = Self {
            child,
            addr,
            data_dir: Some(data_dir),
            registered_token,
        };
        server.wait_until_up("/healthz").await?;
        Ok(server)
    }

    /// Starts this binary's bare baseline handler.
    pub async fn baseline() -> BenchResult<Self> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let child = Command::new(exe)
            .args(["baseline", "--listen", &addr.to_string()])
            .spawn()
            .map_err(|e| format!("start the baseline: {e}"))?;
        let server = Self {
            child,
            addr,
            data_dir: None,
            registered_token: None,
        };
        server.wait_until_up("/secapp/update").await?;
        Ok(server)
    }

    /// `http://ip:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> BenchResult<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| format!("read the server's memory: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| "no VmRSS in /proc status".into())
    }

    /// Publishes a change now and returns its id and when the
    /// acknowledgement arrived.
    pub async fn publish(
        &self,
        client: &reqwest::Client,
        level: i64,
    ) -> BenchResult<(i64, Instant)> {
        let response = client
            .post(format!("{}/secapp/update", self.base()))
            .header("App-name", "bench-publisher")
            .header("Token", TOKEN)
            .body(format!("{{\"current_status\": {level}}}"))
            .send()
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let acked = Instant::now();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("publish answer: {e}"))?;
        let id = body["processed_id"]
            .as_i64()
            .ok_or_else(|| format!("publish refused: {body}"))?;
        Ok((id, acked))
    }

    pub(crate) async fn wait_until_up(&self, path: &str) -> BenchResult<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(format!("{}{path}", self.base()))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the server at {} did not come up", self.addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port free right now.
pub fn free_addr() -> BenchResult<SocketAddr> {
    let probe =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("probe a port: {e}"))?;
    probe.local_addr().map_err(|e| format!("probe a port: {e}"))
}

/// Registers [`REGISTERED_APP`] with the offline command line on the data
/// dir (the server is not running yet) and returns its token.
fn register(args: &RunArgs, data_dir: &std::path::Path) -> BenchResult<String> {
    let output = Command::new(&args.secapp)
        .args(["apps", "add", REGISTERED_APP, "--role", "consume", "--json"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SECAPP_LOG", "warn")
        .output()
        .map_err(|e| format!("run secapp apps add: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "secapp apps add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("secapp apps add printed no JSON: {e}"))?;
    answer["token"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "secapp apps add printed no token".into())
}
