//! `cobro identity ...`: what an operator does before anyone can sign in.

use std::io::BufRead as _;

use clap::Subcommand;
use cobro_identity::app::TenantBootstrap;
use cobro_identity::domain::secret::{DataKey, Pepper};
use cobro_kit::config::Settings;
use secrecy::ExposeSecret as _;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print fresh values for identity's two secrets, as environment assignments.
    GenerateSecrets,
    /// Create a tenant and its owner. The owner's password is read from the environment
    /// variable COBRO_OWNER_PASSWORD, or else from the first line of standard input.
    BootstrapTenant {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "es-MX")]
        locale: String,
        #[arg(long, default_value = "America/Mexico_City")]
        timezone: String,
        #[arg(long)]
        owner_email: String,
        #[arg(long)]
        owner_name: String,
    },
    /// Create a service client (a Cobro service, or `operator`) or replace its secret; prints
    /// the secret once.
    ServiceClient { name: String },
    /// Publish a new token-signing key; it signs after the configured publish delay.
    RotateSigningKey,
}

pub async fn run(settings: &Settings, command: Command) -> Result<(), Failure> {
    match command {
        Command::GenerateSecrets => {
            println!("COBRO__IDENTITY__DATA_KEY={}", DataKey::generate().to_base64());
            println!("COBRO__IDENTITY__API_KEY_PEPPER={}", Pepper::generate().to_base64());
        }
        Command::BootstrapTenant { slug, name, locale, timezone, owner_email, owner_name } => {
            let owner_password = match std::env::var("COBRO_OWNER_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let app = cobro_identity::admin(settings).await?;
            let (tenant, owner) = app
                .bootstrap_tenant(
                    None,
                    TenantBootstrap {
                        slug,
                        name,
                        default_locale: locale,
                        default_timezone: timezone,
                        owner_email,
                        owner_name,
                        owner_password,
                    },
                )
                .await
                .map_err(|e| Failure::from(cobro_kit::error::to_status(&e).message().to_owned()))?;
            println!("tenant {} ({}) created; owner {}", tenant.slug, tenant.id, owner.email);
        }
        Command::ServiceClient { name } => {
            let app = cobro_identity::admin(settings).await?;
            let secret = app
                .put_service_client(&name)
                .await
                .map_err(|e| Failure::from(cobro_kit::error::to_status(&e).message().to_owned()))?;
            println!("client_id={name}");
            println!("client_secret={}", secret.expose_secret());
        }
        Command::RotateSigningKey => {
            let app = cobro_identity::admin(settings).await?;
            let kid = app
                .keys()
                .rotate()
                .await
                .map_err(|e| Failure::from(cobro_kit::error::to_status(&e).message().to_owned()))?;
            println!("new signing key {kid} published");
        }
    }
    Ok(())
}
