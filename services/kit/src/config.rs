//! Layered configuration, validated at start.
//!
//! Layers, later ones winning: built-in defaults (serde defaults of each struct) ->
//! `config/default.toml` -> `config/<COBRO_ENV>.toml` -> an explicit `--config` file ->
//! environment variables `COBRO__SECTION__KEY` (double underscore between levels, so
//! `COBRO__IDENTITY__DATABASE_URL` sets `identity.database_url`).
//!
//! Every error names the key at fault and how to set it, so a typo stops the process at start
//! with one clear line instead of a failure at first use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Environment variable prefix of every setting.
pub const ENV_PREFIX: &str = "COBRO";

/// Why the configuration was refused. The message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {message}")]
pub struct ConfigError {
    /// Dotted key at fault (`identity.database_url`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn invalid(key: &str, reason: impl std::fmt::Display) -> Self {
        Self { key: Some(key.to_owned()), message: format!("key `{key}` ({}): {reason}", env_name(key)) }
    }

    pub fn missing(key: &str) -> Self {
        Self {
            key: Some(key.to_owned()),
            message: format!("missing required key `{key}`: set {} or add it to config/<env>.toml", env_name(key)),
        }
    }
}

/// The environment variable that sets a dotted key: `a.b_c` -> `COBRO__A__B_C`.
pub fn env_name(key: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    for part in key.split('.') {
        name.push_str("__");
        name.push_str(&part.to_ascii_uppercase());
    }
    name
}

/// Where configuration comes from; [`Layers::from_env`] is what the binary uses.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Directory holding `default.toml` and `<env>.toml`; missing files are skipped.
    pub dir: Option<PathBuf>,
    /// `COBRO_ENV`: dev, test, production, ...
    pub env: Option<String>,
    /// An explicit file that must exist.
    pub file: Option<PathBuf>,
    /// Read `COBRO__…` variables (off in unit tests that must not see the process env).
    pub read_env: bool,
    /// Extra overrides, applied last (tests, command-line flags).
    pub overrides: Vec<(String, String)>,
}

impl Layers {
    /// The layers the `cobro` binary uses: `COBRO_CONFIG_DIR` (default `./config`),
    /// `COBRO_ENV` (default `dev`), an optional explicit file, and the environment.
    pub fn from_env(file: Option<PathBuf>) -> Self {
        Self {
            dir: Some(std::env::var_os("COBRO_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from)),
            env: Some(std::env::var("COBRO_ENV").unwrap_or_else(|_| "dev".to_owned())),
            file,
            read_env: true,
            overrides: Vec::new(),
        }
    }

    /// Merge every layer into one tree.
    pub fn load(&self) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(dir) = &self.dir {
            builder = builder.add_source(toml_file(&dir.join("default.toml"), false));
            if let Some(env) = &self.env {
                builder = builder.add_source(toml_file(&dir.join(format!("{env}.toml")), false));
            }
        }
        if let Some(file) = &self.file {
            if !file.is_file() {
                return Err(ConfigError {
                    key: None,
                    message: format!("config file {} does not exist", file.display()),
                });
            }
            builder = builder.add_source(toml_file(file, true));
        }
        if self.read_env {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("kafka.brokers")
                    .ignore_empty(true),
            );
        }
        for (key, value) in &self.overrides {
            builder = builder.set_override(key.as_str(), value.as_str()).map_err(|e| ConfigError::invalid(key, e))?;
        }
        let tree = builder.build().map_err(from_config_error)?;
        Ok(Settings { tree })
    }
}

fn toml_file(path: &Path, required: bool) -> config::File<config::FileSourceFile, config::FileFormat> {
    config::File::from(path).format(config::FileFormat::Toml).required(required)
}

/// The merged configuration tree; services read typed sections out of it.
#[derive(Clone)]
pub struct Settings {
    tree: config::Config,
}

impl std::fmt::Debug for Settings {
    // The tree holds database URLs with passwords: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settings { .. }")
    }
}

impl Settings {
    /// Deserialize the section at `key` (e.g. `identity`), then run its validation. Absent
    /// sections deserialize from their defaults, so a service with sensible defaults needs no
    /// file at all.
    pub fn section<T: DeserializeOwned + Validate>(&self, key: &str) -> Result<T, ConfigError> {
        let tree = match self.tree.get::<config::Value>(key) {
            Ok(tree) => tree,
            // No such table: an empty one, so defaults apply and a missing required key is
            // reported by its own name.
            Err(config::ConfigError::NotFound(_)) => {
                config::Value::new(None, config::Map::<String, config::Value>::new())
            }
            Err(e) => return Err(from_config_error(e)),
        };
        let value: T = serde_path_to_error::deserialize(tree).map_err(|e| path_error(key, &e))?;
        value.validate(key)?;
        Ok(value)
    }
}

/// Turn a deserialization error into one naming the full dotted key.
fn path_error(section: &str, err: &serde_path_to_error::Error<config::ConfigError>) -> ConfigError {
    let path = err.path().to_string();
    let mut key = if path.is_empty() || path == "." { section.to_owned() } else { format!("{section}.{path}") };
    let inner = err.inner();
    match inner {
        config::ConfigError::NotFound(field) => {
            key.push('.');
            key.push_str(field);
            ConfigError::missing(&key)
        }
        // Never echo the value: it may be a password or a URL holding one.
        config::ConfigError::Type { expected, .. } => {
            ConfigError::invalid(&key, format!("wrong type, expected {expected}"))
        }
        other => ConfigError::invalid(&key, without_value(&strip_key_suffix(&other.to_string()))),
    }
}

/// Checks that serde cannot express (ranges, URLs, cross-field rules). `prefix` is the
/// section's dotted key, for error messages.
pub trait Validate {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let _ = prefix;
        Ok(())
    }
}

fn from_config_error(err: config::ConfigError) -> ConfigError {
    match err {
        config::ConfigError::NotFound(key) => ConfigError::missing(&key),
        config::ConfigError::Type { ref key, .. } | config::ConfigError::At { ref key, .. } => {
            let key = key.clone();
            match key {
                Some(key) => ConfigError::invalid(&key, strip_key_suffix(&err.to_string())),
                None => ConfigError { key: None, message: err.to_string() },
            }
        }
        other => ConfigError { key: None, message: other.to_string() },
    }
}

/// serde's "invalid value: string \"…\", expected X" quotes the value; keep only what was
/// expected.
fn without_value(message: &str) -> String {
    match message.find(", expected ") {
        Some(at) if message.starts_with("invalid") => format!("wrong value{}", message.get(at..).unwrap_or_default()),
        _ => message.to_owned(),
    }
}

/// The `config` crate appends " for key `x`" itself; we print the key first instead.
fn strip_key_suffix(message: &str) -> String {
    match message.find(" for key `") {
        Some(at) => message.get(..at).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

/// Parse a human duration setting: `250ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(key: &str, raw: &str) -> Result<Duration, ConfigError> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("`{raw}` is not a duration like 30s, 250ms or 5m")))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(ConfigError::invalid(key, format!("`{raw}` needs a unit: ms, s, m or h"))),
    };
    Ok(duration)
}

/// Settings every process shares, read from the top-level sections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated in the environment.
    #[serde(default = "default_brokers")]
    pub brokers: Vec<String>,
    /// Partitions for topics created at start.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor for topics created at start (1 for development).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Publish with Kafka's idempotent producer (no broker-side duplicates on retry). On by
    /// default; see docs/events.md for the development broker's exception.
    #[serde(default = "default_true")]
    pub idempotent_producer: bool,
    /// `plaintext` (development) or `ssl`: TLS to the brokers, with a client certificate when
    /// `ssl_certificate_location` and `ssl_key_location` are set (mutual TLS, as Strimzi's
    /// KafkaUsers of type tls expect).
    #[serde(default = "default_security_protocol")]
    pub security_protocol: String,
    /// PEM file of the CA that signed the brokers' certificates (the system's when unset).
    #[serde(default)]
    pub ssl_ca_location: Option<String>,
    /// PEM files of this service's client certificate and key.
    #[serde(default)]
    pub ssl_certificate_location: Option<String>,
    #[serde(default)]
    pub ssl_key_location: Option<String>,
}

fn default_security_protocol() -> String {
    "plaintext".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_brokers() -> Vec<String> {
    vec!["127.0.0.1:9092".to_owned()]
}
fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            partitions: default_partitions(),
            replication_factor: default_replication(),
            idempotent_producer: true,
            security_protocol: default_security_protocol(),
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
        }
    }
}

impl KafkaConfig {
    pub fn bootstrap_servers(&self) -> String {
        self.brokers.join(",")
    }
}

impl Validate for KafkaConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.brokers.is_empty() || self.brokers.iter().any(|b| b.trim().is_empty()) {
            return Err(ConfigError::invalid(&format!("{prefix}.brokers"), "needs at least one host:port"));
        }
        if self.partitions < 1 {
            return Err(ConfigError::invalid(&format!("{prefix}.partitions"), "must be at least 1"));
        }
        if self.replication_factor < 1 {
            return Err(ConfigError::invalid(&format!("{prefix}.replication_factor"), "must be at least 1"));
        }
        match self.security_protocol.as_str() {
            "plaintext" => {
                let tls_set = [&self.ssl_ca_location, &self.ssl_certificate_location, &self.ssl_key_location]
                    .iter()
                    .any(|v| v.is_some());
                if tls_set {
                    return Err(ConfigError::invalid(
                        &format!("{prefix}.security_protocol"),
                        "must be `ssl` when ssl_* locations are set",
                    ));
                }
            }
            "ssl" => {
                if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
                    return Err(ConfigError::invalid(
                        &format!("{prefix}.ssl_key_location"),
                        "a client certificate needs its key, and a key its certificate",
                    ));
                }
            }
            _ => {
                return Err(ConfigError::invalid(&format!("{prefix}.security_protocol"), "must be plaintext or ssl"));
            }
        }
        Ok(())
    }
}

/// gRPC server limits shared by every service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "default_timeout")]
    pub request_timeout: String,
    #[serde(default = "default_concurrency")]
    pub concurrency_limit: usize,
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Grace period for in-flight requests at shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
    /// At shutdown, how long health reports NOT_SERVING while still accepting requests, so
    /// load balancers stop routing here before the listener closes.
    #[serde(default = "default_drain_delay")]
    pub drain_delay: String,
}

fn default_drain_delay() -> String {
    "0s".to_owned()
}

fn default_timeout() -> String {
    "30s".to_owned()
}
fn default_concurrency() -> usize {
    256
}
fn default_max_message() -> usize {
    16 * 1024 * 1024
}
fn default_shutdown_grace() -> String {
    "20s".to_owned()
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            request_timeout: default_timeout(),
            concurrency_limit: default_concurrency(),
            max_message_bytes: default_max_message(),
            shutdown_grace: default_shutdown_grace(),
            drain_delay: default_drain_delay(),
        }
    }
}

impl Validate for GrpcConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        parse_duration(&format!("{prefix}.request_timeout"), &self.request_timeout)?;
        parse_duration(&format!("{prefix}.shutdown_grace"), &self.shutdown_grace)?;
        parse_duration(&format!("{prefix}.drain_delay"), &self.drain_delay)?;
        if self.concurrency_limit == 0 {
            return Err(ConfigError::invalid(&format!("{prefix}.concurrency_limit"), "must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::invalid(&format!("{prefix}.max_message_bytes"), "must be at least 1024"));
        }
        Ok(())
    }
}

/// What every service section holds: where it listens and its own database role.
#[derive(Clone, Deserialize)]
pub struct ServiceConfig {
    pub listen: Option<SocketAddr>,
    /// `postgres://cobro_<svc>:…@host/cobro`; the role owns the service's schema.
    pub database_url: SecretString,
    #[serde(default = "default_pool")]
    pub max_connections: u32,
}

fn default_pool() -> u32 {
    10
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("listen", &self.listen)
            .field("database_url", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Validate for ServiceConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let url = self.database_url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // Never echo the value: it may hold a password.
            return Err(ConfigError::invalid(&format!("{prefix}.database_url"), "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(&format!("{prefix}.max_connections"), "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn layers(overrides: &[(&str, &str)]) -> Layers {
        Layers {
            overrides: overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Layers::default()
        }
    }

    #[test]
    fn env_names_follow_the_double_underscore_rule() {
        assert_eq!(env_name("identity.database_url"), "COBRO__IDENTITY__DATABASE_URL");
        assert_eq!(env_name("kafka.brokers"), "COBRO__KAFKA__BROKERS");
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = layers(&[]).load().unwrap();
        let kafka: KafkaConfig = settings.section("kafka").unwrap();
        assert_eq!(kafka.brokers, vec!["127.0.0.1:9092"]);
        let grpc: GrpcConfig = settings.section("grpc").unwrap();
        assert_eq!(grpc.concurrency_limit, 256);
    }

    #[test]
    fn missing_required_key_names_it() {
        let settings = layers(&[("identity.max_connections", "5")]).load().unwrap();
        let err = settings.section::<ServiceConfig>("identity").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("identity.database_url"), "{err}");
        assert!(err.to_string().contains("COBRO__IDENTITY__DATABASE_URL"), "{err}");
    }

    #[test]
    fn missing_section_reports_the_required_key() {
        let settings = layers(&[]).load().unwrap();
        let err = settings.section::<ServiceConfig>("payments").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("payments.database_url"), "{err}");
    }

    #[test]
    fn wrong_type_does_not_echo_the_value() {
        let settings = layers(&[("payments", "postgres://u:hunter2@db/cobro")]).load().unwrap();
        let err = settings.section::<ServiceConfig>("payments").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let settings = layers(&[("grpc.concurrency_limit", "lots")]).load().unwrap();
        let err = settings.section::<GrpcConfig>("grpc").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("grpc.concurrency_limit"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let settings = layers(&[("kafka.brokerz", "x:1")]).load().unwrap();
        let err = settings.section::<KafkaConfig>("kafka").unwrap_err();
        assert!(err.to_string().contains("brokerz"), "{err}");
    }

    #[test]
    fn validation_names_the_key_and_hides_secrets() {
        let settings = layers(&[("vault.database_url", "mysql://root:hunter2@db/x")]).load().unwrap();
        let err = settings.section::<ServiceConfig>("vault").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("vault.database_url"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok = layers(&[("vault.database_url", "postgres://u:hunter2@db/cobro")]).load().unwrap();
        let cfg = ok.section::<ServiceConfig>("vault").unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn files_layer_in_order_and_an_explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "[grpc]\nconcurrency_limit = 10\nrequest_timeout = \"5s\"\n")
            .unwrap();
        std::fs::write(dir.path().join("test.toml"), "[grpc]\nconcurrency_limit = 20\n").unwrap();
        let l = Layers { dir: Some(dir.path().to_owned()), env: Some("test".to_owned()), ..Layers::default() };
        let grpc: GrpcConfig = l.load().unwrap().section("grpc").unwrap();
        assert_eq!(grpc.concurrency_limit, 20);
        assert_eq!(grpc.request_timeout, "5s");

        let missing = Layers { file: Some(dir.path().join("nope.toml")), ..Layers::default() };
        assert!(missing.load().unwrap_err().to_string().contains("nope.toml"));
    }

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration("k", "250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("k", "5m").unwrap(), Duration::from_secs(300));
        for bad in ["", "5", "s", "5 days", "-1s", "1.5s"] {
            let err = parse_duration("grpc.request_timeout", bad).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("grpc.request_timeout"));
        }
    }
}
