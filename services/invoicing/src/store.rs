//! Every SQL statement of invoicing. Rows are addressed by `(tenant_id, id)`.

use chrono::{DateTime, NaiveDate, Utc};
use cobro_kit::events::{NewEvent, enqueue};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::{InvoicingError, Result};

pub const TOPIC: &str = "cobro.invoicing.v1";

pub async fn event(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    event_type: &str,
    aggregate: Uuid,
    payload: &impl prost::Message,
) -> Result<()> {
    enqueue(conn, TOPIC, NewEvent::new(event_type, tenant_id, aggregate.to_string(), payload)).await?;
    Ok(())
}

// --- customers ---

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub external_id: Option<String>,
    pub legal_name: String,
    pub tax_id: String,
    pub tax_country: String,
    pub billing_address: serde_json::Value,
    pub contacts: serde_json::Value,
    pub payment_terms_days: i32,
    pub currency: String,
    pub credit_limit: Option<Decimal>,
    pub reminder_policy: String,
    pub autopay: bool,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Unapplied overpayments.
    pub credit_balance: Decimal,
}

const CUSTOMER: &str = "SELECT c.tenant_id, c.id, c.external_id, c.legal_name, c.tax_id, c.tax_country, c.billing_address, \
     c.contacts, c.payment_terms_days, c.currency, c.credit_limit, c.reminder_policy, c.autopay, c.tags, c.created_at, \
     coalesce((SELECT sum(p.unapplied) FROM payments p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id AND p.unapplied > 0 \
     AND p.currency = c.currency), 0) \
     AS credit_balance FROM customers c";

/// Set a customer's autopay flag; whether it changed (false for an unknown customer too).
pub async fn set_customer_autopay(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid, autopay: bool) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE customers SET autopay = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 AND autopay <> $3",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(autopay)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn customer(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<Option<CustomerRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{CUSTOMER} WHERE c.tenant_id = $1 AND c.id = $2")))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn customers(pool: &PgPool, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<CustomerRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CUSTOMER} WHERE c.tenant_id = $1 AND ($2::uuid IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3"
    )))
    .bind(tenant_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Insert, or update the customer with this id (`update`) or this external id. Returns its id,
/// or None when `update` names no customer of the tenant.
pub async fn upsert_customer(conn: &mut PgConnection, c: &CustomerRow, update: bool) -> Result<Option<Uuid>> {
    let sql = if update {
        "UPDATE customers SET external_id = $3, legal_name = $4, tax_id = $5, tax_country = $6, billing_address = $7, \
         contacts = $8, payment_terms_days = $9, currency = $10, credit_limit = $11, reminder_policy = $12, \
         autopay = $13, tags = $14, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING id"
    } else {
        "INSERT INTO customers (tenant_id, id, external_id, legal_name, tax_id, tax_country, billing_address, contacts, \
         payment_terms_days, currency, credit_limit, reminder_policy, autopay, tags) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO UPDATE SET \
         legal_name = excluded.legal_name, tax_id = excluded.tax_id, tax_country = excluded.tax_country, \
         billing_address = excluded.billing_address, contacts = excluded.contacts, \
         payment_terms_days = excluded.payment_terms_days, currency = excluded.currency, \
         credit_limit = excluded.credit_limit, reminder_policy = excluded.reminder_policy, \
         autopay = excluded.autopay, tags = excluded.tags, updated_at = now() RETURNING id"
    };
    sqlx::query_scalar(sql)
        .bind(c.tenant_id)
        .bind(c.id)
        .bind(&c.external_id)
        .bind(&c.legal_name)
        .bind(&c.tax_id)
        .bind(&c.tax_country)
        .bind(&c.billing_address)
        .bind(&c.contacts)
        .bind(c.payment_terms_days)
        .bind(&c.currency)
        .bind(c.credit_limit)
        .bind(&c.reminder_policy)
        .bind(c.autopay)
        .bind(&c.tags)
        .fetch_optional(conn)
        .await
        .map_err(|e| match cobro_kit::db::classify(&e) {
            cobro_kit::db::PgErrorKind::UniqueViolation { .. } => InvoicingError::AlreadyExists {
                code: "external_id_taken",
                field: "customer.external_id",
                message: "another customer has this external id",
            },
            _ => InvoicingError::Database(e),
        })
}

// --- invoices ---

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvoiceRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub customer_id: Uuid,
    pub external_id: Option<String>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub discount_kind: String,
    pub discount_value: Decimal,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub credited: Decimal,
    pub paid: Decimal,
    pub balance: Decimal,
    pub memo: String,
}

const INVOICE: &str = "SELECT tenant_id, id, customer_id, external_id, number, status, currency, issue_date, due_date, \
     discount_kind, discount_value, subtotal, discount_total, tax_total, total, credited, paid, balance, memo FROM invoices";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LineRow {
    pub position: i32,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub discount_kind: String,
    pub discount_value: Decimal,
    pub taxes: serde_json::Value,
    pub net: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstallmentRow {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: Decimal,
    pub balance: Decimal,
}

pub async fn insert_invoice(conn: &mut PgConnection, i: &InvoiceRow, lines: &[LineRow]) -> Result<()> {
    insert_invoice_from(conn, i, lines, None).await
}

/// Insert an invoice as `i` says (a draft, or an ERP's issued invoice with its number), with
/// the hash of what an import sent.
pub async fn insert_invoice_from(
    conn: &mut PgConnection,
    i: &InvoiceRow,
    lines: &[LineRow],
    source_hash: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, customer_id, external_id, status, currency, issue_date, due_date, \
         discount_kind, discount_value, subtotal, discount_total, tax_total, total, balance, memo, number, source_hash, issued_at) \
         VALUES ($1, $2, $3, $4, $15, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $16, $17, \
                 CASE WHEN $15 = 'draft' THEN NULL ELSE now() END)",
    )
    .bind(i.tenant_id)
    .bind(i.id)
    .bind(i.customer_id)
    .bind(&i.external_id)
    .bind(&i.currency)
    .bind(i.issue_date)
    .bind(i.due_date)
    .bind(&i.discount_kind)
    .bind(i.discount_value)
    .bind(i.subtotal)
    .bind(i.discount_total)
    .bind(i.tax_total)
    .bind(i.total)
    .bind(&i.memo)
    .bind(&i.status)
    .bind(&i.number)
    .bind(source_hash)
    .execute(&mut *conn)
    .await
    .map_err(|e| match cobro_kit::db::classify(&e) {
        cobro_kit::db::PgErrorKind::UniqueViolation { constraint: Some(c) } if c == "invoices_number" => {
            InvoicingError::AlreadyExists { code: "number_taken", field: "number", message: "another invoice has this number" }
        }
        cobro_kit::db::PgErrorKind::UniqueViolation { .. } => InvoicingError::AlreadyExists {
            code: "external_id_taken",
            field: "external_id",
            message: "another invoice has this external id",
        },
        _ => InvoicingError::Database(e),
    })?;
    // All lines in one statement: an import of many invoices is round-trip bound.
    let positions: Vec<i32> = lines.iter().map(|l| l.position).collect();
    let descriptions: Vec<&str> = lines.iter().map(|l| l.description.as_str()).collect();
    let quantities: Vec<Decimal> = lines.iter().map(|l| l.quantity).collect();
    let prices: Vec<Decimal> = lines.iter().map(|l| l.unit_price).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.discount_kind.as_str()).collect();
    let values: Vec<Decimal> = lines.iter().map(|l| l.discount_value).collect();
    let taxes: Vec<serde_json::Value> = lines.iter().map(|l| l.taxes.clone()).collect();
    let nets: Vec<Decimal> = lines.iter().map(|l| l.net).collect();
    let tax_totals: Vec<Decimal> = lines.iter().map(|l| l.tax_total).collect();
    let totals: Vec<Decimal> = lines.iter().map(|l| l.total).collect();
    sqlx::query(
        "INSERT INTO invoice_lines (tenant_id, invoice_id, position, description, quantity, unit_price, \
         discount_kind, discount_value, taxes, net, tax_total, total) \
         SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::numeric[], $6::numeric[], $7::text[], $8::numeric[], \
                                      $9::jsonb[], $10::numeric[], $11::numeric[], $12::numeric[])",
    )
    .bind(i.tenant_id)
    .bind(i.id)
    .bind(&positions)
    .bind(&descriptions)
    .bind(&quantities)
    .bind(&prices)
    .bind(&kinds)
    .bind(&values)
    .bind(&taxes)
    .bind(&nets)
    .bind(&tax_totals)
    .bind(&totals)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn invoice(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid, lock: bool) -> Result<Option<InvoiceRow>> {
    let sql = if lock {
        format!("{INVOICE} WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
    } else {
        format!("{INVOICE} WHERE tenant_id = $1 AND id = $2")
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant_id).bind(id).fetch_optional(conn).await?)
}

pub async fn invoices(
    pool: &PgPool,
    tenant_id: Uuid,
    customer: Option<Uuid>,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InvoiceRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{INVOICE} WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2) AND ($3::text IS NULL OR status = $3) \
         AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5"
    )))
    .bind(tenant_id)
    .bind(customer)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn lines(conn: &mut PgConnection, tenant_id: Uuid, invoice_id: Uuid) -> Result<Vec<LineRow>> {
    Ok(sqlx::query_as(
        "SELECT position, description, quantity, unit_price, discount_kind, discount_value, taxes, net, tax_total, total \
         FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY position",
    )
    .bind(tenant_id)
    .bind(invoice_id)
    .fetch_all(conn)
    .await?)
}

pub async fn installments(conn: &mut PgConnection, tenant_id: Uuid, invoice_id: Uuid) -> Result<Vec<InstallmentRow>> {
    Ok(sqlx::query_as(
        "SELECT id, invoice_id, seq, due_date, amount, balance FROM installments \
         WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY seq",
    )
    .bind(tenant_id)
    .bind(invoice_id)
    .fetch_all(conn)
    .await?)
}

/// The next number of a tenant's series for a year. The counter row stays locked until the
/// caller's transaction ends, so numbers are gapless: a rollback gives the number back.
pub async fn next_number(conn: &mut PgConnection, tenant_id: Uuid, series: &str, year: i32) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO number_series (tenant_id, series, year, last_value) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (tenant_id, series, year) DO UPDATE SET last_value = number_series.last_value + 1 \
         RETURNING last_value",
    )
    .bind(tenant_id)
    .bind(series)
    .bind(year)
    .fetch_one(conn)
    .await?)
}

pub async fn mark_issued(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    number: &str,
    issue_date: NaiveDate,
    due_date: NaiveDate,
) -> Result<()> {
    sqlx::query(
        "UPDATE invoices SET status = 'open', number = $3, issue_date = $4, due_date = $5, issued_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status = 'draft'",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(number)
    .bind(issue_date)
    .bind(due_date)
    .execute(conn)
    .await?;
    Ok(())
}

/// Write an invoice's money columns and status after a payment, credit or void.
pub async fn set_amounts(conn: &mut PgConnection, i: &InvoiceRow) -> Result<()> {
    sqlx::query(
        "UPDATE invoices SET status = $3, credited = $4, paid = $5, balance = $6, \
         voided_at = CASE WHEN $3 = 'void' THEN now() ELSE voided_at END WHERE tenant_id = $1 AND id = $2",
    )
    .bind(i.tenant_id)
    .bind(i.id)
    .bind(&i.status)
    .bind(i.credited)
    .bind(i.paid)
    .bind(i.balance)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_installments(conn: &mut PgConnection, tenant_id: Uuid, rows: &[InstallmentRow]) -> Result<()> {
    for r in rows {
        sqlx::query(
            "INSERT INTO installments (tenant_id, id, invoice_id, seq, due_date, amount, balance) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(tenant_id)
        .bind(r.id)
        .bind(r.invoice_id)
        .bind(r.seq)
        .bind(r.due_date)
        .bind(r.amount)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn set_installment_balance(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    balance: Decimal,
) -> Result<()> {
    sqlx::query("UPDATE installments SET balance = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .bind(balance)
        .execute(conn)
        .await?;
    Ok(())
}

pub struct NewCreditNote<'a> {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub number: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    pub reason: &'a str,
}

pub async fn insert_credit_note(conn: &mut PgConnection, c: &NewCreditNote<'_>) -> Result<DateTime<Utc>> {
    let NewCreditNote { tenant_id, id, invoice_id, number, amount, currency, reason } = *c;
    Ok(sqlx::query_scalar(
        "INSERT INTO credit_notes (tenant_id, id, invoice_id, number, amount, currency, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(invoice_id)
    .bind(number)
    .bind(amount)
    .bind(currency)
    .bind(reason)
    .fetch_one(conn)
    .await?)
}

// --- payments and allocations ---

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub customer_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub unapplied: Decimal,
}

pub struct NewPayment<'a> {
    pub tenant_id: Uuid,
    pub id: &'a str,
    pub customer_id: Uuid,
    pub amount: Decimal,
    pub currency: &'a str,
    pub method: &'a str,
    pub received_on: NaiveDate,
}

/// Record a payment; false when its id was recorded before (it is applied once).
pub async fn insert_payment(conn: &mut PgConnection, p: &NewPayment<'_>) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO payments (tenant_id, id, customer_id, amount, currency, method, received_on, unapplied) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $4) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(p.tenant_id)
    .bind(p.id)
    .bind(p.customer_id)
    .bind(p.amount)
    .bind(p.currency)
    .bind(p.method)
    .bind(p.received_on)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn payment(conn: &mut PgConnection, tenant_id: Uuid, id: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(
        "SELECT id, customer_id, amount, currency, unapplied FROM payments WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Payments of a customer with money left to apply, oldest first, locked.
pub async fn payments_with_credit(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    customer_id: Uuid,
    currency: &str,
) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as(
        "SELECT id, customer_id, amount, currency, unapplied FROM payments \
         WHERE tenant_id = $1 AND customer_id = $2 AND currency = $3 AND unapplied > 0 \
         AND NOT EXISTS (SELECT 1 FROM payment_reversals r WHERE r.tenant_id = payments.tenant_id AND r.payment_id = payments.id) \
         ORDER BY created_at, id FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(customer_id)
    .bind(currency)
    .fetch_all(conn)
    .await?)
}

pub async fn set_unapplied(conn: &mut PgConnection, tenant_id: Uuid, id: &str, unapplied: Decimal) -> Result<()> {
    sqlx::query("UPDATE payments SET unapplied = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .bind(unapplied)
        .execute(conn)
        .await?;
    Ok(())
}

/// Serialize everything done to one payment id (applying it, reversing it) until the
/// transaction ends. A transaction-level advisory lock, because the payment row may not exist
/// yet when its reversal arrives.
pub async fn lock_payment_id(conn: &mut PgConnection, tenant_id: Uuid, id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('invoicing.payment:' || $1::text || '/' || $2, 0))")
        .bind(tenant_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn payment_for_update(conn: &mut PgConnection, tenant_id: Uuid, id: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(
        "SELECT id, customer_id, amount, currency, unapplied FROM payments WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Whether a payment id was reversed (or a reversal for it arrived before the payment).
pub async fn payment_reversed(conn: &mut PgConnection, tenant_id: Uuid, id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM payment_reversals WHERE tenant_id = $1 AND payment_id = $2)")
        .bind(tenant_id)
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Record a payment id as reversed; false when it was recorded before (it is reversed once).
pub async fn insert_reversal(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: &str,
    reason: &str,
    payment_recorded: bool,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO payment_reversals (tenant_id, payment_id, reason, payment_recorded) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, payment_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(reason)
    .bind(payment_recorded)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Mark every standing allocation of a payment as taken back on `on`, returning them.
pub async fn reverse_allocations(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    payment_id: &str,
    on: NaiveDate,
) -> Result<Vec<AllocationRow>> {
    Ok(sqlx::query_as(
        "UPDATE allocations SET reversed_on = $3 WHERE tenant_id = $1 AND payment_id = $2 AND reversed_on IS NULL \
         RETURNING invoice_id, installment_id, amount",
    )
    .bind(tenant_id)
    .bind(payment_id)
    .bind(on)
    .fetch_all(conn)
    .await?)
}

/// Give an installment back `amount` of its balance; false when the installment is gone (a
/// later plan replaced it).
pub async fn restore_installment_balance(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    invoice_id: Uuid,
    amount: Decimal,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE installments SET balance = balance + $4 WHERE tenant_id = $1 AND id = $2 AND invoice_id = $3",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(invoice_id)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lengthen an invoice's plan at its end by `amount` (amount and balance of the last
/// installment); false when the invoice has no plan.
pub async fn extend_last_installment(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    invoice_id: Uuid,
    amount: Decimal,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE installments SET amount = amount + $3, balance = balance + $3 WHERE tenant_id = $1 AND id = \
         (SELECT id FROM installments WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY seq DESC LIMIT 1)",
    )
    .bind(tenant_id)
    .bind(invoice_id)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Open invoices of a customer in a currency, locked, oldest due first.
pub async fn open_invoices_for_update(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    customer_id: Uuid,
    currency: &str,
) -> Result<Vec<InvoiceRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{INVOICE} WHERE tenant_id = $1 AND customer_id = $2 AND currency = $3 AND status IN ('open', 'partially_paid') \
         AND balance > 0 ORDER BY due_date, issue_date, number FOR UPDATE"
    )))
    .bind(tenant_id)
    .bind(customer_id)
    .bind(currency)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AllocationRow {
    pub invoice_id: Uuid,
    pub installment_id: Option<Uuid>,
    pub amount: Decimal,
}

pub async fn insert_allocation(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    payment_id: &str,
    a: &AllocationRow,
    applied_on: NaiveDate,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO allocations (tenant_id, id, payment_id, invoice_id, installment_id, amount, applied_on) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(Uuid::now_v7())
    .bind(payment_id)
    .bind(a.invoice_id)
    .bind(a.installment_id)
    .bind(a.amount)
    .bind(applied_on)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn allocations_of(conn: &mut PgConnection, tenant_id: Uuid, payment_id: &str) -> Result<Vec<AllocationRow>> {
    Ok(sqlx::query_as(
        "SELECT invoice_id, installment_id, amount FROM allocations WHERE tenant_id = $1 AND payment_id = $2 ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(payment_id)
    .fetch_all(conn)
    .await?)
}

// --- reports ---

/// Open receivables as (customer, due date, balance): installments where an invoice has them,
/// the invoice otherwise.
pub async fn open_items(pool: &PgPool, tenant_id: Uuid, currency: &str) -> Result<Vec<(Uuid, NaiveDate, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT i.customer_id, coalesce(s.due_date, i.due_date) AS due_date, coalesce(s.balance, i.balance) AS balance \
         FROM invoices i LEFT JOIN installments s ON s.tenant_id = i.tenant_id AND s.invoice_id = i.id AND s.balance > 0 \
         WHERE i.tenant_id = $1 AND i.currency = $2 AND i.status IN ('open', 'partially_paid') AND i.balance > 0 \
         AND (s.id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM installments x WHERE x.tenant_id = i.tenant_id AND x.invoice_id = i.id))",
    )
    .bind(tenant_id)
    .bind(currency)
    .fetch_all(pool)
    .await?)
}

/// Paid invoices with the date of their last allocation, for payment-behaviour figures.
pub async fn paid_history(
    pool: &PgPool,
    tenant_id: Uuid,
    currency: &str,
) -> Result<Vec<(Uuid, NaiveDate, NaiveDate, NaiveDate, Decimal)>> {
    Ok(sqlx::query_as(
        "SELECT i.customer_id, i.issue_date, i.due_date, max(a.applied_on), i.total FROM invoices i \
         JOIN allocations a ON a.tenant_id = i.tenant_id AND a.invoice_id = i.id AND a.reversed_on IS NULL \
         WHERE i.tenant_id = $1 AND i.currency = $2 AND i.status = 'paid' \
         GROUP BY i.tenant_id, i.id",
    )
    .bind(tenant_id)
    .bind(currency)
    .fetch_all(pool)
    .await?)
}

/// Receivables as they stood at the end of `day`: what was issued by then, less what was paid
/// or credited by then. With `current_only`, only invoices not yet due on that day.
pub async fn receivables_at(
    pool: &PgPool,
    tenant_id: Uuid,
    currency: &str,
    day: NaiveDate,
    current_only: bool,
) -> Result<Decimal> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(i.total \
             - coalesce((SELECT sum(a.amount) FROM allocations a WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id AND a.applied_on <= $3 \
                 AND (a.reversed_on IS NULL OR a.reversed_on > $3)), 0) \
             - coalesce((SELECT sum(c.amount) FROM credit_notes c WHERE c.tenant_id = i.tenant_id AND c.invoice_id = i.id AND c.created_at::date <= $3), 0)), 0) \
         FROM invoices i WHERE i.tenant_id = $1 AND i.currency = $2 AND i.issue_date <= $3 AND i.status <> 'draft' \
         AND (i.status <> 'void' OR i.voided_at::date > $3) AND (NOT $4 OR i.due_date >= $3)",
    )
    .bind(tenant_id)
    .bind(currency)
    .bind(day)
    .bind(current_only)
    .fetch_one(pool)
    .await?)
}

/// Totals of invoices issued within [from, to].
pub async fn credit_sales(
    pool: &PgPool,
    tenant_id: Uuid,
    currency: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Decimal> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(total), 0) FROM invoices WHERE tenant_id = $1 AND currency = $2 \
         AND issue_date BETWEEN $3 AND $4 AND status NOT IN ('draft', 'void')",
    )
    .bind(tenant_id)
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?)
}

/// Everything that moved a customer's balance up to `to`, in date order: invoices issued
/// (charges), payments applied and credit notes (credits). A payment taken back stays where it
/// was applied and appears again, as a charge of the same payment, on the day it was taken back.
pub async fn statement_rows(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    customer_id: Uuid,
    currency: &str,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, &'static str, String, Decimal, Decimal)>> {
    let rows: Vec<(NaiveDate, String, String, Decimal, Decimal)> = sqlx::query_as(
        "SELECT issue_date AS date, 'invoice' AS kind, number AS reference, total AS charge, 0::numeric AS credit, 0 AS o \
           FROM invoices WHERE tenant_id = $1 AND customer_id = $2 AND currency = $3 AND number IS NOT NULL \
           AND status <> 'void' AND issue_date <= $4 \
         UNION ALL \
         SELECT a.applied_on, 'payment', a.payment_id, 0, sum(a.amount), 1 FROM allocations a \
           JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id \
           WHERE a.tenant_id = $1 AND i.customer_id = $2 AND i.currency = $3 AND a.applied_on <= $4 \
           GROUP BY a.applied_on, a.payment_id \
         UNION ALL \
         SELECT a.reversed_on, 'payment', a.payment_id, sum(a.amount), 0, 3 FROM allocations a \
           JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id \
           WHERE a.tenant_id = $1 AND i.customer_id = $2 AND i.currency = $3 AND a.reversed_on <= $4 \
           GROUP BY a.reversed_on, a.payment_id \
         UNION ALL \
         SELECT c.created_at::date, 'credit_note', c.number, 0, c.amount, 2 FROM credit_notes c \
           JOIN invoices i ON i.tenant_id = c.tenant_id AND i.id = c.invoice_id \
           WHERE c.tenant_id = $1 AND i.customer_id = $2 AND c.currency = $3 AND c.created_at::date <= $4 \
         ORDER BY 1, 6, 3",
    )
    .bind(tenant_id)
    .bind(customer_id)
    .bind(currency)
    .bind(to)
    .fetch_all(conn)
    .await
    .map(|rows: Vec<(NaiveDate, String, String, Decimal, Decimal, i32)>| {
        rows.into_iter().map(|(d, k, r, ch, cr, _)| (d, k, r, ch, cr)).collect()
    })?;
    Ok(rows
        .into_iter()
        .map(|(date, kind, reference, charge, credit)| {
            let kind = match kind.as_str() {
                "invoice" => "invoice",
                "payment" => "payment",
                _ => "credit_note",
            };
            (date, kind, reference, charge, credit)
        })
        .collect())
}

pub async fn customer_by_external_id(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    external_id: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND external_id = $2")
        .bind(tenant_id)
        .bind(external_id)
        .fetch_optional(conn)
        .await?)
}

pub async fn invoice_by_external_id(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    external_id: &str,
) -> Result<Option<(Uuid, String, Option<String>)>> {
    Ok(sqlx::query_as("SELECT id, status, source_hash FROM invoices WHERE tenant_id = $1 AND external_id = $2")
        .bind(tenant_id)
        .bind(external_id)
        .fetch_optional(conn)
        .await?)
}

/// Remove a draft (its lines go with it) so an import can write it again.
pub async fn delete_draft(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM invoices WHERE tenant_id = $1 AND id = $2 AND status = 'draft'")
        .bind(tenant_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn changes(pool: &PgPool, tenant_id: Uuid, since: i64, limit: i64) -> Result<Vec<(InvoiceRow, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Changed {
        #[sqlx(flatten)]
        invoice: InvoiceRow,
        change_seq: i64,
    }
    let rows: Vec<Changed> = sqlx::query_as(
        "SELECT tenant_id, id, customer_id, external_id, number, status, currency, issue_date, due_date, discount_kind, \
         discount_value, subtotal, discount_total, tax_total, total, credited, paid, balance, memo, change_seq \
         FROM invoices WHERE tenant_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3",
    )
    .bind(tenant_id)
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.invoice, r.change_seq)).collect())
}

/// Whether the customer (by id, or by external id) has open invoices or credit in a currency
/// other than `currency`.
pub async fn currency_in_use_elsewhere(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Option<Uuid>,
    external_id: Option<&str>,
    currency: &str,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "WITH c AS (SELECT id FROM customers WHERE tenant_id = $1 AND (id = $2 OR ($3::text IS NOT NULL AND external_id = $3))) \
         SELECT EXISTS (SELECT 1 FROM invoices i JOIN c ON i.customer_id = c.id WHERE i.tenant_id = $1 \
                        AND i.status IN ('draft', 'open', 'partially_paid') AND i.currency <> $4) \
             OR EXISTS (SELECT 1 FROM payments p JOIN c ON p.customer_id = c.id WHERE p.tenant_id = $1 \
                        AND p.unapplied > 0 AND p.currency <> $4)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(external_id)
    .bind(currency)
    .fetch_one(conn)
    .await?)
}

// --- hardship requests and disputes ---

/// A hardship request or a dispute, with what staff need to decide it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    /// `hardship` or `dispute`.
    pub kind: String,
    pub invoice_id: Uuid,
    pub invoice_number: Option<String>,
    pub customer_id: Uuid,
    pub currency: String,
    pub balance: Decimal,
    pub state: String,
    pub reason: String,
    pub installments: Option<i32>,
    pub first_date: Option<NaiveDate>,
    pub note: String,
    pub resolution_note: String,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The tenant's requests of `kind` (`None`: both) that are open (`Some(true)`), resolved
/// (`Some(false)`) or either, by id after `after`.
pub async fn requests(
    pool: &PgPool,
    tenant_id: Uuid,
    kind: Option<&str>,
    open: Option<bool>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RequestRow>> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.kind, r.invoice_id, i.number AS invoice_number, i.customer_id, i.currency, i.balance, \
         r.state, r.reason, r.installments, r.first_date, r.note, r.resolution_note, r.requested_by, r.created_at, \
         r.resolved_at FROM ( \
           SELECT tenant_id, id, 'hardship' AS kind, invoice_id, state, reason, installments, first_date, note, \
                  resolution_note, requested_by, created_at, resolved_at FROM hardship_requests WHERE tenant_id = $1 \
           UNION ALL \
           SELECT tenant_id, id, 'dispute' AS kind, invoice_id, state, reason, NULL::integer, NULL::date, '', \
                  resolution_note, opened_by, created_at, resolved_at FROM disputes WHERE tenant_id = $1 \
         ) r JOIN invoices i ON i.tenant_id = r.tenant_id AND i.id = r.invoice_id \
         WHERE r.tenant_id = $1 AND ($2::text IS NULL OR r.kind = $2) \
         AND ($3::boolean IS NULL OR (r.state = 'open') = $3) AND ($4::uuid IS NULL OR r.id > $4) \
         ORDER BY r.id LIMIT $5",
    )
    .bind(tenant_id)
    .bind(kind)
    .bind(open)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
