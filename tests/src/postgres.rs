//! A PostgreSQL server of a test's own, made with the machine's `initdb` and provisioned as
//! `infra/dev start` provisions the development one (database `cobro`, a schema and a role per
//! service), so a test can restart it under load without touching anyone else's server.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use uuid::Uuid;

/// The database every service uses, as in development.
pub const DATABASE: &str = "cobro";

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// initdb and the server refuse to run as root: as root, they run as `postgres`.
    run_as: Option<&'static str>,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`, Debian's layout).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (infra/dev deps installs them)")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl PrivatePostgres {
    /// A fresh server on a free port, with database `cobro`, one role `cobro_<svc>` owning
    /// schema `<svc>` per service, and trust authentication on loopback only.
    pub async fn start(services: &[&str]) -> PrivatePostgres {
        let dir = std::env::temp_dir().join(format!("cobro-pg-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a data directory");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let owned = Command::new("chown").arg(format!("{user}:")).arg(&dir).status().expect("chown");
            assert!(owned.success(), "chown {user} {}", dir.display());
        }
        let server = PrivatePostgres { bin: bin_dir(), dir, port: cobro_kit::testing::free_port(), run_as };
        let data = server.data().display().to_string();
        server.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]).await;
        server.start_server().await;
        let admin = server.connect("postgres", "postgres").await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let db = server.connect("postgres", DATABASE).await;
        for service in services {
            for statement in [
                format!("CREATE ROLE cobro_{service} LOGIN"),
                format!("CREATE SCHEMA {service} AUTHORIZATION cobro_{service}"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&db).await.unwrap();
            }
        }
        db.close().await;
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// One of the server's programs, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        }
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let mut command = tokio::process::Command::from(self.command(program));
        let output = command.args(args).output().await.unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start"]).await;
    }

    /// Stop the server the way a crash does (no checkpoint, every session cut off), leave it
    /// down for `down`, then start it again on the same port; it recovers from its write-ahead
    /// log.
    pub async fn restart(&self, down: std::time::Duration) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]).await;
        tokio::time::sleep(down).await;
        self.start_server().await;
    }

    /// The URL a role connects with (trust authentication: no password).
    pub fn url(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}", self.port)
    }

    async fn connect(&self, role: &str, database: &str) -> sqlx::PgPool {
        cobro_kit::db::connect_url(&self.url(role, database), "public", 1).await.expect("the private server")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
