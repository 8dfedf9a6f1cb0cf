//! A PostgreSQL database of its own for one test, created on first use and
//! dropped after it, on the server `SECAPP_TEST_DATABASE_URL` names
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, what
//! `.ci/postgres.sh` provides). When the server does not answer, the test
//! fails: a skipped PostgreSQL test is not a passing one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::Backend;
use crate::store::Store;
use crate::store::postgres::PostgresStore;

fn server_url() -> String {
    std::env::var("SECAPP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test.
pub struct TempPostgres {
    name: String,
    url: OnceCell<String>,
}

impl TempPostgres {
    /// A database not created yet.
    #[must_use]
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "secapp_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        Self {
            name,
            url: OnceCell::new(),
        }
    }

    /// Its URL, creating the database on the first call.
    pub async fn url(&self) -> &str {
        self.url.get_or_init(|| self.create()).await
    }

    async fn create(&self) -> String {
        let server = server_url();
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {server} does not answer ({e}): start it (.ci/postgres.sh) \
                     or set SECAPP_TEST_DATABASE_URL"
                )
            });
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {}", self.name))
            .await
            .unwrap();
        let mut config: tokio_postgres::Config = server.parse().unwrap();
        config.dbname(&self.name);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }
}

impl Default for TempPostgres {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.url.get().is_none() {
            return;
        }
        let name = self.name.clone();
        // The test's runtime is ending; drop the database from a thread of
        // its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&server_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

#[async_trait]
impl Backend for TempPostgres {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::open(self.url().await).await.unwrap())
    }
}
