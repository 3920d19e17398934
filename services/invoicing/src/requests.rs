//! "I can't pay" requests and disputes. While one is open, reminders for the invoice pause
//! (notifications follows the events).

use chrono::NaiveDate;
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::InvalidField;
use cobro_kit::money::Currency;
use cobro_proto::events::v1 as ev;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::app::{Invoicing, changed, money, parse_date, prefix, text};
use crate::domain::installments::{self, Interval};
use crate::error::{InvoicingError, Result};
use crate::store::{self, InstallmentRow, InvoiceRow};

impl Invoicing {
    /// The open invoice a contact (of its customer) or staff may act on.
    async fn invoice_for(
        &self,
        conn: &mut sqlx::PgConnection,
        principal: &Principal,
        invoice_id: &str,
    ) -> Result<InvoiceRow> {
        let id = cobro_kit::ids::parse("invoice_id", prefix::INVOICE, invoice_id)?;
        let invoice =
            store::invoice(conn, principal.tenant_id, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        match principal.kind {
            // A contact sees only their own customer's invoices.
            PrincipalKind::Customer
                if principal.customer_id == Some(invoice.customer_id) && principal.has("portal:pay") => {}
            PrincipalKind::Customer => return Err(InvoicingError::NotFound("invoice")),
            _ if principal.has("invoices:write") => {}
            _ => return Err(InvoicingError::PermissionDenied("missing permission invoices:write".to_owned())),
        }
        if !matches!(invoice.status.as_str(), "open" | "partially_paid") || invoice.balance.is_zero() {
            return Err(InvoicingError::conflict("invoice_not_open", "the invoice has no open balance"));
        }
        Ok(invoice)
    }

    pub async fn request_hardship(
        &self,
        principal: &Principal,
        invoice_id: &str,
        reason: &str,
        installments: u32,
        first_date: &str,
        note: &str,
    ) -> Result<Uuid> {
        let reason = text("reason", reason, 500, true)?;
        if !(2..=60).contains(&installments) {
            return Err(InvalidField::new("installments", "must be between 2 and 60").into());
        }
        let first = parse_date("first_date", first_date)?;
        let note = text("note", note, 2000, false)?;
        let mut tx = self.pool.begin().await?;
        let invoice = self.invoice_for(&mut tx, principal, invoice_id).await?;
        if invoice.issue_date.is_some_and(|d| first < d) {
            return Err(InvalidField::new("first_date", "must not be before the issue date").into());
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO hardship_requests (tenant_id, id, invoice_id, requested_by, reason, installments, first_date, note, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open')",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .bind(invoice.id)
        .bind(&principal.subject)
        .bind(&reason)
        .bind(i32::try_from(installments).unwrap_or(2))
        .bind(first)
        .bind(&note)
        .execute(&mut *tx)
        .await
        .map_err(|e| match cobro_kit::db::classify(&e) {
            cobro_kit::db::PgErrorKind::UniqueViolation { .. } => {
                InvoicingError::conflict("hardship_open", "a request for this invoice is already open")
            }
            _ => InvoicingError::Database(e),
        })?;
        store::event(&mut tx, principal.tenant_id, "hardship.requested", invoice.id, &changed(&invoice)).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Accept (the balance becomes an installment plan) or reject a request.
    pub async fn resolve_hardship(
        &self,
        principal: &Principal,
        request_id: &str,
        accept: bool,
        note: &str,
    ) -> Result<InvoiceRow> {
        if !principal.has("invoices:write") || principal.kind == PrincipalKind::Customer {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:write".to_owned()));
        }
        let id = cobro_kit::ids::parse("request_id", "hsr", request_id)?;
        let mut tx = self.pool.begin().await?;
        let request: Option<(Uuid, i32, NaiveDate, String)> = sqlx::query_as(
            "SELECT invoice_id, installments, first_date, state FROM hardship_requests WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (invoice_id, count, first, state) = request.ok_or(InvoicingError::NotFound("request"))?;
        if state != "open" {
            return Err(InvoicingError::conflict("request_resolved", format!("the request was already {state}")));
        }
        let invoice = store::invoice(&mut tx, principal.tenant_id, invoice_id, true)
            .await?
            .ok_or(InvoicingError::NotFound("invoice"))?;
        if accept {
            let currency =
                Currency::from_code(&invoice.currency).map_err(|e| InvoicingError::Internal(e.to_string()))?;
            let plan = installments::split_equal(
                invoice.balance,
                currency,
                u32::try_from(count).unwrap_or(2),
                first,
                Interval::Months(1),
            )?;
            // The new plan replaces what is left of any earlier one.
            sqlx::query("DELETE FROM installments WHERE tenant_id = $1 AND invoice_id = $2")
                .bind(principal.tenant_id)
                .bind(invoice_id)
                .execute(&mut *tx)
                .await?;
            let rows: Vec<InstallmentRow> = plan
                .iter()
                .enumerate()
                .map(|(i, p)| InstallmentRow {
                    id: Uuid::now_v7(),
                    invoice_id,
                    seq: i32::try_from(i + 1).unwrap_or(i32::MAX),
                    due_date: p.due_date,
                    amount: p.amount,
                    balance: p.amount,
                })
                .collect();
            store::insert_installments(&mut tx, principal.tenant_id, &rows).await?;
            let planned = crate::app::installments_planned(invoice_id, &rows, currency);
            store::event(&mut tx, principal.tenant_id, "installments.planned", invoice_id, &planned).await?;
        }
        sqlx::query(
            "UPDATE hardship_requests SET state = $3, resolution_note = $4, resolved_at = now() WHERE tenant_id = $1 AND id = $2",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .bind(if accept { "accepted" } else { "rejected" })
        .bind(note.trim())
        .execute(&mut *tx)
        .await?;
        store::event(&mut tx, principal.tenant_id, "hardship.resolved", invoice_id, &changed(&invoice)).await?;
        tx.commit().await?;
        Ok(invoice)
    }

    /// Staff's inbox: the tenant's hardship requests and disputes. `kind`: hardship, dispute or
    /// empty; `state`: open, resolved or empty.
    pub async fn requests(
        &self,
        principal: &Principal,
        kind: &str,
        state: &str,
        limit: i64,
        after: Option<Uuid>,
    ) -> Result<Vec<store::RequestRow>> {
        if !principal.has("invoices:read") || principal.kind == PrincipalKind::Customer {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:read".to_owned()));
        }
        let kind = match kind {
            "" => None,
            "hardship" | "dispute" => Some(kind),
            _ => return Err(InvalidField::new("kind", "must be hardship or dispute").into()),
        };
        let open = match state {
            "" => None,
            "open" => Some(true),
            "resolved" => Some(false),
            _ => return Err(InvalidField::new("state", "must be open or resolved").into()),
        };
        store::requests(&self.pool, principal.tenant_id, kind, open, after, limit).await
    }

    pub async fn open_dispute(&self, principal: &Principal, invoice_id: &str, reason: &str) -> Result<Uuid> {
        let reason = text("reason", reason, 1000, true)?;
        let mut tx = self.pool.begin().await?;
        let invoice = self.invoice_for(&mut tx, principal, invoice_id).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO disputes (tenant_id, id, invoice_id, opened_by, reason, state) VALUES ($1, $2, $3, $4, $5, 'open')",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .bind(invoice.id)
        .bind(&principal.subject)
        .bind(&reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| match cobro_kit::db::classify(&e) {
            cobro_kit::db::PgErrorKind::UniqueViolation { .. } => {
                InvoicingError::conflict("dispute_open", "a dispute for this invoice is already open")
            }
            _ => InvoicingError::Database(e),
        })?;
        store::event(&mut tx, principal.tenant_id, "dispute.opened", invoice.id, &changed(&invoice)).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Resolve a dispute by a credit note for `credit_amount` (the customer was right, in part
    /// or whole) or by rejecting it (empty amount).
    pub async fn resolve_dispute(
        &self,
        principal: &Principal,
        dispute_id: &str,
        credit_amount: &str,
        note: &str,
    ) -> Result<()> {
        if !principal.has("invoices:write") || principal.kind == PrincipalKind::Customer {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:write".to_owned()));
        }
        let id = cobro_kit::ids::parse("dispute_id", "dsp", dispute_id)?;
        let mut tx = self.pool.begin().await?;
        let dispute: Option<(Uuid, String)> =
            sqlx::query_as("SELECT invoice_id, state FROM disputes WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
                .bind(principal.tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (invoice_id, state) = dispute.ok_or(InvoicingError::NotFound("dispute"))?;
        if state != "open" {
            return Err(InvoicingError::conflict("dispute_resolved", format!("the dispute was already {state}")));
        }
        // The dispute stays locked until its credit note and its new state commit together, so
        // a second resolution (or a retry) finds it resolved.
        let credit_note = if credit_amount.is_empty() {
            None
        } else {
            let reason = if note.trim().is_empty() { "dispute resolved" } else { note };
            let (cn, ..) =
                Self::issue_credit_note_in(&mut tx, principal.tenant_id, invoice_id, credit_amount, reason).await?;
            Some(cn)
        };
        let invoice = store::invoice(&mut tx, principal.tenant_id, invoice_id, false)
            .await?
            .ok_or(InvoicingError::NotFound("invoice"))?;
        let updated = sqlx::query(
            "UPDATE disputes SET state = $3, credit_note_id = $4, resolution_note = $5, resolved_at = now() \
             WHERE tenant_id = $1 AND id = $2 AND state = 'open'",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .bind(if credit_note.is_some() { "credited" } else { "rejected" })
        .bind(credit_note)
        .bind(note.trim())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(InvoicingError::conflict("dispute_resolved", "the dispute was resolved meanwhile"));
        }
        store::event(&mut tx, principal.tenant_id, "dispute.resolved", invoice_id, &changed(&invoice)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notices for due and overdue invoices and installments, each sent once even with several
    /// replicas sweeping (the flag is set by the same statement that selects the row).
    pub async fn sweep_due(&self, today: NaiveDate) -> Result<(usize, usize)> {
        let mut tx = self.pool.begin().await?;
        let overdue: Vec<InvoiceRow> = sqlx::query_as(
            "UPDATE invoices SET overdue_notified = true WHERE status IN ('open', 'partially_paid') AND balance > 0 \
             AND due_date < $1 AND NOT overdue_notified \
             AND NOT EXISTS (SELECT 1 FROM installments s WHERE s.tenant_id = invoices.tenant_id AND s.invoice_id = invoices.id) \
             RETURNING tenant_id, id, customer_id, external_id, number, status, \
             currency, issue_date, due_date, discount_kind, discount_value, subtotal, discount_total, tax_total, total, \
             credited, paid, balance, memo",
        )
        .bind(today)
        .fetch_all(&mut *tx)
        .await?;
        for invoice in &overdue {
            store::event(&mut tx, invoice.tenant_id, "invoice.overdue", invoice.id, &changed(invoice)).await?;
        }
        let due: Vec<(Uuid, Uuid, Uuid, Decimal, String, NaiveDate)> = sqlx::query_as(
            "UPDATE installments s SET due_notified = true FROM invoices i \
             WHERE i.tenant_id = s.tenant_id AND i.id = s.invoice_id AND i.status IN ('open', 'partially_paid') \
             AND s.balance > 0 AND s.due_date <= $1 AND NOT s.due_notified \
             RETURNING s.tenant_id, s.id, s.invoice_id, s.balance, i.currency, s.due_date",
        )
        .bind(today)
        .fetch_all(&mut *tx)
        .await?;
        for (tenant_id, id, invoice_id, balance, currency, due_date) in &due {
            store::event(
                &mut tx,
                *tenant_id,
                "installment.due",
                *invoice_id,
                &ev::InstallmentDue {
                    invoice_id: cobro_kit::ids::format(prefix::INVOICE, *invoice_id),
                    installment_id: cobro_kit::ids::format(prefix::INSTALLMENT, *id),
                    due_date: due_date.to_string(),
                    balance: Some(money(*balance, currency)),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok((overdue.len(), due.len()))
    }
}

impl Invoicing {
    /// The background work of a replica: recurring invoices and due/overdue notices, every
    /// `period` (dates in UTC).
    pub async fn run_jobs(
        self: std::sync::Arc<Self>,
        period: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let today = cobro_kit::clock::today();
            match self.generate_recurring(today).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(invoices = n, "recurring invoices made"),
                Err(error) => tracing::warn!(%error, "recurring invoices failed; retrying next round"),
            }
            if let Err(error) = self.sweep_due(today).await {
                tracing::warn!(%error, "due notices failed; retrying next round");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }
}

pub fn request_id(id: Uuid) -> String {
    cobro_kit::ids::format("hsr", id)
}

pub fn dispute_id(id: Uuid) -> String {
    cobro_kit::ids::format("dsp", id)
}
