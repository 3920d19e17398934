//! Writing events in the caller's transaction.

use chrono::Utc;
use cobro_proto::events::v1::Envelope;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// An event to publish. `payload` is the encoded typed event message of `cobro.events.v1`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Dotted type, e.g. `invoice.issued`.
    pub event_type: String,
    pub tenant_id: Uuid,
    /// The id of the aggregate the event is about; with the tenant it forms the message key,
    /// so events of one aggregate stay in order on one partition.
    pub aggregate_id: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        tenant_id: Uuid,
        aggregate_id: impl Into<String>,
        payload: &impl Message,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            tenant_id,
            aggregate_id: aggregate_id.into(),
            payload: payload.encode_to_vec(),
        }
    }
}

/// The Kafka message key of an event: `<tenant_id>/<aggregate_id>`.
pub fn message_key(tenant_id: Uuid, aggregate_id: &str) -> String {
    format!("{tenant_id}/{aggregate_id}")
}

/// An outbox row ready to insert: for services that write it as part of a larger statement
/// (one round trip for a state change and its event). [`enqueue`] is the usual way.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event_id: Uuid,
    pub topic: String,
    pub message_key: String,
    pub event_type: String,
    pub tenant_id: Uuid,
    pub envelope: Vec<u8>,
    pub traceparent: String,
}

/// Build the outbox row of `event`; the current trace context travels with it.
pub fn prepare(topic: &str, event: NewEvent) -> PreparedEvent {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let traceparent = crate::telemetry::current_traceparent().unwrap_or_default();
    let key = message_key(event.tenant_id, &event.aggregate_id);
    let envelope = Envelope {
        id: id.to_string(),
        r#type: event.event_type.clone(),
        tenant_id: event.tenant_id.to_string(),
        aggregate_id: event.aggregate_id,
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        traceparent: traceparent.clone(),
        payload: event.payload,
    };
    PreparedEvent {
        event_id: id,
        topic: topic.to_owned(),
        message_key: key,
        event_type: event.event_type,
        tenant_id: event.tenant_id,
        envelope: envelope.encode_to_vec(),
        traceparent,
    }
}

/// Write `event` to the outbox inside the caller's transaction (pass `&mut *tx`). Returns the
/// event id. The current trace context travels with it.
pub async fn enqueue(conn: &mut PgConnection, topic: &str, event: NewEvent) -> Result<Uuid, sqlx::Error> {
    let row = prepare(topic, event);
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, tenant_id, envelope, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.event_id)
    .bind(&row.topic)
    .bind(&row.message_key)
    .bind(&row.event_type)
    .bind(row.tenant_id)
    .bind(&row.envelope)
    .bind(&row.traceparent)
    .execute(&mut *conn)
    .await?;
    Ok(row.event_id)
}
