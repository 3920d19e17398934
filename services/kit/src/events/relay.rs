//! Publishing the outbox.
//!
//! One replica of a service relays at a time: the relay holds a session advisory lock on a
//! dedicated connection and does all its reads and writes on that connection, so if the
//! connection dies the lock goes with it and another replica takes over. Rows are published in
//! `seq` order with an idempotent producer and stamped `published_at` only once the broker
//! acknowledged them; a crash in between republishes them, which consumers' inboxes absorb.

use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::events::headers;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows read and published per round.
    pub batch_size: i64,
    /// Pause between rounds when the outbox is empty.
    pub idle_poll: Duration,
    /// Published rows older than this are deleted.
    pub retention: Duration,
    /// How long the broker may stay unreachable before a send is reported failed (the rows
    /// stay pending and are tried again).
    pub delivery_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            idle_poll: Duration::from_millis(50),
            retention: Duration::from_secs(24 * 3600),
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Kafka(#[from] KafkaError),
}

pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    kafka: KafkaConfig,
    config: RelayConfig,
}

/// Longest a relay round may take before the leader connection is presumed dead.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// Inbox rows older than this are purged: far beyond any broker retention, so a redelivery
/// can never come after its inbox row is gone.
const INBOX_RETENTION_DAYS: i32 = 30;

impl Relay {
    pub fn new(pool: PgPool, kafka: &KafkaConfig, config: RelayConfig) -> Result<Self, KafkaError> {
        let producer = producer(kafka, &config)?;
        Ok(Self { pool, producer, kafka: kafka.clone(), config })
    }

    /// Relay until `shutdown`; errors are logged and retried with backoff, never fatal.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let mut leader = match self.become_leader(&shutdown).await {
                Ok(Some(conn)) => conn,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay cannot reach the database");
                    backoff.wait(&shutdown).await;
                    continue;
                }
            };
            let mut last_purge = tokio::time::Instant::now();
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let round = tokio::time::timeout(ROUND_TIMEOUT, self.relay_batch(&mut leader)).await;
                match round {
                    Ok(Ok(n)) => {
                        backoff.reset();
                        if i64::try_from(n).unwrap_or(0) < self.config.batch_size {
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(self.config.idle_poll) => {}
                            }
                        }
                    }
                    Ok(Err(RelayError::Database(err))) => {
                        // The leader connection may be gone (and the lock with it): start over.
                        tracing::warn!(error = %err, "outbox relay lost its database connection");
                        backoff.wait(&shutdown).await;
                        break;
                    }
                    Ok(Err(RelayError::Kafka(err))) => {
                        tracing::warn!(error = %err, "outbox relay cannot publish; rows stay pending");
                        self.rebuild_producer();
                        backoff.wait(&shutdown).await;
                    }
                    Err(_elapsed) => {
                        tracing::warn!(timeout = ?ROUND_TIMEOUT, "outbox relay round timed out; reconnecting");
                        break;
                    }
                }
                if last_purge.elapsed() > Duration::from_secs(60) {
                    last_purge = tokio::time::Instant::now();
                    if let Err(err) = self.purge(&mut leader).await {
                        tracing::warn!(error = %err, "outbox purge failed");
                    }
                }
            }
        }
    }

    /// Start the next round with a new producer. After deliveries time out, an idempotent
    /// producer must bump its epoch before it may send again, and a broker that cannot (or a
    /// fatal error) would leave it refusing every send; a new producer starts clean, and the
    /// rows it re-sends are absorbed by the consumers' inboxes.
    fn rebuild_producer(&mut self) {
        if let Some((code, reason)) = rdkafka::producer::Producer::client(&self.producer).fatal_error() {
            tracing::error!(?code, %reason, "outbox producer failed fatally");
        }
        match producer(&self.kafka, &self.config) {
            Ok(fresh) => self.producer = fresh,
            Err(err) => tracing::error!(error = %err, "cannot create a new outbox producer; keeping the old one"),
        }
    }

    /// Take the relay lock for this schema, waiting while another replica holds it. `None` when
    /// shut down while waiting.
    async fn become_leader(&self, shutdown: &CancellationToken) -> Result<Option<PgConnection>, sqlx::Error> {
        loop {
            if let Some(conn) = self.try_lead().await? {
                return Ok(Some(conn));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Take the relay lock on a connection of our own, or `None` if another relay holds it.
    /// The lock lives with the session, so the connection is taken out of the pool (no other
    /// task inherits it) and dropping it releases the lock.
    pub async fn try_lead(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        // If this process vanishes without closing the socket, the server notices within
        // about a minute and frees the lock for another replica (instead of the OS's 2 hours).
        sqlx::query("SET tcp_keepalives_idle = 30").execute(&mut *conn).await?;
        sqlx::query("SET tcp_keepalives_interval = 10").execute(&mut *conn).await?;
        sqlx::query("SET tcp_keepalives_count = 3").execute(&mut *conn).await?;
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('cobro.outbox.relay.' || current_schema(), 0))",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(locked.then(|| conn.detach()))
    }

    /// Publish one batch of pending rows; returns how many were published.
    pub async fn relay_batch(&self, conn: &mut PgConnection) -> Result<usize, RelayError> {
        let rows = sqlx::query(
            "SELECT seq, topic, message_key, envelope, traceparent \
             FROM outbox WHERE published_at IS NULL AND failed_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }

        let mut pending = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let topic: &str = row.try_get("topic")?;
            let key: &str = row.try_get("message_key")?;
            let envelope: &[u8] = row.try_get("envelope")?;
            let traceparent: &str = row.try_get("traceparent")?;
            let mut record = FutureRecord::to(topic).key(key).payload(envelope);
            // The envelope carries id and type; the trace context also rides as a header so
            // tracing-aware tooling can follow it without decoding.
            if !traceparent.is_empty() {
                record = record.headers(
                    OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some(traceparent) }),
                );
            }
            // Enqueue without awaiting so the whole batch is in flight at once; the producer
            // keeps the order within each partition.
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((seq, delivery)),
                Err((err, _)) if is_permanent(&err) => refused.push((seq, err.to_string())),
                Err((err, _)) => return Err(err.into()),
            }
        }

        let mut published = Vec::with_capacity(pending.len());
        let mut first_error = None;
        let (seqs, deliveries): (Vec<i64>, Vec<_>) = pending.into_iter().unzip();
        for (seq, outcome) in seqs.into_iter().zip(join_all(deliveries).await) {
            match outcome {
                Ok(Ok(_)) => published.push(seq),
                Ok(Err((err, _))) if is_permanent(&err) => refused.push((seq, err.to_string())),
                Ok(Err((err, _))) => {
                    first_error.get_or_insert(err);
                }
                Err(_canceled) => {
                    first_error.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        if !published.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
                .bind(&published)
                .execute(&mut *conn)
                .await?;
            crate::telemetry::metrics::outbox_published(published.len());
        }
        for (seq, error) in &refused {
            tracing::error!(seq, %error, "the broker refuses an outbox event for good; parked with its error");
            sqlx::query("UPDATE outbox SET failed_at = now(), last_error = $2 WHERE seq = $1")
                .bind(seq)
                .bind(error)
                .execute(&mut *conn)
                .await?;
            crate::telemetry::metrics::outbox_failed(1);
        }
        match first_error {
            Some(err) => Err(RelayError::Kafka(err)),
            None => Ok(published.len()),
        }
    }

    async fn purge(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(self.config.retention).unwrap_or(chrono::Duration::days(1));
        sqlx::query("DELETE FROM outbox WHERE published_at < $1").bind(cutoff).execute(&mut *conn).await?;
        sqlx::query("DELETE FROM inbox WHERE processed_at < now() - make_interval(days => $1)")
            .bind(INBOX_RETENTION_DAYS)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

fn producer(kafka: &KafkaConfig, config: &RelayConfig) -> Result<FutureProducer, KafkaError> {
    let timeout_ms = config.delivery_timeout.as_millis().to_string();
    super::client_config(kafka)
        .set("enable.idempotence", if kafka.idempotent_producer { "true" } else { "false" })
        // Without idempotence, one request in flight keeps each partition in order.
        .set("max.in.flight.requests.per.connection", if kafka.idempotent_producer { "5" } else { "1" })
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", &timeout_ms)
        .create()
}

/// Errors that will not go away by retrying the same message.
fn is_permanent(err: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessage
                | Code::InvalidMessageSize
                | Code::InvalidRecord
                | Code::TopicAuthorizationFailed
                | Code::UnknownTopic
        )
    )
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let ms = 100u64.saturating_mul(1u64 << self.attempt.min(6)).min(5_000);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(ms)
    }

    pub(crate) async fn wait(&mut self, shutdown: &CancellationToken) {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
