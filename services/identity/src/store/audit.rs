//! The security audit log, and its event on `cobro.identity.v1` written in the same transaction.

use chrono::{DateTime, Utc};
use cobro_kit::events::{NewEvent, enqueue};
use cobro_proto::events::v1::SecurityEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

pub const TOPIC: &str = "cobro.identity.v1";
pub const SECURITY_EVENT: &str = "identity.security_event";

/// One entry. Never a password, secret, code or token: who, what, whom, from where.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub action: &'static str,
    pub actor: String,
    pub subject: String,
    pub client_ip: String,
    pub detail: String,
}

impl Entry {
    /// Someone acting on their own account.
    pub fn own(action: &'static str, who: &str, client_ip: &str, detail: impl Into<String>) -> Self {
        Self {
            action,
            actor: who.to_owned(),
            subject: who.to_owned(),
            client_ip: client_ip.to_owned(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub subject: String,
    pub client_ip: String,
    pub detail: String,
}

pub async fn record(conn: &mut PgConnection, tenant_id: Uuid, entry: &Entry) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, action, actor, subject, client_ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(entry.action)
    .bind(&entry.actor)
    .bind(&entry.subject)
    .bind(&entry.client_ip)
    .bind(&entry.detail)
    .execute(&mut *conn)
    .await?;
    let event = SecurityEvent {
        audit_id: id.to_string(),
        action: entry.action.to_owned(),
        actor: entry.actor.clone(),
        subject: entry.subject.clone(),
        client_ip: entry.client_ip.clone(),
        detail: entry.detail.clone(),
    };
    let aggregate = if entry.subject.is_empty() { tenant_id.to_string() } else { entry.subject.clone() };
    enqueue(conn, TOPIC, NewEvent::new(SECURITY_EVENT, tenant_id, aggregate, &event)).await?;
    Ok(id)
}

/// Newest first, before `before`.
pub async fn list(pool: &PgPool, tenant_id: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT id, occurred_at, action, actor, subject, client_ip, detail FROM audit_log \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
