//! Every SQL statement of the notifications service. Every query names the tenant.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct InvoiceRow {
    pub tenant_id: Uuid,
    pub invoice_id: Uuid,
    pub customer_id: Uuid,
    pub number: String,
    pub status: String,
    pub currency: String,
    pub total: Decimal,
    pub balance: Decimal,
    pub due_date: NaiveDate,
    pub bank_reference: String,
    pub paused_by_staff: bool,
    pub hardship_open: bool,
    pub dispute_open: bool,
}

impl InvoiceRow {
    /// Whether reminders may go out for it now.
    pub fn remindable(&self) -> bool {
        matches!(self.status.as_str(), "open" | "partially_paid" | "overdue")
            && self.balance > Decimal::ZERO
            && !self.paused()
    }

    pub fn paused(&self) -> bool {
        self.paused_by_staff || self.hardship_open || self.dispute_open
    }
}

const INVOICE_COLUMNS: &str = "tenant_id, invoice_id, customer_id, number, status, currency, total, balance, due_date, \
     bank_reference, paused_by_staff, hardship_open, dispute_open";

#[derive(Debug, Clone, FromRow)]
pub struct CustomerRow {
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub legal_name: String,
    pub contacts: serde_json::Value,
    pub paused: bool,
    pub autopay: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct PolicyRow {
    pub customer_id: Option<Uuid>,
    pub body: serde_json::Value,
    pub webhook_secret: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Option<Uuid>,
    pub installment_id: Option<Uuid>,
    pub kind: String,
    pub step: Option<i32>,
    pub tone: String,
    pub channel: String,
    pub recipient: String,
    pub language: String,
    pub data: serde_json::Value,
    pub send_at: DateTime<Utc>,
    pub status: String,
    pub attempts: i32,
    pub last_error: String,
    pub provider_id: String,
    pub idempotency_key: String,
    pub sent_at: Option<DateTime<Utc>>,
}

const MESSAGE_COLUMNS: &str = "tenant_id, id, customer_id, invoice_id, installment_id, kind, step, tone, channel, recipient, language, \
     data, send_at, status, attempts, last_error, provider_id, idempotency_key, sent_at";

// --- what invoicing tells ---

pub async fn upsert_customer(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    legal_name: &str,
    contacts: &serde_json::Value,
    autopay: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (tenant_id, customer_id, legal_name, contacts, autopay) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET legal_name = $3, contacts = $4, autopay = $5",
    )
    .bind(tenant)
    .bind(customer)
    .bind(legal_name)
    .bind(contacts)
    .bind(autopay)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct InvoiceUpsert<'a> {
    pub invoice_id: Uuid,
    pub customer_id: Uuid,
    pub number: &'a str,
    pub status: &'a str,
    pub currency: &'a str,
    pub total: Decimal,
    pub balance: Decimal,
    pub due_date: NaiveDate,
}

pub async fn upsert_invoice(conn: &mut PgConnection, tenant: Uuid, i: &InvoiceUpsert<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, status, currency, total, balance, due_date) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET \
         number = $4, status = $5, currency = $6, total = $7, balance = $8, due_date = $9, updated_at = now()",
    )
    .bind(tenant)
    .bind(i.invoice_id)
    .bind(i.customer_id)
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

pub async fn set_balance(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    balance: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invoices SET balance = $3, updated_at = now() WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .bind(balance)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_bank_reference(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    reference: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invoices SET bank_reference = $3 WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .bind(reference)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct InstallmentRow {
    pub installment_id: Uuid,
    pub invoice_id: Uuid,
    pub seq: i32,
    pub due_date: NaiveDate,
    pub amount: Decimal,
    pub balance: Decimal,
}

/// Replace an invoice's installment plan with `rows`.
pub async fn replace_installments(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    rows: &[InstallmentRow],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM installments WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .execute(&mut *conn)
        .await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO installments (tenant_id, installment_id, invoice_id, seq, due_date, amount, balance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(r.installment_id)
        .bind(invoice)
        .bind(r.seq)
        .bind(r.due_date)
        .bind(r.amount)
        .bind(r.balance)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn installments(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    invoice: Uuid,
) -> Result<Vec<InstallmentRow>, sqlx::Error> {
    sqlx::query_as::<_, InstallmentRow>(
        "SELECT installment_id, invoice_id, seq, due_date, amount, balance FROM installments \
         WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(invoice)
    .fetch_all(db)
    .await
}

pub async fn installment(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    installment: Uuid,
) -> Result<Option<InstallmentRow>, sqlx::Error> {
    sqlx::query_as::<_, InstallmentRow>(
        "SELECT installment_id, invoice_id, seq, due_date, amount, balance FROM installments \
         WHERE tenant_id = $1 AND installment_id = $2",
    )
    .bind(tenant)
    .bind(installment)
    .fetch_optional(db)
    .await
}

/// A payment reached an installment: lower what is left of it, and when nothing is, cancel its
/// planned reminders.
pub async fn apply_to_installment(
    conn: &mut PgConnection,
    tenant: Uuid,
    installment: Uuid,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    let left: Option<Decimal> = sqlx::query_scalar(
        "UPDATE installments SET balance = GREATEST(balance - $3, 0) WHERE tenant_id = $1 AND installment_id = $2 \
         RETURNING balance",
    )
    .bind(tenant)
    .bind(installment)
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await?;
    if left.is_some_and(|b| b <= Decimal::ZERO) {
        sqlx::query(
            "UPDATE messages SET status = 'canceled' WHERE tenant_id = $1 AND installment_id = $2 AND status = 'planned'",
        )
        .bind(tenant)
        .bind(installment)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Why an invoice's reminders are held.
#[derive(Debug, Clone, Copy)]
pub enum Hold {
    Staff,
    Hardship,
    Dispute,
}

pub async fn set_hold(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    hold: Hold,
    on: bool,
) -> Result<bool, sqlx::Error> {
    let sql = match hold {
        Hold::Staff => "UPDATE invoices SET paused_by_staff = $3 WHERE tenant_id = $1 AND invoice_id = $2",
        Hold::Hardship => "UPDATE invoices SET hardship_open = $3 WHERE tenant_id = $1 AND invoice_id = $2",
        Hold::Dispute => "UPDATE invoices SET dispute_open = $3 WHERE tenant_id = $1 AND invoice_id = $2",
    };
    let done = sqlx::query(sql).bind(tenant).bind(invoice).bind(on).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn invoice(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    invoice: Uuid,
) -> Result<Option<InvoiceRow>, sqlx::Error> {
    sqlx::query_as::<_, InvoiceRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND invoice_id = $2"
    )))
    .bind(tenant)
    .bind(invoice)
    .fetch_optional(db)
    .await
}

pub async fn invoice_for_update(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
) -> Result<Option<InvoiceRow>, sqlx::Error> {
    sqlx::query_as::<_, InvoiceRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND invoice_id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(invoice)
    .fetch_optional(conn)
    .await
}

/// The customer's invoices that may still need reminders (history is left alone).
pub async fn open_invoices_of(conn: &mut PgConnection, tenant: Uuid, customer: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT invoice_id FROM invoices WHERE tenant_id = $1 AND customer_id = $2 \
         AND status IN ('open', 'partially_paid', 'overdue') AND balance > 0 ORDER BY invoice_id",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(conn)
    .await
}

pub async fn invoices_of(pool: &PgPool, tenant: Uuid, customer: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT invoice_id FROM invoices WHERE tenant_id = $1 AND customer_id = $2 ORDER BY invoice_id")
        .bind(tenant)
        .bind(customer)
        .fetch_all(pool)
        .await
}

pub async fn customer(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    customer: Uuid,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as::<_, CustomerRow>(
        "SELECT tenant_id, customer_id, legal_name, contacts, paused, autopay FROM customers \
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(db)
    .await
}

// --- policies ---

/// The customer's own policy, else the tenant's default.
pub async fn policy_for(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    customer: Uuid,
) -> Result<Option<PolicyRow>, sqlx::Error> {
    sqlx::query_as::<_, PolicyRow>(
        "SELECT p.customer_id, p.body, COALESCE(NULLIF(p.webhook_secret, ''), \
           (SELECT d.webhook_secret FROM policies d WHERE d.tenant_id = $1 AND d.customer_id IS NULL), '') \
           AS webhook_secret \
         FROM policies p WHERE p.tenant_id = $1 AND (p.customer_id = $2 OR p.customer_id IS NULL) \
         ORDER BY p.customer_id NULLS LAST LIMIT 1",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(db)
    .await
}

/// Save a policy; an empty `webhook_secret` keeps the one stored.
pub async fn upsert_policy(
    pool: &PgPool,
    tenant: Uuid,
    customer: Option<Uuid>,
    body: &serde_json::Value,
    webhook_secret: &str,
) -> Result<PolicyRow, sqlx::Error> {
    sqlx::query_as::<_, PolicyRow>(
        "INSERT INTO policies (tenant_id, customer_id, body, webhook_secret) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET body = $3, updated_at = now(), \
         webhook_secret = CASE WHEN $4 = '' THEN policies.webhook_secret ELSE $4 END \
         RETURNING customer_id, body, webhook_secret",
    )
    .bind(tenant)
    .bind(customer)
    .bind(body)
    .bind(webhook_secret)
    .fetch_one(pool)
    .await
}

pub async fn policies(pool: &PgPool, tenant: Uuid) -> Result<Vec<PolicyRow>, sqlx::Error> {
    sqlx::query_as::<_, PolicyRow>(
        "SELECT customer_id, body, webhook_secret FROM policies WHERE tenant_id = $1 ORDER BY customer_id NULLS FIRST",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

// --- opt-outs ---

pub async fn opted_out(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    customer: Uuid,
    address: &str,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM opt_outs WHERE tenant_id = $1 AND customer_id = $2 AND lower(address) = lower($3) \
         AND channel = $4)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(address)
    .bind(channel)
    .fetch_one(db)
    .await
}

pub async fn set_opt_out(
    pool: &PgPool,
    tenant: Uuid,
    customer: Uuid,
    address: &str,
    channel: &str,
    out: bool,
) -> Result<(), sqlx::Error> {
    let sql = if out {
        "INSERT INTO opt_outs (tenant_id, customer_id, address, channel) VALUES ($1, $2, lower($3), $4) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM opt_outs WHERE tenant_id = $1 AND customer_id = $2 AND address = lower($3) AND channel = $4"
    };
    sqlx::query(sql).bind(tenant).bind(customer).bind(address).bind(channel).execute(pool).await?;
    Ok(())
}

// --- messages ---

pub struct NewMessage<'a> {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Option<Uuid>,
    pub installment_id: Option<Uuid>,
    pub kind: &'a str,
    pub step: Option<i32>,
    pub tone: &'a str,
    pub channel: &'a str,
    pub recipient: &'a str,
    pub language: &'a str,
    pub data: &'a serde_json::Value,
    pub send_at: DateTime<Utc>,
    pub idempotency_key: &'a str,
}

/// Plan a message, or move a planned (or canceled) one with the same key to its new time; a
/// message already sent, or on its way, is left alone, so re-planning never sends twice, and one
/// waiting out a retry's backoff keeps it.
pub async fn plan_message(conn: &mut PgConnection, tenant: Uuid, m: &NewMessage<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (tenant_id, id, customer_id, invoice_id, kind, step, tone, channel, recipient, language, \
         send_at, status, idempotency_key, data, installment_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'planned', $12, $13, $14) \
         ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET send_at = $11, status = 'planned', recipient = $9, \
         language = $10, tone = $7, kind = $5, step = $6, attempts = 0, last_error = '', sent_at = NULL \
         WHERE messages.status = 'canceled' OR (messages.status = 'planned' AND messages.attempts = 0)",
    )
    .bind(tenant)
    .bind(m.id)
    .bind(m.customer_id)
    .bind(m.invoice_id)
    .bind(m.kind)
    .bind(m.step)
    .bind(m.tone)
    .bind(m.channel)
    .bind(m.recipient)
    .bind(m.language)
    .bind(m.send_at)
    .bind(m.idempotency_key)
    .bind(m.data)
    .bind(m.installment_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancel the reminders and autopay notices still planned for an invoice (one-off messages about it, such as the
/// invoice itself or a staff notice, still go). Returns how many.
pub async fn cancel_planned(conn: &mut PgConnection, tenant: Uuid, invoice: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'canceled' WHERE tenant_id = $1 AND invoice_id = $2 AND status = 'planned' \
         AND (step IS NOT NULL OR kind = 'autopay_upcoming')",
    )
    .bind(tenant)
    .bind(invoice)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Cancel the invoice's planned reminders and autopay notices that are not in `keep` (a re-plan
/// dropped them: a removed step, a contact without that address any more, a missed step
/// superseded, a plan that replaced the invoice's own due date).
pub async fn cancel_reminders_except(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    keep: &[String],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'canceled' WHERE tenant_id = $1 AND invoice_id = $2 AND status = 'planned' \
         AND (step IS NOT NULL OR kind = 'autopay_upcoming') AND idempotency_key <> ALL($3)",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(keep)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Claim up to `limit` due messages for this dispatcher: planned ones whose time came, and
/// ones another dispatcher claimed and never finished (its lease ran out: it died mid-send).
/// `SKIP LOCKED` lets several dispatchers share the rows without waiting on each other.
/// `now` is the business clock's (send times are planned on it); leases use the database's.
pub async fn claim_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
    lease: chrono::Duration,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    // Two ordered scans, each able to use its index; stale claims first, since they waited
    // longest. A round may take up to twice `limit` when both kinds are waiting.
    sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "WITH stale AS (SELECT tenant_id, id FROM messages WHERE status = 'sending' AND locked_until < now() \
           ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED), \
         due AS (SELECT tenant_id, id FROM messages WHERE status = 'planned' AND send_at <= $3 \
           ORDER BY send_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE messages m SET status = 'sending', locked_until = now() + $2, attempts = m.attempts + 1 \
         FROM (SELECT tenant_id, id FROM stale UNION ALL SELECT tenant_id, id FROM due) claimed \
         WHERE m.tenant_id = claimed.tenant_id AND m.id = claimed.id \
         RETURNING {}",
        MESSAGE_COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(limit)
    .bind(lease)
    .bind(now)
    .fetch_all(pool)
    .await
}

/// Finish a claimed message; false when it is no longer ours: another dispatcher took it over
/// when our lease ran out (every claim counts an attempt, so the count fences the claim).
pub async fn finish(
    conn: &mut PgConnection,
    tenant: Uuid,
    claim: &MessageRow,
    status: &str,
    provider_id: &str,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE messages SET status = $3, provider_id = $4, last_error = $5, locked_until = NULL, \
         sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE NULL END \
         WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $6",
    )
    .bind(tenant)
    .bind(claim.id)
    .bind(status)
    .bind(provider_id)
    .bind(error)
    .bind(claim.attempts)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Put a claimed message back for later (a transient failure, the daily cap). `counts` says
/// whether this round counts as a try.
pub async fn later(
    pool: &PgPool,
    claim: &MessageRow,
    at: DateTime<Utc>,
    error: &str,
    counts: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET status = 'planned', send_at = $3, last_error = $4, locked_until = NULL, sent_at = NULL, \
         attempts = CASE WHEN $5 THEN attempts ELSE attempts - 1 END \
         WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $6",
    )
    .bind(claim.tenant_id)
    .bind(claim.id)
    .bind(at)
    .bind(error)
    .bind(counts)
    .bind(claim.attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Reserve a place under the customer's daily cap for a claimed reminder: under a lock per
/// customer, count the reminders sent or reserved in [from, to) and, if there is room, mark this
/// one (its `sent_at` is the reservation until it is sent or put back). So several messages due
/// at once, on several dispatchers, cannot all slip under the cap.
pub async fn reserve_under_cap(
    pool: &PgPool,
    claim: &MessageRow,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cap: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 1))")
        .bind(claim.tenant_id)
        .bind(claim.customer_id)
        .execute(&mut *tx)
        .await?;
    let taken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE tenant_id = $1 AND customer_id = $2 AND step IS NOT NULL \
         AND status IN ('sent', 'sending') AND sent_at >= $3 AND sent_at < $4 AND id <> $5",
    )
    .bind(claim.tenant_id)
    .bind(claim.customer_id)
    .bind(from)
    .bind(to)
    .bind(claim.id)
    .fetch_one(&mut *tx)
    .await?;
    if taken >= cap {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE messages SET sent_at = now() WHERE tenant_id = $1 AND id = $2 AND attempts = $3")
        .bind(claim.tenant_id)
        .bind(claim.id)
        .bind(claim.attempts)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn set_customer_paused(
    pool: &PgPool,
    tenant: Uuid,
    customer: Uuid,
    paused: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE customers SET paused = $3 WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(customer)
        .bind(paused)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a stored secret exists for webhooks of this policy (or the tenant's default).
pub async fn has_webhook_secret(pool: &PgPool, tenant: Uuid, customer: Option<Uuid>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM policies WHERE tenant_id = $1 AND webhook_secret <> '' \
         AND (customer_id IS NOT DISTINCT FROM $2 OR customer_id IS NULL))",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_one(pool)
    .await
}

pub async fn messages(
    pool: &PgPool,
    tenant: Uuid,
    invoice: Option<Uuid>,
    customer: Option<Uuid>,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 \
         AND ($2::uuid IS NULL OR invoice_id = $2) AND ($3::uuid IS NULL OR customer_id = $3) \
         AND ($4::text IS NULL OR status = $4) AND ($5::uuid IS NULL OR id > $5) ORDER BY id LIMIT $6"
    )))
    .bind(tenant)
    .bind(invoice)
    .bind(customer)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn invoice_messages(pool: &PgPool, tenant: Uuid, invoice: Uuid) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY send_at, step, channel"
    )))
    .bind(tenant)
    .bind(invoice)
    .fetch_all(pool)
    .await
}
