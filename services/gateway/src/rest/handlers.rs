//! The route table and each operation: a request body in the API's terms becomes a service's
//! request, its answer the API's JSON. Ids pass through exactly as the services print them.

use axum::http::StatusCode;
use cobro_proto::common::v1::{Money, PageRequest, PageResponse};
use cobro_proto::invoicing::v1 as inv;
use cobro_proto::payments::v1 as pay;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Failure, Operation, Param, Reply, Verb};

const PAGING: [Param; 2] = [
    Param { name: "page_size", description: "How many to return; 0 or absent: the service's default", kind: "integer" },
    Param { name: "page_token", description: "next_page_token of the previous page", kind: "string" },
];

const INVOICE_FILTERS: [Param; 4] = [
    Param { name: "customer_id", description: "Only this customer's (cus_…)", kind: "string" },
    Param {
        name: "status",
        description: "draft, open, partially_paid, paid, void or uncollectible; absent for all",
        kind: "string",
    },
    PAGING[0],
    PAGING[1],
];

const PAYMENT_FILTERS: [Param; 4] = [
    Param { name: "customer_id", description: "Only this customer's (cus_…)", kind: "string" },
    Param {
        name: "status",
        description: "requires_payment_method, requires_confirmation, processing, requires_action, succeeded, \
                      failed or canceled; absent for all",
        kind: "string",
    },
    PAGING[0],
    PAGING[1],
];

const READ: &[u16] = &[400, 401, 403, 422, 429, 503];
const READ_ONE: &[u16] = &[400, 401, 403, 404, 422, 429, 503];
const WRITE: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 422, 429, 503];

/// Every operation of the API. The router serves exactly these and the OpenAPI document
/// describes exactly these.
pub static OPERATIONS: &[Operation] = &[
    Operation {
        verb: Verb::Get,
        path: "/openapi.json",
        id: "getOpenApiDocument",
        summary: "This API's OpenAPI 3.0.3 document",
        tag: "meta",
        scope: "",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "OpenApiDocument"),
        errors: &[400],
        handler: openapi_document,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/customers",
        id: "listCustomers",
        summary: "List customers",
        tag: "customers",
        scope: "customers:read",
        query: &PAGING,
        idempotent: false,
        request: None,
        success: (200, "CustomerList"),
        errors: READ,
        handler: list_customers,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/customers",
        id: "createCustomer",
        summary: "Create a customer (or update the one with the same external_id)",
        tag: "customers",
        scope: "customers:write",
        query: &[],
        idempotent: false,
        request: Some(("CustomerCreate", true)),
        success: (201, "Customer"),
        errors: WRITE,
        handler: create_customer,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/customers/{id}",
        id: "getCustomer",
        summary: "Get a customer",
        tag: "customers",
        scope: "customers:read",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "Customer"),
        errors: READ_ONE,
        handler: get_customer,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/invoices",
        id: "listInvoices",
        summary: "List invoices",
        tag: "invoices",
        scope: "invoices:read",
        query: &INVOICE_FILTERS,
        idempotent: false,
        request: None,
        success: (200, "InvoiceList"),
        errors: READ,
        handler: list_invoices,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/invoices",
        id: "createInvoice",
        summary: "Create a draft invoice (totals computed, no number yet)",
        tag: "invoices",
        scope: "invoices:write",
        query: &[],
        idempotent: false,
        request: Some(("InvoiceCreate", true)),
        success: (201, "Invoice"),
        errors: WRITE,
        handler: create_invoice,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/invoices/{id}",
        id: "getInvoice",
        summary: "Get an invoice",
        tag: "invoices",
        scope: "invoices:read",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "Invoice"),
        errors: READ_ONE,
        handler: get_invoice,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/invoices/{id}/issue",
        id: "issueInvoice",
        summary: "Issue a draft: it gets its number and dates and is open from then on",
        tag: "invoices",
        scope: "invoices:write",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "Invoice"),
        errors: WRITE,
        handler: issue_invoice,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/invoices/{id}/void",
        id: "voidInvoice",
        summary: "Void an open invoice with nothing paid",
        tag: "invoices",
        scope: "invoices:write",
        query: &[],
        idempotent: false,
        request: Some(("InvoiceVoid", false)),
        success: (200, "Invoice"),
        errors: WRITE,
        handler: void_invoice,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/payment_links",
        id: "createPaymentLink",
        summary: "Create a payment link for an invoice, an installment or an amount",
        tag: "payment_links",
        scope: "payments:write",
        query: &[],
        idempotent: true,
        request: Some(("PaymentLinkCreate", true)),
        success: (201, "PaymentLinkCreated"),
        errors: WRITE,
        handler: create_payment_link,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/payment_links/{id}/revoke",
        id: "revokePaymentLink",
        summary: "Revoke a payment link",
        tag: "payment_links",
        scope: "payments:write",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "PaymentLink"),
        errors: WRITE,
        handler: revoke_payment_link,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/payments",
        id: "listPayments",
        summary: "List payments",
        tag: "payments",
        scope: "payments:read",
        query: &PAYMENT_FILTERS,
        idempotent: false,
        request: None,
        success: (200, "PaymentList"),
        errors: READ,
        handler: list_payments,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/payments",
        id: "createPayment",
        summary: "Create a payment (an intent to collect, confirmed later by the payer)",
        tag: "payments",
        scope: "payments:write",
        query: &[],
        idempotent: true,
        request: Some(("PaymentCreate", true)),
        success: (201, "Payment"),
        errors: WRITE,
        handler: create_payment,
    },
    Operation {
        verb: Verb::Get,
        path: "/v1/payments/{id}",
        id: "getPayment",
        summary: "Get a payment",
        tag: "payments",
        scope: "payments:read",
        query: &[],
        idempotent: false,
        request: None,
        success: (200, "Payment"),
        errors: READ_ONE,
        handler: get_payment,
    },
    Operation {
        verb: Verb::Post,
        path: "/v1/payments/{id}/refunds",
        id: "refundPayment",
        summary: "Refund a succeeded payment, in full or in part",
        tag: "payments",
        scope: "payments:refund",
        query: &[],
        idempotent: true,
        request: Some(("RefundCreate", false)),
        success: (201, "Refund"),
        errors: WRITE,
        handler: refund_payment,
    },
];

// --- JSON out ---

fn money(m: Option<&Money>) -> Value {
    match m {
        Some(m) => json!({ "currency": m.currency, "amount": m.amount }),
        None => Value::Null,
    }
}

fn time(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn next_page(page: Option<&PageResponse>) -> String {
    page.map(|p| p.next_page_token.clone()).unwrap_or_default()
}

pub(crate) fn customer(c: &inv::Customer) -> Value {
    let address = c.billing_address.as_ref().map(|a| {
        json!({ "line1": a.line1, "line2": a.line2, "city": a.city, "region": a.region,
                "postal_code": a.postal_code, "country": a.country })
    });
    let contacts: Vec<Value> = c
        .contacts
        .iter()
        .map(|k| {
            json!({ "name": k.name, "email": k.email, "phone": k.phone, "whatsapp_opt_in": k.whatsapp_opt_in,
                    "language": k.language, "timezone": k.timezone })
        })
        .collect();
    json!({
        "id": c.id,
        "external_id": c.external_id,
        "legal_name": c.legal_name,
        "tax_id": c.tax_id,
        "tax_country": c.tax_country,
        "billing_address": address,
        "contacts": contacts,
        "payment_terms_days": c.payment_terms_days,
        "currency": c.currency,
        "credit_limit": c.credit_limit,
        "reminder_policy": c.reminder_policy,
        "autopay": c.autopay,
        "tags": c.tags,
        "credit_balance": money(c.credit_balance.as_ref()),
        "created_at": time(c.created_at.as_ref()),
    })
}

fn discount(d: Option<&inv::Discount>) -> Value {
    match d.and_then(|d| d.kind.as_ref()) {
        Some(inv::discount::Kind::Percent(p)) => json!({ "percent": p }),
        Some(inv::discount::Kind::Amount(a)) => json!({ "amount": a }),
        None => Value::Null,
    }
}

fn tax(t: &inv::TaxRate) -> Value {
    json!({ "name": t.name, "rate_percent": t.rate_percent, "inclusive": t.inclusive })
}

pub(crate) fn invoice(i: &inv::Invoice) -> Value {
    let lines: Vec<Value> = i
        .lines
        .iter()
        .map(|l| {
            let input = l.input.clone().unwrap_or_default();
            json!({
                "description": input.description,
                "quantity": input.quantity,
                "unit_price": input.unit_price,
                "discount": discount(input.discount.as_ref()),
                "taxes": input.taxes.iter().map(tax).collect::<Vec<_>>(),
                "net": money(l.net.as_ref()),
                "tax": money(l.tax.as_ref()),
                "total": money(l.total.as_ref()),
            })
        })
        .collect();
    let installments: Vec<Value> = i
        .installments
        .iter()
        .map(|s| {
            json!({ "id": s.id, "seq": s.seq, "due_date": s.due_date, "amount": money(s.amount.as_ref()),
                    "balance": money(s.balance.as_ref()), "overdue": s.overdue })
        })
        .collect();
    json!({
        "id": i.id,
        "customer_id": i.customer_id,
        "external_id": i.external_id,
        "number": i.number,
        "status": i.status,
        "currency": i.currency,
        "issue_date": i.issue_date,
        "due_date": i.due_date,
        "lines": lines,
        "discount": discount(i.discount.as_ref()),
        "subtotal": money(i.subtotal.as_ref()),
        "discount_total": money(i.discount_total.as_ref()),
        "tax_total": money(i.tax_total.as_ref()),
        "total": money(i.total.as_ref()),
        "credited": money(i.credited.as_ref()),
        "paid": money(i.paid.as_ref()),
        "balance": money(i.balance.as_ref()),
        "overdue": i.overdue,
        "installments": installments,
        "memo": i.memo,
    })
}

pub(crate) fn refund(r: &pay::Refund) -> Value {
    json!({
        "id": r.id,
        "payment_id": r.payment_id,
        "amount": money(r.amount.as_ref()),
        "status": r.status,
        "reason": r.reason,
        "created_at": time(r.created_at.as_ref()),
    })
}

pub(crate) fn payment(p: &pay::PaymentIntent) -> Value {
    let transfer = p.transfer.as_ref().map(|t| {
        json!({ "account_holder": t.account_holder, "iban": t.iban, "bic": t.bic, "reference": t.reference,
                "reference_grouped": t.reference_grouped, "amount": money(t.amount.as_ref()) })
    });
    json!({
        "id": p.id,
        "customer_id": p.customer_id,
        "amount": money(p.amount.as_ref()),
        "status": p.status,
        "method": p.method,
        "invoice_ids": p.invoice_ids,
        "installment_id": p.installment_id,
        "description": p.description,
        "next_action_url": p.next_action_url,
        "transfer": transfer,
        "amount_received": money(p.amount_received.as_ref()),
        "amount_refunded": money(p.amount_refunded.as_ref()),
        "fee": money(p.fee.as_ref()),
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "refunds": p.refunds.iter().map(refund).collect::<Vec<_>>(),
        "card_brand": p.card_brand,
        "card_last4": p.card_last4,
        "autopay": p.autopay,
        "created_at": time(p.created_at.as_ref()),
        "updated_at": time(p.updated_at.as_ref()),
    })
}

pub(crate) fn payment_link(l: &pay::PaymentLink) -> Value {
    json!({
        "id": l.id,
        "customer_id": l.customer_id,
        "invoice_id": l.invoice_id,
        "installment_id": l.installment_id,
        "amount": money(l.amount.as_ref()),
        "description": l.description,
        "expires_at": time(l.expires_at.as_ref()),
        "revoked_at": time(l.revoked_at.as_ref()),
        "created_at": time(l.created_at.as_ref()),
    })
}

// --- JSON in (already checked against the schemas) ---

#[derive(Deserialize)]
struct MoneyIn {
    currency: String,
    amount: String,
}

impl From<MoneyIn> for Money {
    fn from(m: MoneyIn) -> Money {
        Money { currency: m.currency, amount: m.amount }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AddressIn {
    line1: String,
    line2: String,
    city: String,
    region: String,
    postal_code: String,
    country: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactIn {
    name: String,
    email: String,
    phone: String,
    whatsapp_opt_in: bool,
    language: String,
    timezone: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CustomerIn {
    legal_name: String,
    external_id: String,
    tax_id: String,
    tax_country: String,
    currency: String,
    payment_terms_days: u32,
    credit_limit: String,
    reminder_policy: String,
    autopay: bool,
    tags: Vec<String>,
    billing_address: Option<AddressIn>,
    contacts: Vec<ContactIn>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DiscountIn {
    percent: Option<String>,
    amount: Option<String>,
}

fn discount_in(d: Option<DiscountIn>, field: &str) -> Result<Option<inv::Discount>, Failure> {
    let kind = match d {
        None => return Ok(None),
        Some(DiscountIn { percent: Some(p), amount: None }) => inv::discount::Kind::Percent(p),
        Some(DiscountIn { percent: None, amount: Some(a) }) => inv::discount::Kind::Amount(a),
        Some(DiscountIn { percent: None, amount: None }) => return Ok(None),
        Some(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("{field}: give percent or amount, not both"),
                field,
            ));
        }
    };
    Ok(Some(inv::Discount { kind: Some(kind) }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TaxIn {
    name: String,
    rate_percent: String,
    inclusive: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineIn {
    description: String,
    quantity: String,
    unit_price: String,
    discount: Option<DiscountIn>,
    taxes: Vec<TaxIn>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InvoiceIn {
    customer_id: String,
    external_id: String,
    currency: String,
    lines: Vec<LineIn>,
    discount: Option<DiscountIn>,
    memo: String,
    issue_date: String,
    due_date: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VoidIn {
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PaymentIn {
    customer_id: String,
    amount: Option<MoneyIn>,
    invoice_ids: Vec<String>,
    installment_id: String,
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RefundIn {
    amount: Option<MoneyIn>,
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PaymentLinkIn {
    customer_id: String,
    invoice_id: String,
    installment_id: String,
    amount: Option<MoneyIn>,
    description: String,
    ttl_days: u32,
}

fn page(c: &Call) -> Option<PageRequest> {
    Some(PageRequest { page_size: c.query_u32("page_size"), page_token: c.query("page_token") })
}

// --- the operations ---

fn openapi_document(_: Call) -> Reply {
    Box::pin(async { Ok(super::openapi::document()) })
}

fn list_customers(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(inv::ListCustomersRequest { page: page(&c) });
        let answer = c.services.invoicing.clone().list_customers(request).await?.into_inner();
        Ok(json!({
            "data": answer.customers.iter().map(customer).collect::<Vec<_>>(),
            "next_page_token": next_page(answer.page.as_ref()),
        }))
    })
}

fn create_customer(c: Call) -> Reply {
    Box::pin(async move {
        let body: CustomerIn = c.body()?;
        let new = inv::Customer {
            external_id: body.external_id,
            legal_name: body.legal_name,
            tax_id: body.tax_id,
            tax_country: body.tax_country,
            billing_address: body.billing_address.map(|a| inv::Address {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                region: a.region,
                postal_code: a.postal_code,
                country: a.country,
            }),
            contacts: body
                .contacts
                .into_iter()
                .map(|k| inv::Contact {
                    name: k.name,
                    email: k.email,
                    phone: k.phone,
                    whatsapp_opt_in: k.whatsapp_opt_in,
                    language: k.language,
                    timezone: k.timezone,
                })
                .collect(),
            payment_terms_days: body.payment_terms_days,
            currency: body.currency,
            credit_limit: body.credit_limit,
            reminder_policy: body.reminder_policy,
            autopay: body.autopay,
            tags: body.tags,
            ..Default::default()
        };
        let request = c.request(inv::UpsertCustomerRequest { id: String::new(), customer: Some(new) });
        let answer = c
            .services
            .invoicing
            .clone()
            .upsert_customer(request)
            .await
            .map_err(|s| Failure::from_status(&s).renamed("customer."))?;
        Ok(customer(answer.get_ref()))
    })
}

fn get_customer(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(inv::GetCustomerRequest { id: c.param("id") });
        let answer = c.services.invoicing.clone().get_customer(request).await?;
        Ok(customer(answer.get_ref()))
    })
}

fn list_invoices(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(inv::ListInvoicesRequest {
            customer_id: c.query("customer_id"),
            status: c.query("status"),
            page: page(&c),
        });
        let answer = c.services.invoicing.clone().list_invoices(request).await?.into_inner();
        Ok(json!({
            "data": answer.invoices.iter().map(invoice).collect::<Vec<_>>(),
            "next_page_token": next_page(answer.page.as_ref()),
        }))
    })
}

fn create_invoice(c: Call) -> Reply {
    Box::pin(async move {
        let body: InvoiceIn = c.body()?;
        let mut lines = Vec::with_capacity(body.lines.len());
        for (i, line) in body.lines.into_iter().enumerate() {
            lines.push(inv::LineInput {
                description: line.description,
                quantity: line.quantity,
                unit_price: line.unit_price,
                discount: discount_in(line.discount, &format!("lines[{i}].discount"))?,
                taxes: line
                    .taxes
                    .into_iter()
                    .map(|t| inv::TaxRate { name: t.name, rate_percent: t.rate_percent, inclusive: t.inclusive })
                    .collect(),
            });
        }
        let request = c.request(inv::CreateInvoiceRequest {
            customer_id: body.customer_id,
            external_id: body.external_id,
            currency: body.currency,
            lines,
            discount: discount_in(body.discount, "discount")?,
            memo: body.memo,
            issue_date: body.issue_date,
            due_date: body.due_date,
        });
        let answer = c.services.invoicing.clone().create_invoice(request).await?;
        Ok(invoice(answer.get_ref()))
    })
}

fn get_invoice(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(inv::GetInvoiceRequest { id: c.param("id") });
        let answer = c.services.invoicing.clone().get_invoice(request).await?;
        Ok(invoice(answer.get_ref()))
    })
}

fn issue_invoice(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(inv::IssueInvoiceRequest { id: c.param("id") });
        let answer = c.services.invoicing.clone().issue_invoice(request).await?;
        Ok(invoice(answer.get_ref()))
    })
}

fn void_invoice(c: Call) -> Reply {
    Box::pin(async move {
        let body: VoidIn = c.body()?;
        let request = c.request(inv::VoidInvoiceRequest { id: c.param("id"), reason: body.reason });
        let answer = c.services.invoicing.clone().void_invoice(request).await?;
        Ok(invoice(answer.get_ref()))
    })
}

fn create_payment_link(c: Call) -> Reply {
    Box::pin(async move {
        let body: PaymentLinkIn = c.body()?;
        let request = c.request(pay::CreatePaymentLinkRequest {
            idempotency_key: c.idempotency_key.clone(),
            customer_id: body.customer_id,
            invoice_id: body.invoice_id,
            installment_id: body.installment_id,
            amount: body.amount.map(Money::from),
            description: body.description,
            ttl_days: body.ttl_days,
        });
        let answer = c
            .services
            .payments
            .clone()
            .create_payment_link(request)
            .await
            .map_err(|s| Failure::from_status(&s).renamed(""))?
            .into_inner();
        let link = answer.link.unwrap_or_default();
        let url_path = format!("/pay/{}", answer.token);
        Ok(json!({ "link": payment_link(&link), "token": answer.token, "url_path": url_path }))
    })
}

fn revoke_payment_link(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(pay::RevokePaymentLinkRequest { id: c.param("id") });
        let answer = c.services.payments.clone().revoke_payment_link(request).await?;
        Ok(payment_link(answer.get_ref()))
    })
}

fn list_payments(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(pay::ListPaymentIntentsRequest {
            customer_id: c.query("customer_id"),
            status: c.query("status"),
            page: page(&c),
        });
        let answer = c.services.payments.clone().list_payment_intents(request).await?.into_inner();
        Ok(json!({
            "data": answer.payments.iter().map(payment).collect::<Vec<_>>(),
            "next_page_token": next_page(answer.page.as_ref()),
        }))
    })
}

fn create_payment(c: Call) -> Reply {
    Box::pin(async move {
        let body: PaymentIn = c.body()?;
        let request = c.request(pay::CreatePaymentIntentRequest {
            idempotency_key: c.idempotency_key.clone(),
            customer_id: body.customer_id,
            amount: body.amount.map(Money::from),
            invoice_ids: body.invoice_ids,
            installment_id: body.installment_id,
            description: body.description,
        });
        let answer = c
            .services
            .payments
            .clone()
            .create_payment_intent(request)
            .await
            .map_err(|s| Failure::from_status(&s).renamed(""))?;
        Ok(payment(answer.get_ref()))
    })
}

fn get_payment(c: Call) -> Reply {
    Box::pin(async move {
        let request = c.request(pay::GetPaymentIntentRequest { id: c.param("id") });
        let answer = c.services.payments.clone().get_payment_intent(request).await?;
        Ok(payment(answer.get_ref()))
    })
}

fn refund_payment(c: Call) -> Reply {
    Box::pin(async move {
        let body: RefundIn = c.body()?;
        let request = c.request(pay::RefundPaymentRequest {
            idempotency_key: c.idempotency_key.clone(),
            payment_id: c.param("id"),
            amount: body.amount.map(Money::from),
            reason: body.reason,
        });
        let answer = c
            .services
            .payments
            .clone()
            .refund_payment(request)
            .await
            .map_err(|s| Failure::from_status(&s).renamed(""))?;
        Ok(refund(answer.get_ref()))
    })
}
