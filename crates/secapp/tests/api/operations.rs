//! Probes, the API documentation, and what the binary prints and stores.

use std::os::unix::fs::PermissionsExt as _;

use crate::helpers::{Api, ServerProcess, spawn_app, status_and_json};

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    let (status, _) =
        status_and_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, body) =
        status_and_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint_and_the_token() {
    let app = spawn_app().await;
    let (status, doc) = status_and_json(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let update = &doc["paths"]["/secapp/update"];
    for method in ["get", "post"] {
        let op = &update[method];
        assert!(op.is_object(), "{method} is documented");
        assert_eq!(op["security"][0]["token"], serde_json::json!([]));
        let params = op["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "App-name" && p["in"] == "header")
        );
        for code in ["400", "401"] {
            assert!(
                op["responses"][code].is_object(),
                "{method} documents {code}"
            );
        }
    }
    for code in ["413", "422", "503"] {
        assert!(
            update["post"]["responses"][code].is_object(),
            "post documents {code}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["name"],
        "Token"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, methods) in [
        ("/admin/apps", &["get", "post"][..]),
        ("/admin/apps/{name}", &["get", "patch"]),
        ("/admin/apps/{name}/tokens", &["post"]),
        ("/admin/tokens", &["get"]),
        ("/admin/tokens/{id}", &["delete"]),
        ("/admin/audit", &["get"]),
        ("/admin/auth-failures", &["get"]),
    ] {
        for method in methods {
            let op = &doc["paths"][path][method];
            for code in ["401", "403"] {
                assert!(op["responses"][code].is_object(), "{method} {path}: {code}");
            }
            assert_eq!(op["security"][1]["bearer"], serde_json::json!([]));
        }
    }
    assert!(doc["paths"]["/healthz"].is_object() && doc["paths"]["/readyz"].is_object());
    let get = &update["get"];
    assert!(get["responses"]["304"].is_object(), "304 is documented");
    let names: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["after", "wait", "If-None-Match"] {
        assert!(names.contains(&name), "poll documents {name}: {names:?}");
    }
    let stream = &doc["paths"]["/secapp/stream"]["get"];
    assert!(stream["responses"]["429"].is_object());
    assert_eq!(stream["security"][0]["token"], serde_json::json!([]));
    assert!(doc["paths"]["/secapp/consumers"]["get"]["responses"]["200"].is_object());
    assert!(doc["paths"]["/secapp/history"]["get"]["responses"]["200"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["PublishRequest"]["properties"]["Change_at"].is_object());
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no asset may come from a CDN");
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let text = response.text().await.unwrap();
        assert!(text.len() > 100, "{asset} has content");
        if asset.ends_with("initializer.js") {
            assert!(
                text.contains("/openapi.json"),
                "the UI loads our document: {text}"
            );
        }
    }
}

/// The word after `label` on a printed line.
fn printed_value(lines: &[String], label: &str) -> Option<String> {
    lines.iter().find_map(|line| {
        line.trim()
            .strip_prefix(label)
            .map(|rest| rest.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_an_admin_token_once_and_keeps_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[]);
    let printed = server.stdout_lines.join("\n");
    let token = printed_value(&server.stdout_lines, "admin token:")
        .unwrap_or_else(|| panic!("no admin token printed: {printed}"));
    assert!(
        token.starts_with("secapp_") && token.len() == 7 + 64,
        "{token}"
    );
    assert!(
        printed.contains("secapp apps add") && printed.contains("/docs"),
        "{printed}"
    );
    assert!(
        !data.join("api-token").exists(),
        "a new data dir gets no shared token"
    );
    let client = reqwest::Client::new();
    let base = server.base();
    let (status, apps) = status_and_json(
        client
            .get(format!("{base}/admin/apps"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["apps"][0]["name"], "admin");
    assert_eq!(apps["apps"][0]["roles"], serde_json::json!(["admin"]));
    assert_eq!(server.terminate(), Some(0));

    let server = ServerProcess::start(&data, &[]);
    assert!(
        !server.stdout_lines.join("\n").contains(&token),
        "the token is shown only once"
    );
    let response = client
        .get(format!("{}/admin/apps", server.base()))
        .header("Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the token outlives a restart");
    assert_eq!(server.terminate(), Some(0));
    assert_no_file_holds(&data, &token);
}

/// Reads every file in the data dir (database, WAL, lock) byte by byte.
fn assert_no_file_holds(data: &std::path::Path, token: &str) {
    let secret = token.strip_prefix("secapp_").unwrap_or(token);
    let mut read = 0;
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        read += 1;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds a plaintext token",
            path.display()
        );
    }
    assert!(read >= 2, "the database was read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_token_mode_generates_a_private_token_and_auto_keeps_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[("SECAPP_SHARED_TOKEN", "on")]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim().to_owned();
    assert!(token.len() >= 32, "at least 128 bits in hex");
    let printed = server.stdout_lines.join("\n");
    assert!(
        printed.contains(&token),
        "the shared token is printed: {printed}"
    );
    let mode = std::fs::metadata(data.join("api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(server.terminate(), Some(0));

    // `auto` (the default) keeps accepting it: this is how an installation
    // from before per-application tokens upgrades without breaking clients.
    let server = ServerProcess::start(&data, &[]);
    assert!(!server.stdout_lines.join("\n").contains(&token));
    let api = Api::shared(reqwest::Client::new(), &server.base(), &token);
    assert_eq!(api.poll("billing").await, (200, serde_json::json!({})));
    let wrong = Api::shared(reqwest::Client::new(), &server.base(), "not-the-token");
    assert_eq!(wrong.poll("billing").await.0, 401);
    assert_eq!(server.terminate(), Some(0));

    // Switched off, the same token is refused.
    let server = ServerProcess::start(&data, &[("SECAPP_SHARED_TOKEN", "off")]);
    let api = Api::shared(reqwest::Client::new(), &server.base(), &token);
    assert_eq!(api.poll("billing").await.0, 401);
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_bad_configuration_stops_start_up_with_what_to_fix() {
    let output = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--min-level", "4", "--max-level", "2"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--min-level"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fields_of_each_event() {
    use std::io::{BufRead as _, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("SECAPP_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut listening = None;
    for line in stderr.lines().map_while(Result::ok) {
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{line}"
        );
        if event["fields"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("secapp is listening"))
        {
            listening = Some(event);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("the listening line");
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["address"]
            .as_str()
            .is_some_and(|address| address.starts_with("127.0.0.1:")),
        "{listening}"
    );
}

#[test]
fn with_request_spans_on_every_event_inside_a_request_names_its_route_and_application() {
    use std::io::{BufRead as _, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let token = crate::helpers::register_offline(dir.path(), "security", "publish");
    let mut child = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("SECAPP_LOG", "info,secapp_server::routes=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("a log line").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(address) = event["fields"]["address"].as_str() {
            break address.to_owned();
        }
    };
    let body = r#"{"current_status": 3, "Change_at": "2026-03-01T12:00:00Z"}"#;
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!(
            "POST /secapp/update HTTP/1.1\r\nHost: x\r\nApp-name: security\r\nToken: {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.contains("processed_id"), "{answer}");
    let published = loop {
        let line = lines.next().expect("a log line").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["fields"]["message"] == "published" {
            break event;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(published["span"]["name"], "request", "{published}");
    assert_eq!(published["span"]["route"], "/secapp/update", "{published}");
    assert_eq!(published["span"]["method"], "POST", "{published}");
    assert_eq!(published["span"]["app"], "security", "{published}");
}
