//! Discrepancies staff should look at, each raised once per line or payout and kind.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct DiscrepancyRow {
    pub id: Uuid,
    pub kind: String,
    pub line_id: Option<Uuid>,
    pub payout_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub currency: String,
    pub amount: Decimal,
    pub expected: Option<Decimal>,
    pub detail: String,
    pub status: String,
    pub resolved_by: String,
    pub resolution: String,
    pub created_at: DateTime<Utc>,
}

impl DiscrepancyRow {
    /// A new open discrepancy of `kind` about `amount`; the builders below say what it is about.
    pub fn new(kind: &str, currency: &str, amount: Decimal) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            line_id: None,
            payout_id: None,
            invoice_id: None,
            currency: currency.to_owned(),
            amount,
            expected: None,
            detail: String::new(),
            status: "open".to_owned(),
            resolved_by: String::new(),
            resolution: String::new(),
            created_at: Utc::now(),
        }
    }

    pub fn line(self, id: Uuid) -> Self {
        Self { line_id: Some(id), ..self }
    }

    pub fn payout(self, id: Uuid) -> Self {
        Self { payout_id: Some(id), ..self }
    }

    pub fn invoice(self, id: Uuid) -> Self {
        Self { invoice_id: Some(id), ..self }
    }

    pub fn expected(self, amount: Decimal) -> Self {
        Self { expected: Some(amount), ..self }
    }

    pub fn detail(self, text: String) -> Self {
        Self { detail: text, ..self }
    }
}

const COLUMNS: &str = "id, kind, line_id, payout_id, invoice_id, currency, amount, expected, detail, status, resolved_by, resolution, created_at";

/// Raise a discrepancy once; `None` when this kind was raised for this line or payout before.
pub async fn raise(
    conn: &mut PgConnection,
    tenant: Uuid,
    d: &DiscrepancyRow,
) -> Result<Option<DiscrepancyRow>, sqlx::Error> {
    sqlx::query_as::<_, DiscrepancyRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO discrepancies (tenant_id, id, kind, line_id, payout_id, invoice_id, currency, amount, expected, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(d.id)
    .bind(&d.kind)
    .bind(d.line_id)
    .bind(d.payout_id)
    .bind(d.invoice_id)
    .bind(&d.currency)
    .bind(d.amount)
    .bind(d.expected)
    .bind(&d.detail)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    status: Option<&str>,
    kind: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DiscrepancyRow>, sqlx::Error> {
    sqlx::query_as::<_, DiscrepancyRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM discrepancies WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR kind = $3) AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5"
    )))
    .bind(tenant)
    .bind(status)
    .bind(kind)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Mark resolved; `None` when there is no such discrepancy for the tenant.
pub async fn resolve(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
    resolution: &str,
) -> Result<Option<DiscrepancyRow>, sqlx::Error> {
    sqlx::query_as::<_, DiscrepancyRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE discrepancies SET status = 'resolved', resolved_by = $3, resolution = $4, resolved_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .bind(resolution)
    .fetch_optional(pool)
    .await
}

/// Credits booked on or before `booked_by` that are still unmatched and not yet reported.
pub async fn stale_credits(
    conn: &mut PgConnection,
    tenant: Uuid,
    booked_by: NaiveDate,
) -> Result<Vec<(Uuid, Decimal, String, NaiveDate)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.id, l.amount, l.currency, l.booking_date FROM bank_lines l WHERE l.tenant_id = $1 \
         AND l.status = 'unmatched' AND l.direction = 'credit' AND l.booking_date <= $2 \
         AND NOT EXISTS (SELECT 1 FROM discrepancies d WHERE d.tenant_id = $1 AND d.kind = 'unmatched_credit' \
                         AND d.line_id = l.id) ORDER BY l.booking_date, l.id LIMIT 10000",
    )
    .bind(tenant)
    .bind(booked_by)
    .fetch_all(conn)
    .await
}

/// Tenants with unmatched credits, for the periodic check.
pub async fn tenants_with_unmatched(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT tenant_id FROM bank_lines WHERE status = 'unmatched' AND direction = 'credit'")
        .fetch_all(pool)
        .await
}
