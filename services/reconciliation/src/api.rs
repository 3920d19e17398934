//! gRPC handlers: decode, authorize, call the use case, encode.

use std::pin::Pin;
use std::sync::Arc;

use chrono::NaiveDate;
use cobro_kit::auth::{Principal, PrincipalKind, principal};
use cobro_kit::error::InvalidField;
use cobro_kit::money::Currency;
use cobro_kit::wire::{next_page, page, timestamp};
use cobro_proto::common::v1::Money;
use cobro_proto::reconciliation::v1 as pb;
use cobro_proto::reconciliation::v1::reconciliation_service_server::ReconciliationService;
use rust_decimal::Decimal;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::app::{Decision, ManualItem, MatchRun, Reconciliation};
use crate::domain::formats::csv::CsvMapping;
use crate::domain::formats::detect::MAX_FILE_BYTES;
use crate::domain::report;
use crate::error::{ReconciliationError, Result};
use crate::store::discrepancies::{self as discrepancy_store, DiscrepancyRow};
use crate::store::matches::{self, MatchItemRow, MatchRow};
use crate::store::{self, BankAccountRow, LineRow, SettingsRow};

pub struct ReconciliationApi {
    app: Arc<Reconciliation>,
}

impl ReconciliationApi {
    pub fn new(app: Arc<Reconciliation>) -> Self {
        Self { app }
    }
}

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Export chunks of this size keep each gRPC message well under the 4 MB default.
const EXPORT_CHUNK: usize = 256 * 1024;

/// Staff (or an API key) holding `permission`; portal contacts never.
fn require(p: &Principal, permission: &str) -> Result<()> {
    if p.kind == PrincipalKind::Customer || !p.has(permission) {
        return Err(ReconciliationError::PermissionDenied(format!("missing permission {permission}")));
    }
    Ok(())
}

fn id(field: &str, prefix: &str, value: &str) -> Result<Uuid> {
    Ok(cobro_kit::ids::parse(field, prefix, value)?)
}

fn optional_id(field: &str, prefix: &str, value: &str) -> Result<Option<Uuid>> {
    if value.trim().is_empty() { Ok(None) } else { id(field, prefix, value).map(Some) }
}

fn one_of<'a>(field: &str, value: &'a str, allowed: &[&str]) -> Result<Option<&'a str>> {
    if value.is_empty() {
        return Ok(None);
    }
    if allowed.contains(&value) {
        Ok(Some(value))
    } else {
        Err(InvalidField::new(field, format!("must be one of {}", allowed.join(", "))).into())
    }
}

fn date(field: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| InvalidField::new(field, "must be a date YYYY-MM-DD").into())
}

fn text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(InvalidField::new(field, format!("must be at most {max} characters")).into());
    }
    Ok(value.to_owned())
}

fn money(amount: Decimal, currency: &str) -> Option<Money> {
    Some(Money { currency: currency.to_owned(), amount: amount.to_string() })
}

fn bank_account(a: &BankAccountRow) -> pb::BankAccount {
    pb::BankAccount {
        id: cobro_kit::ids::format("bac", a.id),
        name: a.name.clone(),
        number: a.number.clone(),
        currency: a.currency.clone(),
    }
}

fn line(l: &LineRow) -> pb::BankLine {
    pb::BankLine {
        id: cobro_kit::ids::format("bln", l.id),
        bank_account_id: cobro_kit::ids::format("bac", l.account_id),
        booking_date: l.booking_date.to_string(),
        value_date: l.value_date.map(|d| d.to_string()).unwrap_or_default(),
        amount: money(l.amount, &l.currency),
        direction: l.direction.clone(),
        counterparty_name: l.counterparty_name.clone(),
        counterparty_account: l.counterparty_account.clone(),
        end_to_end_id: l.end_to_end_id.clone(),
        reference: l.reference.clone(),
        remittance: l.remittance.clone(),
        bank_code: l.bank_code.clone(),
        statement_id: l.statement_id.clone(),
        entry_id: l.entry_id.clone(),
        status: l.status.clone(),
    }
}

fn matched(m: &MatchRow, items: &[MatchItemRow]) -> pb::Match {
    pb::Match {
        id: cobro_kit::ids::format("mat", m.id),
        bank_line_id: cobro_kit::ids::format("bln", m.line_id),
        rule: m.rule.clone(),
        confidence: m.confidence.to_string(),
        status: m.status.clone(),
        customer_id: m.customer_id.map(|c| cobro_kit::ids::format("cus", c)).unwrap_or_default(),
        items: items
            .iter()
            .filter(|i| i.match_id == m.id || i.match_id.is_nil())
            .map(|i| pb::MatchedItem {
                invoice_id: i.invoice_id.map(|id| cobro_kit::ids::format("inv", id)).unwrap_or_default(),
                installment_id: i.installment_id.map(|id| cobro_kit::ids::format("ins", id)).unwrap_or_default(),
                invoice_number: i.invoice_number.clone(),
                amount: money(i.amount, &i.currency),
                payout_id: i.payout_id.map(|id| cobro_kit::ids::format("po", id)).unwrap_or_default(),
            })
            .collect(),
        decided_by: m.decided_by.clone(),
        decided_at: m.decided_at.and_then(timestamp),
        created_at: timestamp(m.created_at),
    }
}

fn discrepancy(d: &DiscrepancyRow) -> pb::Discrepancy {
    pb::Discrepancy {
        id: cobro_kit::ids::format("dsc", d.id),
        kind: d.kind.clone(),
        bank_line_id: d.line_id.map(|id| cobro_kit::ids::format("bln", id)).unwrap_or_default(),
        payout_id: d.payout_id.map(|id| cobro_kit::ids::format("po", id)).unwrap_or_default(),
        invoice_id: d.invoice_id.map(|id| cobro_kit::ids::format("inv", id)).unwrap_or_default(),
        amount: money(d.amount, &d.currency),
        expected: d.expected.and_then(|e| money(e, &d.currency)),
        detail: d.detail.clone(),
        status: d.status.clone(),
        created_at: timestamp(d.created_at),
        resolved_by: d.resolved_by.clone(),
        resolution: d.resolution.clone(),
    }
}

fn run(r: MatchRun) -> pb::RunMatchingResponse {
    pb::RunMatchingResponse {
        lines_considered: r.lines_considered,
        confirmed: r.confirmed,
        suggested: r.suggested,
        discrepancies: r.discrepancies,
    }
}

fn settings(s: &SettingsRow) -> pb::Settings {
    pb::Settings {
        auto_confirm_threshold: s.auto_confirm_threshold.to_string(),
        unmatched_after_days: u32::try_from(s.unmatched_after_days).unwrap_or(0),
        date_window_days: u32::try_from(s.date_window_days).unwrap_or(0),
        payout_tolerance: s.payout_tolerance.to_string(),
    }
}

/// The saved form of a CSV mapping; errors name the field.
fn csv_mapping(m: &pb::CsvMapping) -> Result<CsvMapping> {
    let mut chars = m.delimiter.chars();
    let delimiter = match (chars.next(), chars.next()) {
        (None, _) => ',',
        (Some(c), None) => c,
        _ => return Err(InvalidField::new("delimiter", "must be one character").into()),
    };
    let column = |field: &str, value: &str| text(field, value, 100);
    let mapping = CsvMapping {
        delimiter,
        date_format: if m.date_format.is_empty() {
            "%Y-%m-%d".to_owned()
        } else {
            column("date_format", &m.date_format)?
        },
        booking_date: column("booking_date", &m.booking_date)?,
        value_date: column("value_date", &m.value_date)?,
        amount: column("amount", &m.amount)?,
        credit: column("credit", &m.credit)?,
        debit: column("debit", &m.debit)?,
        currency: column("currency", &m.currency)?,
        default_currency: m.default_currency.trim().to_owned(),
        counterparty_name: column("counterparty_name", &m.counterparty_name)?,
        counterparty_account: column("counterparty_account", &m.counterparty_account)?,
        reference: column("reference", &m.reference)?,
        remittance: column("remittance", &m.remittance)?,
        entry_id: column("entry_id", &m.entry_id)?,
    };
    mapping.check().map_err(|(field, reason)| InvalidField::new(field, reason))?;
    Ok(mapping)
}

fn csv_mapping_out(name: &str, m: &CsvMapping) -> pb::CsvMapping {
    pb::CsvMapping {
        name: name.to_owned(),
        delimiter: m.delimiter.to_string(),
        date_format: m.date_format.clone(),
        booking_date: m.booking_date.clone(),
        value_date: m.value_date.clone(),
        amount: m.amount.clone(),
        credit: m.credit.clone(),
        debit: m.debit.clone(),
        currency: m.currency.clone(),
        default_currency: m.default_currency.clone(),
        counterparty_name: m.counterparty_name.clone(),
        counterparty_account: m.counterparty_account.clone(),
        reference: m.reference.clone(),
        remittance: m.remittance.clone(),
        entry_id: m.entry_id.clone(),
    }
}

/// An account number as banks print it: letters, digits, spaces and dashes, 5 to 34 of them.
fn account_number(value: &str) -> Result<String> {
    let value = value.trim();
    let significant = value.chars().filter(|c| c.is_ascii_alphanumeric()).count();
    if !(5..=34).contains(&significant) || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-') {
        return Err(InvalidField::new(
            "number",
            "must be an IBAN, CLABE or account number (5 to 34 letters and digits)",
        )
        .into());
    }
    Ok(value.to_owned())
}

fn decimal(field: &str, value: &str) -> Result<Decimal> {
    value.trim().parse::<Decimal>().map_err(|_| InvalidField::new(field, "must be a decimal number like 0.90").into())
}

impl ReconciliationApi {
    async fn items_of(&self, tenant: Uuid, rows: &[MatchRow]) -> Result<Vec<MatchItemRow>> {
        let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
        let mut conn = self.app.pool().acquire().await?;
        Ok(matches::items(&mut conn, tenant, &ids).await?)
    }

    async fn import(
        &self,
        p: &Principal,
        mut stream: Streaming<pb::ImportStatementChunk>,
    ) -> Result<pb::ImportStatementResponse> {
        require(p, "recon:write")?;
        let first = stream.message().await.map_err(|_| InvalidField::new("data", "the upload broke off"))?;
        let Some(first) = first else { return Err(InvalidField::new("bank_account_id", "is required").into()) };
        let account = id("bank_account_id", "bac", &first.bank_account_id)?;
        let mapping = if first.csv_mapping.trim().is_empty() {
            None
        } else {
            let json = store::csv_mapping(self.app.pool(), p.tenant_id, first.csv_mapping.trim())
                .await?
                .ok_or_else(|| InvalidField::new("csv_mapping", "no saved mapping has that name"))?;
            Some(
                serde_json::from_value::<CsvMapping>(json)
                    .map_err(|_| ReconciliationError::Internal("stored CSV mapping unreadable".to_owned()))?,
            )
        };
        let mut file = first.data;
        while let Some(chunk) = stream.message().await.map_err(|_| InvalidField::new("data", "the upload broke off"))? {
            if file.len() + chunk.data.len() > MAX_FILE_BYTES {
                return Err(InvalidField::new("data", "the file is larger than 100 MB").into());
            }
            file.extend_from_slice(&chunk.data);
        }
        if file.is_empty() {
            return Err(InvalidField::new("data", "the file is empty").into());
        }
        let (imported, matching) = self.app.import(p.tenant_id, account, &file, mapping.as_ref()).await?;
        Ok(pb::ImportStatementResponse {
            format: imported.format,
            statements: imported.statements,
            lines_read: imported.lines_read,
            lines_new: imported.lines_new,
            matching: Some(run(matching)),
        })
    }

    async fn decide(
        &self,
        decision: Decision,
        req: &Request<pb::DecideMatchRequest>,
    ) -> std::result::Result<pb::Match, Status> {
        let p = principal(req)?;
        require(p, "recon:confirm")?;
        let r = req.get_ref();
        let target = id("match_id", "mat", &r.match_id)?;
        let reason = text("reason", &r.reason, 500)?;
        let (m, items) = self.app.decide(decision, p.tenant_id, target, &p.subject, &reason).await?;
        Ok(matched(&m, &items))
    }

    async fn update_settings(&self, p: &Principal, s: &pb::Settings) -> Result<pb::Settings> {
        require(p, "recon:write")?;
        let threshold = decimal("auto_confirm_threshold", &s.auto_confirm_threshold)?;
        if threshold <= Decimal::new(5, 1) || threshold > Decimal::ONE {
            return Err(InvalidField::new("auto_confirm_threshold", "must be above 0.5 and at most 1").into());
        }
        if !(1..=365).contains(&s.unmatched_after_days) {
            return Err(InvalidField::new("unmatched_after_days", "must be between 1 and 365").into());
        }
        if s.date_window_days > 365 {
            return Err(InvalidField::new("date_window_days", "must be at most 365").into());
        }
        let tolerance = decimal("payout_tolerance", &s.payout_tolerance)?;
        if tolerance < Decimal::ZERO || tolerance.scale() > 4 {
            return Err(InvalidField::new("payout_tolerance", "must be zero or more, with at most 4 decimals").into());
        }
        let row = SettingsRow {
            auto_confirm_threshold: threshold,
            unmatched_after_days: i32::try_from(s.unmatched_after_days).unwrap_or(5),
            date_window_days: i32::try_from(s.date_window_days).unwrap_or(30),
            payout_tolerance: tolerance,
        };
        store::save_settings(self.app.pool(), p.tenant_id, &row).await?;
        Ok(settings(&row))
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = std::result::Result<pb::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ReconciliationService for ReconciliationApi {
    async fn create_bank_account(&self, req: Request<pb::CreateBankAccountRequest>) -> Answer<pb::BankAccount> {
        let p = principal(&req)?;
        require(p, "recon:write")?;
        let r = req.get_ref();
        let name = text("name", &r.name, 100)?;
        if name.is_empty() {
            return Err(ReconciliationError::from(InvalidField::new("name", "is required")).into());
        }
        let number = account_number(&r.number)?;
        let currency = Currency::from_code(r.currency.trim()).map_err(|_| {
            ReconciliationError::from(InvalidField::new("currency", "must be an ISO 4217 code like MXN"))
        })?;
        match store::insert_bank_account(self.app.pool(), p.tenant_id, &name, &number, currency.code()).await {
            Ok(row) => Ok(Response::new(bank_account(&row))),
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                Err(ReconciliationError::conflict(
                    "bank_account_exists",
                    "the tenant already has that account in that currency".to_owned(),
                )
                .into())
            }
            Err(e) => Err(ReconciliationError::from(e).into()),
        }
    }

    async fn list_bank_accounts(
        &self,
        req: Request<pb::ListBankAccountsRequest>,
    ) -> Answer<pb::ListBankAccountsResponse> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let (limit, after) = page(req.get_ref().page.clone()).map_err(ReconciliationError::from)?;
        let rows = store::bank_accounts(self.app.pool(), p.tenant_id, after, limit)
            .await
            .map_err(ReconciliationError::from)?;
        Ok(Response::new(pb::ListBankAccountsResponse {
            accounts: rows.iter().map(bank_account).collect(),
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
        }))
    }

    async fn save_csv_mapping(&self, req: Request<pb::CsvMapping>) -> Answer<pb::CsvMapping> {
        let p = principal(&req)?;
        require(p, "recon:write")?;
        let r = req.get_ref();
        let name = text("name", &r.name, 60)?;
        if name.is_empty() {
            return Err(ReconciliationError::from(InvalidField::new("name", "is required")).into());
        }
        let mapping = csv_mapping(r)?;
        let json =
            serde_json::to_value(&mapping).map_err(|_| ReconciliationError::Internal("mapping encoding".to_owned()))?;
        store::save_csv_mapping(self.app.pool(), p.tenant_id, &name, &json).await.map_err(ReconciliationError::from)?;
        Ok(Response::new(csv_mapping_out(&name, &mapping)))
    }

    async fn import_statement(
        &self,
        req: Request<Streaming<pb::ImportStatementChunk>>,
    ) -> Answer<pb::ImportStatementResponse> {
        let p = principal(&req)?.clone();
        Ok(Response::new(self.import(&p, req.into_inner()).await?))
    }

    async fn list_bank_lines(&self, req: Request<pb::ListBankLinesRequest>) -> Answer<pb::ListBankLinesResponse> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone()).map_err(ReconciliationError::from)?;
        let account = optional_id("bank_account_id", "bac", &r.bank_account_id)?;
        let status = one_of("status", &r.status, &["unmatched", "suggested", "matched"])?;
        let rows = store::lines(self.app.pool(), p.tenant_id, account, status, after, limit)
            .await
            .map_err(ReconciliationError::from)?;
        Ok(Response::new(pb::ListBankLinesResponse {
            lines: rows.iter().map(line).collect(),
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
        }))
    }

    async fn run_matching(&self, req: Request<pb::RunMatchingRequest>) -> Answer<pb::RunMatchingResponse> {
        let p = principal(&req)?;
        require(p, "recon:write")?;
        Ok(Response::new(run(self.app.run_matching(p.tenant_id).await?)))
    }

    async fn list_matches(&self, req: Request<pb::ListMatchesRequest>) -> Answer<pb::ListMatchesResponse> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone()).map_err(ReconciliationError::from)?;
        let status = one_of("status", &r.status, &["suggested", "confirmed", "rejected", "reversed"])?;
        let line = optional_id("bank_line_id", "bln", &r.bank_line_id)?;
        let rows = matches::list(self.app.pool(), p.tenant_id, status, line, after, limit)
            .await
            .map_err(ReconciliationError::from)?;
        let items = self.items_of(p.tenant_id, &rows).await?;
        Ok(Response::new(pb::ListMatchesResponse {
            matches: rows.iter().map(|m| matched(m, &items)).collect(),
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
        }))
    }

    async fn confirm_match(&self, req: Request<pb::DecideMatchRequest>) -> Answer<pb::Match> {
        Ok(Response::new(self.decide(Decision::Confirm, &req).await?))
    }

    async fn reject_match(&self, req: Request<pb::DecideMatchRequest>) -> Answer<pb::Match> {
        Ok(Response::new(self.decide(Decision::Reject, &req).await?))
    }

    async fn unmatch(&self, req: Request<pb::DecideMatchRequest>) -> Answer<pb::Match> {
        Ok(Response::new(self.decide(Decision::Unmatch, &req).await?))
    }

    async fn manual_match(&self, req: Request<pb::ManualMatchRequest>) -> Answer<pb::Match> {
        let p = principal(&req)?;
        require(p, "recon:confirm")?;
        let r = req.get_ref();
        let line = id("bank_line_id", "bln", &r.bank_line_id)?;
        if r.items.len() > 50 {
            return Err(ReconciliationError::from(InvalidField::new("items", "at most 50 invoices per match")).into());
        }
        let mut wanted = Vec::with_capacity(r.items.len());
        for (i, item) in r.items.iter().enumerate() {
            wanted.push(ManualItem {
                invoice: id(&format!("items[{i}].invoice_id"), "inv", &item.invoice_id)?,
                installment: optional_id(&format!("items[{i}].installment_id"), "ins", &item.installment_id)?,
                amount: if item.amount.trim().is_empty() {
                    None
                } else {
                    Some(decimal(&format!("items[{i}].amount"), &item.amount)?)
                },
            });
        }
        let (m, items) =
            self.app.manual(p.tenant_id, line, &wanted, &p.subject, &text("reason", &r.reason, 500)?).await?;
        Ok(Response::new(matched(&m, &items)))
    }

    async fn list_discrepancies(
        &self,
        req: Request<pb::ListDiscrepanciesRequest>,
    ) -> Answer<pb::ListDiscrepanciesResponse> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone()).map_err(ReconciliationError::from)?;
        let status = one_of("status", &r.status, &["open", "resolved"])?;
        let kind = one_of(
            "kind",
            &r.kind,
            &[
                "unmatched_credit",
                "amount_mismatch",
                "overpayment",
                "duplicate_payment",
                "payout_mismatch",
                "currency_mismatch",
            ],
        )?;
        let rows = discrepancy_store::list(self.app.pool(), p.tenant_id, status, kind, after, limit)
            .await
            .map_err(ReconciliationError::from)?;
        Ok(Response::new(pb::ListDiscrepanciesResponse {
            discrepancies: rows.iter().map(discrepancy).collect(),
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
        }))
    }

    async fn resolve_discrepancy(&self, req: Request<pb::ResolveDiscrepancyRequest>) -> Answer<pb::Discrepancy> {
        let p = principal(&req)?;
        require(p, "recon:confirm")?;
        let r = req.get_ref();
        let target = id("discrepancy_id", "dsc", &r.discrepancy_id)?;
        let resolution = text("resolution", &r.resolution, 500)?;
        if resolution.is_empty() {
            return Err(ReconciliationError::from(InvalidField::new("resolution", "say how it was resolved")).into());
        }
        let row = discrepancy_store::resolve(self.app.pool(), p.tenant_id, target, &p.subject, &resolution)
            .await
            .map_err(ReconciliationError::from)?
            .ok_or(ReconciliationError::NotFound("discrepancy"))?;
        Ok(Response::new(discrepancy(&row)))
    }

    async fn get_settings(&self, req: Request<pb::GetSettingsRequest>) -> Answer<pb::Settings> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let mut conn = self.app.pool().acquire().await.map_err(ReconciliationError::from)?;
        let row = store::settings(&mut conn, p.tenant_id).await.map_err(ReconciliationError::from)?;
        Ok(Response::new(settings(&row)))
    }

    async fn update_settings(&self, req: Request<pb::Settings>) -> Answer<pb::Settings> {
        let p = principal(&req)?;
        Ok(Response::new(self.update_settings(p, req.get_ref()).await?))
    }

    type ExportReportStream = ExportStream;

    async fn export_report(&self, req: Request<pb::ExportReportRequest>) -> Answer<Self::ExportReportStream> {
        let p = principal(&req)?;
        require(p, "recon:read")?;
        let r = req.get_ref();
        let from = date("from", &r.from)?;
        let to = date("to", &r.to)?;
        if to < from {
            return Err(ReconciliationError::from(InvalidField::new("to", "must not be before from")).into());
        }
        if (to - from).num_days() > 366 {
            return Err(ReconciliationError::from(InvalidField::new("to", "a report covers at most a year")).into());
        }
        let (body, content_type) = match r.format.as_str() {
            "csv" | "" => (report::csv(&self.app.report(p.tenant_id, from, to).await?), "text/csv"),
            "json" => (
                report::json(&self.app.report(p.tenant_id, from, to).await?)
                    .map_err(|_| ReconciliationError::Internal("report encoding".to_owned()))?,
                "application/json",
            ),
            _ => return Err(ReconciliationError::from(InvalidField::new("format", "must be csv or json")).into()),
        };
        let bytes = body.into_bytes();
        let chunks: Vec<std::result::Result<pb::ExportChunk, Status>> = bytes
            .chunks(EXPORT_CHUNK)
            .enumerate()
            .map(|(i, c)| {
                Ok(pb::ExportChunk {
                    data: c.to_vec(),
                    content_type: if i == 0 { content_type.to_owned() } else { String::new() },
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}
