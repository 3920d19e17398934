//! Redis: rate limits, lockout counters, idempotency locks, short-lived caches. Never the source
//! of truth for money state, so a service keeps starting and answering when Redis is away; each
//! feature decides whether to fail open or closed (login limits fail closed).

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{ConfigError, Validate, parse_duration};

/// The `[redis]` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` or `rediss://…` for TLS.
    pub url: SecretString,
    /// Each connection attempt gives up after this long.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// Each command gives up after this long, so a hung Redis cannot hang a request.
    #[serde(default = "default_response_timeout")]
    pub response_timeout: String,
}

fn default_connect_timeout() -> String {
    "2s".to_owned()
}
fn default_response_timeout() -> String {
    "1s".to_owned()
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"[redacted]")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl Validate for RedisConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::invalid(&format!("{prefix}.url"), "must be a redis:// or rediss:// URL"));
        }
        parse_duration(&format!("{prefix}.connect_timeout"), &self.connect_timeout)?;
        parse_duration(&format!("{prefix}.response_timeout"), &self.response_timeout)?;
        Ok(())
    }
}

/// A self-reconnecting connection that connects on first use: a service starts while Redis is
/// down and its calls fail (quickly, by the timeouts) until Redis is back.
pub fn connect_lazy(config: &RedisConfig) -> Result<ConnectionManager, ConfigError> {
    let connect_timeout = parse_duration("redis.connect_timeout", &config.connect_timeout)?;
    let response_timeout = parse_duration("redis.response_timeout", &config.response_timeout)?;
    // The URL's own error text may quote the URL (and its password), so it is not passed on.
    let client = redis::Client::open(config.url.expose_secret())
        .map_err(|_| ConfigError::invalid("redis.url", "is not a valid Redis URL"))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        // Reconnect attempts happen in the background; a request never waits on more than one.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, manager_config)
        .map_err(|_| ConfigError::invalid("redis.url", "cannot create a Redis client"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key_and_debug_redacts() {
        let config = RedisConfig::new("http://secret@localhost");
        let err = config.validate("redis").unwrap_err();
        assert!(err.to_string().contains("redis.url"));
        assert!(!err.to_string().contains("secret"));
        assert!(!format!("{:?}", RedisConfig::new("redis://:hunter2@localhost")).contains("hunter2"));
        assert!(RedisConfig::new("redis://127.0.0.1:6379").validate("redis").is_ok());
    }

    #[tokio::test]
    async fn lazy_connection_does_not_need_redis_up_front() {
        // Port 1 on loopback: nothing listens there.
        let manager = connect_lazy(&RedisConfig::new("redis://127.0.0.1:1")).unwrap();
        let mut conn = manager.clone();
        let result: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        assert!(result.is_err());
    }
}
