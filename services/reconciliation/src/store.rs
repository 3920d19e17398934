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
