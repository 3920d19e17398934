//! Every SQL statement of the reconciliation service. Every query names the tenant.

use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::statement::{BankLine, Direction, Statement};

#[derive(Debug, Clone, FromRow)]
pub struct BankAccountRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub number: String,
    pub currency: String,
}

pub async fn insert_bank_account(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    number: &str,
    currency: &str,
) -> Result<BankAccountRow, sqlx::Error> {
    sqlx::query_as::<_, BankAccountRow>(
        "INSERT INTO bank_accounts (tenant_id, id, name, number, currency) VALUES ($1, $2, $3, $4, $5) \
         RETURNING tenant_id, id, name, number, currency",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(number)
    .bind(currency)
    .fetch_one(pool)
    .await
}

pub async fn bank_account(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<BankAccountRow>, sqlx::Error> {
    sqlx::query_as::<_, BankAccountRow>(
        "SELECT tenant_id, id, name, number, currency FROM bank_accounts WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A statement of a file, once: `None` when this file's statement was imported before.
pub async fn insert_statement(
    conn: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    s: &Statement,
    file_sha256: &[u8],
    lines_read: u32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO statements (tenant_id, id, account_id, format, statement_id, file_sha256, lines_read, lines_new) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&s.format)
    .bind(&s.statement_id)
    .bind(file_sha256)
    .bind(i32::try_from(lines_read).unwrap_or(i32::MAX))
    .fetch_optional(conn)
    .await
}

pub async fn set_lines_new(
    conn: &mut PgConnection,
    tenant: Uuid,
    statement: Uuid,
    new: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE statements SET lines_new = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(statement)
        .bind(i32::try_from(new).unwrap_or(i32::MAX))
        .execute(conn)
        .await?;
    Ok(())
}

/// A bank line, once per account and entry key; false when it was already stored.
pub async fn insert_line(
    conn: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    statement: Uuid,
    entry_key: &str,
    l: &BankLine,
) -> Result<bool, sqlx::Error> {
    let direction = match l.direction {
        Direction::Credit => "credit",
        Direction::Debit => "debit",
    };
    let done = sqlx::query(
        "INSERT INTO bank_lines (tenant_id, id, account_id, statement_row, entry_key, booking_date, value_date, amount, \
         currency, direction, counterparty_name, counterparty_account, end_to_end_id, reference, remittance, bank_code, \
         statement_id, entry_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT (tenant_id, account_id, entry_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(statement)
    .bind(entry_key)
    .bind(l.booking_date)
    .bind(l.value_date)
    .bind(l.amount)
    .bind(&l.currency)
    .bind(direction)
    .bind(&l.counterparty_name)
    .bind(&l.counterparty_account)
    .bind(&l.end_to_end_id)
    .bind(&l.reference)
    .bind(&l.remittance)
    .bind(&l.bank_code)
    .bind(&l.statement_id)
    .bind(&l.entry_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub mod book;
pub mod discrepancies;
pub mod matches;

pub async fn bank_accounts(
    pool: &PgPool,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<BankAccountRow>, sqlx::Error> {
    sqlx::query_as::<_, BankAccountRow>(
        "SELECT tenant_id, id, name, number, currency FROM bank_accounts \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A stored bank line with its id and status.
#[derive(Debug, Clone, FromRow)]
pub struct LineRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub booking_date: chrono::NaiveDate,
    pub value_date: Option<chrono::NaiveDate>,
    pub amount: rust_decimal::Decimal,
    pub currency: String,
    pub direction: String,
    pub counterparty_name: String,
    pub counterparty_account: String,
    pub end_to_end_id: String,
    pub reference: String,
    pub remittance: String,
    pub bank_code: String,
    pub statement_id: String,
    pub entry_id: String,
    pub status: String,
}

impl LineRow {
    /// The line as the matching rules read it.
    pub fn to_bank_line(&self) -> BankLine {
        BankLine {
            booking_date: self.booking_date,
            value_date: self.value_date,
            amount: self.amount,
            currency: self.currency.clone(),
            direction: if self.direction == "debit" { Direction::Debit } else { Direction::Credit },
            counterparty_name: self.counterparty_name.clone(),
            counterparty_account: self.counterparty_account.clone(),
            end_to_end_id: self.end_to_end_id.clone(),
            reference: self.reference.clone(),
            remittance: self.remittance.clone(),
            bank_code: self.bank_code.clone(),
            statement_id: self.statement_id.clone(),
            entry_id: self.entry_id.clone(),
        }
    }
}

const LINE_COLUMNS: &str = "id, account_id, booking_date, value_date, amount, currency, direction, counterparty_name, \
     counterparty_account, end_to_end_id, reference, remittance, bank_code, statement_id, entry_id, status";

pub async fn lines(
    pool: &PgPool,
    tenant: Uuid,
    account: Option<Uuid>,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<LineRow>, sqlx::Error> {
    sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINE_COLUMNS} FROM bank_lines WHERE tenant_id = $1 AND ($2::uuid IS NULL OR account_id = $2) \
         AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5"
    )))
    .bind(tenant)
    .bind(account)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn line(conn: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<LineRow>, sqlx::Error> {
    sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINE_COLUMNS} FROM bank_lines WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Credits waiting for a match, oldest first, locked for this matching run.
pub async fn unmatched_credits(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<LineRow>, sqlx::Error> {
    sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINE_COLUMNS} FROM bank_lines WHERE tenant_id = $1 AND status = 'unmatched' AND direction = 'credit' \
         ORDER BY booking_date, id"
    )))
    .bind(tenant)
    .fetch_all(conn)
    .await
}

pub async fn set_line_status(conn: &mut PgConnection, tenant: Uuid, id: Uuid, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bank_lines SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Lines booked in a period, for the audit report.
pub async fn lines_booked(
    pool: &PgPool,
    tenant: Uuid,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<LineRow>, sqlx::Error> {
    sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINE_COLUMNS} FROM bank_lines WHERE tenant_id = $1 AND booking_date BETWEEN $2 AND $3 \
         ORDER BY booking_date, id"
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Serializes matching per tenant across replicas, for the caller's transaction.
pub async fn lock_tenant(conn: &mut PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('reconciliation.match:' || $1::text, 0))")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn save_csv_mapping(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    mapping: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO csv_mappings (tenant_id, name, mapping) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET mapping = EXCLUDED.mapping",
    )
    .bind(tenant)
    .bind(name)
    .bind(mapping)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn csv_mapping(pool: &PgPool, tenant: Uuid, name: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT mapping FROM csv_mappings WHERE tenant_id = $1 AND name = $2")
        .bind(tenant)
        .bind(name)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, Clone, FromRow)]
pub struct SettingsRow {
    pub auto_confirm_threshold: rust_decimal::Decimal,
    pub unmatched_after_days: i32,
    pub date_window_days: i32,
    pub payout_tolerance: rust_decimal::Decimal,
}

impl Default for SettingsRow {
    fn default() -> Self {
        Self {
            auto_confirm_threshold: rust_decimal::Decimal::new(90, 2),
            unmatched_after_days: 5,
            date_window_days: 30,
            payout_tolerance: rust_decimal::Decimal::new(50, 2),
        }
    }
}

pub async fn settings(conn: &mut PgConnection, tenant: Uuid) -> Result<SettingsRow, sqlx::Error> {
    let row = sqlx::query_as::<_, SettingsRow>(
        "SELECT auto_confirm_threshold, unmatched_after_days, date_window_days, payout_tolerance FROM settings \
         WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or_default())
}

pub async fn save_settings(pool: &PgPool, tenant: Uuid, s: &SettingsRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (tenant_id, auto_confirm_threshold, unmatched_after_days, date_window_days, payout_tolerance) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET \
         auto_confirm_threshold = EXCLUDED.auto_confirm_threshold, unmatched_after_days = EXCLUDED.unmatched_after_days, \
         date_window_days = EXCLUDED.date_window_days, payout_tolerance = EXCLUDED.payout_tolerance, updated_at = now()",
    )
    .bind(tenant)
    .bind(s.auto_confirm_threshold)
    .bind(s.unmatched_after_days)
    .bind(s.date_window_days)
    .bind(s.payout_tolerance)
    .execute(pool)
    .await?;
    Ok(())
}
