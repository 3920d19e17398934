//! Events between services over Kafka, with nothing lost and nothing applied twice.
//!
//! - [`outbox::enqueue`] writes an event in the caller's transaction, next to the state change
//!   it announces; a rolled-back transaction publishes nothing.
//! - [`relay::Relay`] publishes pending outbox rows with an idempotent producer, in order, and
//!   marks them sent. One replica relays at a time (a Postgres advisory lock).
//! - [`consumer::Consumer`] hands each event to a handler inside a transaction that also records
//!   the event id in the inbox; the Kafka offset is committed only after that transaction, so a
//!   crash means redelivery, and redelivery is recognised by the inbox and skipped.

pub mod consumer;
pub mod outbox;
pub mod payload;
pub mod relay;
pub mod topics;

pub use consumer::{Consumer, ConsumerConfig, ConsumerStats, EventHandler, HandlerError};
pub use outbox::{NewEvent, PreparedEvent, enqueue, prepare};
pub use relay::{Relay, RelayConfig};
pub use topics::{ensure_topics, topic_for};

/// A Kafka client's settings for `kafka`: the brokers and, with `security_protocol = "ssl"`,
/// TLS with the configured CA and client certificate. Every client the kit makes starts here.
pub fn client_config(kafka: &crate::config::KafkaConfig) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", kafka.bootstrap_servers());
    if kafka.security_protocol == "ssl" {
        config.set("security.protocol", "ssl");
        for (key, value) in [
            ("ssl.ca.location", &kafka.ssl_ca_location),
            ("ssl.certificate.location", &kafka.ssl_certificate_location),
            ("ssl.key.location", &kafka.ssl_key_location),
        ] {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
    }
    config
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{KafkaConfig, Validate};

    fn kafka(protocol: &str, cert: Option<&str>, key: Option<&str>) -> KafkaConfig {
        KafkaConfig {
            brokers: vec!["kafka-0:9093".into(), "kafka-1:9093".into()],
            partitions: 3,
            replication_factor: 3,
            idempotent_producer: true,
            security_protocol: protocol.into(),
            ssl_ca_location: (protocol == "ssl").then(|| "/etc/kafka/ca.crt".into()),
            ssl_certificate_location: cert.map(Into::into),
            ssl_key_location: key.map(Into::into),
        }
    }

    #[test]
    fn tls_settings_reach_the_client_and_plaintext_sets_none() {
        let tls = client_config(&kafka("ssl", Some("/etc/kafka/user.crt"), Some("/etc/kafka/user.key")));
        assert_eq!(tls.get("bootstrap.servers"), Some("kafka-0:9093,kafka-1:9093"));
        assert_eq!(tls.get("security.protocol"), Some("ssl"));
        assert_eq!(tls.get("ssl.ca.location"), Some("/etc/kafka/ca.crt"));
        assert_eq!(tls.get("ssl.certificate.location"), Some("/etc/kafka/user.crt"));
        assert_eq!(tls.get("ssl.key.location"), Some("/etc/kafka/user.key"));
        let plain = client_config(&kafka("plaintext", None, None));
        assert_eq!((plain.get("security.protocol"), plain.get("ssl.ca.location")), (None, None));
    }

    #[test]
    fn the_kafka_client_is_built_with_tls() {
        // librdkafka built without OpenSSL refuses security.protocol=ssl at creation.
        let config = KafkaConfig { ssl_ca_location: None, ..kafka("ssl", None, None) };
        let producer: Result<rdkafka::producer::BaseProducer, _> = client_config(&config).create();
        assert!(producer.is_ok(), "{:?}", producer.err());
    }

    #[test]
    fn tls_settings_are_checked_at_start() {
        assert!(kafka("ssl", Some("/c"), Some("/k")).validate("kafka").is_ok());
        let half = kafka("ssl", Some("/c"), None).validate("kafka").unwrap_err().to_string();
        assert!(half.contains("kafka.ssl_key_location"), "{half}");
        let typo = kafka("tls", None, None).validate("kafka").unwrap_err().to_string();
        assert!(typo.contains("kafka.security_protocol"), "{typo}");
        let mixed = KafkaConfig { ssl_ca_location: Some("/ca".into()), ..kafka("plaintext", None, None) };
        assert!(mixed.validate("kafka").unwrap_err().to_string().contains("security_protocol"));
    }
}

/// Kafka headers on published events. Only the trace context rides as a header (so tracing
/// tooling can follow it without decoding); id and type are in the envelope.
pub mod headers {
    pub const TRACEPARENT: &str = "traceparent";
}
