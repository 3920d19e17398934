//! `cobro vault ...`: the vault's keys, for operators.

use std::sync::Arc;

use clap::Subcommand;
use cobro_kit::config::Settings;
use cobro_vault::app::Vault;
use cobro_vault::config::VaultConfig;
use cobro_vault::keys::LocalKeyProvider;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a fresh root key for the local key provider (base64 of 32 random bytes); store it
    /// in a 0600 file named by vault.kek_file, or in COBRO__VAULT__KEK.
    GenerateKek,
    /// Start a new key-encryption-key version; running vaults rewrap existing keys to it.
    RotateKek,
    /// The key-encryption-key versions and how many records each wraps.
    KeyStatus,
}

pub async fn run(settings: &Settings, command: Command) -> Result<(), Failure> {
    if let Command::GenerateKek = command {
        println!("{}", LocalKeyProvider::generate_root_base64());
        return Ok(());
    }
    let config: VaultConfig = settings.section(cobro_vault::NAME)?;
    let provider = Arc::new(config.key_provider(cobro_vault::NAME)?);
    let service: cobro_kit::config::ServiceConfig = settings.section(cobro_vault::NAME)?;
    let pool = cobro_kit::db::connect(&service, cobro_vault::NAME).await?;
    cobro_kit::db::migrate(&pool, cobro_vault::NAME, &cobro_vault::migrator()).await?;
    let vault = Vault::start(pool, provider).await.map_err(|e| Failure::from(e.to_string()))?;
    match command {
        Command::GenerateKek => {}
        Command::RotateKek => {
            let version = vault.rotate_kek(None).await.map_err(|e| Failure::from(e.to_string()))?;
            println!("key-encryption key version {version} is active; running vaults rewrap existing keys to it");
        }
        Command::KeyStatus => {
            for v in vault.key_status(None).await.map_err(|e| Failure::from(e.to_string()))? {
                println!("version {:>3}  {:<9} records {}", v.version, v.state, v.records);
            }
        }
    }
    Ok(())
}
