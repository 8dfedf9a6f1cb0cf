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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_a_private_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[]);
    let printed = server.stdout_lines.join("\n");
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim().to_owned();
    assert!(token.len() >= 32, "at least 128 bits in hex");
    assert!(printed.contains(&token), "the token is printed: {printed}");
    assert!(
        printed.contains("curl") && printed.contains("/docs"),
        "{printed}"
    );
    let mode = std::fs::metadata(data.join("api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(server.terminate(), Some(0));

    let server = ServerProcess::start(&data, &[]);
    assert!(
        !server.stdout_lines.join("\n").contains(&token),
        "the token is shown only once"
    );
    let client = reqwest::Client::new();
    let base = server.base();
    let api = Api::new(client, &base, &token);
    assert_eq!(api.poll("billing").await, (200, serde_json::json!({})));
    let wrong = Api {
        token: "not-the-token".into(),
        ..api.clone()
    };
    assert_eq!(wrong.poll("billing").await.0, 401);
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
