//! The OpenAPI 3.0.3 document of the REST API, generated from [`OPERATIONS`] (the table the
//! router is built from) and the schemas below, and the small validator that holds request
//! bodies to those same schemas.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::{OPERATIONS, Operation};

const REF_PREFIX: &str = "#/components/schemas/";

/// A `$ref` to a component schema.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

fn money() -> Value {
    json!({
        "type": "object",
        "description": "An amount of money: a plain decimal string, no exponent or grouping.",
        "required": ["currency", "amount"],
        "additionalProperties": false,
        "properties": {
            "currency": { "type": "string", "description": "ISO 4217 code, upper case", "example": "MXN" },
            "amount": { "type": "string", "description": "Decimal string", "example": "1160.00" }
        }
    })
}

/// An optional money field of a response: an object, or null.
fn money_or_null(description: &str) -> Value {
    let mut schema = json!({ "allOf": [reference("Money")], "nullable": true });
    if !description.is_empty()
        && let Some(map) = schema.as_object_mut()
    {
        map.insert("description".to_owned(), Value::String(description.to_owned()));
    }
    schema
}

fn string(description: &str) -> Value {
    if description.is_empty() {
        json!({ "type": "string" })
    } else {
        json!({ "type": "string", "description": description })
    }
}

fn timestamp(description: &str) -> Value {
    let mut schema = json!({ "type": "string", "format": "date-time", "nullable": true });
    if !description.is_empty()
        && let Some(map) = schema.as_object_mut()
    {
        map.insert("description".to_owned(), Value::String(description.to_owned()));
    }
    schema
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

/// An object schema; `required` lists the properties always present (responses) or needed
/// (requests); `closed` refuses other properties (requests).
fn object(required: &[&str], closed: bool, properties: Value) -> Value {
    let mut schema = json!({ "type": "object", "required": required, "properties": properties });
    if required.is_empty()
        && let Some(map) = schema.as_object_mut()
    {
        map.remove("required");
    }
    if closed && let Some(map) = schema.as_object_mut() {
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    schema
}

/// Every schema of the document, by component name.
pub fn schemas() -> Map<String, Value> {
    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| {
        s.insert(name.to_owned(), schema);
    };
    add("Money", money());
    add(
        "Error",
        object(
            &["error"],
            false,
            json!({
                "error": object(&["code", "message", "field"], false, json!({
                    "code": string("Stable machine code, e.g. invoice_already_paid"),
                    "message": string("A sentence safe to show a person"),
                    "field": { "type": "string", "nullable": true,
                               "description": "The request field or header at fault, when there is one" }
                }))
            }),
        ),
    );
    add("OpenApiDocument", json!({ "type": "object", "description": "This document" }));
    let address_properties = json!({
        "line1": string("Street and number"),
        "line2": string(""),
        "city": string(""),
        "region": string("State or province"),
        "postal_code": string(""),
        "country": string("ISO 3166-1 alpha-2")
    });
    add("Address", object(&[], true, address_properties.clone()));
    let contact_properties = json!({
        "name": string(""),
        "email": string(""),
        "phone": string(""),
        "whatsapp_opt_in": { "type": "boolean" },
        "language": string("es or en"),
        "timezone": string("IANA time zone")
    });
    add("ContactInput", object(&[], true, contact_properties.clone()));
    add(
        "Contact",
        object(&["name", "email", "phone", "whatsapp_opt_in", "language", "timezone"], false, contact_properties),
    );
    add(
        "CustomerCreate",
        object(
            &["legal_name", "currency"],
            true,
            json!({
                "legal_name": { "type": "string", "maxLength": 200 },
                "external_id": { "type": "string", "maxLength": 100,
                                 "description": "Your id: creating again with it updates that customer" },
                "tax_id": { "type": "string", "maxLength": 50 },
                "tax_country": string("ISO 3166-1 alpha-2"),
                "currency": string("ISO 4217, e.g. MXN; invoices are in it"),
                "payment_terms_days": { "type": "integer", "minimum": 0, "maximum": 365 },
                "credit_limit": string("Decimal string"),
                "reminder_policy": string(""),
                "autopay": { "type": "boolean" },
                "tags": { "type": "array", "maxItems": 20, "items": { "type": "string", "maxLength": 50 } },
                "billing_address": reference("Address"),
                "contacts": { "type": "array", "maxItems": 50, "items": reference("ContactInput") }
            }),
        ),
    );
    add(
        "Customer",
        object(
            &[
                "id",
                "external_id",
                "legal_name",
                "tax_id",
                "tax_country",
                "billing_address",
                "contacts",
                "payment_terms_days",
                "currency",
                "credit_limit",
                "reminder_policy",
                "autopay",
                "tags",
                "credit_balance",
                "created_at",
            ],
            false,
            json!({
                "id": string("cus_…"),
                "external_id": string(""),
                "legal_name": string(""),
                "tax_id": string(""),
                "tax_country": string(""),
                "billing_address": { "allOf": [reference("Address")], "nullable": true },
                "contacts": { "type": "array", "items": reference("Contact") },
                "payment_terms_days": { "type": "integer" },
                "currency": string(""),
                "credit_limit": string("Decimal string; empty when none"),
                "reminder_policy": string(""),
                "autopay": { "type": "boolean" },
                "tags": strings(""),
                "credit_balance": money_or_null("Unapplied overpayments"),
                "created_at": timestamp("")
            }),
        ),
    );
    add("CustomerList", list("Customer"));
    add(
        "Discount",
        object(
            &[],
            true,
            json!({
                "percent": string("0..100, e.g. \"10\" or \"12.5\""),
                "amount": string("In the invoice currency")
            }),
        ),
    );
    add(
        "TaxRate",
        object(
            &["rate_percent"],
            true,
            json!({
                "name": string("e.g. IVA"),
                "rate_percent": string("0..100, e.g. \"16\""),
                "inclusive": { "type": "boolean", "description": "The unit price already contains this tax" }
            }),
        ),
    );
    let line_input = json!({
        "description": { "type": "string" },
        "quantity": string("Decimal string, > 0"),
        "unit_price": string("Decimal string, up to 4 decimals"),
        "discount": reference("Discount"),
        "taxes": { "type": "array", "items": reference("TaxRate") }
    });
    add("LineInput", object(&["description", "quantity", "unit_price"], true, line_input));
    add(
        "Line",
        object(
            &["description", "quantity", "unit_price", "discount", "taxes", "net", "tax", "total"],
            false,
            json!({
                "description": string(""),
                "quantity": string(""),
                "unit_price": string(""),
                "discount": { "allOf": [reference("Discount")], "nullable": true },
                "taxes": { "type": "array", "items": reference("TaxRate") },
                "net": money_or_null(""),
                "tax": money_or_null(""),
                "total": money_or_null("")
            }),
        ),
    );
    add(
        "Installment",
        object(
            &["id", "seq", "due_date", "amount", "balance", "overdue"],
            false,
            json!({
                "id": string("ins_…"),
                "seq": { "type": "integer" },
                "due_date": string("YYYY-MM-DD"),
                "amount": money_or_null(""),
                "balance": money_or_null(""),
                "overdue": { "type": "boolean" }
            }),
        ),
    );
    add(
        "InvoiceCreate",
        object(
            &["customer_id", "lines"],
            true,
            json!({
                "customer_id": string("cus_…"),
                "external_id": { "type": "string", "maxLength": 100 },
                "currency": string("Defaults to the customer's currency"),
                "lines": { "type": "array", "minItems": 1, "items": reference("LineInput") },
                "discount": reference("Discount"),
                "memo": { "type": "string" },
                "issue_date": string("YYYY-MM-DD; set at issue when empty"),
                "due_date": string("YYYY-MM-DD; issue date plus the customer's terms when empty")
            }),
        ),
    );
    add(
        "Invoice",
        object(
            &[
                "id",
                "customer_id",
                "external_id",
                "number",
                "status",
                "currency",
                "issue_date",
                "due_date",
                "lines",
                "discount",
                "subtotal",
                "discount_total",
                "tax_total",
                "total",
                "credited",
                "paid",
                "balance",
                "overdue",
                "installments",
                "memo",
            ],
            false,
            json!({
                "id": string("inv_…"),
                "customer_id": string("cus_…"),
                "external_id": string(""),
                "number": string("Empty for drafts"),
                "status": { "type": "string",
                            "enum": ["draft", "open", "partially_paid", "paid", "void", "uncollectible"] },
                "currency": string(""),
                "issue_date": string("YYYY-MM-DD; empty for drafts without one"),
                "due_date": string("YYYY-MM-DD"),
                "lines": { "type": "array", "items": reference("Line") },
                "discount": { "allOf": [reference("Discount")], "nullable": true },
                "subtotal": money_or_null(""),
                "discount_total": money_or_null(""),
                "tax_total": money_or_null(""),
                "total": money_or_null(""),
                "credited": money_or_null(""),
                "paid": money_or_null(""),
                "balance": money_or_null(""),
                "overdue": { "type": "boolean" },
                "installments": { "type": "array", "items": reference("Installment") },
                "memo": string("")
            }),
        ),
    );
    add("InvoiceList", list("Invoice"));
    add("InvoiceVoid", object(&[], true, json!({ "reason": { "type": "string", "maxLength": 500 } })));
    add(
        "PaymentCreate",
        object(
            &["customer_id"],
            true,
            json!({
                "customer_id": string("cus_…"),
                "amount": { "allOf": [reference("Money")],
                            "description": "The amount to collect; for invoices, their open balance when absent" },
                "invoice_ids": strings("inv_…"),
                "installment_id": string("ins_…"),
                "description": { "type": "string" }
            }),
        ),
    );
    add(
        "RefundCreate",
        object(
            &[],
            true,
            json!({
                "amount": { "allOf": [reference("Money")], "description": "Whatever is left to refund when absent" },
                "reason": { "type": "string" }
            }),
        ),
    );
    add(
        "Refund",
        object(
            &["id", "payment_id", "amount", "status", "reason", "created_at"],
            false,
            json!({
                "id": string("ref_…"),
                "payment_id": string("pay_…"),
                "amount": money_or_null(""),
                "status": { "type": "string", "enum": ["pending", "succeeded", "failed"] },
                "reason": string(""),
                "created_at": timestamp("")
            }),
        ),
    );
    add(
        "TransferInstructions",
        object(
            &["account_holder", "iban", "bic", "reference", "reference_grouped", "amount"],
            false,
            json!({
                "account_holder": string(""),
                "iban": string(""),
                "bic": string(""),
                "reference": string("ISO 11649 RF reference"),
                "reference_grouped": string("The reference in groups of four"),
                "amount": money_or_null("")
            }),
        ),
    );
    add(
        "Payment",
        object(
            &[
                "id",
                "customer_id",
                "amount",
                "status",
                "method",
                "invoice_ids",
                "installment_id",
                "description",
                "next_action_url",
                "transfer",
                "amount_received",
                "amount_refunded",
                "fee",
                "failure_code",
                "failure_message",
                "refunds",
                "card_brand",
                "card_last4",
                "autopay",
                "created_at",
                "updated_at",
            ],
            false,
            json!({
                "id": string("pay_…"),
                "customer_id": string("cus_…"),
                "amount": money_or_null(""),
                "status": { "type": "string", "enum": ["requires_payment_method", "requires_confirmation",
                            "processing", "requires_action", "succeeded", "failed", "canceled"] },
                "method": string("card, bank_transfer, direct_debit; empty before confirmation"),
                "invoice_ids": strings(""),
                "installment_id": string(""),
                "description": string(""),
                "next_action_url": string("requires_action: where the payer authenticates"),
                "transfer": { "allOf": [reference("TransferInstructions")], "nullable": true },
                "amount_received": money_or_null(""),
                "amount_refunded": money_or_null(""),
                "fee": money_or_null(""),
                "failure_code": string(""),
                "failure_message": string(""),
                "refunds": { "type": "array", "items": reference("Refund") },
                "card_brand": string(""),
                "card_last4": string(""),
                "autopay": { "type": "boolean" },
                "created_at": timestamp(""),
                "updated_at": timestamp("")
            }),
        ),
    );
    add("PaymentList", list("Payment"));
    add(
        "PaymentLinkCreate",
        object(
            &["customer_id"],
            true,
            json!({
                "customer_id": string("cus_…"),
                "invoice_id": string("inv_…"),
                "installment_id": string("ins_…"),
                "amount": { "allOf": [reference("Money")],
                            "description": "Required without an invoice; with one, its open balance when absent" },
                "description": { "type": "string" },
                "ttl_days": { "type": "integer", "minimum": 0, "maximum": 180,
                              "description": "0 or absent: 30 days" }
            }),
        ),
    );
    add(
        "PaymentLink",
        object(
            &[
                "id",
                "customer_id",
                "invoice_id",
                "installment_id",
                "amount",
                "description",
                "expires_at",
                "revoked_at",
                "created_at",
            ],
            false,
            json!({
                "id": string("plk_…"),
                "customer_id": string(""),
                "invoice_id": string(""),
                "installment_id": string(""),
                "amount": money_or_null(""),
                "description": string(""),
                "expires_at": timestamp(""),
                "revoked_at": timestamp("Null while the link is usable"),
                "created_at": timestamp("")
            }),
        ),
    );
    add(
        "PaymentLinkCreated",
        object(
            &["link", "token", "url_path"],
            false,
            json!({
                "link": reference("PaymentLink"),
                "token": string("pl_…: the link's secret, shown once"),
                "url_path": string("Where the payer pays: this path on Cobro's address, /pay/pl_…")
            }),
        ),
    );
    s
}

fn list(item: &str) -> Value {
    object(
        &["data", "next_page_token"],
        false,
        json!({
            "data": { "type": "array", "items": reference(item) },
            "next_page_token": string("Pass as page_token for the next page; empty on the last one")
        }),
    )
}

static SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(schemas);

fn describe_status(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "The request is malformed: bad JSON, a body or parameter that does not match its schema",
        401 => "No API key, or one that is not valid",
        403 => "The API key lacks the scope",
        404 => "Not found (also another tenant's ids)",
        409 => "Conflicts with the current state, or an Idempotency-Key reused with another request",
        413 => "The body is larger than 256 KiB",
        415 => "The body is not sent as application/json",
        422 => "The service refused the input; `field` names it",
        429 => "Too many requests (Retry-After says when to try again)",
        503 => "A service is unavailable; retry",
        _ => "",
    }
}

fn operation_object(op: &Operation) -> Value {
    let mut parameters: Vec<Value> = op
        .path_params()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    for param in op.query {
        let schema = if param.kind == "integer" {
            json!({ "type": "integer", "minimum": 0 })
        } else {
            json!({ "type": "string" })
        };
        parameters.push(json!({ "name": param.name, "in": "query", "required": false,
                                "description": param.description, "schema": schema }));
    }
    if op.idempotent {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": true,
            "description": "1 to 255 printable characters. Repeating a request with the same key returns the \
                            first answer and does nothing again; the same key with another request answers 409.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 }
        }));
    }
    let mut responses = Map::new();
    let (success, schema) = op.success;
    responses.insert(
        success.to_string(),
        json!({ "description": describe_status(success),
                "content": { "application/json": { "schema": reference(schema) } } }),
    );
    for code in op.errors {
        responses.insert(
            code.to_string(),
            json!({ "description": describe_status(*code),
                    "content": { "application/json": { "schema": reference("Error") } } }),
        );
    }
    let mut operation = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    });
    if let Some(map) = operation.as_object_mut() {
        if !parameters.is_empty() {
            map.insert("parameters".to_owned(), Value::Array(parameters));
        }
        if let Some((schema, required)) = op.request {
            map.insert(
                "requestBody".to_owned(),
                json!({ "required": required,
                        "content": { "application/json": { "schema": reference(schema) } } }),
            );
        }
        if op.authenticated() {
            map.insert(
                "description".to_owned(),
                Value::String(format!("Needs an API key with the `{}` scope.", op.scope)),
            );
        } else {
            map.insert("security".to_owned(), json!([]));
        }
    }
    operation
}

/// The document, from the route table.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(op.verb.as_str().to_owned(), operation_object(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Cobro API",
            "version": "1",
            "description": "Customers, invoices, payment links and payments for e-commerce plugins and scripts. \
                            Authenticate with an API key made in the console: `Authorization: Bearer ck_live_…`. \
                            Money is {\"currency\", \"amount\"} with the amount as a decimal string. Errors are \
                            {\"error\": {\"code\", \"message\", \"field\"}}."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "apiKey": [] }],
        "tags": [
            { "name": "customers" }, { "name": "invoices" }, { "name": "payment_links" },
            { "name": "payments" }, { "name": "meta" }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "bearerFormat": "API key (ck_live_…)" }
            },
            "schemas": SCHEMAS.clone()
        }
    })
}

/// Checks `value` against `schema` (the subset of OpenAPI schemas this document uses), with
/// `$ref`s resolved among its components. `strict`: properties a schema does not list are
/// refused even when it does not close itself. The error is the field's path
/// (`lines[0].quantity`, empty for the whole body) and what is wrong with it.
pub fn validate(schema: &Value, value: &Value, strict: bool) -> Result<(), (String, String)> {
    check(schema, value, "", strict, 0)
}

fn at(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

fn fail(path: &str, reason: impl Into<String>) -> Result<(), (String, String)> {
    Err((path.to_owned(), reason.into()))
}

fn check(schema: &Value, value: &Value, path: &str, strict: bool, depth: u32) -> Result<(), (String, String)> {
    if depth > 32 {
        return fail(path, "is nested too deeply");
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let name = target.strip_prefix(REF_PREFIX).unwrap_or(target);
        return match SCHEMAS.get(name) {
            Some(resolved) => check(resolved, value, path, strict, depth + 1),
            None => fail(path, format!("has an unknown schema {target}")),
        };
    }
    if value.is_null() {
        return if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            fail(path, "must not be null")
        };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(part, value, path, strict, depth + 1)?;
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(map) = value.as_object() else { return fail(path, "must be an object") };
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = name.as_str()
                    && !map.contains_key(name)
                {
                    return fail(&at(path, name), "is required");
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let closed = strict || schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (name, item) in map {
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => check(property, item, &at(path, name), strict, depth + 1)?,
                    None if closed => return fail(&at(path, name), "is not a known field"),
                    None => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else { return fail(path, "must be an array") };
            let count = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && count < min
            {
                return fail(path, format!("must have at least {min} entries"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count > max
            {
                return fail(path, format!("must have at most {max} entries"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), strict, depth + 1)?;
                }
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else { return fail(path, "must be a string") };
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && text.chars().count() as u64 > max
            {
                return fail(path, format!("must be at most {max} characters"));
            }
            if let Some(options) = schema.get("enum").and_then(Value::as_array)
                && !options.iter().any(|o| o.as_str() == Some(text))
            {
                return fail(path, "is not one of the documented values");
            }
        }
        Some("integer") => {
            let Some(number) = value.as_i64() else { return fail(path, "must be an integer") };
            if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
                && number < min
            {
                return fail(path, format!("must be at least {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_i64)
                && number > max
            {
                return fail(path, format!("must be at most {max}"));
            }
        }
        Some("boolean") if !value.is_boolean() => return fail(path, "must be true or false"),
        _ => {}
    }
    Ok(())
}
