//! Helpers for integration tests against the real Postgres and broker that `infra/dev` starts.
//!
//! Each test gets its own schema and its own topics, so tests run in parallel without seeing
//! each other. Tests that stop the broker start a private one ([`TansuBroker`]) instead of
//! disturbing the shared one. Missing environment is a loud failure, never a silent skip.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod smtp;

use std::net::TcpListener as StdTcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::config::KafkaConfig;

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `infra/dev test` (it starts Postgres, Redis and the broker and exports it)")
    })
}

/// Admin URL able to create schemas in the `cobro` database.
pub fn database_url() -> String {
    required_env("COBRO_TEST_DATABASE_URL")
}

/// The shared development broker.
pub fn kafka() -> KafkaConfig {
    KafkaConfig { brokers: vec![required_env("COBRO_TEST_KAFKA_BROKERS")], ..KafkaConfig::default() }
}

/// A throwaway schema with the kit's tables and `migrator`'s, dropped by [`TestDb::drop_schema`]
/// (or by `infra/dev test` at the next run, for tests that died).
pub struct TestDb {
    pub pool: PgPool,
    pub schema: String,
}

impl TestDb {
    pub async fn new(migrator: &Migrator) -> TestDb {
        let schema = format!("t_{}", Uuid::now_v7().simple());
        let url = database_url();
        let admin = crate::db::connect_url(&url, "public", 1).await.expect("connect to the test database");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create test schema");
        admin.close().await;
        let pool = crate::db::connect_url(&url, &schema, 20).await.expect("connect to the test schema");
        crate::db::migrate(&pool, &schema, migrator).await.expect("migrate the test schema");
        TestDb { pool, schema }
    }

    /// A second pool on the same schema (a "restarted process").
    pub async fn another_pool(&self, max_connections: u32) -> PgPool {
        crate::db::connect_url(&database_url(), &self.schema, max_connections)
            .await
            .expect("connect to the test schema")
    }

    pub async fn drop_schema(self) {
        self.pool.close().await;
        if let Ok(admin) = crate::db::connect_url(&database_url(), "public", 1).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}

/// The shared development Redis.
pub fn redis_url() -> String {
    required_env("COBRO_TEST_REDIS_URL")
}

/// A private `redis-server` on a free port with nothing persisted, for tests that stop Redis to
/// prove a service fails the way it should.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut server = RedisServer { port: free_port(), child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start (again) on the same port, empty, and wait until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e} (infra/dev deps installs it)"));
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A migrator with no migrations, for tests that need only the kit's tables.
pub fn no_migrations() -> Migrator {
    Migrator::with_migrations(Vec::new())
}

/// A fresh topic name, created on `kafka`.
pub async fn unique_topic(kafka: &KafkaConfig, prefix: &str) -> String {
    let topic = format!("test.{prefix}.{}", Uuid::now_v7().simple());
    crate::events::ensure_topics(kafka, std::slice::from_ref(&topic)).await.expect("create test topic");
    topic
}

/// A private tansu broker with SQLite storage in a temporary directory, for tests that stop
/// and restart the broker. The storage survives restarts, like a real broker's disk.
pub struct TansuBroker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl TansuBroker {
    pub fn binary() -> PathBuf {
        std::env::var_os("COBRO_TANSU_BIN").map_or_else(|| PathBuf::from("tansu"), PathBuf::from)
    }

    pub async fn start() -> TansuBroker {
        let dir = tempfile::tempdir().expect("temp dir for the broker");
        let port = free_port();
        let mut broker = TansuBroker { dir, port, child: None };
        broker.restart().await;
        broker
    }

    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig { brokers: vec![format!("127.0.0.1:{}", self.port)], ..KafkaConfig::default() }
    }

    /// Kill the broker process (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start (again) on the same port and storage, and wait until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).expect("broker log");
        let child = Command::new(Self::binary())
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (infra/dev deps installs it)", Self::binary().display()));
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default();
        panic!("tansu did not start on port {}: {log}", self.port);
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Poll `check` until it returns true or `timeout` passes; returns the last answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
