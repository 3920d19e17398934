//! The `[identity]` section beyond what every service has (listen, database_url): the secrets
//! that protect second factors and API keys, and how long things live.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cobro_kit::config::{ConfigError, Validate, parse_duration};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::secret::{DataKey, Pepper};

#[derive(Clone, Deserialize)]
pub struct IdentityConfig {
    /// Base64 of 32 random bytes: encrypts TOTP seeds and signing keys at rest
    /// (`cobro identity generate-secret`).
    pub data_key: SecretString,
    /// Base64 of at least 32 random bytes: the HMAC key API keys and client secrets are
    /// hashed with, so a copy of the database alone cannot test guesses.
    pub api_key_pepper: SecretString,
    #[serde(default = "defaults::access_token_ttl")]
    pub access_token_ttl: String,
    #[serde(default = "defaults::refresh_token_ttl")]
    pub refresh_token_ttl: String,
    #[serde(default = "defaults::mfa_challenge_ttl")]
    pub mfa_challenge_ttl: String,
    /// How long a new signing key is published before it signs, so every verifier has it.
    #[serde(default = "defaults::key_publish_delay")]
    pub key_publish_delay: String,
    /// Failed sign-ins counted per account and per address within this window.
    #[serde(default = "defaults::failure_window")]
    pub failure_window: String,
    /// Failed sign-ins from one address, across accounts, before it is refused for a window.
    #[serde(default = "defaults::ip_failure_limit")]
    pub ip_failure_limit: u32,
    /// Issuer label shown in authenticator apps.
    #[serde(default = "defaults::totp_issuer")]
    pub totp_issuer: String,
}

mod defaults {
    pub fn access_token_ttl() -> String {
        "10m".to_owned()
    }
    pub fn refresh_token_ttl() -> String {
        "12h".to_owned()
    }
    pub fn mfa_challenge_ttl() -> String {
        "5m".to_owned()
    }
    pub fn key_publish_delay() -> String {
        "60s".to_owned()
    }
    pub fn failure_window() -> String {
        "15m".to_owned()
    }
    pub fn ip_failure_limit() -> u32 {
        100
    }
    pub fn totp_issuer() -> String {
        "Cobro".to_owned()
    }
}

impl fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("data_key", &"[redacted]")
            .field("api_key_pepper", &"[redacted]")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .finish_non_exhaustive()
    }
}

/// The section, checked and parsed.
#[derive(Debug)]
pub struct Settings {
    pub data_key: Arc<DataKey>,
    pub pepper: Pepper,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub mfa_challenge_ttl: Duration,
    pub key_publish_delay: Duration,
    pub failure_window: Duration,
    pub ip_failure_limit: u32,
    pub totp_issuer: String,
}

impl IdentityConfig {
    pub fn parse(&self, prefix: &str) -> Result<Settings, ConfigError> {
        let key = |name: &str| format!("{prefix}.{name}");
        let data_key = DataKey::from_base64(self.data_key.expose_secret())
            .map_err(|_| ConfigError::invalid(&key("data_key"), "must be base64 of exactly 32 bytes"))?;
        let pepper = Pepper::from_base64(self.api_key_pepper.expose_secret())
            .map_err(|_| ConfigError::invalid(&key("api_key_pepper"), "must be base64 of at least 32 bytes"))?;
        let access_token_ttl = parse_duration(&key("access_token_ttl"), &self.access_token_ttl)?;
        if !(Duration::from_secs(60)..=Duration::from_secs(3600)).contains(&access_token_ttl) {
            return Err(ConfigError::invalid(&key("access_token_ttl"), "must be between 1m and 1h"));
        }
        let refresh_token_ttl = parse_duration(&key("refresh_token_ttl"), &self.refresh_token_ttl)?;
        if refresh_token_ttl <= access_token_ttl {
            return Err(ConfigError::invalid(&key("refresh_token_ttl"), "must be longer than access_token_ttl"));
        }
        let mfa_challenge_ttl = parse_duration(&key("mfa_challenge_ttl"), &self.mfa_challenge_ttl)?;
        if !(Duration::from_secs(30)..=Duration::from_secs(900)).contains(&mfa_challenge_ttl) {
            return Err(ConfigError::invalid(&key("mfa_challenge_ttl"), "must be between 30s and 15m"));
        }
        let key_publish_delay = parse_duration(&key("key_publish_delay"), &self.key_publish_delay)?;
        let failure_window = parse_duration(&key("failure_window"), &self.failure_window)?;
        if failure_window < Duration::from_secs(1) {
            return Err(ConfigError::invalid(&key("failure_window"), "must be at least 1s"));
        }
        if self.ip_failure_limit == 0 {
            return Err(ConfigError::invalid(&key("ip_failure_limit"), "must be at least 1"));
        }
        if self.totp_issuer.trim().is_empty() || self.totp_issuer.contains(':') {
            return Err(ConfigError::invalid(&key("totp_issuer"), "must be non-empty and without ':'"));
        }
        Ok(Settings {
            data_key: Arc::new(data_key),
            pepper,
            access_token_ttl,
            refresh_token_ttl,
            mfa_challenge_ttl,
            key_publish_delay,
            failure_window,
            ip_failure_limit: self.ip_failure_limit,
            totp_issuer: self.totp_issuer.trim().to_owned(),
        })
    }
}

impl Validate for IdentityConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.parse(prefix).map(|_| ())
    }
}

impl Settings {
    /// Settings for tests and the admin command: fresh secrets, defaults elsewhere.
    pub fn generated() -> Self {
        Self {
            data_key: Arc::new(DataKey::generate()),
            pepper: Pepper::generate(),
            access_token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(12 * 3600),
            mfa_challenge_ttl: Duration::from_secs(300),
            key_publish_delay: Duration::from_secs(60),
            failure_window: Duration::from_secs(900),
            ip_failure_limit: 100,
            totp_issuer: "Cobro".to_owned(),
        }
    }
}
