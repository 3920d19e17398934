//! The payments section of the configuration: which processor, where the vault is, the service
//! credential, and how often the background jobs run.

use std::fmt;
use std::time::Duration;

use cobro_kit::config::{ConfigError, Validate, parse_duration};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct PaymentsConfig {
    /// sandbox | stripe
    #[serde(default = "defaults::connector")]
    pub connector: String,
    /// The vault's gRPC address.
    #[serde(default = "defaults::vault_url")]
    pub vault_url: String,
    /// This service's client secret at identity (`cobro identity service-client payments`).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    #[serde(default = "defaults::job_interval")]
    pub job_interval: String,
    /// How long an attempt may stay unanswered before recovery asks the processor.
    #[serde(default = "defaults::recover_after")]
    pub recover_after: String,
    #[serde(default)]
    pub sandbox: SandboxSection,
    #[serde(default)]
    pub stripe: Option<StripeSection>,
}

#[derive(Clone, Deserialize)]
pub struct SandboxSection {
    #[serde(default = "defaults::zero")]
    pub latency: String,
    #[serde(default)]
    pub failure_per_mille: u32,
    #[serde(default = "defaults::sandbox_secret")]
    pub webhook_secret: SecretString,
    /// Where the gateway hosts the sandbox's 3-D Secure page.
    #[serde(default = "defaults::challenge_base_url")]
    pub challenge_base_url: String,
}

impl Default for SandboxSection {
    fn default() -> Self {
        Self {
            latency: defaults::zero(),
            failure_per_mille: 0,
            webhook_secret: defaults::sandbox_secret(),
            challenge_base_url: defaults::challenge_base_url(),
        }
    }
}

#[derive(Clone, Deserialize)]
pub struct StripeSection {
    #[serde(default = "defaults::stripe_url")]
    pub base_url: String,
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
}

mod defaults {
    use secrecy::SecretString;

    pub fn connector() -> String {
        "sandbox".to_owned()
    }
    pub fn vault_url() -> String {
        "http://127.0.0.1:50054".to_owned()
    }
    pub fn job_interval() -> String {
        "60s".to_owned()
    }
    pub fn recover_after() -> String {
        "120s".to_owned()
    }
    pub fn zero() -> String {
        "0s".to_owned()
    }
    // The sandbox moves no money; its webhook secret only proves the wiring.
    pub fn sandbox_secret() -> SecretString {
        SecretString::from("whsec_sandbox")
    }
    pub fn challenge_base_url() -> String {
        "http://127.0.0.1:8080".to_owned()
    }
    pub fn stripe_url() -> String {
        "https://api.stripe.com".to_owned()
    }
}

impl fmt::Debug for PaymentsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("connector", &self.connector)
            .field("vault_url", &self.vault_url)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("job_interval", &self.job_interval)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Timings {
    pub job_interval: Duration,
    pub recover_after: Duration,
    pub sandbox_latency: Duration,
}

/// Recovery asks the processor about attempts older than this. Shorter than a processor call
/// can take, and it would call a charge still on its way "never received" and fail a payment
/// whose money then arrives.
fn recover_after(key: &str, raw: &str) -> Result<Duration, ConfigError> {
    let value = parse_duration(key, raw)?;
    if value < MIN_RECOVER_AFTER {
        return Err(ConfigError::invalid(key, "must be at least 30s, longer than any processor call"));
    }
    Ok(value)
}

const MIN_RECOVER_AFTER: Duration = Duration::from_secs(30);

impl PaymentsConfig {
    pub fn timings(&self, prefix: &str) -> Result<Timings, ConfigError> {
        Ok(Timings {
            job_interval: parse_duration(&format!("{prefix}.job_interval"), &self.job_interval)?
                .max(Duration::from_secs(1)),
            recover_after: recover_after(&format!("{prefix}.recover_after"), &self.recover_after)?,
            sandbox_latency: parse_duration(&format!("{prefix}.sandbox.latency"), &self.sandbox.latency)?,
        })
    }

    pub fn sandbox_config(&self, prefix: &str) -> Result<crate::connector::sandbox::SandboxConfig, ConfigError> {
        Ok(crate::connector::sandbox::SandboxConfig {
            latency: self.timings(prefix)?.sandbox_latency,
            failure_per_mille: self.sandbox.failure_per_mille,
            webhook_secret: self.sandbox.webhook_secret.clone(),
            challenge_base_url: self.sandbox.challenge_base_url.clone(),
            fee_percent: Decimal::new(29, 1),
            fee_fixed: Decimal::new(30, 2),
        })
    }
}

impl Validate for PaymentsConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        match (self.connector.as_str(), &self.stripe) {
            ("sandbox", _) | ("stripe", Some(_)) => {}
            ("stripe", None) => {
                return Err(ConfigError::invalid(
                    &format!("{prefix}.stripe"),
                    "the stripe connector needs stripe.secret_key and stripe.webhook_secret",
                ));
            }
            _ => return Err(ConfigError::invalid(&format!("{prefix}.connector"), "must be sandbox or stripe")),
        }
        if self.sandbox.failure_per_mille > 1000 {
            return Err(ConfigError::invalid(&format!("{prefix}.sandbox.failure_per_mille"), "must be 0 to 1000"));
        }
        if !(self.vault_url.starts_with("http://") || self.vault_url.starts_with("https://")) {
            return Err(ConfigError::invalid(&format!("{prefix}.vault_url"), "must be an http:// or https:// URL"));
        }
        self.timings(prefix)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn recovery_never_runs_ahead_of_a_processor_call() {
        let err = recover_after("payments.recover_after", "5s").unwrap_err();
        assert!(err.to_string().contains("payments.recover_after"), "{err}");
        assert_eq!(recover_after("payments.recover_after", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(recover_after("payments.recover_after", "2m").unwrap(), Duration::from_secs(120));
    }
}
