//! The notifications section of the configuration: the providers messages go through and how
//! the dispatcher paces itself. Credentials are secrets and never printed.

use std::fmt;
use std::time::Duration;

use cobro_kit::config::{ConfigError, Validate, parse_duration};
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct NotificationsConfig {
    /// How often the dispatcher looks for due messages when the last look found none.
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval: String,
    /// Messages claimed per round, and sent at once.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// After this many failed tries a message is dead-lettered and staff are told.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// How long a claimed message is held before another dispatcher may take it over (longer
    /// than any provider call).
    #[serde(default = "defaults::lease")]
    pub lease: String,
    /// Where customers open an invoice to pay it (the gateway's portal): messages link to
    /// `<portal_url>/invoices/<inv_…>`. Empty: no link.
    #[serde(default = "defaults::portal_url")]
    pub portal_url: String,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub sms: Option<SmsSection>,
    #[serde(default)]
    pub whatsapp: Option<WhatsAppSection>,
}

#[derive(Clone, Deserialize)]
pub struct SmtpSection {
    #[serde(default = "defaults::smtp_host")]
    pub host: String,
    #[serde(default = "defaults::smtp_port")]
    pub port: u16,
    /// none | starttls | tls
    #[serde(default = "defaults::smtp_tls")]
    pub tls: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default = "defaults::smtp_from")]
    pub from: String,
}

impl Default for SmtpSection {
    fn default() -> Self {
        Self {
            host: defaults::smtp_host(),
            port: defaults::smtp_port(),
            tls: defaults::smtp_tls(),
            username: String::new(),
            password: None,
            from: defaults::smtp_from(),
        }
    }
}

#[derive(Clone, Deserialize)]
pub struct SmsSection {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    pub from: String,
}

#[derive(Clone, Deserialize)]
pub struct WhatsAppSection {
    pub base_url: String,
    pub phone_number_id: String,
    pub token: SecretString,
}

mod defaults {
    pub fn poll_interval() -> String {
        "1s".to_owned()
    }
    pub fn batch_size() -> u32 {
        100
    }
    pub fn max_attempts() -> u32 {
        6
    }
    pub fn lease() -> String {
        "120s".to_owned()
    }
    pub fn portal_url() -> String {
        "http://127.0.0.1:8080/portal".to_owned()
    }
    pub fn smtp_host() -> String {
        "127.0.0.1".to_owned()
    }
    pub fn smtp_port() -> u16 {
        1025
    }
    pub fn smtp_tls() -> String {
        "none".to_owned()
    }
    pub fn smtp_from() -> String {
        "Cobro <no-reply@cobro.localhost>".to_owned()
    }
}

/// The dispatcher's pace, checked.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub max_attempts: u32,
    pub lease: Duration,
}

impl NotificationsConfig {
    pub fn pace(&self, prefix: &str) -> Result<Pace, ConfigError> {
        let lease = parse_duration(&format!("{prefix}.lease"), &self.lease)?;
        if lease < Duration::from_secs(10) {
            return Err(ConfigError::invalid(&format!("{prefix}.lease"), "must be at least 10s, longer than a send"));
        }
        if !(1..=1000).contains(&self.batch_size) {
            return Err(ConfigError::invalid(&format!("{prefix}.batch_size"), "must be 1 to 1000"));
        }
        if !(1..=50).contains(&self.max_attempts) {
            return Err(ConfigError::invalid(&format!("{prefix}.max_attempts"), "must be 1 to 50"));
        }
        Ok(Pace {
            poll_interval: parse_duration(&format!("{prefix}.poll_interval"), &self.poll_interval)?
                .max(Duration::from_millis(50)),
            batch_size: self.batch_size,
            max_attempts: self.max_attempts,
            lease,
        })
    }
}

impl Validate for NotificationsConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.pace(prefix)?;
        let url = self.portal_url.trim();
        if !url.is_empty() && !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(ConfigError::invalid(&format!("{prefix}.portal_url"), "must be an http:// or https:// URL"));
        }
        if !["none", "starttls", "tls"].contains(&self.smtp.tls.as_str()) {
            return Err(ConfigError::invalid(&format!("{prefix}.smtp.tls"), "must be none, starttls or tls"));
        }
        Ok(())
    }
}

impl fmt::Debug for NotificationsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationsConfig")
            .field("poll_interval", &self.poll_interval)
            .field("batch_size", &self.batch_size)
            .field("max_attempts", &self.max_attempts)
            .field("smtp_host", &self.smtp.host)
            .field("smtp_password", &self.smtp.password.as_ref().map(|_| "[redacted]"))
            .field("sms", &self.sms.as_ref().map(|_| "[configured]"))
            .field("whatsapp", &self.whatsapp.as_ref().map(|_| "[configured]"))
            .finish_non_exhaustive()
    }
}
