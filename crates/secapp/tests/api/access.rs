//! Who may do what, over HTTP: every endpoint against every kind of
//! credential, token rotation, the history's token ids, and the count of
//! refused authentications.

use std::time::Duration;

use reqwest::Method;
use secapp_api::admin::NewToken;
use serde_json::{Value, json};

use crate::helpers::{
    Api, Sse, SseReader, TOKEN, TestApp, refused, spawn_app, spawn_app_with, status_and_json,
    with_shared_token,
};

/// Everything a refusal must leave unchanged, read with the admin token.
/// Last-used times are left out: they move with the admin's own reads.
/// A token that expires after `lifetime`.
fn lifetime(lifetime: &str) -> NewToken {
    NewToken {
        expires_in: Some(lifetime.to_owned()),
        ..NewToken::default()
    }
}

/// A token with a label.
fn labelled(label: &str) -> NewToken {
    NewToken {
        label: Some(label.to_owned()),
        ..NewToken::default()
    }
}

async fn state_of(app: &TestApp) -> Value {
    let mut state = json!({});
    for path in [
        "/admin/apps",
        "/admin/audit",
        "/secapp/history",
        "/secapp/consumers",
    ] {
        let (status, mut body) = app.admin_json(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        strip_last_used(&mut body);
        state[path] = body;
    }
    state
}

fn strip_last_used(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("last_used_at");
            map.values_mut().for_each(strip_last_used);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_last_used),
        _ => {}
    }
}

/// A request with an optional token and `App-name`.
fn request(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    name: &str,
) -> reqwest::RequestBuilder {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .header("App-name", name);
    if let Some(token) = token {
        request = request.header("Token", token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request
}

/// The tokens of one role's cases.
struct Credentials {
    /// The application that holds the role.
    app: &'static str,
    right: String,
    revoked: String,
    expired: String,
    /// An application without the role, and its token.
    wrong_role: (&'static str, String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_every_bad_credential_and_changes_nothing() {
    let app = spawn_app().await;
    // `twin` holds every role: its token sent with another App-name isolates
    // the "token of another app" case from the role check.
    let twin = app
        .register("twin", &["publish", "consume", "viewer", "admin"])
        .await;
    let consumer = app.register("consumer", &["consume"]).await;
    let viewer = app.register("viewer", &["viewer"]).await;
    let producer = app.register("producer", &["publish"]).await;
    let mut credentials = Vec::new();
    for (name, right, wrong_role) in [
        ("producer", producer.clone(), ("consumer", consumer.clone())),
        ("consumer", consumer.clone(), ("producer", producer.clone())),
        ("viewer", viewer.clone(), ("consumer", consumer.clone())),
        ("admin", app.admin_token.clone(), ("viewer", viewer.clone())),
    ] {
        let (revoked, id) = app.issue_token(name, NewToken::default()).await;
        app.revoke(&id).await;
        let (expired, _) = app.issue_token(name, lifetime("1s")).await;
        credentials.push(Credentials {
            app: name,
            right,
            revoked,
            expired,
            wrong_role,
        });
    }
    let Ok([publish, consume, view, admin]) = <[Credentials; 4]>::try_from(credentials) else {
        unreachable!("four roles")
    };
    let (_, victim) = app.issue_token("consumer", labelled("victim")).await;
    // Past the one-second expiry of the `expired` tokens.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let publish_body = json!({"current_status": 3, "Change_at": "2026-03-01T12:00:00Z"});
    let new_app = json!({"name": "newcomer", "roles": ["consume"]});
    let patch = json!({"description": "changed"});
    let endpoints: Vec<(Method, String, Option<Value>, &Credentials)> = vec![
        (
            Method::POST,
            "/secapp/update".into(),
            Some(publish_body),
            &publish,
        ),
        (Method::GET, "/secapp/update".into(), None, &consume),
        (Method::GET, "/secapp/update?after=0".into(), None, &consume),
        (Method::GET, "/secapp/stream".into(), None, &consume),
        (Method::GET, "/secapp/consumers".into(), None, &view),
        (Method::GET, "/secapp/history".into(), None, &view),
        (Method::GET, "/admin/apps".into(), None, &admin),
        (Method::POST, "/admin/apps".into(), Some(new_app), &admin),
        (Method::GET, "/admin/apps/consumer".into(), None, &admin),
        (
            Method::PATCH,
            "/admin/apps/consumer".into(),
            Some(patch),
            &admin,
        ),
        (
            Method::POST,
            "/admin/apps/consumer/tokens".into(),
            Some(json!({})),
            &admin,
        ),
        (Method::GET, "/admin/tokens".into(), None, &admin),
        (
            Method::DELETE,
            format!("/admin/tokens/{victim}"),
            None,
            &admin,
        ),
        (Method::GET, "/admin/audit".into(), None, &admin),
        (Method::GET, "/admin/auth-failures".into(), None, &admin),
    ];
    for (method, path, body, who) in &endpoints {
        let before = state_of(&app).await;
        let (other, wrong_role) = &who.wrong_role;
        let cases = [
            ("no token", None, who.app, 401, "missing_token"),
            (
                "wrong token",
                Some("secapp_0000"),
                who.app,
                401,
                "invalid_token",
            ),
            (
                "revoked token",
                Some(who.revoked.as_str()),
                who.app,
                401,
                "token_revoked",
            ),
            (
                "expired token",
                Some(who.expired.as_str()),
                who.app,
                401,
                "token_expired",
            ),
            (
                "wrong role",
                Some(wrong_role.as_str()),
                other,
                403,
                "missing_role",
            ),
            (
                "another app's token",
                Some(twin.as_str()),
                who.app,
                403,
                "app_name_mismatch",
            ),
        ];
        for (case, token, name, status, code) in cases {
            let sent = request(&app, method, path, body.as_ref(), token, name);
            let (got, answer) = status_and_json(sent.send().await.unwrap()).await;
            assert_eq!(
                (got, answer["error"].as_str()),
                (status, Some(code)),
                "{method} {path} with {case}: {answer}"
            );
            assert!(!answer["detail"].as_str().unwrap().is_empty());
        }
        assert_eq!(
            state_of(&app).await,
            before,
            "{method} {path}: a refusal changed something"
        );
        let response = request(&app, method, path, body.as_ref(), Some(&who.right), who.app)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path} with the right token: {}",
            response.status()
        );
    }
}

/// Polls as `name` with `token`, sent as `Authorization: Bearer`.
async fn poll_with(app: &TestApp, name: &str, token: &str) -> (u16, Value) {
    status_and_json(
        app.with_token(Method::GET, "/secapp/update", token)
            .header("App-name", name)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Publishes as `security-team` with `token`.
async fn publish_with(app: &TestApp, token: &str, level: i64, at: &str) -> i64 {
    let (status, body) = status_and_json(
        app.with_token(Method::POST, "/secapp/update", token)
            .header("App-name", "security-team")
            .json(&json!({"current_status": level, "Change_at": at}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["processed_id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_and_fifty_consumers_rotate_a_token_without_missing_a_change() {
    let app = spawn_app_with(with_shared_token).await;
    let producer = app.register("security-team", &["publish"]).await;
    let mut consumers = Vec::new();
    for n in 0..50 {
        let name = format!("service-{n:02}");
        let token = app.register(&name, &["consume"]).await;
        consumers.push((name, token));
    }
    let first = publish_with(&app, &producer, 3, "2026-03-01T12:00:00Z").await;
    // Registered consumers that never connected are the ones behind.
    let (_, report) = app
        .admin_json(Method::GET, "/secapp/consumers?behind=true", None)
        .await;
    let behind = report["consumers"].as_array().unwrap();
    assert_eq!(behind.len(), 50, "{report}");
    assert!(
        behind
            .iter()
            .all(|c| c["registered"] == true && c["sent"].is_null())
    );
    for (name, token) in &consumers {
        let (status, body) = poll_with(&app, name, token).await;
        assert_eq!(
            (status, body["status_change_id"].as_i64()),
            (200, Some(first))
        );
    }

    // Rotate service-07: a second token goes live, the change published
    // meanwhile reaches the app once (its cursor belongs to the app, not the
    // token), and the old token is revoked.
    let (name, old) = consumers[7].clone();
    let old_id = app
        .client
        .get(app.url(&format!("/admin/tokens?app={name}")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (new, _) = app.issue_token(&name, labelled("rotation")).await;
    let second = publish_with(&app, &producer, 4, "2026-03-01T12:05:00Z").await;
    let (_, told) = poll_with(&app, &name, &new).await;
    assert_eq!(told["status_change_id"].as_i64(), Some(second));
    assert_eq!(
        poll_with(&app, &name, &old).await,
        (200, json!({})),
        "told once, whichever token"
    );
    app.revoke(&old_id).await;
    let (status, body) = poll_with(&app, &name, &old).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_revoked"))
    );
    let third = publish_with(&app, &producer, 5, "2026-03-01T12:10:00Z").await;
    for (n, (name, token)) in consumers.iter().enumerate() {
        let token = if n == 7 { &new } else { token };
        let (_, body) = poll_with(&app, name, token).await;
        assert_eq!(
            body["status_change_id"].as_i64(),
            Some(third),
            "consumer {n}"
        );
    }
    // Nobody is behind.
    let (_, report) = app
        .admin_json(Method::GET, "/secapp/consumers?behind=true", None)
        .await;
    assert_eq!(report["consumers"], json!([]));

    // No app can read as another, with its own token or the shared one.
    refused(
        app.with_token(Method::GET, "/secapp/update", &consumers[1].1)
            .header("App-name", &consumers[2].0),
        403,
        "app_name_mismatch",
    )
    .await;
    let shared = Api::shared(app.client.clone(), &app.base, TOKEN);
    let (status, body) = shared.poll(&consumers[2].0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("shared_token_not_allowed"))
    );
    assert_eq!(shared.poll("unregistered-legacy").await.0, 200);

    // The history says who published what, with which token.
    let (_, history) = app.admin_json(Method::GET, "/secapp/history", None).await;
    let (_, producer_app) = app
        .admin_json(Method::GET, "/admin/apps/security-team", None)
        .await;
    let producer_token = producer_app["tokens"][0]["id"].as_str().unwrap();
    for change in history["changes"].as_array().unwrap() {
        assert_eq!(change["published_by"], "security-team");
        assert_eq!(change["token_id"], producer_token);
    }
    assert_eq!(history["changes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_token_may_come_as_bearer_or_token_header_but_not_two_different_ones() {
    let app = spawn_app().await;
    let token = app.register("billing", &["consume"]).await;
    let plain = |header: &'static str, value: String| {
        app.client
            .get(app.url("/secapp/update"))
            .header("App-name", "billing")
            .header(header, value)
            .send()
    };
    assert_eq!(plain("Token", token.clone()).await.unwrap().status(), 200);
    assert_eq!(
        plain("Authorization", format!("bearer {token}"))
            .await
            .unwrap()
            .status(),
        200
    );
    // The prototype's endpoints need App-name with any token, as the
    // contract says; the reports take the application from the token.
    refused(
        app.with_token(Method::GET, "/secapp/update", &token),
        400,
        "missing_app_name",
    )
    .await;
    let both = app
        .client
        .get(app.url("/secapp/update"))
        .header("App-name", "billing")
        .header("Token", TOKEN)
        .bearer_auth(&token);
    refused(both, 401, "conflicting_credentials").await;
    let basic = plain("Authorization", "Basic YWRtaW46YWRtaW4=".into())
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn refused_authentications_are_counted_with_who_from_where_and_why() {
    let app = spawn_app().await;
    let consumer = app.register("billing", &["consume"]).await;
    for _ in 0..3 {
        let response = app
            .client
            .get(app.url("/secapp/update"))
            .header("App-name", "billing")
            .header("Token", "guess")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let history = app.with_token(Method::GET, "/secapp/history", &consumer);
    let body = refused(history, 403, "missing_role").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("`viewer` or `admin`") && detail.contains("consume"),
        "{detail}"
    );
    let (status, report) = app
        .admin_json(Method::GET, "/admin/auth-failures", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["total"], 4);
    assert_eq!(
        report["by_reason"],
        json!({"invalid_token": 3, "missing_role": 1})
    );
    let latest = &report["recent"][0];
    assert_eq!(latest["reason"], "missing_role");
    assert_eq!(latest["app"], "billing");
    assert_eq!(latest["source_address"], "127.0.0.1");
    assert_eq!(latest["request"], "GET /secapp/history");
    assert!(
        !report.to_string().contains("guess"),
        "a refused token is never shown"
    );
}

#[tokio::test]
async fn admin_actions_are_audited_with_actor_token_and_source() {
    let app = spawn_app().await;
    app.register("billing", &["consume"]).await;
    let (status, body) = app
        .admin_json(
            Method::PATCH,
            "/admin/apps/billing",
            Some(&json!({"disabled": true})),
        )
        .await;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(true)));
    let (_, audit) = app
        .admin_json(Method::GET, "/admin/audit?limit=3", None)
        .await;
    let events = audit["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["app.update", "token.issue", "app.create"]);
    assert_eq!(events[0]["actor"], "admin");
    assert!(
        events[0]["actor_token"]
            .as_str()
            .unwrap()
            .starts_with("tok_")
    );
    assert_eq!(events[0]["source_address"], "127.0.0.1");
    assert_eq!(events[0]["target"], "billing");
    assert_eq!(events[0]["detail"], json!({"disabled": true}));
    assert_eq!(events[1]["detail"]["app"], "billing");
    let next = audit["next_before"]
        .as_i64()
        .expect("another page: the first start");
    let (_, older) = app
        .admin_json(Method::GET, &format!("/admin/audit?before={next}"), None)
        .await;
    let actors: Vec<&str> = older["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["secapp", "secapp"],
        "the first start's app and token"
    );
    // Bad admin input: a clear JSON error, nothing recorded.
    for (method, path, body, code) in [
        (
            Method::POST,
            "/admin/apps",
            json!({"name": "x", "roles": ["root"]}),
            "invalid_field",
        ),
        (
            Method::POST,
            "/admin/apps",
            json!({"name": "x", "roles": ["consume"], "colour": 1}),
            "invalid_body",
        ),
        (
            Method::POST,
            "/admin/apps",
            json!({"name": "billing", "roles": ["consume"]}),
            "app_exists",
        ),
        (
            Method::PATCH,
            "/admin/apps/nobody",
            json!({"owner": "me"}),
            "unknown_app",
        ),
        (
            Method::PATCH,
            "/admin/apps/admin",
            json!({"disabled": true}),
            "last_admin",
        ),
        (
            Method::POST,
            "/admin/apps/billing/tokens",
            json!({"expires_in": "later"}),
            "invalid_field",
        ),
        // Expiries the store could not read back are refused, not written.
        (
            Method::POST,
            "/admin/apps/billing/tokens",
            json!({"expires_in": "3000000d"}),
            "invalid_field",
        ),
        (
            Method::POST,
            "/admin/apps/billing/tokens",
            json!({"expires_at": "9999-12-31T23:00:00-05:00"}),
            "invalid_field",
        ),
        (
            Method::POST,
            "/admin/apps",
            json!({"name": " billing2", "roles": ["consume"]}),
            "invalid_field",
        ),
        (
            Method::DELETE,
            "/admin/tokens/tok_nope",
            Value::Null,
            "unknown_token",
        ),
    ] {
        let body = (!body.is_null()).then_some(&body);
        let (status, answer) = app.admin_json(method.clone(), path, body).await;
        assert_eq!(answer["error"], code, "{method} {path}: {status} {answer}");
        assert!((400..500).contains(&status));
    }
    let (_, after) = app
        .admin_json(Method::GET, "/admin/audit?limit=1", None)
        .await;
    assert_eq!(
        after["events"][0]["id"], events[0]["id"],
        "no refusal was audited"
    );
}

/// Opens a stream as `name` with `token` and reads the first event.
async fn open_stream(app: &TestApp, token: &str, name: &str) -> SseReader {
    let request = app
        .client
        .get(app.url("/secapp/stream"))
        .header("Token", token)
        .header("App-name", name);
    let mut reader = SseReader::new(request.send().await.unwrap());
    reader
        .next_event(PATIENCE)
        .await
        .expect("the current state");
    reader
}

/// Reads until the stream ends; panics if it does not within `PATIENCE`.
async fn ends(reader: &mut SseReader) -> bool {
    loop {
        match reader.next(PATIENCE).await {
            None => return true,
            Some(Sse::Comment(_)) => {}
            Some(Sse::Event { id, .. }) => panic!("unexpected event {id}"),
        }
    }
}

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_once_its_caller_is_no_longer_admitted() {
    let app = spawn_app_with(|config| {
        config.heartbeat = Duration::from_millis(200);
        with_shared_token(config);
    })
    .await;
    let producer = app.register("security-team", &["publish"]).await;
    publish_with(&app, &producer, 2, "2026-03-01T12:00:00Z").await;
    let (revoked, revoked_id) = {
        app.register("revoked-app", &["consume"]).await;
        app.issue_token("revoked-app", NewToken::default()).await
    };
    let disabled = app.register("disabled-app", &["consume"]).await;
    let demoted = app.register("demoted-app", &["consume"]).await;
    let kept = app.register("kept-app", &["consume"]).await;
    let (expiring, _) = app.issue_token("kept-app", lifetime("2s")).await;

    let mut streams = vec![
        ("revoked", open_stream(&app, &revoked, "revoked-app").await),
        (
            "disabled",
            open_stream(&app, &disabled, "disabled-app").await,
        ),
        ("demoted", open_stream(&app, &demoted, "demoted-app").await),
        ("expiring", open_stream(&app, &expiring, "kept-app").await),
        ("shared", open_stream(&app, TOKEN, "legacy").await),
    ];
    let mut kept_stream = open_stream(&app, &kept, "kept-app").await;

    app.revoke(&revoked_id).await;
    for (path, body) in [
        ("/admin/apps/disabled-app", json!({"disabled": true})),
        ("/admin/apps/demoted-app", json!({"roles": ["viewer"]})),
    ] {
        let (status, answer) = app.admin_json(Method::PATCH, path, Some(&body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Registering a name ends the shared token's stream for it.
    app.register("legacy", &["consume"]).await;
    for (case, reader) in &mut streams {
        assert!(ends(reader).await, "{case}");
    }
    // Reconnecting is refused, with the reason.
    refused(
        app.client
            .get(app.url("/secapp/stream"))
            .header("Token", &revoked)
            .header("App-name", "revoked-app"),
        401,
        "token_revoked",
    )
    .await;
    // The unaffected stream still gets the next change.
    let id = publish_with(&app, &producer, 4, "2026-03-01T12:05:00Z").await;
    let (event_id, _) = kept_stream.next_event(PATIENCE).await.unwrap();
    assert_eq!(event_id, id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_long_poll_answers_with_the_refusal_once_its_caller_is_no_longer_admitted() {
    let app = spawn_app().await;
    let producer = app.register("security-team", &["publish"]).await;
    let id = publish_with(&app, &producer, 2, "2026-03-01T12:00:00Z").await;
    app.register("revoked-app", &["consume"]).await;
    let (revoked, revoked_id) = app.issue_token("revoked-app", NewToken::default()).await;
    let demoted = app.register("demoted-app", &["consume"]).await;
    let hold = |name: &'static str, token: String| {
        let request = app
            .client
            .get(app.url(&format!("/secapp/update?after={id}&wait=50")))
            .header("App-name", name)
            .bearer_auth(token);
        tokio::spawn(async move { status_and_json(request.send().await.unwrap()).await })
    };
    let held_revoked = hold("revoked-app", revoked);
    let held_demoted = hold("demoted-app", demoted);
    // Both are waiting: nothing is new for them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held_revoked.is_finished() && !held_demoted.is_finished());

    app.revoke(&revoked_id).await;
    let (status, body) = tokio::time::timeout(PATIENCE, held_revoked)
        .await
        .expect("answered at once, not after the 50 s wait")
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_revoked"))
    );

    let (status, _) = app
        .admin_json(
            Method::PATCH,
            "/admin/apps/demoted-app",
            Some(&json!({"roles": ["viewer"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = tokio::time::timeout(PATIENCE, held_demoted)
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("missing_role"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("`consume`"),
        "{body}"
    );
}
