//! Consuming events at least once, applying them exactly once.
//!
//! For each message: begin a transaction, insert `(consumer, event_id)` into the inbox (a
//! duplicate insert means the event was already applied: skip it), run the handler in the same
//! transaction, commit, and only then store the offset. Stored offsets are committed to the
//! broker every `commit_interval` and at shutdown. A crash anywhere before the offset commit
//! means redelivery, which the inbox turns into a no-op.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cobro_proto::events::v1::Envelope;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::KafkaConfig;
use crate::events::headers;
use crate::events::relay::Backoff;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (database busy, a dependency down): the event is redelivered.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never apply (unknown aggregate, invalid payload): recorded in the inbox as
    /// rejected with the reason, and skipped.
    #[error("rejected: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Data and constraint errors (SQLSTATE classes 22, 23) and SQL mistakes (42) will fail the
    /// same way every time: retrying would stall the partition forever.
    fn from(err: sqlx::Error) -> Self {
        let class =
            err.as_database_error().and_then(|db| db.code()).map(|code| code.chars().take(2).collect::<String>());
        match class.as_deref() {
            Some("22" | "23" | "42") => HandlerError::Permanent(err.to_string()),
            _ => HandlerError::Transient(err.to_string()),
        }
    }
}

/// What a service does with an event. `conn` is inside the transaction that also records the
/// event in the inbox: write through it and both commit together.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        event: &Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Most events applied in one transaction.
const MAX_BATCH: usize = 200;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer group; also the inbox's `consumer` column, so one service can run several
    /// consumers over the same events independently.
    pub group: String,
    pub topics: Vec<String>,
    /// How often stored offsets are committed to the broker.
    pub commit_interval: Duration,
}

impl ConsumerConfig {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self { group: group.into(), topics, commit_interval: Duration::from_secs(1) }
    }
}

/// Counters a running consumer updates; cheap to read from tests, benches and metrics.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub handled: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub undecodable: AtomicU64,
}

impl ConsumerStats {
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
}

pub struct Consumer<H> {
    pool: PgPool,
    consumer: StreamConsumer,
    config: ConsumerConfig,
    handler: H,
    stats: Arc<ConsumerStats>,
}

impl<H: EventHandler> Consumer<H> {
    pub fn new(pool: PgPool, kafka: &KafkaConfig, config: ConsumerConfig, handler: H) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = super::client_config(kafka)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Self { pool, consumer, config, handler, stats: Arc::default() })
    }

    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Consume until `shutdown`, then commit what was applied.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut commit_tick = tokio::time::interval(self.config.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = commit_tick.tick() => {
                    if dirty {
                        dirty = false;
                        self.commit(CommitMode::Async);
                    }
                }
                received = self.consumer.recv() => match received {
                    Ok(first) => {
                        // Take whatever else is already waiting, to apply it in one transaction.
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                                Ok(Ok(message)) => batch.push(message),
                                _ => break,
                            }
                        }
                        if !self.process_batch(&batch, &shutdown).await {
                            break;
                        }
                        for message in &batch {
                            if let Err(err) = self.consumer.store_offset_from_message(message) {
                                tracing::warn!(error = %err, "cannot store consumer offset");
                            }
                        }
                        dirty = true;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, group = %self.config.group, "consumer receive failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        // Always, not only when dirty: an async commit that failed earlier is retried here.
        self.commit(CommitMode::Sync);
    }

    fn commit(&self, mode: CommitMode) {
        if let Err(err) = self.consumer.commit_consumer_state(mode) {
            // Nothing stored yet is not an error worth a warning.
            if !matches!(err, KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) {
                tracing::warn!(error = %err, group = %self.config.group, "offset commit failed");
            }
        }
    }

    /// Apply a batch in one transaction (one commit instead of one per event); if any event in
    /// it fails, fall back to one transaction per event so one bad event cannot hold back the
    /// others. Returns false only when shut down before everything was applied.
    async fn process_batch(&self, batch: &[BorrowedMessage<'_>], shutdown: &CancellationToken) -> bool {
        if batch.len() > 1 {
            match self.apply_batch(batch).await {
                Ok((handled, duplicates)) => {
                    self.stats.handled.fetch_add(handled, Ordering::Relaxed);
                    self.stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                    crate::telemetry::metrics::events_consumed(&self.config.group, "handled", handled);
                    crate::telemetry::metrics::events_consumed(&self.config.group, "duplicate", duplicates);
                    return true;
                }
                Err(err) => tracing::debug!(error = %err, "batch not applied; applying events one by one"),
            }
        }
        for message in batch {
            if !self.process(message, shutdown).await {
                return false;
            }
        }
        true
    }

    /// All-or-nothing: any undecodable event, handler error or database error rolls the whole
    /// batch back. Returns (handled, duplicates).
    async fn apply_batch(&self, batch: &[BorrowedMessage<'_>]) -> Result<(u64, u64), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let (mut handled, mut duplicates) = (0u64, 0u64);
        for message in batch {
            let envelope = decode(message).ok_or_else(|| HandlerError::Permanent("undecodable".into()))?;
            let event_id = Uuid::parse_str(&envelope.id).map_err(|_| HandlerError::Permanent("bad id".into()))?;
            if !insert_inbox(&mut tx, &self.config.group, message, &envelope, event_id, None).await? {
                duplicates += 1;
                continue;
            }
            let span = event_span(&self.config.group, message, &envelope, event_id);
            self.handler.handle(&mut tx, &envelope).instrument(span).await?;
            handled += 1;
        }
        commit_checked(tx).await?;
        Ok((handled, duplicates))
    }

    /// Apply one message. Returns false only when shut down before it was applied (its offset
    /// must then not be stored).
    async fn process(&self, message: &BorrowedMessage<'_>, shutdown: &CancellationToken) -> bool {
        let Some(envelope) = decode(message) else {
            self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                "skipping a message that is not a Cobro event envelope"
            );
            return true;
        };
        let Ok(event_id) = Uuid::parse_str(&envelope.id) else {
            self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::error!(topic = message.topic(), offset = message.offset(), "skipping an event without a valid id");
            return true;
        };
        let span = event_span(&self.config.group, message, &envelope, event_id);

        let mut backoff = Backoff::default();
        loop {
            let outcome = self.apply(message, &envelope, event_id).instrument(span.clone()).await;
            match outcome {
                Ok(Applied::Handled) => {
                    self.stats.handled.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics::event_consumed(&self.config.group, "handled");
                    return true;
                }
                Ok(Applied::Duplicate) => {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics::event_consumed(&self.config.group, "duplicate");
                    return true;
                }
                Ok(Applied::Rejected) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics::event_consumed(&self.config.group, "rejected");
                    return true;
                }
                Err(err) => {
                    tracing::warn!(parent: &span, error = %err, "event handling failed; retrying");
                    backoff.wait(shutdown).await;
                    if shutdown.is_cancelled() {
                        return false;
                    }
                }
            }
        }
    }

    async fn apply(
        &self,
        message: &BorrowedMessage<'_>,
        envelope: &Envelope,
        event_id: Uuid,
    ) -> Result<Applied, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let inserted = insert_inbox(&mut tx, &self.config.group, message, envelope, event_id, None).await?;
        if !inserted {
            tx.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        match self.handler.handle(&mut tx, envelope).await {
            Ok(()) => {
                commit_checked(tx).await?;
                Ok(Applied::Handled)
            }
            Err(HandlerError::Permanent(reason)) => {
                tx.rollback().await?;
                tracing::error!(event.id = %event_id, %reason, "event rejected by its handler");
                let mut tx = self.pool.begin().await?;
                insert_inbox(&mut tx, &self.config.group, message, envelope, event_id, Some(truncate(&reason, 500)))
                    .await?;
                tx.commit().await?;
                Ok(Applied::Rejected)
            }
            Err(transient @ HandlerError::Transient(_)) => {
                tx.rollback().await?;
                Err(transient)
            }
        }
    }
}

enum Applied {
    Handled,
    Duplicate,
    Rejected,
}

/// Commit, refusing to count a transaction that Postgres silently rolled back: a handler that
/// swallowed a database error leaves the transaction aborted, and COMMIT then answers ROLLBACK
/// without an error. A statement in an aborted transaction does fail, so ask one first.
async fn commit_checked(mut tx: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), HandlerError> {
    if let Err(err) = sqlx::query("SELECT 1").execute(&mut *tx).await {
        let _ = tx.rollback().await;
        return Err(HandlerError::Transient(format!("the handler left its transaction aborted: {err}")));
    }
    tx.commit().await?;
    Ok(())
}

/// A span per event, child of the trace that produced it.
fn event_span(group: &str, message: &BorrowedMessage<'_>, envelope: &Envelope, event_id: Uuid) -> tracing::Span {
    let span = tracing::info_span!("consume", otel.kind = "consumer", event.id = %event_id,
        event.r#type = %envelope.r#type, consumer = %group);
    let traceparent = header(message, headers::TRACEPARENT).unwrap_or(envelope.traceparent.as_str());
    crate::telemetry::set_remote_parent(&span, traceparent);
    span
}

/// Record the event in the inbox, as handled or, with a reason, as rejected; false when it was
/// there already (a redelivery).
async fn insert_inbox(
    conn: &mut PgConnection,
    consumer: &str,
    message: &BorrowedMessage<'_>,
    envelope: &Envelope,
    event_id: Uuid,
    rejected_reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let outcome = if rejected_reason.is_some() { "rejected" } else { "handled" };
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, kafka_offset, outcome, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(&envelope.r#type)
    .bind(message.topic())
    .bind(message.partition())
    .bind(message.offset())
    .bind(outcome)
    .bind(rejected_reason)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

fn decode(message: &BorrowedMessage<'_>) -> Option<Envelope> {
    Envelope::decode(message.payload()?).ok()
}

fn header<'a>(message: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}
