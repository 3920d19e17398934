//! The `cobro` binary as an operator meets it: help, bad arguments, bad configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// Run `cobro` with no Cobro settings from the environment and an empty config directory, plus
/// the given variables.
fn cobro(args: &[&str], env: &[(&str, &str)]) -> Output {
    let config_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cobro"));
    for (key, _) in std::env::vars() {
        if key.starts_with("COBRO__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("COBRO_CONFIG_DIR", config_dir.path()).env("COBRO_ENV", "test").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let out = cobro(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "bench", "COBRO__SECTION__KEY"] {
        assert!(text.contains(word), "help should mention {word}: {text}");
    }
}

#[test]
fn unknown_service_is_refused_by_name() {
    let out = cobro(&["serve", "billing"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown service `billing`"), "{err}");
    assert!(err.contains("payments"), "the message should list the known services: {err}");
}

#[test]
fn bad_flag_is_refused() {
    let out = cobro(&["serve", "all", "--port", "1"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--port"), "{}", stderr(&out));
}

#[test]
fn missing_required_key_exits_non_zero_naming_it() {
    let out = cobro(&["serve", "identity"], &[("COBRO__TELEMETRY__LOG_FORMAT", "pretty")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("identity.database_url"), "{err}");
    assert!(err.contains("COBRO__IDENTITY__DATABASE_URL"), "{err}");
}

#[test]
fn wrong_type_exits_non_zero_naming_the_key() {
    let out = cobro(
        &["serve", "invoicing"],
        &[
            ("COBRO__INVOICING__DATABASE_URL", "postgres://nobody@127.0.0.1:1/cobro"),
            ("COBRO__GRPC__CONCURRENCY_LIMIT", "lots"),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("grpc.concurrency_limit"), "{err}");
}

#[test]
fn bad_config_file_value_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[telemetry]\nlog_format = \"xml\"\n").unwrap();
    let out = cobro(&["--config", file.to_str().unwrap(), "services"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("telemetry.log_format"), "{}", stderr(&out));
}

/// Against the real Postgres: every service role can migrate its own schema (twice: the second
/// run is a no-op).
#[test]
fn migrate_applies_every_schema_and_is_idempotent() {
    let urls: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("COBRO__")).collect();
    assert!(
        urls.iter().any(|(k, _)| k == "COBRO__IDENTITY__DATABASE_URL"),
        "run the tests through `infra/dev test`, which exports the service database URLs"
    );
    let env: Vec<(&str, &str)> = urls.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for _ in 0..2 {
        let out = cobro(&["migrate"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for svc in ["identity", "invoicing", "payments", "vault", "notifications", "reconciliation"] {
            assert!(text.contains(&format!("migrated {svc}")), "{text}");
        }
    }
}

#[test]
fn the_vault_refuses_to_start_without_a_key_encryption_key_and_says_how_to_provide_one() {
    let out = cobro(
        &["serve", "vault"],
        &[
            ("COBRO__VAULT__DATABASE_URL", "postgres://cobro_vault@127.0.0.1:5432/cobro"),
            ("COBRO__TELEMETRY__LOG_FORMAT", "json"),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("vault.kek"), "{err}");
    assert!(err.contains("COBRO__VAULT__KEK") && err.contains("generate-kek"), "{err}");
}

#[test]
fn vault_generate_kek_prints_a_usable_root_key() {
    let out = cobro(&["vault", "generate-kek"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(cobro_vault::keys::LocalKeyProvider::from_base64(&key).is_ok());
}
