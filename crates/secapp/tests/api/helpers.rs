//! Starting real servers for tests: in-process on port 0 with a fresh data dir
//! ([`spawn_app`]), or as the real `secapp` binary ([`ServerProcess`]) for
//! signals, `kill -9` and what the command prints.
//!
//! Every application a test names speaks with its own token, registered
//! (with the `publish` and `consume` roles) through the admin API the first
//! time the name is used ([`Api`]). The shared compatibility token is off
//! unless a test turns it on ([`with_shared_token`], [`Api::shared`]): only
//! the tests about it use it.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use reqwest::{Client, Response};
use secapp_api::admin::{IssuedToken, NewApp, NewToken};
use secapp_api::{APP_NAME_HEADER, HistoryAnswer, PublishAnswer, PublishRequest, TOKEN_HEADER};
use secapp_server::Server;
use secapp_server::config::Config;
use serde_json::Value;
use tokio::sync::oneshot;

/// The shared compatibility token, for the tests about it.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Turns the shared-token compatibility mode on, with [`TOKEN`].
pub fn with_shared_token(config: &mut Config) {
    config.api_token = secapp_server::token::ApiToken::new(TOKEN.into());
}

/// A server running in this test process.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    /// A token of `admin`, the application registered at first start.
    pub admin_token: String,
    pub data_dir: tempfile::TempDir,
    /// The unauthenticated metrics listener, when the test set one.
    pub metrics_base: Option<String>,
    api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), secapp_server::ServerError>>>,
}

/// Starts a server with the default configuration and a fresh data dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `adjust` has changed its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(data_dir, adjust).await
}

/// Starts a server on an existing data dir (to test restarts).
pub async fn spawn_app_in(
    data_dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_app_on(
        data_dir,
        Arc::new(secapp_server::clock::SystemClock),
        adjust,
    )
    .await
}

/// Starts a server on an existing data dir with the given clock (a
/// [`secapp_server::clock::ManualClock`] makes minutes pass at once).
pub async fn spawn_app_on(
    data_dir: tempfile::TempDir,
    clock: Arc<dyn secapp_server::clock::Clock>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::new(data_dir.path());
    // Tests publish and poll in bursts as one app; the rate-limit tests set
    // their own limits.
    config.publish_rate = 0;
    config.read_rate = 0;
    adjust(&mut config);
    let server = Server::open_with_clock(config, clock)
        .await
        .expect("open server");
    let admin_token = match server.first_admin() {
        Some(issued) => issued.token.clone(),
        // A restart: `admin` exists, and its first token was only shown at
        // first start. Issue another through the registry, as the offline
        // command line would.
        None => server
            .access()
            .issue_token(
                &secapp_server::access::Actor::server(),
                secapp_server::access::FIRST_ADMIN_APP,
                secapp_server::access::validate::TokenSpec::default(),
                chrono::Utc::now(),
            )
            .await
            .expect("an admin token after a restart")
            .secret
            .expose()
            .to_owned(),
    };
    let metrics_base = server.metrics_addr().map(|addr| format!("http://{addr}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let client = Client::new();
    TestApp {
        metrics_base,
        api: Api::own_tokens(client.clone(), &base, &admin_token),
        base,
        client,
        admin_token,
        data_dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Shuts the server down gracefully and hands back its data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("clean shutdown");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` as application `name`, with its own token.
    pub async fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        name: &str,
    ) -> reqwest::RequestBuilder {
        self.api().request(method, path, name).await
    }

    /// A request to `path` with the first admin token, as
    /// `Authorization: Bearer`.
    pub fn as_admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_token)
    }

    /// Sends `method path` with the admin token (and `body` as JSON);
    /// returns status and JSON answer.
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.as_admin(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        status_and_json(request.send().await.expect("admin request")).await
    }

    /// A request to `path` with `token`, as `Authorization: Bearer`.
    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Registers `name` with `roles` and issues a token; returns the token.
    pub async fn register(&self, name: &str, roles: &[&str]) -> String {
        register(&self.client, &self.base, &self.admin_token, name, roles).await
    }

    /// Issues a token for `app` as `request` asks; returns the token and
    /// its id.
    pub async fn issue_token(&self, app: &str, request: NewToken) -> (String, String) {
        let response = self
            .as_admin(reqwest::Method::POST, &format!("/admin/apps/{app}/tokens"))
            .json(&request)
            .send()
            .await
            .expect("issue a token");
        assert_eq!(response.status(), 201, "issuing a token for {app}");
        let issued: IssuedToken = response.json().await.expect("an issued token");
        (issued.token, issued.details.id)
    }

    /// Revokes the token with this id.
    pub async fn revoke(&self, id: &str) {
        let path = format!("/admin/tokens/{id}");
        let (status, body) = self.admin_json(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("revoked")),
            "{body}"
        );
    }

    /// The `processed_id` of every recorded change, newest first (from the
    /// history, read with the admin token).
    pub async fn recorded(&self) -> Vec<i64> {
        let response = self
            .as_admin(reqwest::Method::GET, "/secapp/history?limit=1000")
            .send()
            .await
            .expect("read the history");
        assert_eq!(response.status(), 200);
        let history: HistoryAnswer = response.json().await.expect("a history page");
        history
            .changes
            .iter()
            .map(|entry| entry.processed_id)
            .collect()
    }

    /// Speaks for applications with their own tokens; the same registry
    /// of tokens on every call.
    pub fn api(&self) -> Api {
        self.api.clone()
    }
}

/// Registers `name` with `roles` through the admin API and issues its
/// token; returns the token.
pub async fn register(
    client: &Client,
    base: &str,
    admin_token: &str,
    name: &str,
    roles: &[&str],
) -> String {
    let status = create_app(client, base, admin_token, name, roles).await;
    assert_eq!(status, 201, "registering {name}");
    issue(client, base, admin_token, name).await
}

/// `POST /admin/apps`; returns the status (the body is printed on refusals).
async fn create_app(
    client: &Client,
    base: &str,
    admin_token: &str,
    name: &str,
    roles: &[&str],
) -> u16 {
    let new = NewApp {
        name: name.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        description: None,
        owner: None,
    };
    let response = client
        .post(format!("{base}/admin/apps"))
        .bearer_auth(admin_token)
        .json(&new)
        .send()
        .await
        .expect("register");
    let (status, body) = status_and_json(response).await;
    if status != 201 {
        eprintln!("registering {name}: {status} {body}");
    }
    status
}

/// Issues a token that never expires for `name`.
async fn issue(client: &Client, base: &str, admin_token: &str, name: &str) -> String {
    let response = client
        .post(format!("{base}/admin/apps/{name}/tokens"))
        .bearer_auth(admin_token)
        .json(&NewToken::default())
        .send()
        .await
        .expect("issue a token");
    assert_eq!(response.status(), 201, "issuing a token for {name}");
    let issued: IssuedToken = response.json().await.expect("an issued token");
    issued.token
}

/// Speaks the wire contract to one server. Cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    pub client: Client,
    pub base: String,
    credentials: Credentials,
}

/// How an [`Api`] authenticates as an application.
#[derive(Clone)]
enum Credentials {
    /// Each application its own token, registered on first use with this
    /// admin token; kept across restarts of the same data dir.
    PerApp {
        admin_token: String,
        tokens: Arc<tokio::sync::Mutex<HashMap<String, String>>>,
    },
    /// The shared compatibility token, for any `App-name`.
    Shared(String),
}

impl Api {
    /// Each application with its own token, registered with `admin_token`.
    pub fn own_tokens(client: Client, base: &str, admin_token: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            credentials: Credentials::PerApp {
                admin_token: admin_token.to_owned(),
                tokens: Arc::default(),
            },
        }
    }

    /// Every application with the shared compatibility token.
    pub fn shared(client: Client, base: &str, token: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            credentials: Credentials::Shared(token.to_owned()),
        }
    }

    /// The same applications and tokens over another client.
    pub fn with_client(&self, client: Client) -> Self {
        Self {
            client,
            ..self.clone()
        }
    }

    /// The same applications and tokens at another address (the same data
    /// dir served again).
    pub fn at(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// The token `app` speaks with: its own, registered on first use.
    pub async fn token(&self, app: &str) -> String {
        match &self.credentials {
            Credentials::Shared(token) => token.clone(),
            Credentials::PerApp {
                admin_token,
                tokens,
            } => {
                let mut tokens = tokens.lock().await;
                if let Some(token) = tokens.get(app) {
                    return token.clone();
                }
                // Registered by an earlier server on the same data dir, or
                // by the test itself: a new token for it will do.
                let status = create_app(
                    &self.client,
                    &self.base,
                    admin_token,
                    app,
                    &["publish", "consume"],
                )
                .await;
                assert!(matches!(status, 201 | 409), "registering {app}: {status}");
                let token = issue(&self.client, &self.base, admin_token, app).await;
                tokens.insert(app.to_owned(), token.clone());
                token
            }
        }
    }

    /// Speaks for `app` with `token` from now on (an application the test
    /// registered itself, with the roles it chose).
    pub async fn remember(&self, app: &str, token: &str) {
        if let Credentials::PerApp { tokens, .. } = &self.credentials {
            tokens.lock().await.insert(app.to_owned(), token.to_owned());
        }
    }

    /// A request to `path` as `app`: `App-name` and its token.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        app: &str,
    ) -> reqwest::RequestBuilder {
        let token = self.token(app).await;
        self.client
            .request(method, format!("{}{path}", self.base))
            .header(APP_NAME_HEADER, app)
            .header(TOKEN_HEADER, token)
    }

    /// Publishes a raw body as `app`; `Err` when the server cannot be reached.
    pub async fn try_publish_raw(
        &self,
        app: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Result<Response> {
        self.request(reqwest::Method::POST, "/secapp/update", app)
            .await
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    }

    /// Publishes a raw body as `app`.
    pub async fn publish_raw(&self, app: &str, body: impl Into<reqwest::Body>) -> Response {
        self.try_publish_raw(app, body).await.expect("send publish")
    }

    /// Publishes `level` at `change_at` and returns the `processed_id`.
    pub async fn publish(&self, app: &str, level: i64, change_at: &str) -> i64 {
        let request = PublishRequest {
            current_status: level,
            change_at: Some(change_at.to_owned()),
        };
        let body = serde_json::to_string(&request).expect("a publish request");
        let response = self.publish_raw(app, body).await;
        let status = response.status();
        let text = response.text().await.expect("publish answer");
        assert_eq!(status, 200, "publish refused: {text}");
        let answer: PublishAnswer = serde_json::from_str(&text).expect("a publish answer");
        answer.processed_id
    }

    /// Polls as `app` and returns status and JSON body.
    pub async fn poll(&self, app: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, "/secapp/update", app)
            .await
            .send()
            .await
            .expect("send poll");
        let status = response.status().as_u16();
        (status, response.json().await.expect("poll answer is JSON"))
    }
}

/// Sends `request`, checks that it is refused with `status` and the error
/// `code`, and returns the JSON body for further checks.
pub async fn refused(request: reqwest::RequestBuilder, status: u16, code: &str) -> Value {
    let (got, body) = status_and_json(request.send().await.expect("send")).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    body
}

/// Status and JSON body of a response; panics if the body is not JSON.
pub async fn status_and_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer with status {status} is not JSON ({e}): {text:?}"));
    (status, json)
}

/// Registers `app` with `role` on a stopped server's data dir with the
/// offline command line; returns its first token.
pub fn register_offline(data_dir: &Path, app: &str, role: &str) -> String {
    let output = Command::new(binary())
        .args(["apps", "add", app, "--role", role, "--json", "--data-dir"])
        .arg(data_dir)
        .env_remove("SECAPP_SERVER")
        .output()
        .expect("run secapp apps add");
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    answer["token"]["token"]
        .as_str()
        .expect("the issued token")
        .to_owned()
}

/// The real `secapp` binary, serving a data dir on an ephemeral port.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// What the process printed on stdout before it started listening.
    pub stdout_lines: Vec<String>,
}

/// The built binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_secapp"))
}

impl ServerProcess {
    /// Starts `secapp serve` on `data_dir` with `envs`, and waits until it listens.
    pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        Self::start_command(Command::new(binary()), data_dir, envs)
    }

    /// As [`start`](Self::start), listening on `addr` (to come back on the
    /// same address after a restart).
    pub fn start_at(data_dir: &Path, addr: SocketAddr, envs: &[(&str, &str)]) -> Self {
        let listen = addr.to_string();
        let mut all = vec![("SECAPP_LISTEN", listen.as_str())];
        all.extend_from_slice(envs);
        Self::start_command(Command::new(binary()), data_dir, &all)
    }

    /// As [`start`](Self::start), with the process's open-file limit (soft
    /// and hard) set to `limit`.
    pub fn start_with_open_files(data_dir: &Path, envs: &[(&str, &str)], limit: u32) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(binary());
        Self::start_command(command, data_dir, envs)
    }

    fn start_command(mut command: Command, data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .env("SECAPP_LISTEN", "127.0.0.1:0")
            .env_remove("SECAPP_API_TOKEN")
            .env("SECAPP_LOG", "info")
            .env("SECAPP_PUBLISH_RATE", "0")
            .env("SECAPP_READ_RATE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn secapp");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("address="))
                {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("address"));
                }
                eprintln!("[secapp] {line}");
            }
        });
        let (out_tx, out_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("secapp did not start listening within 30 s");
        // Whatever was printed at start-up is printed before the listen log line.
        std::thread::sleep(Duration::from_millis(100));
        let stdout_lines = out_rx.try_iter().collect();
        Self {
            child,
            addr,
            stdout_lines,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token of `admin` printed at the data dir's first start.
    pub fn admin_token(&self) -> String {
        self.stdout_lines
            .iter()
            .find_map(|line| line.trim().strip_prefix("admin token: "))
            .expect("a first start prints the admin token")
            .to_owned()
    }

    /// Sends SIGTERM and waits for the exit status code.
    pub fn terminate(self) -> Option<i32> {
        self.signal("TERM");
        self.wait()
    }

    /// Sends a signal by name (`TERM`, `INT`) without waiting.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Waits for the process to exit and returns its status code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().expect("wait for secapp").code()
    }

    /// Sends SIGKILL: no flush, no shutdown, as a crash or `kill -9`.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL secapp");
        self.child.wait().expect("reap secapp");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server-sent event, or a comment line (heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    Event { id: String, data: Value },
    Comment(String),
}

/// Reads server-sent events from a streaming response, one at a time.
pub struct SseReader {
    response: Response,
    buffer: String,
}

impl SseReader {
    /// Opens `GET /secapp/stream` as `app`, with extra headers.
    pub async fn open(api: &Api, app: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = api
            .request(reqwest::Method::GET, "/secapp/stream", app)
            .await;
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("open stream")
    }

    pub fn new(response: Response) -> Self {
        assert_eq!(response.status(), 200, "stream refused");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event or comment; `None` when the stream ended. Panics after
    /// `timeout` without one.
    pub async fn next(&mut self, timeout: Duration) -> Option<Sse> {
        tokio::time::timeout(timeout, self.next_inner())
            .await
            .expect("no server-sent event within the timeout")
    }

    /// The next event, skipping heartbeats.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<(String, Value)> {
        loop {
            match self.next(timeout).await? {
                Sse::Event { id, data } => return Some((id, data)),
                Sse::Comment(_) => {}
            }
        }
    }

    async fn next_inner(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = String::new();
                let mut data = String::new();
                let mut comment = None;
                for line in block.lines() {
                    if let Some(rest) = line.strip_prefix(':') {
                        comment = Some(rest.trim().to_owned());
                    } else if let Some(rest) = line.strip_prefix("id:") {
                        id = rest.trim().to_owned();
                    } else if let Some(rest) = line.strip_prefix("data:") {
                        data.push_str(rest.trim());
                    }
                }
                if data.is_empty() {
                    if let Some(comment) = comment {
                        return Some(Sse::Comment(comment));
                    }
                    continue;
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(Sse::Event { id, data });
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }
}

/// A small deterministic generator, so a failing randomised test replays
/// the same run.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).unwrap();
        items[usize::try_from(self.below(len)).unwrap()]
    }
}
