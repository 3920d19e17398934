//! ERP integration: upsert invoices by external id in bulk, and a change feed to sync back.

use cobro_kit::auth::Principal;
use cobro_kit::error::{DomainError, InvalidField};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::{Invoicing, NewInvoice, changed};
use crate::error::{InvoicingError, Result};
use crate::store::{self, InvoiceRow};

/// One invoice as an ERP sends it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportItem {
    pub invoice: NewInvoice,
    /// The customer by the ERP's id, when `invoice.customer_id` is empty.
    pub customer_external_id: String,
    /// The ERP's own invoice number: the invoice is imported as issued with it. Empty: a draft.
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created(Uuid),
    Updated(Uuid),
    Unchanged(Uuid),
    /// The item was refused; the rest of the import goes on.
    Error {
        code: &'static str,
        field: String,
        message: String,
    },
}

/// Items per transaction: each item has its own savepoint, so one bad item rolls back alone.
/// Kept under Postgres's 64 cached subtransactions per transaction; past that every snapshot
/// in the database gets slower.
pub const IMPORT_CHUNK: usize = 50;

impl Invoicing {
    /// Upsert a chunk of invoices by external id, in one transaction with a savepoint per item.
    pub async fn import_chunk(&self, principal: &Principal, items: &[ImportItem]) -> Result<Vec<ImportOutcome>> {
        if !principal.has("invoices:write") {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:write".to_owned()));
        }
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            match Self::import_one(&mut savepoint, principal.tenant_id, item).await {
                Ok(outcome) => {
                    savepoint.commit().await?;
                    out.push(outcome);
                }
                Err(err) => {
                    savepoint.rollback().await?;
                    if matches!(err, InvoicingError::Database(_) | InvoicingError::Internal(_)) {
                        tracing::error!(error = %err, "import item failed");
                    }
                    out.push(ImportOutcome::Error {
                        code: err.code(),
                        field: err.field().unwrap_or_default().to_owned(),
                        message: err.public_message(),
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn import_one(conn: &mut sqlx::PgConnection, tenant_id: Uuid, item: &ImportItem) -> Result<ImportOutcome> {
        let mut input = item.invoice.clone();
        if input.external_id.trim().is_empty() {
            return Err(InvalidField::new("external_id", "is required for an import").into());
        }
        if input.customer_id.is_empty() {
            if item.customer_external_id.is_empty() {
                return Err(
                    InvalidField::new("customer_external_id", "give customer_id or customer_external_id").into()
                );
            }
            let id = store::customer_by_external_id(conn, tenant_id, &item.customer_external_id)
                .await?
                .ok_or(InvoicingError::NotFound("customer"))?;
            input.customer_id = cobro_kit::ids::format(crate::app::prefix::CUSTOMER, id);
        }
        let hash = {
            let json = serde_json::to_vec(item).map_err(|e| InvoicingError::Internal(e.to_string()))?;
            Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let existing = store::invoice_by_external_id(conn, tenant_id, input.external_id.trim()).await?;
        if let Some((id, status, source_hash)) = &existing {
            if source_hash.as_deref() == Some(hash.as_str()) {
                return Ok(ImportOutcome::Unchanged(*id));
            }
            if status != "draft" {
                return Err(InvoicingError::conflict(
                    "invoice_immutable",
                    "the invoice is issued and cannot change; send a credit note instead",
                ));
            }
        }
        let (mut row, lines) = Self::prepare_invoice(conn, tenant_id, &input).await?;
        if let Some((id, ..)) = existing {
            store::delete_draft(conn, tenant_id, id).await?;
            row.id = id;
        }
        let number = item.number.trim();
        if !number.is_empty() {
            // The ERP issued it: it arrives open, with the ERP's number and dates.
            if number.len() > 50 {
                return Err(InvalidField::new("number", "must be at most 50 characters").into());
            }
            // Cobro's own series must stay Cobro's: an imported INV-2026-000007 would block the
            // tenant's 7th issue for the rest of the year.
            if number.starts_with("INV-") || number.starts_with("CN-") {
                return Err(InvalidField::new(
                    "number",
                    "INV- and CN- numbers are Cobro's own series; use the ERP's numbering",
                )
                .into());
            }
            row.issue_date.ok_or_else(|| InvalidField::new("issue_date", "is required with a number"))?;
            let due = row.due_date.ok_or_else(|| InvalidField::new("due_date", "is required with a number"))?;
            if row.issue_date.is_some_and(|issue| due < issue) {
                return Err(InvalidField::new("due_date", "must not be before the issue date").into());
            }
            row.status = "open".to_owned();
            row.number = Some(number.to_owned());
        }
        // One insert with everything, so the row is written once.
        store::insert_invoice_from(conn, &row, &lines, Some(&hash)).await?;
        if row.status == "open" {
            store::event(conn, tenant_id, "invoice.issued", row.id, &changed(&row)).await?;
        }
        Ok(if existing.is_some() { ImportOutcome::Updated(row.id) } else { ImportOutcome::Created(row.id) })
    }

    /// Invoices changed after `cursor` (a change sequence number), oldest change first, with the
    /// cursor for the next call.
    pub async fn changes(&self, principal: &Principal, cursor: &str, limit: i64) -> Result<(Vec<InvoiceRow>, String)> {
        if !principal.has("invoices:read") {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:read".to_owned()));
        }
        let since: i64 = if cursor.is_empty() {
            0
        } else {
            cursor.parse().map_err(|_| InvalidField::new("cursor", "is not a cursor from an earlier call"))?
        };
        let rows = store::changes(&self.pool, principal.tenant_id, since, limit).await?;
        let next = rows.last().map_or(since, |(_, seq)| *seq);
        Ok((rows.into_iter().map(|(row, _)| row).collect(), next.to_string()))
    }
}
