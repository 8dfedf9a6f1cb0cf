//! `secapp publish`, `get`, `poll`, `watch` and `simulate`, run as the real
//! binary against the real binary: output piped (plain) and `--json`,
//! `--exec`, exit codes, messages for bad arguments, completions and the
//! man page.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{ServerProcess, TOKEN, binary};

/// The binary with the settings of `app` at `base`, none inherited.
fn secapp(base: &str, app: &str, token: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .env("SECAPP_SERVER", base)
        .env("SECAPP_APP", app)
        .env("SECAPP_TOKEN", token)
        .env_remove("SECAPP_ADMIN_TOKEN")
        .env("SECAPP_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.args(args).output().expect("run secapp");
    (
        status.code().expect("an exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn start() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[("SECAPP_API_TOKEN", TOKEN)]);
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_get_and_poll_print_plainly_when_piped_and_json_when_asked() {
    let (_dir, server) = start();
    let base = server.base();
    let cli = |app: &str| secapp(&base, app, TOKEN);

    assert_eq!(
        run(&mut cli("ops"), &["get"]),
        (0, String::new(), String::new())
    );
    assert_eq!(run(&mut cli("ops"), &["get", "--json"]).1.trim(), "{}");

    let (code, out, err) = run(
        &mut cli("ops"),
        &["publish", "4", "--at", "2026-03-01T12:05:00Z"],
    );
    assert_eq!((code, out.as_str()), (0, "processed_id=1\n"), "{err}");
    // With a key, twice: recorded once, the same id both times.
    let keyed = [
        "publish",
        "5",
        "--at",
        "2026-03-01T12:06:00+01:00",
        "--idempotency-key",
        "k-1",
        "--json",
    ];
    for _ in 0..2 {
        let (code, out, err) = run(&mut cli("ops"), &keyed);
        assert_eq!(
            (code, json(&out)),
            (0, serde_json::json!({"processed_id": 2})),
            "{err}"
        );
    }

    // 12:06+01:00 is 11:06Z, older than 12:05Z: the head stays change 1.
    let (_, out, _) = run(&mut cli("billing"), &["get"]);
    assert_eq!(out, "level=4 id=1 changed_at=2026-03-01T12:05:00Z\n");
    // `get` told nobody: billing's plain poll still has news, once.
    let (_, out, _) = run(&mut cli("billing"), &["poll", "--json"]);
    assert_eq!(
        json(&out),
        serde_json::json!({"current_status": 4, "status_change_id": 1, "Change_at": "2026-03-01T12:05:00Z"})
    );
    assert_eq!(run(&mut cli("billing"), &["poll"]).1, "");
    assert_eq!(run(&mut cli("billing"), &["poll", "--json"]).1.trim(), "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_messages_say_what_went_wrong() {
    let (_dir, server) = start();
    let base = server.base();

    let (code, _, err) = run(&mut secapp(&base, "ops", "wrong-token"), &["publish", "3"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("invalid_token"), "{err}");

    let (code, _, err) = run(&mut secapp(&base, "ops", TOKEN), &["publish", "9"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("level_out_of_range") && err.contains("1..=5"),
        "{err}"
    );

    let (code, _, err) = run(
        &mut secapp(&base, "ops", TOKEN),
        &["publish", "3", "--at", "yesterday"],
    );
    assert_eq!(code, 4, "{err}");

    let (code, _, err) = run(
        &mut secapp("http://127.0.0.1:9", "ops", TOKEN),
        &["get", "--timeout", "2s"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("secapp: transport"), "{err}");

    // Bad arguments: clap's exit code 2, naming what to fix.
    let (code, _, err) = run(&mut secapp(&base, "ops", TOKEN), &["publish"]);
    assert_eq!(code, 2);
    assert!(err.contains("<LEVEL>"), "{err}");
    let (code, _, err) = run(&mut secapp(&base, "ops", TOKEN), &["publish", "four"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'four'"), "{err}");
    let (code, _, err) = run(
        Command::new(binary())
            .env_remove("SECAPP_APP")
            .env_remove("SECAPP_TOKEN"),
        &["get"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--app <NAME>") && err.contains("--token <TOKEN>"),
        "{err}"
    );
    let (code, _, err) = run(
        &mut secapp(&base, "ops", TOKEN),
        &["watch", "--transport", "carrier-pigeon"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("long-poll"), "{err}");

    // The exit codes are in --help.
    let (code, out, _) = run(&mut Command::new(binary()), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit codes:") && out.contains("3  refused"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_change_and_runs_exec_on_each_in_order() {
    let (dir, server) = start();
    let base = server.base();
    run(&mut secapp(&base, "ops", TOKEN), &["publish", "2"]);
    let log = dir.path().join("exec.log");
    // A slow command: the next change waits for it.
    let exec = format!(
        "sleep 0.2; echo \"$SECAPP_CHANGE_ID $SECAPP_LEVEL $SECAPP_CHANGED_AT\" >> {}",
        log.display()
    );
    let watching = secapp(&base, "billing", TOKEN)
        .args(["watch", "--json", "--count", "3", "--exec", &exec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    run(&mut secapp(&base, "ops", TOKEN), &["publish", "4"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    run(&mut secapp(&base, "ops", TOKEN), &["publish", "5"]);
    let output = tokio::task::spawn_blocking(move || watching.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(json)
        .collect();
    let told: Vec<(i64, i64)> = lines
        .iter()
        .map(|line| {
            (
                line["status_change_id"].as_i64().unwrap(),
                line["current_status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(told, [(1, 2), (2, 4), (3, 5)]);
    let ran = std::fs::read_to_string(&log).unwrap();
    let ran: Vec<&str> = ran.lines().collect();
    assert_eq!(ran.len(), 3, "{ran:?}");
    for ((line, (id, level)), state) in ran.iter().zip(&told).zip(&lines) {
        let at = state["Change_at"].as_str().unwrap();
        assert_eq!(*line, format!("{id} {level} {at}"));
    }

    // Plain when piped, and a failing --exec does not stop the watch.
    let (code, out, err) = run(
        &mut secapp(&base, "billing", TOKEN),
        &["watch", "--after", "2", "--count", "1", "--exec", "exit 7"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("level=5 id=3 changed_at="), "{out}");
    assert!(err.contains("--exec for change 3 failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_man_page_come_from_the_command_line_itself() {
    let (code, out, _) = run(&mut Command::new(binary()), &["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("_secapp()") && out.contains("simulate"),
        "{out}"
    );
    let (code, out, _) = run(&mut Command::new(binary()), &["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(out.contains("#compdef secapp"));
    let (code, out, _) = run(&mut Command::new(binary()), &["man"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH secapp"),
        "{out}"
    );
    assert!(out.contains("watch") && out.contains("Exit codes"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_registered_through_the_admin_api_sees_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let admin = server.admin_token();
    let (code, out, err) = run(
        &mut secapp(&server.base(), "unused", "unused"),
        &[
            "simulate",
            "--admin-token",
            &admin,
            "--producers",
            "2",
            "--consumers",
            "8",
            "--speed",
            "600",
            "--duration",
            "20m",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert!(report["publishes"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["violations"], serde_json::json!([]));
    assert_eq!(report["errors"], 0);
    let modes: Vec<&str> = report["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mode| mode["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["plain", "cursor", "long-poll", "stream"]);
    // Every consumer was told the final head; the fleet exists on the server.
    let (code, apps, err) = run(
        Command::new(binary())
            .env("SECAPP_SERVER", server.base())
            .env("SECAPP_ADMIN_TOKEN", &admin),
        &["apps", "list", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let apps = json(&apps);
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|app| app["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"sim-producer-1") && names.contains(&"sim-consumer-7"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provoked_violation_is_reported_loudly_and_fails_the_run() {
    let (_dir, server) = start();
    for (fault, said) in [
        ("repeat", "was told change"),
        ("stall", "not on the final head"),
    ] {
        let (code, out, err) = run(
            &mut secapp(&server.base(), "unused", TOKEN),
            &[
                "simulate",
                "--producers",
                "1",
                "--consumers",
                "4",
                "--speed",
                "600",
                "--duration",
                "30m",
                "--settle",
                "3s",
                "--fault",
                fault,
            ],
        );
        assert_eq!(code, 5, "{fault}: {out}\n{err}");
        assert!(
            err.contains("VIOLATION: sim-consumer-0") && err.contains(said),
            "{fault}: {err}"
        );
        assert!(out.contains("violations: 1"), "{fault}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_simulator_shows_a_progress_bar_and_violations_above_it() {
    let (_dir, server) = start();
    // `script` (util-linux, in every Debian) runs the command on a pseudo
    // terminal and copies what it shows to stdout.
    let command = format!(
        "'{}' simulate --server {} --token {TOKEN} --consumers 2 --mode stream --speed 600 \
         --duration 10m --settle 2s --fault repeat",
        binary().display(),
        server.base()
    );
    let (code, shown, err) = run(
        Command::new("script").env("NO_COLOR", "1"),
        &["--quiet", "--return", "--command", &command, "/dev/null"],
    );
    assert_eq!(code, 5, "{shown}\n{err}");
    assert!(shown.contains("[=============================="), "{shown}");
    assert!(
        shown.contains("publishes ") && shown.contains(" · violations 1"),
        "{shown}"
    );
    assert!(
        shown.contains("VIOLATION: sim-consumer-0 was told change"),
        "{shown}"
    );
    assert!(shown.contains("violations: 1"), "{shown}");
}
