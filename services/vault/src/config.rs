//! The `[vault]` section beyond what every service has: where the key-encryption key comes from
//! and how the background jobs pace themselves.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cobro_kit::config::{ConfigError, Validate, parse_duration};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::keys::LocalKeyProvider;

const HOW_TO_PROVIDE: &str = "the vault needs a key-encryption key: set vault.kek_file to a file (mode 0600) \
     holding base64 of 32 random bytes, or COBRO__VAULT__KEK to that value (`cobro vault generate-kek` makes one); \
     production uses a KMS";

#[derive(Clone, Deserialize)]
pub struct VaultConfig {
    /// A file with the base64 root key of the local key provider.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// The base64 root key itself, from the environment (development).
    #[serde(default)]
    pub kek: Option<SecretString>,
    /// Data keys rewrapped per batch after a rotation.
    #[serde(default = "defaults::rewrap_batch")]
    pub rewrap_batch: u32,
    /// How often the rewrap and purge jobs look for work.
    #[serde(default = "defaults::job_interval")]
    pub job_interval: String,
}

mod defaults {
    pub fn rewrap_batch() -> u32 {
        500
    }
    pub fn job_interval() -> String {
        "10s".to_owned()
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("kek_file", &self.kek_file)
            .field("kek", &self.kek.as_ref().map(|_| "[redacted]"))
            .field("rewrap_batch", &self.rewrap_batch)
            .field("job_interval", &self.job_interval)
            .finish()
    }
}

/// The section, checked.
#[derive(Debug, Clone, Copy)]
pub struct Jobs {
    pub rewrap_batch: u32,
    pub interval: Duration,
}

impl VaultConfig {
    /// The key provider, or a message saying how to provide a key.
    pub fn key_provider(&self, prefix: &str) -> Result<LocalKeyProvider, ConfigError> {
        match (&self.kek_file, &self.kek) {
            (Some(path), None) => LocalKeyProvider::from_file(path)
                .map_err(|e| ConfigError::invalid(&format!("{prefix}.kek_file"), e.to_string())),
            (None, Some(kek)) => LocalKeyProvider::from_base64(kek.expose_secret())
                .map_err(|e| ConfigError::invalid(&format!("{prefix}.kek"), e.to_string())),
            (Some(_), Some(_)) => Err(ConfigError::invalid(&format!("{prefix}.kek"), "set kek_file or kek, not both")),
            (None, None) => Err(ConfigError::invalid(&format!("{prefix}.kek"), HOW_TO_PROVIDE)),
        }
    }

    pub fn jobs(&self, prefix: &str) -> Result<Jobs, ConfigError> {
        if self.rewrap_batch == 0 || self.rewrap_batch > 10_000 {
            return Err(ConfigError::invalid(&format!("{prefix}.rewrap_batch"), "must be between 1 and 10000"));
        }
        let interval = parse_duration(&format!("{prefix}.job_interval"), &self.job_interval)?;
        Ok(Jobs { rewrap_batch: self.rewrap_batch, interval: interval.max(Duration::from_millis(100)) })
    }
}

impl Validate for VaultConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.key_provider(prefix)?;
        self.jobs(prefix)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(kek: Option<&str>, kek_file: Option<&str>) -> VaultConfig {
        VaultConfig {
            kek_file: kek_file.map(PathBuf::from),
            kek: kek.map(|k| SecretString::from(k.to_owned())),
            rewrap_batch: 500,
            job_interval: "10s".to_owned(),
        }
    }

    #[test]
    fn without_a_kek_the_vault_says_how_to_provide_one() {
        let err = config(None, None).validate("vault").unwrap_err().to_string();
        assert!(err.contains("vault.kek"), "{err}");
        assert!(err.contains("kek_file") && err.contains("COBRO__VAULT__KEK") && err.contains("generate-kek"), "{err}");
    }

    #[test]
    fn a_bad_kek_is_refused_without_echoing_it() {
        let err = config(Some("c2hvcnQ="), None).validate("vault").unwrap_err().to_string();
        assert!(err.contains("vault.kek") && !err.contains("c2hvcnQ="), "{err}");
        let err = config(None, Some("/nonexistent/kek")).validate("vault").unwrap_err().to_string();
        assert!(err.contains("vault.kek_file"), "{err}");
        let both = config(Some(&LocalKeyProvider::generate_root_base64()), Some("/x")).validate("vault");
        assert!(both.is_err());
        assert!(config(Some(&LocalKeyProvider::generate_root_base64()), None).validate("vault").is_ok());
        assert!(!format!("{:?}", config(Some("secret-material"), None)).contains("secret-material"));
    }
}
