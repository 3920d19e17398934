//! `cobro`: the one binary. Which services run is chosen by arguments, so one image serves
//! every Deployment.

mod bench;
mod bench_invoicing;
mod bench_payments;
mod bench_recon;
mod bench_reminders;
mod bench_vault;
mod demo;
mod identity_admin;
mod import;
mod statement_cli;
mod vault_admin;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cobro_kit::config::{Layers, Settings};
use cobro_kit::telemetry::TelemetryConfig;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

/// Every service `cobro serve` knows, in start order.
fn known_services() -> impl Iterator<Item = &'static str> {
    cobro_kit::service::SERVICES.iter().map(|(name, _)| *name)
}

#[derive(Debug, Parser)]
#[command(
    name = "cobro",
    version,
    about = "Cobro: accounts receivable and B2B payments",
    long_about = "Cobro: accounts receivable and B2B payments.\n\n\
        Configuration is read from config/default.toml, config/<COBRO_ENV>.toml, --config FILE and\n\
        COBRO__SECTION__KEY environment variables, later ones winning.",
    after_help = "Examples:\n  cobro serve all\n  cobro serve payments vault\n  cobro migrate invoicing\n  cobro bench outbox --events 20000"
)]
struct Cli {
    /// An extra TOML file applied over config/ (must exist).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one or more services in this process, or `all` of them.
    Serve {
        /// Services to run: identity, invoicing, payments, vault, notifications, reconciliation,
        /// gateway, or all.
        #[arg(required = true, value_name = "SERVICE", value_parser = parse_service_or_all)]
        services: Vec<String>,
    },
    /// Run every service with a demo tenant seeded through their APIs; print how to sign in.
    ///
    /// The services run as with `serve all`. Running it again reuses the tenant. `cobro demo code`
    /// prints the demo owner's current TOTP code.
    Demo(demo::Args),
    /// Apply database migrations, for the named services or all of them, and exit.
    Migrate {
        #[arg(value_name = "SERVICE", value_parser = parse_service)]
        services: Vec<String>,
    },
    /// List the services with their default ports.
    Services,
    /// Import data from files (ERP exports).
    Import {
        #[command(subcommand)]
        what: import::Command,
    },
    /// Identity administration: secrets, the first tenant, service clients, signing keys.
    Identity {
        #[command(subcommand)]
        command: identity_admin::Command,
    },
    /// Vault administration: key-encryption keys.
    Vault {
        #[command(subcommand)]
        command: vault_admin::Command,
    },
    /// Bank statements: read a file as reconciliation does.
    Statement {
        #[command(subcommand)]
        command: statement_cli::Command,
    },
    /// Measure a scenario on this machine; the last line printed is the result.
    Bench {
        #[command(subcommand)]
        scenario: bench::Scenario,
    },
}

fn parse_service(name: &str) -> Result<String, String> {
    if known_services().any(|known| known == name) {
        Ok(name.to_owned())
    } else {
        let known: Vec<&str> = known_services().collect();
        Err(format!("unknown service `{name}`; known services: {}", known.join(", ")))
    }
}

fn parse_service_or_all(name: &str) -> Result<String, String> {
    if name == "all" { Ok(name.to_owned()) } else { parse_service(name) }
}

/// Expand `all`, drop repeats, keep start order.
fn resolve(services: &[String]) -> Vec<&'static str> {
    let all = services.iter().any(|s| s == "all");
    known_services().filter(|name| all || services.iter().any(|s| s == name)).collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Layers::from_env(cli.config.clone()).load() {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    let telemetry: TelemetryConfig = match settings.section("telemetry") {
        Ok(t) => t,
        Err(err) => return fail(&err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => return fail(&err),
    };
    runtime.block_on(async move {
        let _telemetry = cobro_kit::telemetry::init(&process_name(&cli.command), &telemetry);
        let outcome = match cli.command {
            Command::Serve { services } => serve(&settings, &telemetry, &resolve(&services)).await,
            Command::Demo(args) => demo::run(&settings, &telemetry, args).await,
            Command::Migrate { services } => {
                let names = if services.is_empty() { resolve(&["all".to_owned()]) } else { resolve(&services) };
                migrate(&settings, &names).await
            }
            Command::Services => {
                for (name, port) in cobro_kit::service::SERVICES {
                    println!("{name:<16} 127.0.0.1:{port}");
                }
                Ok(())
            }
            Command::Bench { scenario } => bench::run(&settings, scenario).await,
            Command::Identity { command } => identity_admin::run(&settings, command).await,
            Command::Import { what } => import::run(what).await,
            Command::Vault { command } => vault_admin::run(&settings, command).await,
            Command::Statement { command } => statement_cli::run(command),
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err.as_ref()),
        }
    })
}

/// The service name traces carry: `cobro-payments` for `cobro serve payments`.
fn process_name(command: &Command) -> String {
    match command {
        Command::Serve { services } if services.len() == 1 => format!("cobro-{}", services.join("")),
        _ => "cobro".to_owned(),
    }
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("cobro: {err}");
    ExitCode::FAILURE
}

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Serving = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// What the binary knows of each service: how to serve it and, for services that keep state,
/// their migrations. Names and ports come from `cobro_kit::service::SERVICES`.
struct Entry {
    name: &'static str,
    serve: fn(Settings, CancellationToken) -> Serving,
    migrator: Option<fn() -> Migrator>,
}

macro_rules! entry {
    ($name:literal, $krate:ident) => {
        entry!($name, $krate, None)
    };
    ($name:literal, $krate:ident, migrations) => {
        entry!($name, $krate, Some($krate::migrator))
    };
    ($name:literal, $krate:ident, $migrator:expr) => {
        Entry {
            name: $name,
            serve: |settings, shutdown| {
                Box::pin(async move { $krate::serve(&settings, shutdown).await.map_err(Failure::from) })
            },
            migrator: $migrator,
        }
    };
}

fn registry() -> [Entry; 7] {
    [
        entry!("identity", cobro_identity, migrations),
        entry!("invoicing", cobro_invoicing, migrations),
        entry!("payments", cobro_payments, migrations),
        entry!("vault", cobro_vault, migrations),
        entry!("notifications", cobro_notifications, migrations),
        entry!("reconciliation", cobro_reconciliation, migrations),
        // The gateway keeps no state of its own.
        entry!("gateway", cobro_gateway),
    ]
}

fn lookup(name: &str) -> Option<Entry> {
    registry().into_iter().find(|entry| entry.name == name)
}

/// Run the services side by side; the first to fail stops the others.
async fn serve(settings: &Settings, telemetry: &TelemetryConfig, names: &[&'static str]) -> Result<(), Failure> {
    let shutdown = cobro_kit::shutdown::on_signals();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = telemetry.metrics_addr() {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            // Metrics are for operators; a taken port must not stop payments.
            if let Err(err) = cobro_kit::telemetry::metrics::serve(addr, shutdown).await {
                tracing::warn!(%addr, error = %err, "metrics endpoint unavailable");
            }
            Ok(())
        });
    }
    for name in names {
        if let Some(entry) = lookup(name) {
            tasks.spawn((entry.serve)(settings.clone(), shutdown.clone()));
        }
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(Failure::from).and_then(|r| r);
        if let Err(err) = result {
            tracing::error!(error = %err, "stopping every service");
            first_error.get_or_insert(err);
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn migrate(settings: &Settings, names: &[&'static str]) -> Result<(), Failure> {
    for name in names {
        let Some(migrator) = lookup(name).and_then(|entry| entry.migrator) else {
            continue;
        };
        let migrator = migrator();
        cobro_kit::service::migrate_only(settings, name, &migrator).await?;
        println!("migrated {name}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_service_can_be_served() {
        for name in known_services() {
            assert!(lookup(name).is_some(), "`cobro serve {name}` has no entry");
        }
        assert_eq!(registry().len(), known_services().count());
    }
}
