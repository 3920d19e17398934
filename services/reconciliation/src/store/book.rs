//! What is owed, as invoicing and payments described it in their events: customers, invoices,
//! installments, RF references and processor payouts.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

pub async fn mark_dirty(conn: &mut PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO dirty_tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// A tenant to match again, taken off the list in the caller's transaction (other replicas
/// skip it meanwhile).
pub async fn take_dirty(conn: &mut PgConnection) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM dirty_tenants WHERE tenant_id = \
         (SELECT tenant_id FROM dirty_tenants ORDER BY since LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING tenant_id",
    )
    .fetch_optional(conn)
    .await
}

pub async fn upsert_customer(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (tenant_id, customer_id, name) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(tenant)
    .bind(customer)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remember_account(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    account: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_accounts (tenant_id, account, customer_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(account)
    .bind(customer)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_reference(
    conn: &mut PgConnection,
    tenant: Uuid,
    reference: &str,
    customer: Uuid,
    invoice: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_references (tenant_id, reference, customer_id, invoice_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, reference) DO UPDATE SET customer_id = EXCLUDED.customer_id, invoice_id = EXCLUDED.invoice_id",
    )
    .bind(tenant)
    .bind(reference)
    .bind(customer)
    .bind(invoice)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct InvoiceState<'a> {
    pub invoice: Uuid,
    pub customer: Uuid,
    pub number: &'a str,
    pub status: &'a str,
    pub currency: &'a str,
    pub total: Decimal,
    pub balance: Decimal,
    pub due_date: NaiveDate,
}

/// The invoice as invoicing says it is now (its events arrive in order per invoice).
pub async fn upsert_invoice(conn: &mut PgConnection, tenant: Uuid, i: &InvoiceState<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, status, currency, total, balance, due_date) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET \
         customer_id = EXCLUDED.customer_id, number = EXCLUDED.number, status = EXCLUDED.status, \
         currency = EXCLUDED.currency, total = EXCLUDED.total, balance = EXCLUDED.balance, due_date = EXCLUDED.due_date",
    )
    .bind(tenant)
    .bind(i.invoice)
    .bind(i.customer)
    .bind(i.number)
    .bind(i.status)
    .bind(i.currency)
    .bind(i.total)
    .bind(i.balance)
    .bind(i.due_date)
    .execute(conn)
    .await?;
    Ok(())
}

/// Invoicing applied part of a payment: the invoice's (or installment's) new balance, and when
/// the payment was this service's, what it had pending on that invoice is pending no more.
pub async fn payment_applied(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    installment: Option<Uuid>,
    balance: Decimal,
    ours: Option<&str>,
) -> Result<(), sqlx::Error> {
    if let Some(payment) = ours {
        release_pending(conn, tenant, payment, Some(invoice)).await?;
    }
    match installment {
        Some(installment) => {
            sqlx::query("UPDATE installments SET balance = $3 WHERE tenant_id = $1 AND installment_id = $2")
                .bind(tenant)
                .bind(installment)
                .bind(balance)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE invoices SET balance = \
                 (SELECT COALESCE(SUM(balance), 0) FROM installments WHERE tenant_id = $1 AND invoice_id = $2) \
                 WHERE tenant_id = $1 AND invoice_id = $2",
            )
            .bind(tenant)
            .bind(invoice)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("UPDATE invoices SET balance = $3 WHERE tenant_id = $1 AND invoice_id = $2")
                .bind(tenant)
                .bind(invoice)
                .bind(balance)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Drop what `payment` has pending (on one invoice, or everywhere) from the items' pending sums.
pub async fn release_pending(
    conn: &mut PgConnection,
    tenant: Uuid,
    payment: &str,
    invoice: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let released: Vec<(Uuid, Option<Uuid>, Decimal)> = sqlx::query_as(
        "DELETE FROM pending_payments WHERE tenant_id = $1 AND payment_id = $2 \
         AND ($3::uuid IS NULL OR invoice_id = $3) RETURNING invoice_id, installment_id, amount",
    )
    .bind(tenant)
    .bind(payment)
    .bind(invoice)
    .fetch_all(&mut *conn)
    .await?;
    for (invoice, installment, amount) in released {
        if let Some(installment) = installment {
            sqlx::query(
                "UPDATE installments SET pending = GREATEST(pending - $3, 0) WHERE tenant_id = $1 AND installment_id = $2",
            )
            .bind(tenant)
            .bind(installment)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("UPDATE invoices SET pending = GREATEST(pending - $3, 0) WHERE tenant_id = $1 AND invoice_id = $2")
            .bind(tenant)
            .bind(invoice)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub struct PlannedInstallment {
    pub installment: Uuid,
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: Decimal,
    pub balance: Decimal,
}

/// The invoice's installment plan as it is now (replacing any earlier one).
pub async fn replace_plan(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    plan: &[PlannedInstallment],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM installments WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .execute(&mut *conn)
        .await?;
    for p in plan {
        sqlx::query(
            "INSERT INTO installments (tenant_id, installment_id, invoice_id, seq, due_date, amount, balance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(p.installment)
        .bind(invoice)
        .bind(p.seq)
        .bind(p.due_date)
        .bind(p.amount)
        .bind(p.balance)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE invoices SET has_plan = $3 WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .bind(!plan.is_empty())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Money `payment` applied to an item ahead of invoicing confirming it.
pub async fn add_pending(
    conn: &mut PgConnection,
    tenant: Uuid,
    payment: &str,
    invoice: Uuid,
    installment: Option<Uuid>,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pending_payments (tenant_id, payment_id, item_id, invoice_id, installment_id, amount) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, payment_id, item_id) \
         DO UPDATE SET amount = pending_payments.amount + EXCLUDED.amount",
    )
    .bind(tenant)
    .bind(payment)
    .bind(installment.unwrap_or(invoice))
    .bind(invoice)
    .bind(installment)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    if let Some(installment) = installment {
        sqlx::query("UPDATE installments SET pending = pending + $3 WHERE tenant_id = $1 AND installment_id = $2")
            .bind(tenant)
            .bind(installment)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE invoices SET pending = pending + $3 WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An invoice, or one installment of an invoice with a plan, and what is still open on it
/// after what this service applied ahead of invoicing.
#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub installment_id: Option<Uuid>,
    pub seq: Option<i32>,
    pub customer_id: Uuid,
    pub number: String,
    pub status: String,
    pub currency: String,
    pub total: Decimal,
    pub open: Decimal,
    pub due_date: NaiveDate,
    pub customer_name: String,
    pub reference: String,
}

const ITEMS: &str = "WITH items AS ( \
       SELECT i.invoice_id AS id, i.invoice_id, NULL::uuid AS installment_id, NULL::int AS seq, i.customer_id, i.number, \
              i.status, i.currency, i.total, i.balance - i.pending AS open, i.due_date \
         FROM invoices i WHERE i.tenant_id = $1 AND NOT i.has_plan \
       UNION ALL \
       SELECT s.installment_id, s.invoice_id, s.installment_id, s.seq, i.customer_id, i.number, i.status, i.currency, \
              s.amount, s.balance - s.pending, s.due_date \
         FROM installments s JOIN invoices i ON i.tenant_id = s.tenant_id AND i.invoice_id = s.invoice_id \
        WHERE s.tenant_id = $1 AND i.has_plan) \
     SELECT items.*, COALESCE(c.name, '') AS customer_name, \
            COALESCE((SELECT r.reference FROM payment_references r WHERE r.tenant_id = $1 \
                       AND r.invoice_id = items.invoice_id ORDER BY r.reference LIMIT 1), '') AS reference \
       FROM items LEFT JOIN customers c ON c.tenant_id = $1 AND c.customer_id = items.customer_id";

/// Every item still owed: invoices open or partly paid, with something left after pending.
pub async fn open_items(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!(
        "{ITEMS} WHERE items.status IN ('open', 'partially_paid') AND items.open > 0"
    )))
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// Items already settled (paid, or nothing left open): what a second payment would be a
/// duplicate of.
pub async fn settled_items(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!(
        "{ITEMS} WHERE items.status = 'paid' OR (items.status IN ('open', 'partially_paid') AND items.open <= 0)"
    )))
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// One item by invoice (and installment), locked.
pub async fn item(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    installment: Option<Uuid>,
) -> Result<Option<ItemRow>, sqlx::Error> {
    sqlx::query("SELECT 1 FROM invoices WHERE tenant_id = $1 AND invoice_id = $2 FOR UPDATE")
        .bind(tenant)
        .bind(invoice)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!(
        "{ITEMS} WHERE items.invoice_id = $2 AND items.installment_id IS NOT DISTINCT FROM $3"
    )))
    .bind(tenant)
    .bind(invoice)
    .bind(installment)
    .fetch_optional(conn)
    .await
}

/// Accounts each customer paid from before.
pub async fn customer_accounts(
    conn: &mut PgConnection,
    tenant: Uuid,
) -> Result<HashMap<Uuid, Vec<String>>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT customer_id, account FROM customer_accounts WHERE tenant_id = $1 ORDER BY account")
            .bind(tenant)
            .fetch_all(conn)
            .await?;
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (customer, account) in rows {
        out.entry(customer).or_default().push(account);
    }
    Ok(out)
}

/// RF references that stand for a customer rather than one invoice.
pub async fn customer_references(conn: &mut PgConnection, tenant: Uuid) -> Result<HashMap<String, Uuid>, sqlx::Error> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT reference, customer_id FROM payment_references WHERE tenant_id = $1 AND invoice_id IS NULL",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

#[derive(Debug, Clone, FromRow)]
pub struct PayoutRow {
    pub payout_id: Uuid,
    pub connector: String,
    pub payout_ref: String,
    pub day: NaiveDate,
    pub currency: String,
    pub gross: Decimal,
    pub fees: Decimal,
    pub refunds: Decimal,
    pub net: Decimal,
    pub line_id: Option<Uuid>,
}

/// A payout, once; false when it was known.
pub async fn insert_payout(conn: &mut PgConnection, tenant: Uuid, p: &PayoutRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO payouts (tenant_id, payout_id, connector, payout_ref, day, currency, gross, fees, refunds, net) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(p.payout_id)
    .bind(&p.connector)
    .bind(&p.payout_ref)
    .bind(p.day)
    .bind(&p.currency)
    .bind(p.gross)
    .bind(p.fees)
    .bind(p.refunds)
    .bind(p.net)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Payouts no bank line has paid out yet.
pub async fn open_payouts(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<PayoutRow>, sqlx::Error> {
    sqlx::query_as::<_, PayoutRow>(
        "SELECT payout_id, connector, payout_ref, day, currency, gross, fees, refunds, net, line_id FROM payouts \
         WHERE tenant_id = $1 AND line_id IS NULL ORDER BY day, payout_id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

pub async fn set_payout_line(
    conn: &mut PgConnection,
    tenant: Uuid,
    payout: Uuid,
    line: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payouts SET line_id = $3 WHERE tenant_id = $1 AND payout_id = $2")
        .bind(tenant)
        .bind(payout)
        .bind(line)
        .execute(conn)
        .await?;
    Ok(())
}
