//! `secapp apps ...` and `secapp tokens ...`: offline on a stopped server's
//! data dir (bootstrap), and online against the running binary.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, binary};

/// Runs the binary with `args`; returns success, stdout and stderr.
fn secapp(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(args)
        .env_remove("SECAPP_SERVER")
        .env_remove("SECAPP_ADMIN_TOKEN")
        .env_remove("SECAPP_DATA_DIR")
        .env("SECAPP_LOG", "warn")
        .output()
        .expect("run secapp");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command that must succeed and print JSON (`--json` is added).
fn secapp_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (ok, stdout, stderr) = secapp(&args);
    assert!(ok, "secapp {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn offline<'a>(dir: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_commands_bootstrap_a_data_dir_that_the_server_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let (ok, text, stderr) = secapp(&offline(&data, &["apps", "add", "ops", "--role", "admin"]));
    assert!(ok, "{stderr}");
    let ops_token = text
        .lines()
        .find_map(|line| line.strip_prefix("token"))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no token printed: {text}"));
    assert!(ops_token.starts_with("secapp_"), "{text}");
    assert!(text.contains("shown only now"), "{text}");

    let added = secapp_json(&offline(
        &data,
        &[
            "apps",
            "add",
            "billing",
            "--role",
            "consume",
            "--role",
            "viewer",
            "--description",
            "Invoices",
            "--expires-in",
            "30d",
            "--label",
            "prod",
        ],
    ));
    assert_eq!(added["app"]["roles"], json!(["consume", "viewer"]));
    assert_eq!(added["app"]["description"], "Invoices");
    assert_eq!(added["token"]["label"], "prod");
    assert!(added["token"]["expires_at"].is_string());
    let billing_token = added["token"]["token"].as_str().unwrap().to_owned();
    let billing_id = added["token"]["id"].as_str().unwrap().to_owned();

    let (ok, table, _) = secapp(&offline(&data, &["apps", "list"]));
    assert!(ok);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("billing") && table.contains("consume,viewer"),
        "{table}"
    );
    assert!(table.contains("ops"), "{table}");

    let issued = secapp_json(&offline(&data, &["tokens", "issue", "billing"]));
    let spare_id = issued["id"].as_str().unwrap().to_owned();
    let revoked = secapp_json(&offline(&data, &["tokens", "revoke", &spare_id]));
    assert_eq!(revoked["status"], "revoked");
    let listed = secapp_json(&offline(&data, &["tokens", "list", "--app", "billing"]));
    let statuses: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "revoked"]);

    let (ok, _, stderr) = secapp(&offline(&data, &["apps", "add", "x", "--role", "root"]));
    assert!(!ok);
    assert!(stderr.contains("unknown role `root`"), "{stderr}");
    let (ok, _, stderr) = secapp(&offline(&data, &["tokens", "revoke", "tok_nope"]));
    assert!(!ok);
    assert!(stderr.contains("no token with id"), "{stderr}");

    // The server finds an admin application and prints no first token.
    let server = ServerProcess::start(&data, &[]);
    assert!(
        !server.stdout_lines.join("\n").contains("admin token"),
        "{:?}",
        server.stdout_lines
    );
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/secapp/update", server.base()))
        .header("App-name", "billing")
        .bearer_auth(&billing_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a token issued offline works online"
    );

    // While the server runs, the data dir is its own.
    let (ok, _, stderr) = secapp(&offline(&data, &["apps", "list"]));
    assert!(!ok);
    assert!(stderr.contains("--server"), "{stderr}");

    let audit: Value = client
        .get(format!("{}/admin/audit", server.base()))
        .bearer_auth(&ops_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{audit}");
    assert!(events.iter().all(|event| event["actor"] == "secapp"));
    assert!(
        events
            .iter()
            .any(|event| event["target"] == billing_id.as_str())
    );
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_commands_manage_apps_and_tokens_with_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[]);
    let admin = server
        .stdout_lines
        .iter()
        .find_map(|line| line.trim().strip_prefix("admin token:"))
        .map(|token| token.trim().to_owned())
        .expect("first admin token");
    let base = server.base();
    let online = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        all.extend([
            "--server".into(),
            base.clone(),
            "--token".into(),
            admin.clone(),
        ]);
        all
    };
    let run = |args: &[&str]| {
        let args = online(args);
        secapp_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let added = run(&[
        "apps", "add", "payments", "--role", "consume", "--owner", "team-pay",
    ]);
    let token = added["token"]["token"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let poll = |token: String| {
        let client = client.clone();
        let url = format!("{base}/secapp/update");
        async move {
            let response = client
                .get(url)
                .header("App-name", "payments")
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(poll(token.clone()).await.0, 200);

    let disabled = run(&["apps", "disable", "payments"]);
    assert_eq!(disabled["disabled"], true);
    let (status, body) = poll(token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("app_disabled"))
    );
    run(&["apps", "enable", "payments"]);
    assert_eq!(poll(token.clone()).await.0, 200);

    let own = run(&["apps", "update", "payments", "--stale-after", "5m"]);
    assert_eq!(own["stale_after"], "5m");
    let (ok, _, stderr) = secapp(
        &online(&["apps", "update", "payments", "--stale-after", "5 min"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!ok && stderr.contains("stale_after"), "{stderr}");
    let back = run(&["apps", "update", "payments", "--stale-after", ""]);
    assert_eq!(back["stale_after"], Value::Null);

    let updated = run(&[
        "apps", "update", "payments", "--role", "consume", "--role", "publish",
    ]);
    assert_eq!(updated["roles"], json!(["publish", "consume"]));
    assert_eq!(updated["owner"], "team-pay");

    // Rotation: a second token, then the first revoked.
    let second = run(&["tokens", "issue", "payments", "--expires-in", "90d"]);
    let first_id = added["token"]["id"].as_str().unwrap();
    let revoked = run(&["tokens", "revoke", first_id]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(poll(token).await.0, 401);
    assert_eq!(
        poll(second["token"].as_str().unwrap().to_owned()).await.0,
        200
    );

    let shown = run(&["apps", "show", "payments"]);
    assert_eq!(shown["tokens"].as_array().unwrap().len(), 2);
    assert!(shown["last_used_at"].is_string() || shown["last_used_at"].is_null());

    // Refusals come back as the server's error, with a failing exit status.
    let (ok, _, stderr) = secapp(&["apps", "list", "--server", &base, "--token", "secapp_wrong"]);
    assert!(!ok);
    assert!(stderr.contains("invalid_token"), "{stderr}");
    let args = online(&["tokens", "revoke", "tok_missing"]);
    let (ok, _, stderr) = secapp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok);
    assert!(
        stderr.contains("unknown_token") && stderr.contains("404"),
        "{stderr}"
    );
    let (ok, _, stderr) = secapp(&["apps", "list", "--server", &base]);
    assert!(!ok);
    assert!(stderr.contains("SECAPP_ADMIN_TOKEN"), "{stderr}");

    let audit: Value = client
        .get(format!("{base}/admin/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let latest = &audit["events"][0];
    assert_eq!(latest["action"], "token.revoke");
    assert_eq!(latest["actor"], "admin");
    assert_eq!(latest["source_address"], "127.0.0.1");
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_beyond_year_9999_is_refused_and_a_stored_one_never_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    secapp_json(&offline(&data, &["apps", "add", "ops", "--role", "admin"]));
    secapp_json(&offline(
        &data,
        &["apps", "add", "billing", "--role", "consume"],
    ));
    // The lifetime that once wrote a year no RFC 3339 reader takes back.
    let (ok, _, stderr) = secapp(&offline(
        &data,
        &["tokens", "issue", "billing", "--expires-in", "3000000d"],
    ));
    assert!(!ok);
    assert!(stderr.contains("at most 999999d"), "{stderr}");
    // A row as that release wrote it, still in a data dir.
    let issued = secapp_json(&offline(&data, &["tokens", "issue", "billing"]));
    let broken_token = issued["token"].as_str().unwrap().to_owned();
    let broken_id = issued["id"].as_str().unwrap().to_owned();
    {
        let conn = rusqlite::Connection::open(data.join("secapp.db")).unwrap();
        let changed = conn
            .execute(
                "UPDATE tokens SET expires_at = '+10000-01-01T00:00:00.000000Z' WHERE id = ?1",
                [&broken_id],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let good = secapp_json(&offline(&data, &["tokens", "issue", "billing"]));
    let good_token = good["token"].as_str().unwrap().to_owned();

    // The server starts, serves, refuses the unreadable token and says so.
    let server = ServerProcess::start(&data, &[]);
    let client = reqwest::Client::new();
    let poll = |token: &str| {
        client
            .get(format!("{}/secapp/update", server.base()))
            .header("App-name", "billing")
            .bearer_auth(token)
            .send()
    };
    assert_eq!(poll(&good_token).await.unwrap().status(), 200);
    assert_eq!(poll(&broken_token).await.unwrap().status(), 401);
    let health: Value = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["unreadable_rows"]["tokens"], 1, "{health}");
    assert_eq!(server.terminate(), Some(0));

    // The offline command line lists it with the reason, and revokes it.
    let listed = secapp_json(&offline(&data, &["tokens", "list", "--app", "billing"]));
    let row = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["id"] == broken_id.as_str())
        .unwrap_or_else(|| panic!("not listed: {listed}"))
        .clone();
    assert_eq!(row["status"], "unreadable");
    assert_eq!(row["expires_at"], "+10000-01-01T00:00:00.000000Z");
    assert!(
        row["unreadable"].as_str().unwrap().contains("expires_at"),
        "{row}"
    );
    let revoked = secapp_json(&offline(&data, &["tokens", "revoke", &broken_id]));
    assert_eq!(revoked["status"], "revoked");

    // Revoked, it needs no one's attention: the server is healthy again.
    let server = ServerProcess::start(&data, &[]);
    let health: Value = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    assert_eq!(server.terminate(), Some(0));
}
