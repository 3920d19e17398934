//! Invoicing's use cases. Each validates its input, applies the rules in `domain`, and writes
//! through `store` in one transaction together with its events.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Utc};
use cobro_kit::auth::Principal;
use cobro_kit::error::InvalidField;
use cobro_kit::money::{Currency, UNIT_PRICE_SCALE, parse_amount};
use cobro_proto::common::v1::Money as PbMoney;
use cobro_proto::events::v1 as ev;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::installments::{self, Installment, Interval, OpenItem};
use crate::domain::reports;
use crate::domain::totals::{self, Discount, LineInput, TaxMode, TaxRate};
use crate::error::{InvoicingError, Result};
use crate::store::{self, AllocationRow, CustomerRow, InstallmentRow, InvoiceRow, LineRow};

pub mod prefix {
    pub const CUSTOMER: &str = "cus";
    pub const INVOICE: &str = "inv";
    pub const INSTALLMENT: &str = "ins";
    pub const CREDIT_NOTE: &str = "crn";
}

pub struct Invoicing {
    pub(crate) pool: PgPool,
}

fn require(principal: &Principal, permission: &str) -> Result<()> {
    if principal.has(permission) {
        Ok(())
    } else {
        Err(InvoicingError::PermissionDenied(format!("missing permission {permission}")))
    }
}

/// Who may read: staff (and API keys) holding `permission` read the whole tenant; a portal
/// contact holding `portal:read` reads only their own customer, whose id comes back so the
/// caller can hide everything else (another customer's ids answer NotFound, as another
/// tenant's do).
fn reader(principal: &Principal, permission: &str) -> Result<Option<Uuid>> {
    if principal.kind == cobro_kit::auth::PrincipalKind::Customer {
        return match principal.customer_id {
            Some(own) if principal.has("portal:read") => Ok(Some(own)),
            _ => Err(InvoicingError::PermissionDenied("missing permission portal:read".to_owned())),
        };
    }
    require(principal, permission)?;
    Ok(None)
}

pub fn money(amount: Decimal, currency: &str) -> PbMoney {
    let mut amount = amount;
    if let Ok(c) = Currency::from_code(currency) {
        amount = cobro_kit::money::round_to_minor(amount, c);
        amount.rescale(c.minor_units());
    }
    PbMoney { currency: currency.to_owned(), amount: amount.to_string() }
}

pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| InvalidField::new(field, "must be a date like 2026-11-23").into())
}

fn optional_date(field: &str, value: &str) -> Result<Option<NaiveDate>> {
    if value.is_empty() { Ok(None) } else { parse_date(field, value).map(Some) }
}

fn currency(field: &str, code: &str) -> Result<Currency> {
    Currency::from_code(code).map_err(|e| InvalidField::new(field, e.to_string()).into())
}

fn decimal(field: &str, value: &str, scale: u32) -> Result<Decimal> {
    parse_amount(value, scale).map_err(|e| InvalidField::new(field, e.to_string()).into())
}

/// A single-line text: trimmed, at most `max` characters, no control characters.
pub(crate) fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String> {
    Ok(cobro_kit::error::text_field(field, value, max, required)?)
}

/// A discount as the API gives it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum DiscountInput {
    None,
    Percent(String),
    Amount(String),
}

fn discount(field: &str, d: &DiscountInput, currency: Currency) -> Result<Discount> {
    Ok(match d {
        DiscountInput::None => Discount::None,
        DiscountInput::Percent(p) => Discount::Percent(decimal(field, p, 4)?),
        DiscountInput::Amount(a) => Discount::Amount(decimal(field, a, currency.minor_units())?),
    })
}

fn discount_columns(d: &Discount) -> (&'static str, Decimal) {
    match d {
        Discount::None => ("none", Decimal::ZERO),
        Discount::Percent(p) => ("percent", *p),
        Discount::Amount(a) => ("amount", *a),
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaxInput {
    pub name: String,
    pub rate_percent: String,
    pub inclusive: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LineIn {
    pub description: String,
    pub quantity: String,
    pub unit_price: String,
    pub discount: DiscountInput,
    pub taxes: Vec<TaxInput>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewInvoice {
    pub customer_id: String,
    pub external_id: String,
    pub currency: String,
    pub lines: Vec<LineIn>,
    pub discount: DiscountInput,
    pub memo: String,
    pub issue_date: String,
    pub due_date: String,
}

/// A customer as the API gives it.
pub struct CustomerIn {
    pub external_id: String,
    pub legal_name: String,
    pub tax_id: String,
    pub tax_country: String,
    pub billing_address: serde_json::Value,
    pub contacts: Vec<ContactIn>,
    pub payment_terms_days: u32,
    pub currency: String,
    pub credit_limit: String,
    pub reminder_policy: String,
    pub autopay: bool,
    pub tags: Vec<String>,
}

impl CustomerIn {
    /// A customer with a name and currency, net 30, nothing else: what a quick setup needs.
    pub fn basic(legal_name: &str, currency: &str) -> Self {
        Self {
            external_id: String::new(),
            legal_name: legal_name.to_owned(),
            tax_id: String::new(),
            tax_country: String::new(),
            billing_address: serde_json::json!({}),
            contacts: Vec::new(),
            payment_terms_days: 30,
            currency: currency.to_owned(),
            credit_limit: String::new(),
            reminder_policy: String::new(),
            autopay: false,
            tags: Vec::new(),
        }
    }
}

pub struct ContactIn {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub whatsapp_opt_in: bool,
    pub language: String,
    pub timezone: String,
}

/// An invoice with everything shown about it.
#[derive(Debug)]
pub struct InvoiceView {
    pub invoice: InvoiceRow,
    pub lines: Vec<LineRow>,
    pub installments: Vec<InstallmentRow>,
}

pub enum Plan {
    Equal { count: u32, first_due: String, every_months: u32 },
    Explicit(Vec<(String, String)>),
}

pub struct PaymentIn {
    pub payment_id: String,
    pub customer_id: String,
    pub amount: String,
    pub currency: String,
    pub method: String,
    pub received_on: String,
    pub invoice_ids: Vec<String>,
    pub installment_id: String,
}

#[derive(Debug)]
pub struct Applied {
    pub allocations: Vec<AllocationRow>,
    pub unapplied: Decimal,
    pub currency: String,
    pub applied_now: bool,
}

/// What taking a payment back did.
#[derive(Debug, Default)]
pub struct Reversed {
    /// False when the payment id had been reversed before: nothing changed.
    pub reversed_now: bool,
    /// False when the payment had not arrived: the reversal waits for it (a tombstone).
    pub payment_recorded: bool,
    /// The allocations taken back from invoices.
    pub allocations: Vec<AllocationRow>,
    /// The unapplied rest that is no longer the customer's credit.
    pub unapplied: Decimal,
}

impl Invoicing {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    // --- customers ---

    pub async fn upsert_customer(&self, principal: &Principal, id: &str, c: CustomerIn) -> Result<CustomerRow> {
        require(principal, "customers:write")?;
        let update = cobro_kit::ids::parse_optional("id", prefix::CUSTOMER, id)?;
        let legal_name = text("customer.legal_name", &c.legal_name, 200, true)?;
        let external_id = text("customer.external_id", &c.external_id, 100, false)?;
        let currency = currency("customer.currency", &c.currency)?;
        if c.payment_terms_days > 365 {
            return Err(InvalidField::new("customer.payment_terms_days", "must be at most 365").into());
        }
        let tax_country = c.tax_country.trim().to_ascii_uppercase();
        let country_ok =
            tax_country.is_empty() || (tax_country.len() == 2 && tax_country.bytes().all(|b| b.is_ascii_uppercase()));
        if !country_ok {
            return Err(InvalidField::new("customer.tax_country", "must be an ISO 3166 country code like MX").into());
        }
        let credit_limit = if c.credit_limit.is_empty() {
            None
        } else {
            let limit = decimal("customer.credit_limit", &c.credit_limit, currency.minor_units())?;
            if limit.is_sign_negative() {
                return Err(InvalidField::new("customer.credit_limit", "must not be negative").into());
            }
            Some(limit)
        };
        if c.contacts.len() > 50 {
            return Err(InvalidField::new("customer.contacts", "must have at most 50 entries").into());
        }
        let mut contacts = Vec::with_capacity(c.contacts.len());
        for (i, contact) in c.contacts.iter().enumerate() {
            let email = text(&format!("customer.contacts[{i}].email"), &contact.email, 254, false)?;
            if !email.is_empty()
                && (!email.contains('@') || email.starts_with('@') || email.ends_with('@') || email.contains(' '))
            {
                return Err(
                    InvalidField::new(format!("customer.contacts[{i}].email"), "must be an email address").into()
                );
            }
            contacts.push(json!({
                "name": text(&format!("customer.contacts[{i}].name"), &contact.name, 200, false)?,
                "email": email.to_ascii_lowercase(),
                "phone": text(&format!("customer.contacts[{i}].phone"), &contact.phone, 32, false)?,
                "whatsapp_opt_in": contact.whatsapp_opt_in,
                "language": text(&format!("customer.contacts[{i}].language"), &contact.language, 35, false)?,
                "timezone": text(&format!("customer.contacts[{i}].timezone"), &contact.timezone, 64, false)?,
            }));
        }
        if c.tags.len() > 20 {
            return Err(InvalidField::new("customer.tags", "must have at most 20 entries").into());
        }
        let tags = c
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| text(&format!("customer.tags[{i}]"), t, 50, true))
            .collect::<Result<Vec<_>>>()?;
        let row = CustomerRow {
            tenant_id: principal.tenant_id,
            id: update.unwrap_or_else(Uuid::now_v7),
            external_id: (!external_id.is_empty()).then_some(external_id),
            legal_name,
            tax_id: text("customer.tax_id", &c.tax_id, 50, false)?,
            tax_country,
            billing_address: c.billing_address,
            contacts: serde_json::Value::Array(contacts),
            payment_terms_days: i32::try_from(c.payment_terms_days).unwrap_or(0),
            currency: currency.code().to_owned(),
            credit_limit,
            reminder_policy: text("customer.reminder_policy", &c.reminder_policy, 100, false)?,
            autopay: c.autopay,
            tags,
            created_at: Utc::now(),
            credit_balance: Decimal::ZERO,
        };
        let mut tx = self.pool.begin().await?;
        // Open invoices and credit stay in the currency they were made in: no switching under them.
        if store::currency_in_use_elsewhere(&mut tx, row.tenant_id, update, row.external_id.as_deref(), &row.currency)
            .await?
        {
            return Err(InvalidField::new(
                "customer.currency",
                "cannot change while invoices or credit are open in another currency",
            )
            .into());
        }
        let id = store::upsert_customer(&mut tx, &row, update.is_some())
            .await?
            .ok_or(InvoicingError::NotFound("customer"))?;
        let saved =
            store::customer(&mut tx, principal.tenant_id, id).await?.ok_or(InvoicingError::NotFound("customer"))?;
        store::event(&mut tx, principal.tenant_id, "customer.upserted", id, &customer_upserted(&saved)).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The customer pays by autopay, or no longer does (payments' consent): the flag changes,
    /// and `customer.upserted` tells notifications, which plans notices of the coming charge
    /// instead of reminders before the due date. An unknown customer is nothing to change.
    pub async fn set_autopay_in(&self, conn: &mut PgConnection, tenant: Uuid, id: Uuid, autopay: bool) -> Result<()> {
        if !store::set_customer_autopay(conn, tenant, id, autopay).await? {
            return Ok(());
        }
        let saved = store::customer(conn, tenant, id).await?.ok_or(InvoicingError::NotFound("customer"))?;
        store::event(conn, tenant, "customer.upserted", id, &customer_upserted(&saved)).await?;
        Ok(())
    }

    pub async fn customer(&self, principal: &Principal, id: &str) -> Result<CustomerRow> {
        let own = reader(principal, "customers:read")?;
        let id = cobro_kit::ids::parse("id", prefix::CUSTOMER, id)?;
        if own.is_some_and(|own| own != id) {
            return Err(InvoicingError::NotFound("customer"));
        }
        let mut conn = self.pool.acquire().await?;
        store::customer(&mut conn, principal.tenant_id, id).await?.ok_or(InvoicingError::NotFound("customer"))
    }

    pub async fn customers(&self, principal: &Principal, limit: i64, after: Option<Uuid>) -> Result<Vec<CustomerRow>> {
        require(principal, "customers:read")?;
        store::customers(&self.pool, principal.tenant_id, after, limit).await
    }

    // --- invoices ---

    pub async fn create_invoice(&self, principal: &Principal, input: NewInvoice) -> Result<InvoiceView> {
        require(principal, "invoices:write")?;
        let mut tx = self.pool.begin().await?;
        let (row, lines) = Self::prepare_invoice(&mut tx, principal.tenant_id, &input).await?;
        store::insert_invoice(&mut tx, &row, &lines).await?;
        tx.commit().await?;
        Ok(InvoiceView { invoice: row, lines, installments: Vec::new() })
    }

    /// Validate a new invoice and compute its totals (a draft, not yet stored).
    pub(crate) async fn prepare_invoice(
        conn: &mut sqlx::PgConnection,
        tenant_id: Uuid,
        input: &NewInvoice,
    ) -> Result<(InvoiceRow, Vec<LineRow>)> {
        let customer_id = cobro_kit::ids::parse("customer_id", prefix::CUSTOMER, &input.customer_id)?;
        let customer =
            store::customer(conn, tenant_id, customer_id).await?.ok_or(InvoicingError::NotFound("customer"))?;
        let currency = if input.currency.is_empty() {
            currency("currency", &customer.currency)?
        } else {
            currency("currency", &input.currency)?
        };
        // Payments are taken in the customer's currency; an invoice in another could never be paid.
        if currency.code() != customer.currency {
            return Err(InvalidField::new(
                "currency",
                format!("must be the customer's currency, {}", customer.currency),
            )
            .into());
        }
        let issue_date = optional_date("issue_date", &input.issue_date)?;
        let due_date = optional_date("due_date", &input.due_date)?;
        if let (Some(issue), Some(due)) = (issue_date, due_date)
            && due < issue
        {
            return Err(InvalidField::new("due_date", "must not be before the issue date").into());
        }
        let external_id = text("external_id", &input.external_id, 100, false)?;
        let memo = text("memo", &input.memo, 2000, false)?;
        if input.lines.len() > 500 {
            return Err(InvalidField::new("lines", "must have at most 500 lines").into());
        }
        let mut domain_lines = Vec::with_capacity(input.lines.len());
        for (i, l) in input.lines.iter().enumerate() {
            let description = text(&format!("lines[{i}].description"), &l.description, 500, true)?;
            let quantity = decimal(&format!("lines[{i}].quantity"), &l.quantity, 6)?;
            let unit_price = decimal(&format!("lines[{i}].unit_price"), &l.unit_price, UNIT_PRICE_SCALE)?;
            let mut taxes = Vec::with_capacity(l.taxes.len());
            for (j, t) in l.taxes.iter().enumerate() {
                taxes.push(TaxRate {
                    name: text(&format!("lines[{i}].taxes[{j}].name"), &t.name, 50, true)?,
                    rate_percent: decimal(&format!("lines[{i}].taxes[{j}].rate_percent"), &t.rate_percent, 4)?,
                    mode: if t.inclusive { TaxMode::Inclusive } else { TaxMode::Exclusive },
                });
            }
            domain_lines.push(LineInput {
                description,
                quantity,
                unit_price,
                discount: discount(&format!("lines[{i}].discount"), &l.discount, currency)?,
                taxes,
            });
        }
        let invoice_discount = discount("discount", &input.discount, currency)?;
        let computed = totals::compute(currency, &domain_lines, &invoice_discount)?;

        let id = Uuid::now_v7();
        let (discount_kind, discount_value) = discount_columns(&invoice_discount);
        let row = InvoiceRow {
            tenant_id,
            id,
            customer_id,
            external_id: (!external_id.is_empty()).then_some(external_id),
            number: None,
            status: "draft".to_owned(),
            currency: currency.code().to_owned(),
            issue_date,
            due_date,
            discount_kind: discount_kind.to_owned(),
            discount_value,
            subtotal: computed.subtotal,
            discount_total: computed.invoice_discount,
            tax_total: computed.tax_total,
            total: computed.total,
            credited: Decimal::ZERO,
            paid: Decimal::ZERO,
            balance: computed.total,
            memo,
        };
        let lines: Vec<LineRow> = domain_lines
            .iter()
            .zip(computed.lines.iter())
            .enumerate()
            .map(|(i, (input, t))| {
                let (kind, value) = discount_columns(&input.discount);
                LineRow {
                    position: i32::try_from(i).unwrap_or(i32::MAX),
                    description: input.description.clone(),
                    quantity: input.quantity,
                    unit_price: input.unit_price,
                    discount_kind: kind.to_owned(),
                    discount_value: value,
                    taxes: serde_json::Value::Array(
                        input
                            .taxes
                            .iter()
                            .map(|t| json!({"name": t.name, "rate_percent": t.rate_percent.to_string(), "inclusive": matches!(t.mode, TaxMode::Inclusive)}))
                            .collect(),
                    ),
                    net: t.net,
                    tax_total: t.tax_total,
                    total: t.total,
                }
            })
            .collect();
        Ok((row, lines))
    }

    pub async fn invoice(&self, principal: &Principal, id: &str) -> Result<InvoiceView> {
        let own = reader(principal, "invoices:read")?;
        let id = cobro_kit::ids::parse("id", prefix::INVOICE, id)?;
        let mut conn = self.pool.acquire().await?;
        let invoice = store::invoice(&mut conn, principal.tenant_id, id, false)
            .await?
            // A contact sees their own customer's invoices once issued, never drafts.
            .filter(|i| own.is_none_or(|own| own == i.customer_id && i.status != "draft"))
            .ok_or(InvoicingError::NotFound("invoice"))?;
        let lines = store::lines(&mut conn, principal.tenant_id, id).await?;
        let installments = store::installments(&mut conn, principal.tenant_id, id).await?;
        Ok(InvoiceView { invoice, lines, installments })
    }

    pub async fn invoices(
        &self,
        principal: &Principal,
        customer_id: &str,
        status: &str,
        limit: i64,
        after: Option<Uuid>,
    ) -> Result<Vec<InvoiceRow>> {
        let own = reader(principal, "invoices:read")?;
        let mut customer = cobro_kit::ids::parse_optional("customer_id", prefix::CUSTOMER, customer_id)?;
        if let Some(own) = own {
            if customer.is_some_and(|named| named != own) {
                return Err(InvoicingError::NotFound("customer"));
            }
            customer = Some(own);
            if status == "draft" {
                return Ok(Vec::new());
            }
        }
        let status = match status {
            "" => None,
            "draft" | "open" | "partially_paid" | "paid" | "void" | "uncollectible" => Some(status),
            _ => {
                return Err(InvalidField::new(
                    "status",
                    "must be draft, open, partially_paid, paid, void or uncollectible",
                )
                .into());
            }
        };
        let mut rows = store::invoices(&self.pool, principal.tenant_id, customer, status, after, limit).await?;
        if own.is_some() {
            rows.retain(|i| i.status != "draft");
        }
        Ok(rows)
    }

    /// Draft -> open with the next number of the tenant's series.
    pub async fn issue_invoice(&self, principal: &Principal, id: &str) -> Result<InvoiceView> {
        require(principal, "invoices:write")?;
        let id = cobro_kit::ids::parse("id", prefix::INVOICE, id)?;
        let mut tx = self.pool.begin().await?;
        let invoice = Self::issue_in(&mut tx, principal.tenant_id, id).await?;
        let lines = store::lines(&mut tx, principal.tenant_id, id).await?;
        tx.commit().await?;
        Ok(InvoiceView { invoice, lines, installments: Vec::new() })
    }

    /// Draft -> open in the caller's transaction: the next number of the tenant's series.
    pub(crate) async fn issue_in(tx: &mut sqlx::PgConnection, tenant_id: Uuid, id: Uuid) -> Result<InvoiceRow> {
        let mut invoice = store::invoice(tx, tenant_id, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if invoice.status != "draft" {
            return Err(InvoicingError::conflict(
                "invoice_not_draft",
                format!("the invoice is {}, not a draft", invoice.status),
            ));
        }
        let customer =
            store::customer(tx, tenant_id, invoice.customer_id).await?.ok_or(InvoicingError::NotFound("customer"))?;
        let issue_date = invoice.issue_date.unwrap_or_else(cobro_kit::clock::today);
        let due_date = match invoice.due_date {
            Some(due) => due,
            None => issue_date
                .checked_add_days(chrono::Days::new(u64::try_from(customer.payment_terms_days).unwrap_or(0)))
                .ok_or_else(|| InvalidField::new("due_date", "is out of range"))?,
        };
        if due_date < issue_date {
            return Err(InvalidField::new("due_date", "must not be before the issue date").into());
        }
        let seq = store::next_number(tx, tenant_id, "INV", issue_date.year()).await?;
        let number = format!("INV-{}-{seq:06}", issue_date.year());
        store::mark_issued(tx, tenant_id, id, &number, issue_date, due_date).await?;
        invoice.status = "open".to_owned();
        invoice.number = Some(number);
        invoice.issue_date = Some(issue_date);
        invoice.due_date = Some(due_date);
        store::event(tx, tenant_id, "invoice.issued", id, &changed(&invoice)).await?;
        Ok(invoice)
    }

    pub async fn void_invoice(&self, principal: &Principal, id: &str, reason: &str) -> Result<InvoiceView> {
        require(principal, "invoices:write")?;
        let id = cobro_kit::ids::parse("id", prefix::INVOICE, id)?;
        text("reason", reason, 500, true)?;
        let mut tx = self.pool.begin().await?;
        let mut invoice =
            store::invoice(&mut tx, principal.tenant_id, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if invoice.status != "open" || !invoice.paid.is_zero() || !invoice.credited.is_zero() {
            return Err(InvoicingError::conflict(
                "invoice_not_voidable",
                "only an issued invoice with nothing paid or credited can be voided; use a credit note",
            ));
        }
        invoice.status = "void".to_owned();
        invoice.balance = Decimal::ZERO;
        store::set_amounts(&mut tx, &invoice).await?;
        store::event(&mut tx, principal.tenant_id, "invoice.voided", id, &changed(&invoice)).await?;
        tx.commit().await?;
        self.invoice(principal, &cobro_kit::ids::format(prefix::INVOICE, id)).await
    }

    /// Write off the rest of an invoice: it leaves the receivables (aging, forecasts).
    pub async fn mark_uncollectible(&self, principal: &Principal, id: &str, reason: &str) -> Result<InvoiceView> {
        require(principal, "invoices:write")?;
        let id = cobro_kit::ids::parse("id", prefix::INVOICE, id)?;
        text("reason", reason, 500, true)?;
        let mut tx = self.pool.begin().await?;
        let mut invoice =
            store::invoice(&mut tx, principal.tenant_id, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if !matches!(invoice.status.as_str(), "open" | "partially_paid") || invoice.balance.is_zero() {
            return Err(InvoicingError::conflict(
                "invoice_not_open",
                "only an invoice with an open balance can be written off",
            ));
        }
        invoice.status = "uncollectible".to_owned();
        store::set_amounts(&mut tx, &invoice).await?;
        store::event(&mut tx, principal.tenant_id, "invoice.uncollectible", id, &changed(&invoice)).await?;
        tx.commit().await?;
        self.invoice(principal, &cobro_kit::ids::format(prefix::INVOICE, id)).await
    }

    /// Per customer: amount-weighted days to pay and delay past due.
    pub async fn payment_behaviour(
        &self,
        principal: &Principal,
        currency_code: &str,
    ) -> Result<Vec<(Uuid, Decimal, i64)>> {
        require(principal, "reports:read")?;
        let currency = currency("currency", currency_code)?;
        let paid: Vec<reports::PaidInvoice> = store::paid_history(&self.pool, principal.tenant_id, currency.code())
            .await?
            .into_iter()
            .map(|(customer_id, issue_date, due_date, paid_date, amount)| reports::PaidInvoice {
                customer_id,
                issue_date,
                due_date,
                paid_date,
                amount,
            })
            .collect();
        let days = reports::average_days_to_pay(&paid);
        let delays = reports::average_delay(&paid);
        Ok(days.into_iter().map(|(c, d)| (c, d, delays.get(&c).copied().unwrap_or(0))).collect())
    }

    pub async fn set_installment_plan(
        &self,
        principal: &Principal,
        invoice_id: &str,
        plan: Plan,
    ) -> Result<InvoiceView> {
        require(principal, "invoices:write")?;
        let id = cobro_kit::ids::parse("invoice_id", prefix::INVOICE, invoice_id)?;
        let mut tx = self.pool.begin().await?;
        let invoice =
            store::invoice(&mut tx, principal.tenant_id, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if !matches!(invoice.status.as_str(), "open" | "partially_paid") || invoice.balance.is_zero() {
            return Err(InvoicingError::conflict(
                "invoice_not_open",
                "only an issued invoice with a balance can be split",
            ));
        }
        if !store::installments(&mut tx, principal.tenant_id, id).await?.is_empty() {
            return Err(InvoicingError::conflict("plan_exists", "the invoice already has an installment plan"));
        }
        let currency = currency("currency", &invoice.currency)?;
        let issue_date = invoice.issue_date.unwrap_or_else(cobro_kit::clock::today);
        let items: Vec<Installment> = match plan {
            Plan::Equal { count, first_due, every_months } => {
                let first = parse_date("equal.first_due_date", &first_due)?;
                if first < issue_date {
                    return Err(InvalidField::new("equal.first_due_date", "must not be before the issue date").into());
                }
                installments::split_equal(
                    invoice.balance,
                    currency,
                    count,
                    first,
                    Interval::Months(every_months.max(1)),
                )?
            }
            Plan::Explicit(items) => {
                let mut parsed = Vec::with_capacity(items.len());
                for (i, (due, amount)) in items.iter().enumerate() {
                    parsed.push(Installment {
                        due_date: parse_date(&format!("installments[{i}].due_date"), due)?,
                        amount: decimal(&format!("installments[{i}].amount"), amount, currency.minor_units())?,
                    });
                }
                installments::validate_explicit(invoice.balance, currency, &parsed, issue_date)?;
                parsed
            }
        };
        let rows: Vec<InstallmentRow> = items
            .iter()
            .enumerate()
            .map(|(i, it)| InstallmentRow {
                id: Uuid::now_v7(),
                invoice_id: id,
                seq: i32::try_from(i + 1).unwrap_or(i32::MAX),
                due_date: it.due_date,
                amount: it.amount,
                balance: it.amount,
            })
            .collect();
        store::insert_installments(&mut tx, principal.tenant_id, &rows).await?;
        let currency = Currency::from_code(&invoice.currency).map_err(|e| InvoicingError::Internal(e.to_string()))?;
        store::event(
            &mut tx,
            principal.tenant_id,
            "installments.planned",
            id,
            &installments_planned(id, &rows, currency),
        )
        .await?;
        tx.commit().await?;
        self.invoice(principal, &cobro_kit::ids::format(prefix::INVOICE, id)).await
    }

    /// Reduce an issued invoice's balance (the whole balance when `amount` is empty).
    pub async fn issue_credit_note(
        &self,
        principal: &Principal,
        invoice_id: &str,
        amount: &str,
        reason: &str,
    ) -> Result<(Uuid, String, Decimal, String, chrono::DateTime<Utc>)> {
        require(principal, "invoices:write")?;
        let id = cobro_kit::ids::parse("invoice_id", prefix::INVOICE, invoice_id)?;
        let reason = text("reason", reason, 500, true)?;
        let mut tx = self.pool.begin().await?;
        let issued = Self::issue_credit_note_in(&mut tx, principal.tenant_id, id, amount, &reason).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// A credit note in the caller's transaction (a dispute's resolution uses it too).
    pub(crate) async fn issue_credit_note_in(
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        id: Uuid,
        amount: &str,
        reason: &str,
    ) -> Result<(Uuid, String, Decimal, String, chrono::DateTime<Utc>)> {
        let mut invoice = store::invoice(tx, tenant, id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if !matches!(invoice.status.as_str(), "open" | "partially_paid") {
            return Err(InvoicingError::conflict("invoice_not_open", format!("the invoice is {}", invoice.status)));
        }
        let currency = currency("currency", &invoice.currency)?;
        let amount =
            if amount.is_empty() { invoice.balance } else { decimal("amount", amount, currency.minor_units())? };
        if amount <= Decimal::ZERO {
            return Err(InvalidField::new("amount", "must be greater than zero").into());
        }
        if amount > invoice.balance {
            return Err(InvalidField::new("amount", format!("must not exceed the balance {}", invoice.balance)).into());
        }
        let issued_on = cobro_kit::clock::today();
        let seq = store::next_number(tx, tenant, "CN", issued_on.year()).await?;
        let number = format!("CN-{}-{seq:06}", issued_on.year());
        let credit_id = Uuid::now_v7();
        let created_at = store::insert_credit_note(
            tx,
            &store::NewCreditNote {
                tenant_id: tenant,
                id: credit_id,
                invoice_id: id,
                number: &number,
                amount,
                currency: &invoice.currency,
                reason,
            },
        )
        .await?;
        // A credit shortens the plan from its end: the nearest installments stay as agreed.
        let mut left = amount;
        for mut inst in store::installments(tx, tenant, id).await?.into_iter().rev() {
            if left.is_zero() {
                break;
            }
            let take = left.min(inst.balance);
            if take > Decimal::ZERO {
                inst.balance -= take;
                left -= take;
                store::set_installment_balance(tx, tenant, inst.id, inst.balance).await?;
            }
        }
        invoice.credited += amount;
        invoice.balance -= amount;
        if invoice.balance.is_zero() {
            invoice.status = "paid".to_owned();
        }
        store::set_amounts(tx, &invoice).await?;
        store::event(
            tx,
            tenant,
            "credit_note.issued",
            id,
            &ev::CreditNoteIssued {
                credit_note_id: cobro_kit::ids::format(prefix::CREDIT_NOTE, credit_id),
                invoice_id: cobro_kit::ids::format(prefix::INVOICE, id),
                number: number.clone(),
                amount: Some(money(amount, &invoice.currency)),
            },
        )
        .await?;
        if invoice.status == "paid" {
            store::event(tx, tenant, "invoice.paid", id, &changed(&invoice)).await?;
        }
        Ok((credit_id, number, amount, invoice.currency, created_at))
    }

    // --- payments ---

    /// Apply a payment once (by its id); the rest becomes customer credit.
    pub async fn apply_payment(&self, principal: &Principal, p: PaymentIn) -> Result<Applied> {
        if !(principal.has("payments:write") || principal.has("invoices:write")) {
            return Err(InvoicingError::PermissionDenied("missing permission payments:write".to_owned()));
        }
        let mut tx = self.pool.begin().await?;
        let applied = self.apply_payment_in(&mut tx, principal.tenant_id, p).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Apply a payment in the caller's transaction (a request's, or an event consumer's, which
    /// records the event in its inbox in the same transaction).
    pub async fn apply_payment_in(&self, tx: &mut sqlx::PgConnection, tenant: Uuid, p: PaymentIn) -> Result<Applied> {
        let payment_id = text("payment_id", &p.payment_id, 100, true)?;
        let customer_id = cobro_kit::ids::parse("customer_id", prefix::CUSTOMER, &p.customer_id)?;
        let pay_currency = currency("amount.currency", &p.currency)?;
        let amount = decimal("amount.amount", &p.amount, pay_currency.minor_units())?;
        if amount <= Decimal::ZERO {
            return Err(InvalidField::new("amount.amount", "must be greater than zero").into());
        }
        let method = match p.method.as_str() {
            "card" | "transfer" | "check" | "cash" | "other" => p.method.clone(),
            _ => return Err(InvalidField::new("method", "must be card, transfer, check, cash or other").into()),
        };
        let received_on = if p.received_on.is_empty() {
            cobro_kit::clock::today()
        } else {
            parse_date("received_on", &p.received_on)?
        };
        let targets = p
            .invoice_ids
            .iter()
            .enumerate()
            .map(|(i, id)| cobro_kit::ids::parse(&format!("invoice_ids[{i}]"), prefix::INVOICE, id))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let target_installment =
            cobro_kit::ids::parse_optional("installment_id", prefix::INSTALLMENT, &p.installment_id)?;

        let customer = store::customer(tx, tenant, customer_id).await?.ok_or(InvoicingError::NotFound("customer"))?;
        if customer.currency != pay_currency.code() {
            return Err(InvoicingError::conflict(
                "currency_mismatch",
                format!(
                    "the customer is invoiced in {}; a payment in {} cannot be applied",
                    customer.currency,
                    pay_currency.code()
                ),
            ));
        }
        // One payment id at a time: its reversal may be in flight on another partition.
        store::lock_payment_id(tx, tenant, &payment_id).await?;
        if store::payment_reversed(tx, tenant, &payment_id).await? {
            // Taken back (or its reversal arrived first): the money never reaches an invoice.
            tracing::info!(payment = %payment_id, "a reversed payment arrived; not applied");
            return Ok(Applied {
                allocations: Vec::new(),
                unapplied: Decimal::ZERO,
                currency: pay_currency.code().to_owned(),
                applied_now: false,
            });
        }
        let inserted = store::insert_payment(
            tx,
            &store::NewPayment {
                tenant_id: tenant,
                id: &payment_id,
                customer_id,
                amount,
                currency: pay_currency.code(),
                method: &method,
                received_on,
            },
        )
        .await?;
        if !inserted {
            // Applied before: report what happened then, change nothing.
            let existing = store::payment(tx, tenant, &payment_id).await?.ok_or(InvoicingError::NotFound("payment"))?;
            if existing.customer_id != customer_id
                || existing.amount != amount
                || existing.currency != pay_currency.code()
            {
                return Err(InvoicingError::conflict(
                    "payment_id_reused",
                    "this payment id was applied before with another customer, amount or currency",
                ));
            }
            let allocations = store::allocations_of(tx, tenant, &payment_id).await?;
            return Ok(Applied {
                allocations,
                unapplied: existing.unapplied,
                currency: existing.currency,
                applied_now: false,
            });
        }
        let (allocations, left) = self
            .allocate(
                tx,
                tenant,
                &payment_id,
                customer_id,
                pay_currency,
                amount,
                &targets,
                target_installment,
                received_on,
            )
            .await?;
        store::set_unapplied(tx, tenant, &payment_id, left).await?;
        Ok(Applied { allocations, unapplied: left, currency: pay_currency.code().to_owned(), applied_now: true })
    }

    /// Take a payment back in the caller's transaction (an event consumer's): every allocation
    /// of it returns to its invoice and installment, its unapplied rest is no longer credit, and
    /// each invoice reached announces its state as it is now (`invoice.payment_reversed`, and
    /// `installments.planned` where it has a plan).
    ///
    /// Once per payment id: a second reversal changes nothing. The reversal may arrive before its
    /// payment (they travel on different partitions); it is then recorded alone, a tombstone,
    /// and `apply_payment_in` does not apply the payment when it comes. Both take the payment
    /// id's lock first, so one of them always sees what the other did.
    pub async fn reverse_payment_in(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        payment_id: &str,
        reason: &str,
    ) -> Result<Reversed> {
        let payment_id = text("payment_id", payment_id, 100, true)?;
        let reason: String = reason.trim().chars().filter(|c| !c.is_control()).take(500).collect();
        store::lock_payment_id(tx, tenant, &payment_id).await?;
        // The payment row's lock waits out a customer-credit application of it in flight.
        let payment = store::payment_for_update(tx, tenant, &payment_id).await?;
        if !store::insert_reversal(tx, tenant, &payment_id, &reason, payment.is_some()).await? {
            return Ok(Reversed { reversed_now: false, ..Reversed::default() });
        }
        let Some(payment) = payment else {
            tracing::info!(payment = %payment_id, "a reversal arrived before its payment; recorded");
            return Ok(Reversed { reversed_now: true, ..Reversed::default() });
        };
        let taken_back = store::reverse_allocations(tx, tenant, &payment_id, cobro_kit::clock::today()).await?;
        store::set_unapplied(tx, tenant, &payment_id, Decimal::ZERO).await?;
        let currency = currency("currency", &payment.currency)?;
        let mut by_invoice: BTreeMap<Uuid, Vec<&AllocationRow>> = BTreeMap::new();
        for a in &taken_back {
            by_invoice.entry(a.invoice_id).or_default().push(a);
        }
        for (invoice_id, parts) in by_invoice {
            let mut invoice =
                store::invoice(tx, tenant, invoice_id, true).await?.ok_or(InvoicingError::NotFound("invoice"))?;
            let mut plan_changed = false;
            for a in &parts {
                let Some(installment) = a.installment_id else { continue };
                plan_changed = true;
                if !store::restore_installment_balance(tx, tenant, installment, invoice_id, a.amount).await? {
                    // A later plan replaced the one paid into: the money owed again lengthens its
                    // end, as a credit note shortens it.
                    store::extend_last_installment(tx, tenant, invoice_id, a.amount).await?;
                }
            }
            let amount: Decimal = parts.iter().map(|a| a.amount).sum();
            invoice.paid -= amount;
            invoice.balance += amount;
            invoice.status =
                crate::domain::reversals::status_after_reversal(&invoice.status, invoice.paid, invoice.balance)
                    .to_owned();
            store::set_amounts(tx, &invoice).await?;
            store::event(tx, tenant, "invoice.payment_reversed", invoice_id, &changed(&invoice)).await?;
            if plan_changed {
                let plan = store::installments(tx, tenant, invoice_id).await?;
                store::event(
                    tx,
                    tenant,
                    "installments.planned",
                    invoice_id,
                    &installments_planned(invoice_id, &plan, currency),
                )
                .await?;
            }
        }
        Ok(Reversed {
            reversed_now: true,
            payment_recorded: true,
            allocations: taken_back,
            unapplied: payment.unapplied,
        })
    }

    /// Spread `amount` over the customer's open invoices (targets first, then oldest due), and
    /// within an invoice over its installments (the target first, then oldest). Returns the
    /// allocations and what is left.
    #[allow(clippy::too_many_arguments)]
    async fn allocate(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        payment_id: &str,
        customer_id: Uuid,
        currency: Currency,
        amount: Decimal,
        targets: &[Uuid],
        target_installment: Option<Uuid>,
        applied_on: NaiveDate,
    ) -> Result<(Vec<AllocationRow>, Decimal)> {
        let mut open = store::open_invoices_for_update(tx, tenant, customer_id, currency.code()).await?;
        // A named invoice that cannot take money (paid meanwhile, void, another customer's, unknown)
        // is skipped: the money still arrived and goes oldest-first or to customer credit.
        for target in targets {
            if !open.iter().any(|i| i.id == *target) {
                tracing::info!(invoice = %target, "a payment named an invoice with no open balance; applying elsewhere");
            }
        }
        // Targets first, in the order given; the rest keep their oldest-due order.
        open.sort_by_key(|i| targets.iter().position(|t| *t == i.id).unwrap_or(usize::MAX));
        let mut left = amount;
        let mut out = Vec::new();
        for mut invoice in open {
            if left.is_zero() {
                break;
            }
            let plan = store::installments(tx, tenant, invoice.id).await?;
            let mut applied_here = Decimal::ZERO;
            // What reached this invoice, per installment where it has a plan.
            let mut parts_here: Vec<(Option<Uuid>, Decimal)> = Vec::new();
            if plan.is_empty() {
                let take = left.min(invoice.balance);
                out.push(AllocationRow { invoice_id: invoice.id, installment_id: None, amount: take });
                parts_here.push((None, take));
                applied_here = take;
            } else {
                let items: Vec<OpenItem> =
                    plan.iter().map(|s| OpenItem { id: s.id, due_date: s.due_date, balance: s.balance }).collect();
                let (parts, _) = match target_installment.filter(|t| plan.iter().any(|s| s.id == *t)) {
                    Some(t) => installments::allocate_to(left.min(invoice.balance), &items, t),
                    None => installments::allocate_oldest_first(left.min(invoice.balance), &items),
                };
                for (inst_id, part) in parts {
                    if let Some(s) = plan.iter().find(|s| s.id == inst_id) {
                        store::set_installment_balance(tx, tenant, inst_id, s.balance - part).await?;
                    }
                    out.push(AllocationRow { invoice_id: invoice.id, installment_id: Some(inst_id), amount: part });
                    parts_here.push((Some(inst_id), part));
                    applied_here += part;
                }
            }
            if applied_here.is_zero() {
                continue;
            }
            left -= applied_here;
            invoice.paid += applied_here;
            invoice.balance -= applied_here;
            invoice.status = if invoice.balance.is_zero() { "paid" } else { "partially_paid" }.to_owned();
            store::set_amounts(tx, &invoice).await?;
            // One event per installment reached, so a reader of installments (payments, which
            // must not collect a paid installment again) learns which one and how much.
            for (installment, part) in parts_here.into_iter().filter(|(_, part)| !part.is_zero()) {
                store::event(
                    tx,
                    tenant,
                    "invoice.payment_applied",
                    invoice.id,
                    &ev::PaymentApplied {
                        payment_id: payment_id.to_owned(),
                        invoice_id: cobro_kit::ids::format(prefix::INVOICE, invoice.id),
                        installment_id: installment
                            .map(|i| cobro_kit::ids::format(prefix::INSTALLMENT, i))
                            .unwrap_or_default(),
                        amount: Some(money(part, currency.code())),
                        balance: Some(money(invoice.balance, currency.code())),
                    },
                )
                .await?;
            }
            if invoice.status == "paid" {
                store::event(tx, tenant, "invoice.paid", invoice.id, &changed(&invoice)).await?;
            }
        }
        for a in &out {
            store::insert_allocation(tx, tenant, payment_id, a, applied_on).await?;
        }
        Ok((out, left))
    }

    /// Apply a customer's unapplied payments (credit) to one invoice.
    pub async fn apply_customer_credit(
        &self,
        principal: &Principal,
        customer_id: &str,
        invoice_id: &str,
    ) -> Result<Applied> {
        if !(principal.has("payments:write") || principal.has("invoices:write")) {
            return Err(InvoicingError::PermissionDenied("missing permission payments:write".to_owned()));
        }
        let customer_id = cobro_kit::ids::parse("customer_id", prefix::CUSTOMER, customer_id)?;
        let invoice_id = cobro_kit::ids::parse("invoice_id", prefix::INVOICE, invoice_id)?;
        let tenant = principal.tenant_id;
        let mut tx = self.pool.begin().await?;
        let invoice =
            store::invoice(&mut tx, tenant, invoice_id, false).await?.ok_or(InvoicingError::NotFound("invoice"))?;
        if invoice.customer_id != customer_id {
            return Err(InvoicingError::NotFound("invoice"));
        }
        let currency = currency("currency", &invoice.currency)?;
        let mut all = Vec::new();
        let mut remaining = Decimal::ZERO;
        for payment in store::payments_with_credit(&mut tx, tenant, customer_id, currency.code()).await? {
            // Only the named invoice takes credit here, never more than its balance.
            let balance =
                store::invoice(&mut tx, tenant, invoice_id, false).await?.map_or(Decimal::ZERO, |i| i.balance);
            let usable = payment.unapplied.min(balance);
            if usable.is_zero() {
                remaining += payment.unapplied;
                continue;
            }
            let (allocations, left) = self
                .allocate(
                    &mut tx,
                    tenant,
                    &payment.id,
                    customer_id,
                    currency,
                    usable,
                    &[invoice_id],
                    None,
                    cobro_kit::clock::today(),
                )
                .await?;
            let unapplied = payment.unapplied - usable + left;
            store::set_unapplied(&mut tx, tenant, &payment.id, unapplied).await?;
            remaining += unapplied;
            all.extend(allocations);
        }
        tx.commit().await?;
        Ok(Applied { allocations: all, unapplied: remaining, currency: currency.code().to_owned(), applied_now: true })
    }

    // --- reports ---

    pub async fn aging(
        &self,
        principal: &Principal,
        currency_code: &str,
        as_of: &str,
    ) -> Result<(NaiveDate, reports::AgingTotals, BTreeMap<Uuid, reports::AgingTotals>)> {
        require(principal, "reports:read")?;
        let currency = currency("currency", currency_code)?;
        let as_of = optional_date("as_of", as_of)?.unwrap_or_else(cobro_kit::clock::today);
        let rows = store::open_items(&self.pool, principal.tenant_id, currency.code()).await?;
        let (tenant, customers) = reports::aging(
            rows.into_iter().map(|(customer_id, due_date, balance)| reports::AgingRow {
                customer_id,
                due_date,
                balance,
            }),
            as_of,
        );
        Ok((as_of, tenant, customers))
    }

    pub async fn forecast(
        &self,
        principal: &Principal,
        currency_code: &str,
        weeks: u32,
    ) -> Result<Vec<reports::WeekForecast>> {
        require(principal, "reports:read")?;
        let currency = currency("currency", currency_code)?;
        let weeks = if weeks == 0 { 12 } else { weeks.min(52) };
        let history = store::paid_history(&self.pool, principal.tenant_id, currency.code()).await?;
        let paid: Vec<reports::PaidInvoice> = history
            .into_iter()
            .map(|(customer_id, issue_date, due_date, paid_date, amount)| reports::PaidInvoice {
                customer_id,
                issue_date,
                due_date,
                paid_date,
                amount,
            })
            .collect();
        let delays = reports::average_delay(&paid);
        let open: Vec<reports::OpenInvoice> = store::open_items(&self.pool, principal.tenant_id, currency.code())
            .await?
            .into_iter()
            .map(|(customer_id, due_date, balance)| reports::OpenInvoice { customer_id, due_date, balance })
            .collect();
        Ok(reports::forecast_weekly(&open, &delays, cobro_kit::clock::today(), weeks))
    }

    /// DSO and collection effectiveness over [from, to].
    pub async fn dso(
        &self,
        principal: &Principal,
        currency_code: &str,
        from: &str,
        to: &str,
    ) -> Result<(Option<Decimal>, Option<Decimal>, Decimal, Decimal)> {
        require(principal, "reports:read")?;
        let currency = currency("currency", currency_code)?;
        let from = parse_date("from", from)?;
        let to = parse_date("to", to)?;
        if to < from {
            return Err(InvalidField::new("to", "must not be before from").into());
        }
        let days =
            u32::try_from((to - from).num_days() + 1).map_err(|_| InvalidField::new("to", "is too far from from"))?;
        let tenant = principal.tenant_id;
        let sales = store::credit_sales(&self.pool, tenant, currency.code(), from, to).await?;
        let ending = store::receivables_at(&self.pool, tenant, currency.code(), to, false).await?;
        let ending_current = store::receivables_at(&self.pool, tenant, currency.code(), to, true).await?;
        let day_before = from.pred_opt().unwrap_or(from);
        let beginning = store::receivables_at(&self.pool, tenant, currency.code(), day_before, false).await?;
        Ok((reports::dso(ending, sales, days), reports::cei(beginning, sales, ending, ending_current), ending, sales))
    }
}

pub(crate) fn changed(i: &InvoiceRow) -> ev::InvoiceChanged {
    ev::InvoiceChanged {
        invoice_id: cobro_kit::ids::format(prefix::INVOICE, i.id),
        customer_id: cobro_kit::ids::format(prefix::CUSTOMER, i.customer_id),
        number: i.number.clone().unwrap_or_default(),
        status: i.status.clone(),
        total: Some(money(i.total, &i.currency)),
        balance: Some(money(i.balance, &i.currency)),
        due_date: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// What `customer.upserted` says of a stored customer.
fn customer_upserted(saved: &CustomerRow) -> ev::CustomerUpserted {
    ev::CustomerUpserted {
        customer_id: cobro_kit::ids::format(prefix::CUSTOMER, saved.id),
        external_id: saved.external_id.clone().unwrap_or_default(),
        legal_name: saved.legal_name.clone(),
        contacts: event_contacts(&saved.contacts),
        reminder_policy: saved.reminder_policy.clone(),
        autopay: saved.autopay,
    }
}

/// The stored contacts as the `customer.upserted` event carries them.
fn event_contacts(contacts: &serde_json::Value) -> Vec<ev::CustomerContact> {
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    contacts
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| ev::CustomerContact {
                    name: text(v, "name"),
                    email: text(v, "email"),
                    phone: text(v, "phone"),
                    whatsapp_opt_in: v["whatsapp_opt_in"].as_bool().unwrap_or(false),
                    language: text(v, "language"),
                    timezone: text(v, "timezone"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `installments.planned` event of a plan: the whole plan as it is now.
pub(crate) fn installments_planned(
    invoice: Uuid,
    rows: &[InstallmentRow],
    currency: Currency,
) -> ev::InstallmentsPlanned {
    ev::InstallmentsPlanned {
        invoice_id: cobro_kit::ids::format(prefix::INVOICE, invoice),
        installments: rows
            .iter()
            .map(|r| ev::PlannedInstallment {
                installment_id: cobro_kit::ids::format(prefix::INSTALLMENT, r.id),
                seq: u32::try_from(r.seq).unwrap_or(0),
                due_date: r.due_date.to_string(),
                amount: Some(money(r.amount, currency.code())),
                balance: Some(money(r.balance, currency.code())),
            })
            .collect(),
    }
}
