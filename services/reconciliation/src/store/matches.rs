//! Matches, their items and the audit trail of every decision on them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct MatchRow {
    pub id: Uuid,
    pub line_id: Uuid,
    pub rule: String,
    pub confidence: Decimal,
    pub status: String,
    pub customer_id: Option<Uuid>,
    pub decided_by: String,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub payment_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct MatchItemRow {
    pub match_id: Uuid,
    pub seq: i32,
    pub invoice_id: Option<Uuid>,
    pub installment_id: Option<Uuid>,
    pub payout_id: Option<Uuid>,
    pub invoice_number: String,
    pub amount: Decimal,
    pub currency: String,
}

const MATCH_COLUMNS: &str =
    "id, line_id, rule, confidence, status, customer_id, decided_by, decided_at, reason, payment_id, created_at";

pub struct NewMatch<'a> {
    pub id: Uuid,
    pub line_id: Uuid,
    pub rule: &'a str,
    pub confidence: Decimal,
    pub status: &'a str,
    pub customer_id: Option<Uuid>,
    pub decided_by: &'a str,
    pub reason: &'a str,
    pub payment_id: &'a str,
    pub items: &'a [MatchItemRow],
}

/// Insert a match with its items and audit row; the match as stored.
pub async fn insert(conn: &mut PgConnection, tenant: Uuid, m: &NewMatch<'_>) -> Result<MatchRow, sqlx::Error> {
    let decided = m.status != "suggested";
    let row = sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO matches (tenant_id, id, line_id, rule, confidence, status, customer_id, decided_by, decided_at, \
         reason, payment_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9 THEN now() END, $10, $11) \
         RETURNING {MATCH_COLUMNS}"
    )))
    .bind(tenant)
    .bind(m.id)
    .bind(m.line_id)
    .bind(m.rule)
    .bind(m.confidence)
    .bind(m.status)
    .bind(m.customer_id)
    .bind(m.decided_by)
    .bind(decided)
    .bind(m.reason)
    .bind(m.payment_id)
    .fetch_one(&mut *conn)
    .await?;
    for item in m.items {
        sqlx::query(
            "INSERT INTO match_items (tenant_id, match_id, seq, invoice_id, installment_id, payout_id, invoice_number, \
             amount, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(m.id)
        .bind(item.seq)
        .bind(item.invoice_id)
        .bind(item.installment_id)
        .bind(item.payout_id)
        .bind(&item.invoice_number)
        .bind(item.amount)
        .bind(&item.currency)
        .execute(&mut *conn)
        .await?;
    }
    audit(conn, tenant, m.id, m.line_id, if decided { "confirmed" } else { "suggested" }, m.decided_by, m.reason)
        .await?;
    Ok(row)
}

pub async fn audit(
    conn: &mut PgConnection,
    tenant: Uuid,
    match_id: Uuid,
    line_id: Uuid,
    action: &str,
    actor: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO match_audit (tenant_id, match_id, line_id, action, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(match_id)
    .bind(line_id)
    .bind(action)
    .bind(actor)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// One match, locked for a decision.
pub async fn get_for_update(conn: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<MatchRow>, sqlx::Error> {
    sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MATCH_COLUMNS} FROM matches WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn decide(
    conn: &mut PgConnection,
    tenant: Uuid,
    m: &MatchRow,
    status: &str,
    actor: &str,
    reason: &str,
    payment_id: &str,
) -> Result<MatchRow, sqlx::Error> {
    let row = sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE matches SET status = $3, decided_by = $4, decided_at = now(), reason = $5, \
         payment_id = CASE WHEN $6 = '' THEN payment_id ELSE $6 END \
         WHERE tenant_id = $1 AND id = $2 RETURNING {MATCH_COLUMNS}"
    )))
    .bind(tenant)
    .bind(m.id)
    .bind(status)
    .bind(actor)
    .bind(reason)
    .bind(payment_id)
    .fetch_one(&mut *conn)
    .await?;
    audit(conn, tenant, m.id, m.line_id, status, actor, reason).await?;
    Ok(row)
}

pub async fn items(conn: &mut PgConnection, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<MatchItemRow>, sqlx::Error> {
    sqlx::query_as::<_, MatchItemRow>(
        "SELECT match_id, seq, invoice_id, installment_id, payout_id, invoice_number, amount, currency FROM match_items \
         WHERE tenant_id = $1 AND match_id = ANY($2) ORDER BY match_id, seq",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    status: Option<&str>,
    line: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MatchRow>, sqlx::Error> {
    sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MATCH_COLUMNS} FROM matches WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::uuid IS NULL OR line_id = $3) AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5"
    )))
    .bind(tenant)
    .bind(status)
    .bind(line)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The live (suggested or confirmed) match of each line among `lines`.
pub async fn live_for_lines(
    conn: &mut PgConnection,
    tenant: Uuid,
    lines: &[Uuid],
) -> Result<Vec<MatchRow>, sqlx::Error> {
    sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MATCH_COLUMNS} FROM matches WHERE tenant_id = $1 AND line_id = ANY($2) \
         AND status IN ('suggested', 'confirmed') ORDER BY id"
    )))
    .bind(tenant)
    .bind(lines)
    .fetch_all(conn)
    .await
}

/// Item sets people turned down, per line: (line, sorted item ids).
pub async fn rejected_sets(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<(Uuid, Vec<Uuid>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.line_id, array_agg(COALESCE(i.installment_id, i.invoice_id, i.payout_id) ORDER BY \
         COALESCE(i.installment_id, i.invoice_id, i.payout_id)) FROM matches m \
         JOIN match_items i ON i.tenant_id = m.tenant_id AND i.match_id = m.id \
         WHERE m.tenant_id = $1 AND m.status = 'rejected' GROUP BY m.id, m.line_id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// Everything the audit report says about each match of lines booked in a period.
pub async fn for_lines(pool: &PgPool, tenant: Uuid, lines: &[Uuid]) -> Result<Vec<MatchRow>, sqlx::Error> {
    sqlx::query_as::<_, MatchRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MATCH_COLUMNS} FROM matches WHERE tenant_id = $1 AND line_id = ANY($2) ORDER BY id"
    )))
    .bind(tenant)
    .bind(lines)
    .fetch_all(pool)
    .await
}
