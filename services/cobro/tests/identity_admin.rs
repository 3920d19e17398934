//! `cobro identity ...` against the development database that `infra/dev` provisions: what an
//! operator types before anyone can sign in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// Run `cobro` with the environment `infra/dev` exported (database, Redis, identity secrets).
fn cobro(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cobro"))
        .env("COBRO_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"))
        .env("COBRO__TELEMETRY__METRICS_LISTEN", "")
        .env("COBRO__TELEMETRY__LOG_FORMAT", "json")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn generate_secrets_prints_usable_keys() {
    let out = cobro(&["identity", "generate-secrets"], "");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let data_key = stdout.lines().find_map(|l| l.strip_prefix("COBRO__IDENTITY__DATA_KEY=")).unwrap();
    let pepper = stdout.lines().find_map(|l| l.strip_prefix("COBRO__IDENTITY__API_KEY_PEPPER=")).unwrap();
    assert!(cobro_identity::domain::secret::DataKey::from_base64(data_key).is_ok());
    assert!(cobro_identity::domain::secret::Pepper::from_base64(pepper).is_ok());
}

#[test]
fn bootstrap_tenant_creates_the_first_tenant_and_refuses_bad_input() {
    std::env::var("COBRO__IDENTITY__DATABASE_URL")
        .expect("COBRO__IDENTITY__DATABASE_URL is not set: run the tests through `infra/dev test`");
    let slug = format!("cli-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let args = [
        "identity",
        "bootstrap-tenant",
        "--slug",
        &slug,
        "--name",
        "Ferretería del Norte",
        "--owner-email",
        "dueña@ferreteria.example.com",
        "--owner-name",
        "Dueña",
    ];
    // A non-ASCII email is refused, naming the field, and the password never shows.
    let out = cobro(&args, "una frase larga y segura\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("owner_email"), "{}", text(&out));

    let mut args = args;
    args[7] = "duena@ferreteria.example.com";
    let out = cobro(&args, "password1234\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("owner_password") && !text(&out).contains("password1234"), "{}", text(&out));

    let out = cobro(&args, "una frase larga y segura\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("tenant {slug}")));

    let again = cobro(&args, "una frase larga y segura\n");
    assert!(!again.status.success());
    assert!(text(&again).contains("slug"), "{}", text(&again));
}

#[test]
fn service_client_prints_a_secret_once_and_refuses_unknown_names() {
    std::env::var("COBRO__IDENTITY__DATABASE_URL")
        .expect("COBRO__IDENTITY__DATABASE_URL is not set: run the tests through `infra/dev test`");
    let out = cobro(&["identity", "service-client", "reconciliation"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("client_secret=css_"));
    let out = cobro(&["identity", "service-client", "mallory"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("name"), "{}", text(&out));
}
