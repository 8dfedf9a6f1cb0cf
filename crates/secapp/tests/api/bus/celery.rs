//! Celery: a stock `celery worker` runs one task per change, those
//! published while RabbitMQ was out of reach included.

use std::time::Duration;

use serde_json::{Value, json};

use super::amqp::RABBITMQ;
use super::{publish_all, sink, unique, with_sink};
use crate::helpers::spawn_app_with;
use crate::tcp_proxy::TcpProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_celery_worker_runs_a_task_per_change_with_the_state_as_kwargs() {
    let proxy = TcpProxy::start(RABBITMQ.parse().unwrap()).await;
    let queue = unique("secapp-test");
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded.jsonl");
    std::fs::write(
        dir.path().join("secapp_tasks.py"),
        format!(
            "import json\n\
             from celery import Celery\n\
             app = Celery('secapp_tasks', broker='amqp://guest:guest@{RABBITMQ}//')\n\
             @app.task(name='secapp.level')\n\
             def level(**state):\n\
             \x20   with open({recorded:?}, 'a') as out:\n\
             \x20       out.write(json.dumps(state) + '\\n')\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "workers",
        "kind": "celery",
        "url": format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port),
        "task": "secapp.level",
        "queue": queue,
    }))))
    .await;
    let api = app.api();
    let mut ids = publish_all(&api, &[(2, 0), (4, 1), (3, 2)]).await;
    // Relayed (the queue holds them) before the broker goes out of reach.
    let delivered =
        r#"secapp_sink_deliveries_total{sink="workers",kind="celery",outcome="delivered"}"#;
    for _ in 0..200 {
        let samples = crate::metrics::scrape(&app).await;
        if samples.get(delivered).copied().unwrap_or(0.0) >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.cut();
    ids.extend(publish_all(&api, &[(5, 3), (1, 4)]).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let mut worker = CeleryWorker::start(dir.path(), &queue);
    let mut lines = Vec::new();
    for _ in 0..600 {
        lines = std::fs::read_to_string(&recorded)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .collect();
        if lines.len() >= 5 {
            break;
        }
        worker.check();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lines
            .iter()
            .map(|state| state["status_change_id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids,
        "the worker ran one task per change, in order: {lines:?}"
    );
    assert_eq!(lines[1]["current_status"], 4);
    assert_eq!(lines[1]["Change_at"], "2026-03-01T12:01:00Z");
    assert_eq!(lines[1]["previous_status"], 2);
    app.stop().await;
}

/// A `celery worker` (one process, so tasks run in order) on `queue`, from
/// the virtualenv `.ci/brokers.sh` installs, killed when dropped.
struct CeleryWorker(std::process::Child);

impl CeleryWorker {
    fn start(dir: &std::path::Path, queue: &str) -> Self {
        let celery = std::env::var("SECAPP_CELERY").unwrap_or_else(|_| {
            format!(
                "{}/.cache/secapp-celery/bin/celery",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into())
            )
        });
        let child = std::process::Command::new(&celery)
            .current_dir(dir)
            .args([
                "-A",
                "secapp_tasks",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ])
            .env("PYTHONPATH", dir)
            .spawn()
            .unwrap_or_else(|e| panic!("start {celery} (.ci/brokers.sh installs it): {e}"));
        Self(child)
    }

    /// Fails the test if the worker has exited.
    fn check(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("the celery worker exited: {status}");
        }
    }
}

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
