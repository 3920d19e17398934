//! Payments' SQL. Every statement is scoped by tenant.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IntentRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub customer_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub method: String,
    pub card_token: Option<String>,
    pub payment_method_id: Option<Uuid>,
    pub mandate_id: Option<Uuid>,
    pub invoice_ids: Vec<Uuid>,
    pub installment_id: Option<Uuid>,
    pub link_id: Option<Uuid>,
    pub autopay_run_id: Option<Uuid>,
    pub description: String,
    pub transfer_reference: Option<String>,
    pub return_url: String,
    pub next_action_url: Option<String>,
    pub processor: Option<String>,
    pub processor_ref: Option<String>,
    pub amount_received: Decimal,
    pub amount_refunded: Decimal,
    pub fee: Decimal,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The reconciliation payment (`rcm_…`) that settled this transfer or direct debit, when
    /// reconciliation matched the money on its own.
    pub settled_by: Option<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub intent_id: Uuid,
    pub connector: String,
    pub status: String,
    pub amount: Decimal,
    pub currency: String,
    pub fee: Decimal,
    pub processor_ref: Option<String>,
    pub decline_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub intent_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub reason: String,
    pub processor_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Receivable {
    pub invoice_id: Uuid,
    pub customer_id: Uuid,
    pub number: String,
    pub status: String,
    pub currency: String,
    pub balance: Decimal,
    pub due_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MethodRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: String,
    pub vault_token: Option<String>,
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub account_masked: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MandateRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: String,
    pub payment_method_id: Option<Uuid>,
    pub mandate_reference: String,
    pub consent_text: String,
    pub consent_ip: String,
    pub consented_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Option<Uuid>,
    pub installment_id: Option<Uuid>,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub description: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct SettingsRow {
    pub allow_overpayment: bool,
    pub account_holder: String,
    pub iban: String,
    pub bic: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PayoutRow {
    pub id: Uuid,
    pub connector: String,
    pub payout_ref: String,
    pub day: NaiveDate,
    pub currency: String,
    pub gross: Decimal,
    pub fees: Decimal,
    pub refunds: Decimal,
    pub net: Decimal,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AutopayRun {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Uuid,
    pub installment_id: Option<Uuid>,
    pub due_date: NaiveDate,
    pub attempts: i32,
    pub status: String,
    pub next_try_on: Option<NaiveDate>,
    pub last_intent_id: Option<Uuid>,
    pub last_decline: Option<String>,
    pub last_tried_on: Option<NaiveDate>,
}

// --- settings ---

pub async fn settings(db: impl sqlx::PgExecutor<'_>, tenant: Uuid) -> Result<SettingsRow, sqlx::Error> {
    Ok(sqlx::query_as::<_, SettingsRow>(
        "SELECT allow_overpayment, account_holder, iban, bic FROM tenant_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await?
    .unwrap_or_default())
}

pub async fn save_settings(pool: &PgPool, tenant: Uuid, s: &SettingsRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, allow_overpayment, account_holder, iban, bic) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET allow_overpayment = $2, account_holder = $3, iban = $4, bic = $5, updated_at = now()",
    )
    .bind(tenant)
    .bind(s.allow_overpayment)
    .bind(&s.account_holder)
    .bind(&s.iban)
    .bind(&s.bic)
    .execute(pool)
    .await?;
    Ok(())
}

// --- receivables (invoicing's read model) ---

pub async fn receivables(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Receivable>, sqlx::Error> {
    sqlx::query_as::<_, Receivable>(
        "SELECT invoice_id, customer_id, number, status, currency, balance, due_date FROM receivables \
         WHERE tenant_id = $1 AND invoice_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(db)
    .await
}

pub async fn installment_balance(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    installment: Uuid,
) -> Result<Option<(Uuid, Decimal)>, sqlx::Error> {
    sqlx::query_as("SELECT invoice_id, balance FROM installments_due WHERE tenant_id = $1 AND installment_id = $2")
        .bind(tenant)
        .bind(installment)
        .fetch_optional(db)
        .await
}

/// A payment applied to an installment that already fell due lowers what is left of it.
pub async fn lower_installment_due(
    conn: &mut PgConnection,
    tenant: Uuid,
    installment: Uuid,
    applied: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE installments_due SET balance = GREATEST(balance - $3, 0) WHERE tenant_id = $1 AND installment_id = $2",
    )
    .bind(tenant)
    .bind(installment)
    .bind(applied)
    .execute(conn)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn upsert_receivable(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    customer: Uuid,
    number: &str,
    status: &str,
    currency: &str,
    total: Decimal,
    balance: Decimal,
    due_date: Option<NaiveDate>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO receivables (tenant_id, invoice_id, customer_id, number, status, currency, total, balance, due_date) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET number = $4, status = $5, currency = $6, total = $7, \
         balance = $8, due_date = COALESCE($9, receivables.due_date), updated_at = now()",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(customer)
    .bind(number)
    .bind(status)
    .bind(currency)
    .bind(total)
    .bind(balance)
    .bind(due_date)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_receivable_balance(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    balance: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE receivables SET balance = $3, status = CASE WHEN $3 <= 0 THEN 'paid' ELSE status END, updated_at = now() \
         WHERE tenant_id = $1 AND invoice_id = $2",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(balance)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_installment_due(
    conn: &mut PgConnection,
    tenant: Uuid,
    installment: Uuid,
    invoice: Uuid,
    due_date: NaiveDate,
    currency: &str,
    balance: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO installments_due (tenant_id, installment_id, invoice_id, due_date, currency, balance) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, installment_id) DO UPDATE SET balance = $6",
    )
    .bind(tenant)
    .bind(installment)
    .bind(invoice)
    .bind(due_date)
    .bind(currency)
    .bind(balance)
    .execute(conn)
    .await?;
    Ok(())
}

/// An invoice's installment plan, as invoicing last announced it (an empty plan removes it).
pub async fn replace_planned_installments(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    plan: &[(Uuid, NaiveDate)],
) -> Result<(), sqlx::Error> {
    let (ids, dates): (Vec<Uuid>, Vec<NaiveDate>) = plan.iter().copied().unzip();
    sqlx::query(
        "DELETE FROM planned_installments WHERE tenant_id = $1 AND invoice_id = $2 AND installment_id <> ALL($3)",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO planned_installments (tenant_id, installment_id, invoice_id, due_date) \
         SELECT $1, i, $2, d FROM unnest($3::uuid[], $4::date[]) AS p(i, d) \
         ON CONFLICT (tenant_id, installment_id) DO UPDATE SET due_date = excluded.due_date",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(&ids)
    .bind(&dates)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn hold_autopay(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO autopay_holds (tenant_id, invoice_id, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(invoice)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn release_autopay_hold(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM autopay_holds WHERE tenant_id = $1 AND invoice_id = $2 AND reason = $3")
        .bind(tenant)
        .bind(invoice)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether autopay must leave the invoice alone for now (an open hardship request or dispute).
pub async fn autopay_held(conn: &mut PgConnection, tenant: Uuid, invoice: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM autopay_holds WHERE tenant_id = $1 AND invoice_id = $2)")
        .bind(tenant)
        .bind(invoice)
        .fetch_one(conn)
        .await
}

/// Whether the invoice is paid by an installment plan.
pub async fn under_plan(conn: &mut PgConnection, tenant: Uuid, invoice: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM planned_installments WHERE tenant_id = $1 AND invoice_id = $2)")
        .bind(tenant)
        .bind(invoice)
        .fetch_one(conn)
        .await
}

// --- intents and attempts ---

const INTENT_COLUMNS: &str = "tenant_id, id, customer_id, amount, currency, status, method, card_token, \
    payment_method_id, mandate_id, invoice_ids, installment_id, link_id, autopay_run_id, description, \
    transfer_reference, return_url, next_action_url, processor, processor_ref, amount_received, amount_refunded, \
    fee, failure_code, failure_message, created_at, updated_at, settled_by";

#[derive(Debug, Clone)]
pub struct NewIntent {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub invoice_ids: Vec<Uuid>,
    pub installment_id: Option<Uuid>,
    pub link_id: Option<Uuid>,
    pub autopay_run_id: Option<Uuid>,
    pub description: String,
}

pub async fn insert_intent(conn: &mut PgConnection, tenant: Uuid, i: &NewIntent) -> Result<IntentRow, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payment_intents (tenant_id, id, customer_id, amount, currency, status, invoice_ids, installment_id, \
         link_id, autopay_run_id, description) VALUES ($1, $2, $3, $4, $5, 'requires_payment_method', $6, $7, $8, $9, $10) \
         RETURNING {INTENT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(i.id)
    .bind(i.customer_id)
    .bind(i.amount)
    .bind(&i.currency)
    .bind(&i.invoice_ids)
    .bind(i.installment_id)
    .bind(i.link_id)
    .bind(i.autopay_run_id)
    .bind(&i.description)
    .fetch_one(conn)
    .await
}

pub async fn intent(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn intent_for_update(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn intents(
    pool: &PgPool,
    tenant: Uuid,
    customer: Option<Uuid>,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2) \
         AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    )))
    .bind(tenant)
    .bind(customer)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn intent_by_reference(
    pool: &PgPool,
    tenant: Uuid,
    reference: &str,
) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant_id = $1 AND transfer_reference = $2 \
         AND status = 'processing' ORDER BY id LIMIT 1"
    )))
    .bind(tenant)
    .bind(reference)
    .fetch_optional(pool)
    .await
}

/// The attached method and the move to processing, only if nobody moved the intent meanwhile.
#[allow(clippy::too_many_arguments)]
pub async fn start_processing(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    expected_status: &str,
    method: &str,
    card_token: Option<&str>,
    payment_method_id: Option<Uuid>,
    mandate_id: Option<Uuid>,
    transfer_reference: Option<&str>,
    return_url: &str,
    processor: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE payment_intents SET status = 'processing', method = $4, card_token = $5, payment_method_id = $6, \
         mandate_id = $7, transfer_reference = $8, return_url = $9, processor = $10, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status = $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(expected_status)
    .bind(method)
    .bind(card_token)
    .bind(payment_method_id)
    .bind(mandate_id)
    .bind(transfer_reference)
    .bind(return_url)
    .bind(processor)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_attempt(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    intent: Uuid,
    connector: &str,
    amount: Decimal,
    currency: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attempts (tenant_id, id, intent_id, connector, status, amount, currency) \
         VALUES ($1, $2, $3, $4, 'processing', $5, $6)",
    )
    .bind(tenant)
    .bind(id)
    .bind(intent)
    .bind(connector)
    .bind(amount)
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(())
}

const ATTEMPT_COLUMNS: &str =
    "tenant_id, id, intent_id, connector, status, amount, currency, fee, processor_ref, decline_code, created_at";

pub async fn attempts(pool: &PgPool, tenant: Uuid, intent: Uuid) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tenant_id = $1 AND intent_id = $2 ORDER BY id"
    )))
    .bind(tenant)
    .bind(intent)
    .fetch_all(pool)
    .await
}

/// An attempt by its id alone: webhooks carry no tenant.
pub async fn attempt_anywhere(pool: &PgPool, id: Uuid) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn attempt_by_processor_ref(
    pool: &PgPool,
    connector: &str,
    processor_ref: &str,
) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE connector = $1 AND processor_ref = $2"
    )))
    .bind(connector)
    .bind(processor_ref)
    .fetch_optional(pool)
    .await
}

pub async fn open_attempt(pool: &PgPool, tenant: Uuid, intent: Uuid) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tenant_id = $1 AND intent_id = $2 \
         AND status IN ('processing', 'requires_action') ORDER BY id DESC LIMIT 1"
    )))
    .bind(tenant)
    .bind(intent)
    .fetch_optional(pool)
    .await
}

/// Attempts left open longer than `older_than`: what the recovery task syncs.
pub async fn stale_attempts(
    pool: &PgPool,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE status IN ('processing', 'requires_action') \
         AND updated_at < $1 ORDER BY updated_at LIMIT $2"
    )))
    .bind(older_than)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn attempt_intent(conn: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT intent_id FROM attempts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn attempt_for_update(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<AttemptRow>, sqlx::Error> {
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn finish_attempt(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: &str,
    fee: Decimal,
    processor_ref: Option<&str>,
    decline_code: Option<&str>,
    message: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attempts SET status = $3, fee = $4, processor_ref = COALESCE($5, processor_ref), decline_code = $6, \
         message = $7, updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(fee)
    .bind(processor_ref)
    .bind(decline_code)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// Record where an intent now stands after its processor answered.
#[allow(clippy::too_many_arguments)]
pub async fn settle_intent(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: &str,
    amount_received: Decimal,
    fee: Decimal,
    processor_ref: Option<&str>,
    next_action_url: Option<&str>,
    failure: Option<(&str, &str)>,
) -> Result<IntentRow, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE payment_intents SET status = $3, amount_received = $4, fee = $5, processor_ref = COALESCE($6, processor_ref), \
         next_action_url = $7, failure_code = $8, failure_message = $9, updated_at = now(), \
         succeeded_at = CASE WHEN $3 = 'succeeded' THEN now() ELSE succeeded_at END \
         WHERE tenant_id = $1 AND id = $2 RETURNING {INTENT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(amount_received)
    .bind(fee)
    .bind(processor_ref)
    .bind(next_action_url)
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .fetch_one(conn)
    .await
}

/// Bank transfers and direct debits of a customer still waiting for their money that collect
/// any of `invoices` (or `installments`), oldest first, locked for the caller's transaction.
pub async fn waiting_bank_payments_for_update(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    invoices: &[Uuid],
    installments: &[Uuid],
) -> Result<Vec<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant_id = $1 AND customer_id = $2 \
         AND status = 'processing' AND method IN ('bank_transfer', 'direct_debit') \
         AND (invoice_ids && $3 OR installment_id = ANY($4)) ORDER BY created_at, id FOR UPDATE"
    )))
    .bind(tenant)
    .bind(customer)
    .bind(invoices)
    .bind(installments)
    .fetch_all(conn)
    .await
}

/// Whether a reconciliation payment already settled one of this tenant's intents.
pub async fn settled_by_exists(conn: &mut PgConnection, tenant: Uuid, payment: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM payment_intents WHERE tenant_id = $1 AND settled_by = $2)")
        .bind(tenant)
        .bind(payment)
        .fetch_one(conn)
        .await
}

/// A waiting transfer or direct debit settled by a reconciliation payment: succeeded with what
/// that payment brought for it. Only from `processing`, so it applies once.
pub async fn settle_by_reconciliation(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    amount_received: Decimal,
    payment: Uuid,
) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as::<_, IntentRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE payment_intents SET status = 'succeeded', amount_received = $3, settled_by = $4, \
         updated_at = now(), succeeded_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND status = 'processing' RETURNING {INTENT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(amount_received)
    .bind(payment)
    .fetch_optional(conn)
    .await
}

pub async fn set_status(conn: &mut PgConnection, tenant: Uuid, id: Uuid, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payment_intents SET status = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Serialise the payments that could collect the same money (those naming an invoice, or those
/// of one free-amount link) until the transaction ends. Sorted, so two payments naming the same
/// invoices in another order cannot deadlock; bounded, so a stuck holder cannot pin every
/// connection of the pool behind it.
pub async fn lock_targets(conn: &mut PgConnection, tenant: Uuid, targets: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut sorted = targets.to_vec();
    sorted.sort();
    sorted.dedup();
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *conn).await?;
    for target in sorted {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))")
            .bind(tenant)
            .bind(target)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether another payment of a free-amount link has succeeded or is on its way.
pub async fn link_taken(conn: &mut PgConnection, tenant: Uuid, link: Uuid, except: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE tenant_id = $1 AND link_id = $2 AND id <> $3 \
         AND status IN ('succeeded', 'processing', 'requires_action'))",
    )
    .bind(tenant)
    .bind(link)
    .bind(except)
    .fetch_one(conn)
    .await
}

/// What other payments on these invoices will take or took but invoicing has not applied yet:
/// card and direct-debit payments on their way, and successes not yet in the balance. A payment
/// that reconciliation settled reaches invoicing as reconciliation's own payment (`settled_by`),
/// so what invoicing applied of that payment to its invoices is what it no longer holds.
pub async fn unapplied_payments(
    conn: &mut PgConnection,
    tenant: Uuid,
    invoices: &[Uuid],
    except: Uuid,
) -> Result<Decimal, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(GREATEST( \
           CASE WHEN i.status = 'succeeded' THEN i.amount_received ELSE i.amount END - COALESCE(a.applied, 0), 0)), 0) \
         FROM payment_intents i \
         LEFT JOIN LATERAL (SELECT sum(amount) AS applied FROM payment_applications pa \
           WHERE pa.tenant_id = i.tenant_id AND pa.payment_id = COALESCE(i.settled_by, i.id) \
           AND (i.settled_by IS NULL OR pa.invoice_id = ANY(i.invoice_ids))) a ON true \
         WHERE i.tenant_id = $1 AND i.invoice_ids && $2 AND i.id <> $3 \
         AND (i.status = 'succeeded' \
              OR (i.status IN ('processing', 'requires_action') AND i.method = 'card') \
              OR (i.status = 'processing' AND i.method = 'direct_debit' AND i.updated_at > now() - $4))",
    )
    .bind(tenant)
    .bind(invoices)
    .bind(except)
    .bind(DIRECT_DEBIT_SETTLES_WITHIN)
    .fetch_one(conn)
    .await
}

/// A direct debit not confirmed by then is presumed returned by the bank; it stops holding
/// the invoice (reconciliation still settles it if the money shows up later).
const DIRECT_DEBIT_SETTLES_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(8);

pub async fn record_application(
    conn: &mut PgConnection,
    tenant: Uuid,
    payment: Uuid,
    invoice: Uuid,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_applications (tenant_id, payment_id, invoice_id, amount) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, payment_id, invoice_id) \
         DO UPDATE SET amount = payment_applications.amount + EXCLUDED.amount",
    )
    .bind(tenant)
    .bind(payment)
    .bind(invoice)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(())
}

// --- refunds ---

const REFUND_COLUMNS: &str = "tenant_id, id, intent_id, amount, currency, status, reason, processor_ref, created_at";

pub async fn refunds(pool: &PgPool, tenant: Uuid, intent: Uuid) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as::<_, RefundRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE tenant_id = $1 AND intent_id = $2 ORDER BY id"
    )))
    .bind(tenant)
    .bind(intent)
    .fetch_all(pool)
    .await
}

pub async fn refund(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as::<_, RefundRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn insert_refund(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    intent: Uuid,
    amount: Decimal,
    currency: &str,
    reason: &str,
) -> Result<RefundRow, sqlx::Error> {
    sqlx::query_as::<_, RefundRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO refunds (tenant_id, id, intent_id, amount, currency, status, reason) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING {REFUND_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(intent)
    .bind(amount)
    .bind(currency)
    .bind(reason)
    .fetch_one(conn)
    .await
}

pub async fn add_refunded(
    conn: &mut PgConnection,
    tenant: Uuid,
    intent: Uuid,
    delta: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_intents SET amount_refunded = amount_refunded + $3, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(intent)
    .bind(delta)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn finish_refund(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: &str,
    processor_ref: Option<&str>,
) -> Result<RefundRow, sqlx::Error> {
    sqlx::query_as::<_, RefundRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE refunds SET status = $3, processor_ref = $4, updated_at = now() WHERE tenant_id = $1 AND id = $2 \
         RETURNING {REFUND_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(processor_ref)
    .fetch_one(conn)
    .await
}

pub async fn pending_refunds(pool: &PgPool, older_than: DateTime<Utc>) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as::<_, RefundRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT 100"
    )))
    .bind(older_than)
    .fetch_all(pool)
    .await
}

// --- saved methods and mandates ---

const METHOD_COLUMNS: &str = "id, customer_id, kind, vault_token, brand, last4, exp_month, exp_year, account_masked, \
    is_default, created_at";

pub async fn methods(pool: &PgPool, tenant: Uuid, customer: Uuid) -> Result<Vec<MethodRow>, sqlx::Error> {
    sqlx::query_as::<_, MethodRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 AND removed_at IS NULL \
         ORDER BY is_default DESC, id"
    )))
    .bind(tenant)
    .bind(customer)
    .fetch_all(pool)
    .await
}

pub async fn method(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<MethodRow>, sqlx::Error> {
    sqlx::query_as::<_, MethodRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND id = $2 AND removed_at IS NULL"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn default_method(pool: &PgPool, tenant: Uuid, customer: Uuid) -> Result<Option<MethodRow>, sqlx::Error> {
    sqlx::query_as::<_, MethodRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 AND is_default \
         AND removed_at IS NULL"
    )))
    .bind(tenant)
    .bind(customer)
    .fetch_optional(pool)
    .await
}

/// Save a card (or return the one already saved with this token). The first method of a
/// customer becomes the default.
#[allow(clippy::too_many_arguments)]
pub async fn insert_card_method(
    pool: &PgPool,
    tenant: Uuid,
    customer: Uuid,
    token: &str,
    brand: &str,
    last4: &str,
    exp_month: i32,
    exp_year: i32,
    make_default: bool,
) -> Result<MethodRow, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One saver per customer at a time keeps "first is default" and the default swap exact.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || $2::text, 7))")
        .bind(tenant)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    let existing = sqlx::query_as::<_, MethodRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 AND vault_token = $3 \
         AND removed_at IS NULL"
    )))
    .bind(tenant)
    .bind(customer)
    .bind(token)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(row) => row.id,
        None => {
            let has_default: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE tenant_id = $1 AND customer_id = $2 AND is_default \
                 AND removed_at IS NULL)",
            )
            .bind(tenant)
            .bind(customer)
            .fetch_one(&mut *tx)
            .await?;
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO payment_methods (tenant_id, id, customer_id, kind, vault_token, brand, last4, exp_month, \
                 exp_year, is_default) VALUES ($1, $2, $3, 'card', $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant)
            .bind(id)
            .bind(customer)
            .bind(token)
            .bind(brand)
            .bind(last4)
            .bind(exp_month)
            .bind(exp_year)
            .bind(!has_default)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    if make_default {
        set_default_in(&mut tx, tenant, customer, id).await?;
    }
    let row = sqlx::query_as::<_, MethodRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn set_default_in(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_methods SET is_default = false WHERE tenant_id = $1 AND customer_id = $2 AND is_default AND id <> $3",
    )
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE payment_methods SET is_default = true WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_default(pool: &PgPool, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_default_in(&mut tx, tenant, customer, id).await?;
    tx.commit().await
}

pub async fn remove_method(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_methods SET removed_at = now(), is_default = false WHERE tenant_id = $1 AND id = $2 \
         AND removed_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn insert_dd_method(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    customer: Uuid,
    account_masked: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_methods (tenant_id, id, customer_id, kind, account_masked) VALUES ($1, $2, $3, 'direct_debit', $4)",
    )
    .bind(tenant)
    .bind(id)
    .bind(customer)
    .bind(account_masked)
    .execute(conn)
    .await?;
    Ok(())
}

const MANDATE_COLUMNS: &str =
    "id, customer_id, kind, payment_method_id, mandate_reference, consent_text, consent_ip, consented_at, revoked_at";

#[allow(clippy::too_many_arguments)]
pub async fn insert_mandate(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    kind: &str,
    method: Option<Uuid>,
    reference: &str,
    consent_text: &str,
    consent_ip: &str,
) -> Result<MandateRow, sqlx::Error> {
    sqlx::query_as::<_, MandateRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mandates (tenant_id, id, customer_id, kind, payment_method_id, mandate_reference, consent_text, \
         consent_ip, consented_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) RETURNING {MANDATE_COLUMNS}"
    )))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(customer)
    .bind(kind)
    .bind(method)
    .bind(reference)
    .bind(consent_text)
    .bind(consent_ip)
    .fetch_one(conn)
    .await
}

pub async fn mandate(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<MandateRow>, sqlx::Error> {
    sqlx::query_as::<_, MandateRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MANDATE_COLUMNS} FROM mandates WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The customer's autopay consent in force, if any.
pub async fn active_autopay(pool: &PgPool, tenant: Uuid, customer: Uuid) -> Result<Option<MandateRow>, sqlx::Error> {
    sqlx::query_as::<_, MandateRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MANDATE_COLUMNS} FROM mandates WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'autopay' \
         AND revoked_at IS NULL ORDER BY consented_at DESC LIMIT 1"
    )))
    .bind(tenant)
    .bind(customer)
    .fetch_optional(pool)
    .await
}

pub async fn revoke_autopay_in(conn: &mut PgConnection, tenant: Uuid, customer: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE mandates SET revoked_at = now() WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'autopay' \
         AND revoked_at IS NULL",
    )
    .bind(tenant)
    .bind(customer)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn revoke_autopay(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
) -> Result<Option<MandateRow>, sqlx::Error> {
    sqlx::query_as::<_, MandateRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE mandates SET revoked_at = now() WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'autopay' \
         AND revoked_at IS NULL RETURNING {MANDATE_COLUMNS}"
    )))
    .bind(tenant)
    .bind(customer)
    .fetch_optional(conn)
    .await
}

// --- autopay ---

/// Autopay payments made but never confirmed (the process died in between).
pub async fn unstarted_autopay_intents(
    pool: &PgPool,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, id FROM payment_intents WHERE autopay_run_id IS NOT NULL \
         AND status = 'requires_payment_method' AND created_at < $1 ORDER BY created_at LIMIT $2",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Whether the customer's autopay consent stands (it may be withdrawn between scheduling and
/// charging).
pub async fn autopay_active(conn: &mut PgConnection, tenant: Uuid, customer: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mandates WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'autopay' \
         AND revoked_at IS NULL)",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_one(conn)
    .await
}

/// Schedule one run per due amount of every customer with an active autopay mandate.
pub async fn schedule_autopay(pool: &PgPool, today: NaiveDate) -> Result<u64, sqlx::Error> {
    let invoices = sqlx::query(
        "INSERT INTO autopay_runs (tenant_id, id, customer_id, invoice_id, installment_id, due_date, next_try_on, status) \
         SELECT r.tenant_id, gen_random_uuid(), r.customer_id, r.invoice_id, NULL, r.due_date, r.due_date, 'scheduled' \
         FROM receivables r JOIN mandates m ON m.tenant_id = r.tenant_id AND m.customer_id = r.customer_id \
           AND m.kind = 'autopay' AND m.revoked_at IS NULL AND m.consented_at::date <= $1 \
         WHERE r.balance > 0 AND r.status IN ('open', 'issued', 'partially_paid', 'overdue') AND r.due_date <= $1 \
           AND NOT EXISTS (SELECT 1 FROM installments_due i WHERE i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id) \
           AND NOT EXISTS (SELECT 1 FROM planned_installments p WHERE p.tenant_id = r.tenant_id AND p.invoice_id = r.invoice_id) \
           AND NOT EXISTS (SELECT 1 FROM autopay_holds h WHERE h.tenant_id = r.tenant_id AND h.invoice_id = r.invoice_id) \
         ON CONFLICT DO NOTHING",
    )
    .bind(today)
    .execute(pool)
    .await?;
    let installments = sqlx::query(
        "INSERT INTO autopay_runs (tenant_id, id, customer_id, invoice_id, installment_id, due_date, next_try_on, status) \
         SELECT i.tenant_id, gen_random_uuid(), r.customer_id, i.invoice_id, i.installment_id, i.due_date, i.due_date, 'scheduled' \
         FROM installments_due i JOIN receivables r ON r.tenant_id = i.tenant_id AND r.invoice_id = i.invoice_id \
         JOIN mandates m ON m.tenant_id = i.tenant_id AND m.customer_id = r.customer_id AND m.kind = 'autopay' \
           AND m.revoked_at IS NULL \
         WHERE i.balance > 0 AND i.due_date <= $1 \
           AND NOT EXISTS (SELECT 1 FROM autopay_holds h WHERE h.tenant_id = i.tenant_id AND h.invoice_id = i.invoice_id) \
         ON CONFLICT DO NOTHING",
    )
    .bind(today)
    .execute(pool)
    .await?;
    Ok(invoices.rows_affected() + installments.rows_affected())
}

const RUN_COLUMNS: &str = "tenant_id, id, customer_id, invoice_id, installment_id, due_date, attempts, status, \
    next_try_on, last_intent_id, last_decline, last_tried_on";

/// Claim the next run due today: it gets an intent in the same transaction, so a crash
/// between the two cannot charge twice.
pub async fn next_autopay_run(conn: &mut PgConnection, today: NaiveDate) -> Result<Option<AutopayRun>, sqlx::Error> {
    sqlx::query_as::<_, AutopayRun>(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM autopay_runs WHERE status = 'scheduled' AND next_try_on <= $1 \
         AND (last_intent_id IS NULL OR NOT EXISTS (SELECT 1 FROM payment_intents p \
           WHERE p.tenant_id = autopay_runs.tenant_id AND p.id = autopay_runs.last_intent_id \
           AND p.status NOT IN ('succeeded', 'failed', 'canceled'))) \
         ORDER BY next_try_on, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(today)
    .fetch_optional(conn)
    .await
}

pub async fn autopay_run(conn: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<AutopayRun>, sqlx::Error> {
    sqlx::query_as::<_, AutopayRun>(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM autopay_runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The run is being tried on `day` (the business day of the job's round).
pub async fn autopay_tried_on(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    day: NaiveDate,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE autopay_runs SET last_tried_on = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(day)
        .execute(conn)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn update_autopay_run(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: &str,
    attempts: i32,
    next_try_on: Option<NaiveDate>,
    last_intent: Option<Uuid>,
    last_decline: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE autopay_runs SET status = $3, attempts = $4, next_try_on = $5, last_intent_id = COALESCE($6, last_intent_id), \
         last_decline = COALESCE($7, last_decline), updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(attempts)
    .bind(next_try_on)
    .bind(last_intent)
    .bind(last_decline)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn autopay_runs(pool: &PgPool, tenant: Uuid, customer: Uuid) -> Result<Vec<AutopayRun>, sqlx::Error> {
    sqlx::query_as::<_, AutopayRun>(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM autopay_runs WHERE tenant_id = $1 AND customer_id = $2 ORDER BY due_date, id"
    )))
    .bind(tenant)
    .bind(customer)
    .fetch_all(pool)
    .await
}

// --- payment links ---

const LINK_COLUMNS: &str = "tenant_id, id, customer_id, invoice_id, installment_id, amount, currency, description, \
    expires_at, revoked_at, created_at";

#[allow(clippy::too_many_arguments)]
pub async fn insert_link(
    pool: &PgPool,
    tenant: Uuid,
    hash: &[u8],
    customer: Uuid,
    invoice: Option<Uuid>,
    installment: Option<Uuid>,
    amount: Option<Decimal>,
    currency: &str,
    description: &str,
    expires_at: DateTime<Utc>,
) -> Result<LinkRow, sqlx::Error> {
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payment_links (tenant_id, id, token_hash, customer_id, invoice_id, installment_id, amount, currency, \
         description, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {LINK_COLUMNS}"
    )))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(hash)
    .bind(customer)
    .bind(invoice)
    .bind(installment)
    .bind(amount)
    .bind(currency)
    .bind(description)
    .bind(expires_at)
    .fetch_one(pool)
    .await
}

pub async fn link_by_hash(pool: &PgPool, hash: &[u8]) -> Result<Option<LinkRow>, sqlx::Error> {
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLUMNS} FROM payment_links WHERE token_hash = $1"
    )))
    .bind(hash)
    .fetch_optional(pool)
    .await
}

pub async fn revoke_link(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<LinkRow>, sqlx::Error> {
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE payment_links SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2 \
         RETURNING {LINK_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

// --- creditor references ---

/// Insert the reference if it is new; true when it was.
pub async fn insert_reference(
    conn: &mut PgConnection,
    tenant: Uuid,
    reference: &str,
    customer: Uuid,
    invoice: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO creditor_references (tenant_id, reference, customer_id, invoice_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(reference)
    .bind(customer)
    .bind(invoice)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn reference_owner(
    pool: &PgPool,
    tenant: Uuid,
    reference: &str,
) -> Result<Option<(Uuid, Option<Uuid>)>, sqlx::Error> {
    sqlx::query_as("SELECT customer_id, invoice_id FROM creditor_references WHERE tenant_id = $1 AND reference = $2")
        .bind(tenant)
        .bind(reference)
        .fetch_optional(pool)
        .await
}

// --- payouts ---

const PAYOUT_COLUMNS: &str = "id, connector, payout_ref, day, currency, gross, fees, refunds, net";

/// Record a payout once; None when it was already recorded.
#[allow(clippy::too_many_arguments)]
pub async fn insert_payout(
    conn: &mut PgConnection,
    tenant: Uuid,
    connector: &str,
    payout_ref: &str,
    day: NaiveDate,
    currency: &str,
    gross: Decimal,
    fees: Decimal,
    refunds: Decimal,
    net: Decimal,
) -> Result<Option<PayoutRow>, sqlx::Error> {
    sqlx::query_as::<_, PayoutRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payouts (tenant_id, id, connector, payout_ref, day, currency, gross, fees, refunds, net) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING {PAYOUT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(connector)
    .bind(payout_ref)
    .bind(day)
    .bind(currency)
    .bind(gross)
    .bind(fees)
    .bind(refunds)
    .bind(net)
    .fetch_optional(conn)
    .await
}

pub async fn payouts(
    pool: &PgPool,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<PayoutRow>, sqlx::Error> {
    sqlx::query_as::<_, PayoutRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day, currency"
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

pub async fn tenants_with_card_payments(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT tenant_id FROM attempts WHERE updated_at >= $1")
        .bind(since)
        .fetch_all(pool)
        .await
}

// --- idempotency keys ---

/// operation, request hash, stored response, lease expired, resource id
type KeyRow = (String, Vec<u8>, Option<Vec<u8>>, bool, Option<Uuid>);

pub enum Claim {
    /// This caller runs the request; what it creates gets this id.
    Claimed { resource_id: Uuid },
    /// Another request already used the key.
    Taken {
        operation: String,
        request_hash: Vec<u8>,
        response: Option<Vec<u8>>,
        expired: bool,
        resource_id: Option<Uuid>,
    },
}

pub async fn claim_key(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    operation: &str,
    request_hash: &[u8],
    lease: chrono::Duration,
) -> Result<Claim, sqlx::Error> {
    let resource_id = Uuid::now_v7();
    let claimed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, locked_until, resource_id) \
         VALUES ($1, $2, $3, $4, now() + $5, $6) ON CONFLICT DO NOTHING RETURNING true",
    )
    .bind(tenant)
    .bind(key)
    .bind(operation)
    .bind(request_hash)
    .bind(lease)
    .bind(resource_id)
    .fetch_optional(pool)
    .await?;
    if claimed.is_some() {
        return Ok(Claim::Claimed { resource_id });
    }
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT operation, request_hash, response, COALESCE(locked_until < now(), false), resource_id \
         FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((operation, request_hash, response, expired, resource_id)) => {
            Ok(Claim::Taken { operation, request_hash, response, expired, resource_id })
        }
        // Released between the two statements: try again as new.
        None => Box::pin(claim_key(pool, tenant, key, operation, request_hash, lease)).await,
    }
}

/// Take over a claim whose holder died; exactly one waiter wins, and learns the resource id.
pub async fn take_over_key(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    lease: chrono::Duration,
    resource_id: Option<Uuid>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE idempotency_keys SET locked_until = now() + $3, resource_id = COALESCE(resource_id, $4) \
         WHERE tenant_id = $1 AND key = $2 AND response IS NULL AND locked_until < now() RETURNING resource_id",
    )
    .bind(tenant)
    .bind(key)
    .bind(lease)
    .bind(resource_id.unwrap_or_else(Uuid::now_v7))
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}

pub async fn store_response(pool: &PgPool, tenant: Uuid, key: &str, response: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET response = $3, locked_until = NULL WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .bind(response)
        .execute(pool)
        .await?;
    Ok(())
}

/// Let the next request with the same key run again at once, with the same resource id.
pub async fn expire_key(pool: &PgPool, tenant: Uuid, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET locked_until = now() - interval '1 second' \
         WHERE tenant_id = $1 AND key = $2 AND response IS NULL",
    )
    .bind(tenant)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn release_key(pool: &PgPool, tenant: Uuid, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND response IS NULL")
        .bind(tenant)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
