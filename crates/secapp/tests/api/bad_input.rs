//! Bad requests get a clear JSON error and change nothing; none gets a 5xx.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Lcg, TestApp, spawn_app, status_and_json};

/// Sends one request with the given headers and body.
async fn send(
    app: &TestApp,
    method: Method,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url("/secapp/update"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    status_and_json(request.send().await.expect("send")).await
}

/// Asserts the state is exactly: head `head_id` (as seen by a new app), and
/// it is the only change recorded: a refused request recorded nothing.
async fn assert_unchanged(app: &TestApp, head_id: i64, probe: &str) {
    assert_eq!(
        app.recorded().await,
        [head_id],
        "a refusal recorded a change"
    );
    let (_, seen) = app.api().poll(probe).await;
    assert_eq!(seen["status_change_id"], json!(head_id), "head moved");
    assert_eq!(seen["current_status"], json!(2));
}

/// Method, headers, body, expected status, expected error code.
type Case<'a> = (
    Method,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
    u16,
    &'a str,
);

const GOOD: &str = r#"{"current_status": 3, "Change_at": "2026-03-01T12:10:00Z"}"#;

#[tokio::test]
async fn missing_or_wrong_credentials_are_refused_on_both_methods() {
    let app = spawn_app().await;
    let token = app.api().token("security").await;
    let head = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let body = || Some(GOOD.as_bytes().to_vec());
    let long_name = "x".repeat(129);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            vec![("Token", token.as_str())],
            None,
            400,
            "missing_app_name",
        ),
        (
            Method::POST,
            vec![("Token", token.as_str())],
            body(),
            400,
            "missing_app_name",
        ),
        (
            Method::GET,
            vec![("App-name", "billing")],
            None,
            401,
            "missing_token",
        ),
        (
            Method::POST,
            vec![("App-name", "security")],
            body(),
            401,
            "missing_token",
        ),
        (
            Method::GET,
            vec![("App-name", "billing"), ("Token", "wrong")],
            None,
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            vec![("App-name", "security"), ("Token", "wrong")],
            body(),
            401,
            "invalid_token",
        ),
        (
            Method::GET,
            vec![("App-name", "billing"), ("Token", "")],
            None,
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            vec![
                ("App-name", "security"),
                ("Token", &token[..token.len() - 1]),
            ],
            body(),
            401,
            "invalid_token",
        ),
        (
            Method::GET,
            vec![("App-name", ""), ("Token", token.as_str())],
            None,
            400,
            "invalid_app_name",
        ),
        (
            Method::POST,
            vec![("App-name", &long_name), ("Token", token.as_str())],
            body(),
            400,
            "invalid_app_name",
        ),
    ];
    for (method, headers, body, status, code) in cases {
        let (got, answer) = send(&app, method.clone(), &headers, body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{method} {headers:?}"
        );
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_unchanged(&app, head, "probe").await;
    // The refused polls as `billing` did not consume billing's delivery.
    assert_eq!(
        app.api().poll("billing").await.1["status_change_id"],
        json!(head)
    );
    assert!(
        app.api()
            .publish("security", 3, "2026-03-01T12:10:00Z")
            .await
            > head
    );
}

#[tokio::test]
async fn bad_bodies_are_refused_with_their_own_codes() {
    let app = spawn_app().await;
    let token = app.api().token("security").await;
    let head = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let far_future = (chrono::Utc::now() + chrono::TimeDelta::minutes(6)).to_rfc3339();
    let cases: Vec<(String, u16, &str)> = vec![
        (String::new(), 400, "malformed_json"),
        ("{".into(), 400, "malformed_json"),
        ("not json".into(), 400, "malformed_json"),
        (r#"{"current_status": 3,}"#.into(), 400, "malformed_json"),
        ("[]".into(), 422, "invalid_body"),
        ("null".into(), 422, "invalid_body"),
        ("{}".into(), 422, "invalid_body"),
        (
            r#"{"Change_at": "2026-03-01T12:10:00Z"}"#.into(),
            422,
            "invalid_body",
        ),
        (r#"{"current_status": "3"}"#.into(), 422, "invalid_body"),
        (r#"{"current_status": 3.5}"#.into(), 422, "invalid_body"),
        (
            r#"{"current_status": 99999999999999999999999}"#.into(),
            422,
            "invalid_body",
        ),
        (
            r#"{"current_status": 3, "Change_at": 1772366700}"#.into(),
            422,
            "invalid_body",
        ),
        (r#"{"current_status": 0}"#.into(), 422, "level_out_of_range"),
        (r#"{"current_status": 6}"#.into(), 422, "level_out_of_range"),
        (
            r#"{"current_status": -1}"#.into(),
            422,
            "level_out_of_range",
        ),
        (
            r#"{"current_status": 3, "Change_at": "soon"}"#.into(),
            422,
            "invalid_change_at",
        ),
        (
            r#"{"current_status": 3, "Change_at": ""}"#.into(),
            422,
            "invalid_change_at",
        ),
        (
            r#"{"current_status": 3, "Change_at": "2026-02-30T12:00:00Z"}"#.into(),
            422,
            "invalid_change_at",
        ),
        (
            r#"{"current_status": 3, "Change_at": "2026-03-01T24:30:00Z"}"#.into(),
            422,
            "invalid_change_at",
        ),
        (
            format!(r#"{{"current_status": 3, "Change_at": "{far_future}"}}"#),
            422,
            "change_at_in_future",
        ),
        (
            format!(
                r#"{{"current_status": 3, "pad": "{}"}}"#,
                "x".repeat(17 * 1024)
            ),
            413,
            "body_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = send(
            &app,
            Method::POST,
            &[("App-name", "security"), ("Token", token.as_str())],
            Some(body.clone().into_bytes()),
        )
        .await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "body {shown}: {answer}"
        );
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_unchanged(&app, head, "probe").await;
    assert!(
        app.api()
            .publish("security", 3, "2026-03-01T12:10:00Z")
            .await
            > head
    );
}

#[tokio::test]
async fn a_change_at_within_the_clock_skew_is_accepted() {
    let app = spawn_app().await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::minutes(4)).to_rfc3339();
    app.api().publish("security", 3, &soon).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    let token = app.api().token("security").await;
    let (status, body) =
        status_and_json(app.client.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = status_and_json(
        app.client
            .delete(app.url("/secapp/update"))
            .header("Token", token.as_str())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn no_generated_body_gets_a_server_error() {
    let app = spawn_app().await;
    let mut rng = Lcg(0x5eca_9901);
    let values = [
        "0",
        "1",
        "5",
        "-0",
        "1e3",
        "3.0",
        "\"4\"",
        "null",
        "true",
        "[]",
        "{}",
        "\"\"",
        "\"2026-03-01T12:00:00Z\"",
        "\"2026-03-01T12:00:00+14:00\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"0000-01-01T00:00:00Z\"",
        "\"2026-03-01T12:00:00.1234567891234Z\"",
        "\"\\u0000\"",
        "18446744073709551616",
        "-9223372036854775808",
    ];
    let keys = [
        "current_status",
        "Change_at",
        "change_at",
        "CURRENT_STATUS",
        "",
        "x",
    ];
    for round in 0..300 {
        let fields: Vec<String> = (0..rng.below(4))
            .map(|_| format!("\"{}\": {}", rng.pick(&keys), rng.pick(&values)))
            .collect();
        let mut body = format!("{{{}}}", fields.join(", ")).into_bytes();
        if round % 5 == 0 && !body.is_empty() {
            let cut = usize::try_from(rng.below(body.len() as u64)).unwrap();
            body.truncate(cut);
        }
        if round % 7 == 0 {
            body.push(u8::try_from(rng.below(256)).unwrap());
        }
        let response = app
            .request_as(reqwest::Method::POST, "/secapp/update", "fuzz")
            .await
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, answer) = status_and_json(response).await;
        assert!(
            status < 500,
            "{} -> {status} {answer}",
            String::from_utf8_lossy(&body)
        );
        if status != 200 {
            assert!(answer["error"].is_string() && answer["detail"].is_string());
        }
    }
}

#[tokio::test]
async fn an_app_over_its_rate_gets_429_and_other_apps_are_unaffected() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.publish_rate = 1;
        config.read_rate = 2;
        // The admin registering the test's applications is not limited.
        let unlimited = secapp_server::config::AppRateLimits {
            publish_rate: None,
            read_rate: Some(0),
        };
        config.app_rate_limits.insert("admin".into(), unlimited);
    })
    .await;
    let api = app.api();
    // Bursts of twice the rate pass, then the app is refused.

    api.publish("noisy", 2, "2026-03-01T12:00:00Z").await;
    api.publish("noisy", 3, "2026-03-01T12:01:00Z").await;
    let refused = api
        .publish_raw(
            "noisy",
            r#"{"current_status": 4, "Change_at": "2026-03-01T12:02:00Z"}"#,
        )
        .await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let (status, body) = status_and_json(refused).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    // Another app publishes, and reads have their own allowance.
    api.publish("quiet", 5, "2026-03-01T12:03:00Z").await;
    for _ in 0..4 {
        assert_eq!(api.poll("noisy").await.0, 200);
    }
    assert_eq!(api.poll("noisy").await.0, 429);
    assert_eq!(api.poll("reader").await.0, 200);
    // The refused publish changed nothing.
    let (_, head) = api.poll("observer").await;
    assert_eq!(head["current_status"], json!(5));
}

#[tokio::test]
async fn arrays_malformed_text_and_unstorable_years_are_refused_wherever_they_are() {
    let app = spawn_app().await;
    let token = app.api().token("security").await;
    let head = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        // The right values in order are still not an object.
        (
            br#"[3, "2026-11-29T09:20:00Z"]"#.to_vec(),
            422,
            "invalid_body",
        ),
        // Malformed text inside a field the server ignores.
        (
            br#"{"current_status": 3, "note": "\ud800"}"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            b"{\"current_status\": 3, \"note\": \"\xff\"}".to_vec(),
            400,
            "malformed_json",
        ),
        // Years a naive time allows but RFC 3339 cannot write back: the
        // first publish of a data dir stored so would stop its next start.
        (
            br#"{"current_status": 3, "Change_at": "-0001-01-01T00:00:00"}"#.to_vec(),
            422,
            "invalid_change_at",
        ),
        (
            br#"{"current_status": 3, "Change_at": "+10000-01-01T00:00:00"}"#.to_vec(),
            422,
            "invalid_change_at",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = send(
            &app,
            Method::POST,
            &[("App-name", "security"), ("Token", token.as_str())],
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{}: {answer}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_unchanged(&app, head, "probe").await;
    let (status, answer) = app
        .admin_json(
            Method::POST,
            "/admin/apps",
            Some(&json!(["billing", ["consume"]])),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("invalid_body"))
    );
}

#[tokio::test]
async fn every_refusal_names_what_was_wrong() {
    let app = spawn_app().await;
    let token = app.api().token("security").await;
    // An admin body's refusal describes the admin body, not a publish.
    let (status, answer) = app
        .admin_json(
            Method::POST,
            "/admin/apps",
            Some(&json!({"name": "billing"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("invalid_body"))
    );
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("roles") && !detail.contains("current_status"),
        "{detail}"
    );
    // A bad path segment is a bad path, not a bad query.
    let (status, answer) = status_and_json(
        app.as_admin(Method::GET, "/admin/apps/%ff")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_path"))
    );
    // A repeated App-name says so.
    let (status, answer) = send(
        &app,
        Method::GET,
        &[
            ("App-name", "billing"),
            ("App-name", "billing"),
            ("Token", token.as_str()),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_app_name"))
    );
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains("more than once"), "{detail}");
    // A repeated token is refused as a credential.
    let (status, answer) = send(
        &app,
        Method::GET,
        &[
            ("App-name", "billing"),
            ("Token", token.as_str()),
            ("Token", token.as_str()),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_token"))
    );
}

#[tokio::test]
async fn a_bad_parameter_is_refused_whatever_else_is_sent() {
    let app = spawn_app().await;
    let id = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    // If-None-Match would decide this poll; the bad `after` is still refused.
    let (status, answer) = status_and_json(
        app.request_as(Method::GET, "/secapp/update?after=soon", "billing")
            .await
            .header("If-None-Match", format!("\"{id}\""))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_after"))
    );
    // And the poll changed nothing: billing is still told the head.
    let (_, seen) = app.api().poll("billing").await;
    assert_eq!(seen["status_change_id"], json!(id));
}
