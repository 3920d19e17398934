//! gRPC handlers: decode, call the use case, encode.

use std::sync::Arc;

use cobro_kit::auth::principal;
use cobro_kit::wire::{next_page, page, timestamp};
use cobro_proto::invoicing::v1 as pb;
use cobro_proto::invoicing::v1::invoicing_service_server::InvoicingService;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{
    Applied, ContactIn, CustomerIn, DiscountInput, InvoiceView, Invoicing, LineIn, NewInvoice, PaymentIn, Plan,
    TaxInput, money, prefix,
};
use crate::domain::reports::AgingTotals;
use crate::error::InvoicingError;
use crate::import::{IMPORT_CHUNK, ImportItem, ImportOutcome};
use crate::recurring::RecurringIn;
use crate::store::CustomerRow;

pub struct InvoicingApi {
    app: Arc<Invoicing>,
}

impl InvoicingApi {
    pub fn new(app: Arc<Invoicing>) -> Self {
        Self { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn discount_in(d: Option<pb::Discount>) -> DiscountInput {
    match d.and_then(|d| d.kind) {
        Some(pb::discount::Kind::Percent(p)) => DiscountInput::Percent(p),
        Some(pb::discount::Kind::Amount(a)) => DiscountInput::Amount(a),
        None => DiscountInput::None,
    }
}

fn discount_out(kind: &str, value: Decimal) -> Option<pb::Discount> {
    let kind = match kind {
        "percent" => pb::discount::Kind::Percent(value.normalize().to_string()),
        "amount" => pb::discount::Kind::Amount(value.to_string()),
        _ => return None,
    };
    Some(pb::Discount { kind: Some(kind) })
}

fn new_invoice(r: pb::CreateInvoiceRequest) -> NewInvoice {
    NewInvoice {
        customer_id: r.customer_id,
        external_id: r.external_id,
        currency: r.currency,
        lines: r
            .lines
            .into_iter()
            .map(|l| LineIn {
                description: l.description,
                quantity: l.quantity,
                unit_price: l.unit_price,
                discount: discount_in(l.discount),
                taxes: l
                    .taxes
                    .into_iter()
                    .map(|t| TaxInput { name: t.name, rate_percent: t.rate_percent, inclusive: t.inclusive })
                    .collect(),
            })
            .collect(),
        discount: discount_in(r.discount),
        memo: r.memo,
        issue_date: r.issue_date,
        due_date: r.due_date,
    }
}

fn customer(c: &CustomerRow) -> pb::Customer {
    let contacts = c
        .contacts
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| pb::Contact {
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    email: v["email"].as_str().unwrap_or_default().to_owned(),
                    phone: v["phone"].as_str().unwrap_or_default().to_owned(),
                    whatsapp_opt_in: v["whatsapp_opt_in"].as_bool().unwrap_or(false),
                    language: v["language"].as_str().unwrap_or_default().to_owned(),
                    timezone: v["timezone"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let a = &c.billing_address;
    pb::Customer {
        id: cobro_kit::ids::format(prefix::CUSTOMER, c.id),
        external_id: c.external_id.clone().unwrap_or_default(),
        legal_name: c.legal_name.clone(),
        tax_id: c.tax_id.clone(),
        tax_country: c.tax_country.clone(),
        billing_address: Some(pb::Address {
            line1: a["line1"].as_str().unwrap_or_default().to_owned(),
            line2: a["line2"].as_str().unwrap_or_default().to_owned(),
            city: a["city"].as_str().unwrap_or_default().to_owned(),
            region: a["region"].as_str().unwrap_or_default().to_owned(),
            postal_code: a["postal_code"].as_str().unwrap_or_default().to_owned(),
            country: a["country"].as_str().unwrap_or_default().to_owned(),
        }),
        contacts,
        payment_terms_days: u32::try_from(c.payment_terms_days).unwrap_or(0),
        currency: c.currency.clone(),
        credit_limit: c.credit_limit.map(|l| l.to_string()).unwrap_or_default(),
        reminder_policy: c.reminder_policy.clone(),
        autopay: c.autopay,
        tags: c.tags.clone(),
        credit_balance: Some(money(c.credit_balance, &c.currency)),
        created_at: timestamp(c.created_at),
    }
}

fn invoice(v: &InvoiceView) -> pb::Invoice {
    let i = &v.invoice;
    let cur = i.currency.as_str();
    let today = cobro_kit::clock::today();
    pb::Invoice {
        id: cobro_kit::ids::format(prefix::INVOICE, i.id),
        customer_id: cobro_kit::ids::format(prefix::CUSTOMER, i.customer_id),
        external_id: i.external_id.clone().unwrap_or_default(),
        number: i.number.clone().unwrap_or_default(),
        status: i.status.clone(),
        currency: i.currency.clone(),
        issue_date: i.issue_date.map(|d| d.to_string()).unwrap_or_default(),
        due_date: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
        lines: v
            .lines
            .iter()
            .map(|l| pb::Line {
                input: Some(pb::LineInput {
                    description: l.description.clone(),
                    quantity: l.quantity.normalize().to_string(),
                    unit_price: l.unit_price.to_string(),
                    discount: discount_out(&l.discount_kind, l.discount_value),
                    taxes: l
                        .taxes
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .map(|t| pb::TaxRate {
                                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                                    rate_percent: t["rate_percent"].as_str().unwrap_or_default().to_owned(),
                                    inclusive: t["inclusive"].as_bool().unwrap_or(false),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                net: Some(money(l.net, cur)),
                tax: Some(money(l.tax_total, cur)),
                total: Some(money(l.total, cur)),
            })
            .collect(),
        discount: discount_out(&i.discount_kind, i.discount_value),
        subtotal: Some(money(i.subtotal, cur)),
        discount_total: Some(money(i.discount_total, cur)),
        tax_total: Some(money(i.tax_total, cur)),
        total: Some(money(i.total, cur)),
        credited: Some(money(i.credited, cur)),
        paid: Some(money(i.paid, cur)),
        balance: Some(money(i.balance, cur)),
        overdue: matches!(i.status.as_str(), "open" | "partially_paid")
            && i.balance > Decimal::ZERO
            && i.due_date.is_some_and(|d| d < today),
        installments: v
            .installments
            .iter()
            .map(|s| pb::Installment {
                id: cobro_kit::ids::format(prefix::INSTALLMENT, s.id),
                seq: u32::try_from(s.seq).unwrap_or(0),
                due_date: s.due_date.to_string(),
                amount: Some(money(s.amount, cur)),
                balance: Some(money(s.balance, cur)),
                overdue: s.balance > Decimal::ZERO && s.due_date < today,
            })
            .collect(),
        memo: i.memo.clone(),
    }
}

fn import_result(item: &ImportItem, outcome: ImportOutcome) -> pb::ImportResult {
    let external_id = item.invoice.external_id.clone();
    let id = |id: Uuid| cobro_kit::ids::format(prefix::INVOICE, id);
    match outcome {
        ImportOutcome::Created(i) => {
            pb::ImportResult { external_id, outcome: "created".into(), invoice_id: id(i), ..Default::default() }
        }
        ImportOutcome::Updated(i) => {
            pb::ImportResult { external_id, outcome: "updated".into(), invoice_id: id(i), ..Default::default() }
        }
        ImportOutcome::Unchanged(i) => {
            pb::ImportResult { external_id, outcome: "unchanged".into(), invoice_id: id(i), ..Default::default() }
        }
        ImportOutcome::Error { code, field, message } => pb::ImportResult {
            external_id,
            outcome: "error".into(),
            error_code: code.to_owned(),
            error_field: field,
            error_message: message,
            ..Default::default()
        },
    }
}

fn applied(a: Applied) -> pb::ApplyPaymentResponse {
    pb::ApplyPaymentResponse {
        allocations: a
            .allocations
            .iter()
            .map(|x| pb::AppliedAllocation {
                invoice_id: cobro_kit::ids::format(prefix::INVOICE, x.invoice_id),
                installment_id: x
                    .installment_id
                    .map(|s| cobro_kit::ids::format(prefix::INSTALLMENT, s))
                    .unwrap_or_default(),
                amount: Some(money(x.amount, &a.currency)),
            })
            .collect(),
        unapplied: Some(money(a.unapplied, &a.currency)),
        applied_now: a.applied_now,
    }
}

fn buckets(t: &AgingTotals, cur: &str) -> pb::AgingBuckets {
    pb::AgingBuckets {
        current: Some(money(t.current, cur)),
        days_1_30: Some(money(t.d1_30, cur)),
        days_31_60: Some(money(t.d31_60, cur)),
        days_61_90: Some(money(t.d61_90, cur)),
        over_90: Some(money(t.over_90, cur)),
        total: Some(money(t.total, cur)),
    }
}

#[tonic::async_trait]
impl InvoicingService for InvoicingApi {
    async fn upsert_customer(&self, req: Request<pb::UpsertCustomerRequest>) -> Answer<pb::Customer> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let c = r.customer.unwrap_or_default();
        let a = c.billing_address.unwrap_or_default();
        let input = CustomerIn {
            external_id: c.external_id,
            legal_name: c.legal_name,
            tax_id: c.tax_id,
            tax_country: c.tax_country,
            billing_address: serde_json::json!({
                "line1": a.line1, "line2": a.line2, "city": a.city, "region": a.region,
                "postal_code": a.postal_code, "country": a.country,
            }),
            contacts: c
                .contacts
                .into_iter()
                .map(|k| ContactIn {
                    name: k.name,
                    email: k.email,
                    phone: k.phone,
                    whatsapp_opt_in: k.whatsapp_opt_in,
                    language: k.language,
                    timezone: k.timezone,
                })
                .collect(),
            payment_terms_days: c.payment_terms_days,
            currency: c.currency,
            credit_limit: c.credit_limit,
            reminder_policy: c.reminder_policy,
            autopay: c.autopay,
            tags: c.tags,
        };
        Ok(Response::new(customer(&self.app.upsert_customer(&caller, &r.id, input).await?)))
    }

    async fn get_customer(&self, req: Request<pb::GetCustomerRequest>) -> Answer<pb::Customer> {
        Ok(Response::new(customer(&self.app.customer(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn list_customers(&self, req: Request<pb::ListCustomersRequest>) -> Answer<pb::ListCustomersResponse> {
        let (limit, after) = page(req.get_ref().page.clone())?;
        let rows = self.app.customers(principal(&req)?, limit, after).await?;
        Ok(Response::new(pb::ListCustomersResponse {
            page: next_page(rows.iter().map(|c| c.id), rows.len(), limit),
            customers: rows.iter().map(customer).collect(),
        }))
    }

    async fn create_invoice(&self, req: Request<pb::CreateInvoiceRequest>) -> Answer<pb::Invoice> {
        let caller = principal(&req)?.clone();
        Ok(Response::new(invoice(&self.app.create_invoice(&caller, new_invoice(req.into_inner())).await?)))
    }

    async fn create_recurring_invoice(
        &self,
        req: Request<pb::CreateRecurringInvoiceRequest>,
    ) -> Answer<pb::RecurringInvoice> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let id = self
            .app
            .create_recurring(
                &caller,
                RecurringIn {
                    invoice: new_invoice(r.invoice.unwrap_or_default()),
                    frequency: r.frequency,
                    day_of_month: r.day_of_month,
                    first_period: r.first_period,
                    end_date: r.end_date,
                    max_count: r.max_count,
                    auto_issue: r.auto_issue,
                },
            )
            .await?;
        Ok(Response::new(pb::RecurringInvoice { id: crate::recurring::template_id(id) }))
    }

    async fn request_hardship(&self, req: Request<pb::RequestHardshipRequest>) -> Answer<pb::HardshipRequest> {
        let r = req.get_ref();
        let id = self
            .app
            .request_hardship(principal(&req)?, &r.invoice_id, &r.reason, r.installments, &r.first_date, &r.note)
            .await?;
        Ok(Response::new(pb::HardshipRequest { id: crate::requests::request_id(id) }))
    }

    async fn resolve_hardship(&self, req: Request<pb::ResolveHardshipRequest>) -> Answer<pb::Invoice> {
        let r = req.get_ref();
        let resolved = self.app.resolve_hardship(principal(&req)?, &r.request_id, r.accept, &r.note).await?;
        let view = self.app.invoice(principal(&req)?, &cobro_kit::ids::format(prefix::INVOICE, resolved.id)).await?;
        Ok(Response::new(invoice(&view)))
    }

    async fn open_dispute(&self, req: Request<pb::OpenDisputeRequest>) -> Answer<pb::Dispute> {
        let r = req.get_ref();
        let id = self.app.open_dispute(principal(&req)?, &r.invoice_id, &r.reason).await?;
        Ok(Response::new(pb::Dispute { id: crate::requests::dispute_id(id) }))
    }

    async fn resolve_dispute(&self, req: Request<pb::ResolveDisputeRequest>) -> Answer<pb::ResolveDisputeResponse> {
        let r = req.get_ref();
        self.app.resolve_dispute(principal(&req)?, &r.dispute_id, &r.credit_amount, &r.note).await?;
        Ok(Response::new(pb::ResolveDisputeResponse {}))
    }

    async fn list_requests(&self, req: Request<pb::ListRequestsRequest>) -> Answer<pb::ListRequestsResponse> {
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone())?;
        let rows = self.app.requests(principal(&req)?, &r.kind, &r.state, limit, after).await?;
        Ok(Response::new(pb::ListRequestsResponse {
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
            requests: rows.iter().map(customer_request).collect(),
        }))
    }

    async fn get_statement(&self, req: Request<pb::GetStatementRequest>) -> Answer<pb::Statement> {
        let r = req.get_ref();
        let st = self.app.statement(principal(&req)?, &r.customer_id, &r.from, &r.to).await?;
        let cur = st.currency.as_str();
        Ok(Response::new(pb::Statement {
            customer_id: cobro_kit::ids::format(prefix::CUSTOMER, st.customer_id),
            from: st.from.to_string(),
            to: st.to.to_string(),
            opening_balance: Some(money(st.opening, cur)),
            entries: st
                .entries
                .iter()
                .map(|e| pb::StatementEntry {
                    date: e.date.to_string(),
                    kind: e.kind.to_owned(),
                    reference: e.reference.clone(),
                    charge: Some(money(e.charge, cur)),
                    credit: Some(money(e.credit, cur)),
                    balance: Some(money(e.balance, cur)),
                })
                .collect(),
            closing_balance: Some(money(st.closing, cur)),
        }))
    }

    async fn get_statement_pdf(&self, req: Request<pb::GetStatementRequest>) -> Answer<pb::StatementPdf> {
        let r = req.get_ref();
        let (filename, pdf) = self.app.statement_pdf(principal(&req)?, &r.customer_id, &r.from, &r.to).await?;
        Ok(Response::new(pb::StatementPdf { filename, pdf }))
    }

    async fn get_invoice_pdf(&self, req: Request<pb::GetInvoicePdfRequest>) -> Answer<pb::InvoicePdf> {
        let (filename, pdf) = self.app.invoice_pdf(principal(&req)?, &req.get_ref().id).await?;
        Ok(Response::new(pb::InvoicePdf { filename, pdf }))
    }

    async fn import_invoices(
        &self,
        req: Request<tonic::Streaming<pb::ImportInvoiceItem>>,
    ) -> Answer<pb::ImportInvoicesResponse> {
        let caller = principal(&req)?.clone();
        let mut stream = req.into_inner();
        let mut results = Vec::new();
        let mut chunk: Vec<ImportItem> = Vec::with_capacity(IMPORT_CHUNK);
        loop {
            let next = stream.message().await?;
            let done = next.is_none();
            if let Some(item) = next {
                chunk.push(ImportItem {
                    invoice: new_invoice(item.invoice.unwrap_or_default()),
                    customer_external_id: item.customer_external_id,
                    number: item.number,
                });
            }
            if chunk.len() >= IMPORT_CHUNK || (done && !chunk.is_empty()) {
                let outcomes = self.app.import_chunk(&caller, &chunk).await?;
                results.extend(chunk.drain(..).zip(outcomes).map(|(item, outcome)| import_result(&item, outcome)));
            }
            if done {
                break;
            }
        }
        Ok(Response::new(pb::ImportInvoicesResponse { results }))
    }

    async fn list_changes(&self, req: Request<pb::ListChangesRequest>) -> Answer<pb::ListChangesResponse> {
        let r = req.get_ref();
        let limit = i64::from(if r.page_size == 0 { 100 } else { r.page_size.min(1000) });
        let (rows, next_cursor) = self.app.changes(principal(&req)?, &r.cursor, limit).await?;
        Ok(Response::new(pb::ListChangesResponse {
            invoices: rows
                .into_iter()
                .map(|i| invoice(&InvoiceView { invoice: i, lines: Vec::new(), installments: Vec::new() }))
                .collect(),
            next_cursor,
        }))
    }

    async fn get_invoice(&self, req: Request<pb::GetInvoiceRequest>) -> Answer<pb::Invoice> {
        Ok(Response::new(invoice(&self.app.invoice(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn list_invoices(&self, req: Request<pb::ListInvoicesRequest>) -> Answer<pb::ListInvoicesResponse> {
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone())?;
        let rows = self.app.invoices(principal(&req)?, &r.customer_id, &r.status, limit, after).await?;
        Ok(Response::new(pb::ListInvoicesResponse {
            page: next_page(rows.iter().map(|i| i.id), rows.len(), limit),
            invoices: rows
                .into_iter()
                .map(|i| invoice(&InvoiceView { invoice: i, lines: Vec::new(), installments: Vec::new() }))
                .collect(),
        }))
    }

    async fn issue_invoice(&self, req: Request<pb::IssueInvoiceRequest>) -> Answer<pb::Invoice> {
        Ok(Response::new(invoice(&self.app.issue_invoice(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn void_invoice(&self, req: Request<pb::VoidInvoiceRequest>) -> Answer<pb::Invoice> {
        let r = req.get_ref();
        Ok(Response::new(invoice(&self.app.void_invoice(principal(&req)?, &r.id, &r.reason).await?)))
    }

    async fn mark_uncollectible(&self, req: Request<pb::MarkUncollectibleRequest>) -> Answer<pb::Invoice> {
        let r = req.get_ref();
        Ok(Response::new(invoice(&self.app.mark_uncollectible(principal(&req)?, &r.id, &r.reason).await?)))
    }

    async fn get_payment_behaviour(
        &self,
        req: Request<pb::GetPaymentBehaviourRequest>,
    ) -> Answer<pb::PaymentBehaviour> {
        let rows = self.app.payment_behaviour(principal(&req)?, &req.get_ref().currency).await?;
        Ok(Response::new(pb::PaymentBehaviour {
            customers: rows
                .into_iter()
                .map(|(c, days, delay)| pb::CustomerBehaviour {
                    customer_id: cobro_kit::ids::format(prefix::CUSTOMER, c),
                    average_days_to_pay: days.to_string(),
                    average_delay_days: delay,
                })
                .collect(),
        }))
    }

    async fn set_installment_plan(&self, req: Request<pb::SetInstallmentPlanRequest>) -> Answer<pb::Invoice> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let plan = match r.plan {
            Some(pb::set_installment_plan_request::Plan::Equal(e)) => {
                Plan::Equal { count: e.count, first_due: e.first_due_date, every_months: e.every_months }
            }
            Some(pb::set_installment_plan_request::Plan::Explicit(x)) => {
                Plan::Explicit(x.installments.into_iter().map(|i| (i.due_date, i.amount)).collect())
            }
            None => {
                return Err(InvoicingError::from(cobro_kit::error::InvalidField::new(
                    "plan",
                    "give equal or explicit",
                ))
                .into());
            }
        };
        Ok(Response::new(invoice(&self.app.set_installment_plan(&caller, &r.invoice_id, plan).await?)))
    }

    async fn issue_credit_note(&self, req: Request<pb::IssueCreditNoteRequest>) -> Answer<pb::CreditNote> {
        let r = req.get_ref();
        let (id, number, amount, currency, created_at) =
            self.app.issue_credit_note(principal(&req)?, &r.invoice_id, &r.amount, &r.reason).await?;
        Ok(Response::new(pb::CreditNote {
            id: cobro_kit::ids::format(prefix::CREDIT_NOTE, id),
            invoice_id: r.invoice_id.clone(),
            number,
            amount: Some(money(amount, &currency)),
            reason: r.reason.clone(),
            created_at: timestamp(created_at),
        }))
    }

    async fn apply_payment(&self, req: Request<pb::ApplyPaymentRequest>) -> Answer<pb::ApplyPaymentResponse> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let amount = r.amount.unwrap_or_default();
        let input = PaymentIn {
            payment_id: r.payment_id,
            customer_id: r.customer_id,
            amount: amount.amount,
            currency: amount.currency,
            method: r.method,
            received_on: r.received_on,
            invoice_ids: r.invoice_ids,
            installment_id: r.installment_id,
        };
        Ok(Response::new(applied(self.app.apply_payment(&caller, input).await?)))
    }

    async fn apply_customer_credit(
        &self,
        req: Request<pb::ApplyCustomerCreditRequest>,
    ) -> Answer<pb::ApplyPaymentResponse> {
        let r = req.get_ref();
        Ok(Response::new(applied(
            self.app.apply_customer_credit(principal(&req)?, &r.customer_id, &r.invoice_id).await?,
        )))
    }

    async fn get_aging_report(&self, req: Request<pb::GetAgingReportRequest>) -> Answer<pb::AgingReport> {
        let r = req.get_ref();
        let (as_of, tenant, customers) = self.app.aging(principal(&req)?, &r.currency, &r.as_of).await?;
        Ok(Response::new(pb::AgingReport {
            as_of: as_of.to_string(),
            tenant: Some(buckets(&tenant, &r.currency)),
            customers: customers
                .iter()
                .map(|(id, t)| pb::CustomerAging {
                    customer_id: cobro_kit::ids::format(prefix::CUSTOMER, *id),
                    buckets: Some(buckets(t, &r.currency)),
                })
                .collect(),
        }))
    }

    async fn get_collection_forecast(
        &self,
        req: Request<pb::GetCollectionForecastRequest>,
    ) -> Answer<pb::CollectionForecast> {
        let r = req.get_ref();
        let weeks = self.app.forecast(principal(&req)?, &r.currency, r.weeks).await?;
        Ok(Response::new(pb::CollectionForecast {
            weeks: weeks
                .iter()
                .map(|w| pb::WeekForecast {
                    week_start: w.week_start.to_string(),
                    expected: Some(money(w.expected, &r.currency)),
                })
                .collect(),
        }))
    }

    async fn get_dso(&self, req: Request<pb::GetDsoRequest>) -> Answer<pb::DsoReport> {
        let r = req.get_ref();
        let (dso, cei, ending, sales) = self.app.dso(principal(&req)?, &r.currency, &r.from, &r.to).await?;
        Ok(Response::new(pb::DsoReport {
            dso: dso.map(|d| d.to_string()).unwrap_or_default(),
            collection_effectiveness_index: cei.map(|c| c.to_string()).unwrap_or_default(),
            ending_receivables: Some(money(ending, &r.currency)),
            credit_sales: Some(money(sales, &r.currency)),
        }))
    }
}

fn customer_request(r: &crate::store::RequestRow) -> pb::CustomerRequest {
    let id = if r.kind == "hardship" { crate::requests::request_id(r.id) } else { crate::requests::dispute_id(r.id) };
    pb::CustomerRequest {
        id,
        kind: r.kind.clone(),
        invoice_id: cobro_kit::ids::format(crate::app::prefix::INVOICE, r.invoice_id),
        invoice_number: r.invoice_number.clone().unwrap_or_default(),
        customer_id: cobro_kit::ids::format(crate::app::prefix::CUSTOMER, r.customer_id),
        state: r.state.clone(),
        reason: r.reason.clone(),
        installments: r.installments.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        first_date: r.first_date.map(|d| d.to_string()).unwrap_or_default(),
        note: r.note.clone(),
        resolution_note: r.resolution_note.clone(),
        requested_by: r.requested_by.clone(),
        balance: Some(crate::app::money(r.balance, &r.currency)),
        created_at: timestamp(r.created_at),
        resolved_at: r.resolved_at.and_then(timestamp),
    }
}
