//! What the client's tests share: a real server started in the test
//! process (SQLite in a fresh data dir), and clients registered on it.

use secapp_client::Client;
use secapp_server::Server;
use secapp_server::config::Config;
use serde_json::json;

pub struct Running {
    pub base: String,
    pub admin: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A server on a port of its own.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, adjust).await
}

/// A server on `listener`.
pub async fn start_on(
    listener: tokio::net::TcpListener,
    adjust: impl FnOnce(&mut Config),
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    adjust(&mut config);
    let server = Server::open(config).await.unwrap();
    let admin = server.first_admin().unwrap().token.clone();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        admin,
        _dir: dir,
        stop: Some(stop),
    }
}

/// Registers `app` with `roles` and returns a client speaking for it.
pub async fn client_for(server: &Running, app: &str, roles: &[&str]) -> Client {
    let token = token_for(server, app, roles).await;
    Client::builder(&server.base)
        .app(app)
        .token(token)
        .build()
        .unwrap()
}

/// Registers `app` with `roles` and returns its token.
pub async fn token_for(server: &Running, app: &str, roles: &[&str]) -> String {
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/admin/apps", server.base))
        .bearer_auth(&server.admin)
        .json(&json!({"name": app, "roles": roles}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issued: serde_json::Value = http
        .post(format!("{}/admin/apps/{app}/tokens", server.base))
        .bearer_auth(&server.admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["token"].as_str().unwrap().to_owned()
}
