//! The REST API as a plugin uses it: an API key made by the tenant's owner, JSON over HTTP to
//! the gateway, and the OpenAPI document as the contract every answer is checked against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use cobro_e2e::platform::{Platform, Tenant};
use cobro_e2e::web::{Reply, Web};
use cobro_proto::identity::v1 as idpb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use serde_json::{Value, json};

const SCOPES: [&str; 7] = [
    "customers:read",
    "customers:write",
    "invoices:read",
    "invoices:write",
    "payments:read",
    "payments:write",
    "payments:refund",
];

async fn api_key(platform: &Platform, tenant: &Tenant, scopes: &[&str]) -> String {
    let created = IdentityServiceClient::new(platform.identity.clone())
        .create_api_key(tenant.staff(idpb::CreateApiKeyRequest {
            name: "Tienda en línea".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
        }))
        .await
        .expect("create an API key")
        .into_inner();
    assert!(created.secret.starts_with("ck_"), "{}", created.api_key.unwrap_or_default().display_prefix);
    created.secret
}

/// A JSON call with an API key (or none).
async fn call(
    web: &Web,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> (Reply, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    if let Some(idem) = idempotency_key {
        headers.push(("idempotency-key", idem));
    }
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let reply = web.request(method, path, &headers, body.map(|b| serde_json::to_vec(b).unwrap())).await;
    let json = parse(&reply);
    (reply, json)
}

fn parse(reply: &Reply) -> Value {
    assert_eq!(reply.content_type, "application/json", "{} {}", reply.status, reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.body))
}

/// The component a `$ref` names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
            let resolved = &doc["components"]["schemas"][name];
            assert!(resolved.is_object(), "{target} does not resolve");
            resolve(doc, resolved)
        }
        None => schema,
    }
}

/// `value` has what `schema` promises: its required properties (recursively), of the
/// documented types.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        assert_eq!(schema["nullable"], true, "{at} is null but not nullable");
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, part, value, at);
    }
    match schema["type"].as_str() {
        Some("object") => {
            let map = value.as_object().unwrap_or_else(|| panic!("{at} is not an object: {value}"));
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                assert!(map.contains_key(name), "{at} lacks the required {name}: {value}");
            }
            if let Some(properties) = schema["properties"].as_object() {
                for (name, item) in map {
                    if let Some(property) = properties.get(name) {
                        conforms(doc, property, item, &format!("{at}.{name}"));
                    }
                }
            }
        }
        Some("array") => {
            let items = value.as_array().unwrap_or_else(|| panic!("{at} is not an array: {value}"));
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Some("string") => assert!(value.is_string(), "{at} is not a string: {value}"),
        Some("integer") => assert!(value.is_i64() || value.is_u64(), "{at} is not an integer: {value}"),
        Some("boolean") => assert!(value.is_boolean(), "{at} is not a boolean: {value}"),
        _ => {}
    }
}

/// One documented operation, called with an example.
struct Example {
    id: &'static str,
    /// Path parameter name -> the key in `ids` of an id created earlier.
    params: &'static [(&'static str, &'static str)],
    /// Query string; `{name}` is replaced by `ids[name]`.
    query: &'static str,
    body: Option<Value>,
    /// Where the answer's `id` (or `link.id`) goes in `ids`.
    keep: Option<&'static str>,
    expect: u16,
}

fn fill(text: &str, ids: &HashMap<&str, String>) -> String {
    let mut out = text.to_owned();
    for (name, id) in ids {
        out = out.replace(&format!("{{{name}}}"), id);
    }
    out
}

fn examples() -> Vec<Example> {
    let ex = |id, params, query, body, keep, expect| Example { id, params, query, body, keep, expect };
    vec![
        ex("getOpenApiDocument", &[], "", None, None, 200),
        ex(
            "createCustomer",
            &[],
            "",
            Some(json!({
                "legal_name": "Ferretería La Esperanza S.A. de C.V.",
                "external_id": "shop-42",
                "tax_country": "MX",
                "currency": "MXN",
                "payment_terms_days": 15,
                "tags": ["tienda"],
                "billing_address": { "line1": "Av. Juárez 10", "city": "Puebla", "country": "MX" },
                "contacts": [{ "name": "Compras", "email": "compras@esperanza.example.com", "language": "es" }]
            })),
            Some("customer"),
            201,
        ),
        ex("listCustomers", &[], "page_size=50", None, None, 200),
        ex("getCustomer", &[("id", "customer")], "", None, None, 200),
        ex(
            "createInvoice",
            &[],
            "",
            Some(json!({
                "customer_id": "{customer}",
                "memo": "Pedido 1001",
                "lines": [{ "description": "Cemento gris 50 kg", "quantity": "4", "unit_price": "250.00",
                            "taxes": [{ "name": "IVA", "rate_percent": "16" }] }]
            })),
            Some("invoice"),
            201,
        ),
        ex("getInvoice", &[("id", "invoice")], "", None, None, 200),
        ex("listInvoices", &[], "customer_id={customer}&status=draft&page_size=10", None, None, 200),
        ex("issueInvoice", &[("id", "invoice")], "", None, None, 200),
        ex("voidInvoice", &[("id", "to_void")], "", Some(json!({ "reason": "Pedido cancelado" })), None, 200),
        ex(
            "createPaymentLink",
            &[],
            "",
            Some(json!({ "customer_id": "{customer}", "invoice_id": "{invoice}", "description": "Pedido 1001",
                         "ttl_days": 7 })),
            Some("link"),
            201,
        ),
        ex("revokePaymentLink", &[("id", "link")], "", None, None, 200),
        ex(
            "createPayment",
            &[],
            "",
            Some(json!({ "customer_id": "{customer}", "invoice_ids": ["{invoice}"], "description": "Pedido 1001" })),
            Some("payment"),
            201,
        ),
        ex("getPayment", &[("id", "payment")], "", None, None, 200),
        ex("listPayments", &[], "customer_id={customer}", None, None, 200),
        ex(
            "refundPayment",
            &[("id", "payment")],
            "",
            Some(json!({ "amount": { "currency": "MXN", "amount": "100.00" }, "reason": "Producto dañado" })),
            None,
            201,
        ),
    ]
}

/// A body with `{name}` placeholders filled in.
fn fill_body(body: &Value, ids: &HashMap<&str, String>) -> Value {
    serde_json::from_str(&fill(&body.to_string(), ids)).unwrap()
}

/// The payer pays the payment with the sandbox's always-approved card.
async fn pay(platform: &Platform, tenant: &Tenant, payment_id: &str) {
    let paid = PaymentsServiceClient::new(platform.payments.clone())
        .confirm_payment_intent(tenant.staff(paypb::ConfirmPaymentIntentRequest {
            idempotency_key: format!("confirm-{payment_id}"),
            id: payment_id.to_owned(),
            method: Some(paypb::confirm_payment_intent_request::Method::Card(paypb::NewCard {
                pan: "4242424242424242".into(),
                exp_month: 12,
                exp_year: 2031,
                holder_name: "Ana López".into(),
            })),
            return_url: String::new(),
            save_card: false,
        }))
        .await
        .expect("confirm the payment")
        .into_inner();
    assert_eq!(paid.status, "succeeded", "{paid:?}");
}

#[tokio::test]
async fn the_rest_api_does_what_its_document_says() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let other = platform.tenant().await;
    let key = api_key(&platform, &tenant, &SCOPES).await;
    let other_key = api_key(&platform, &other, &SCOPES).await;
    let web = Web::new(&platform.gateway_url);

    // The document is public and is what every answer below is held to.
    let (reply, doc) = call(&web, None, "GET", "/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    // Kept for `infra/dev test`, which holds it to the OpenAPI 3.0 schema (infra/checks/openapi.py).
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("openapi.json"), &reply.body).unwrap();
    let mut operations: HashMap<String, (String, String, Value)> = HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (verb, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            operations.insert(id, (verb.to_ascii_uppercase(), path.clone(), op.clone()));
        }
    }

    // --- the walk: every documented operation, called as documented, ids chained ---
    let harness_customer = platform.customer(&tenant, "Constructora del Valle", "es").await;
    let mut ids: HashMap<&str, String> = HashMap::new();
    ids.insert("to_void", platform.open_invoice(&tenant, &harness_customer, "300.00").await);
    let walk = examples();
    let walked: BTreeSet<&str> = walk.iter().map(|e| e.id).collect();
    let documented: BTreeSet<&str> = operations.keys().map(String::as_str).collect();
    assert_eq!(walked, documented, "every documented operation has an example, and only those");
    for (n, example) in walk.iter().enumerate() {
        let (method, template, op) = &operations[example.id];
        if example.id == "refundPayment" {
            pay(&platform, &tenant, &ids["payment"]).await;
        }
        let mut path = template.clone();
        for (name, from) in example.params {
            path = path.replace(&format!("{{{name}}}"), &ids[from]);
        }
        assert!(!path.contains('{'), "{}: {path} has an unfilled parameter", example.id);
        let query = fill(example.query, &ids);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap();
            let declared =
                op["parameters"].as_array().into_iter().flatten().any(|p| p["in"] == "query" && p["name"] == name);
            assert!(declared, "{}: query parameter {name} is not documented", example.id);
        }
        let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let body = example.body.as_ref().map(|b| fill_body(b, &ids));
        if let Some(body) = &body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{} takes no body", example.id);
            conforms(&doc, schema, body, "request");
        } else {
            assert_ne!(op["requestBody"]["required"], true, "{} needs a body", example.id);
        }
        let needs_key = op.get("security") != Some(&json!([]));
        let idempotent = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
        let idem = format!("walk-{n}-{}", uuid::Uuid::now_v7().simple());
        // Payments learns of an issued invoice from invoicing's events, moments later: until
        // then it does not know the invoice, as any client would see.
        let mut tries = 0;
        let (reply, answer) = loop {
            let (reply, answer) = call(
                &web,
                needs_key.then_some(key.as_str()),
                method,
                &uri,
                body.as_ref(),
                idempotent.then_some(idem.as_str()),
            )
            .await;
            tries += 1;
            if reply.status != 404 || answer["error"]["code"] != "invoice_not_found" || tries > 60 {
                break (reply, answer);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        let status = reply.status.to_string();
        let documented = &op["responses"][&status];
        assert!(documented.is_object(), "{} answered {status}, which is not documented: {answer}", example.id);
        assert_eq!(reply.status, example.expect, "{} {uri}: {answer}", example.id);
        conforms(&doc, &documented["content"]["application/json"]["schema"], &answer, example.id);
        if let Some(keep) = example.keep {
            let id = answer["id"].as_str().or_else(|| answer["link"]["id"].as_str()).unwrap();
            ids.insert(keep, id.to_owned());
        }
        // What each step did, as the service tells it.
        match example.id {
            "listCustomers" => {
                assert!(answer["data"].as_array().unwrap().iter().any(|c| c["id"] == ids["customer"].as_str()))
            }
            "createInvoice" => {
                assert_eq!(answer["status"], "draft");
                assert_eq!(answer["total"], json!({ "currency": "MXN", "amount": "1160.00" }));
            }
            "listInvoices" => assert_eq!(answer["data"].as_array().unwrap().len(), 1, "{answer}"),
            "issueInvoice" => assert_eq!(answer["status"], "open"),
            "voidInvoice" => assert_eq!(answer["status"], "void"),
            "createPaymentLink" => {
                let token = answer["token"].as_str().unwrap();
                assert!(token.starts_with("pl_"), "{answer}");
                assert_eq!(answer["url_path"], format!("/pay/{token}"));
                let page = web.get(answer["url_path"].as_str().unwrap()).await;
                assert_eq!(page.status, 200, "the payer's page: {}", page.body);
            }
            "revokePaymentLink" => assert!(answer["revoked_at"].is_string()),
            "createPayment" => assert_eq!(answer["amount"], json!({ "currency": "MXN", "amount": "1160.00" })),
            "listPayments" => assert_eq!(answer["data"][0]["id"], ids["payment"].as_str()),
            "refundPayment" => assert_eq!(answer["payment_id"], ids["payment"].as_str()),
            _ => {}
        }
    }

    // --- no key, a wrong key: 401 in JSON ---
    for k in [None, Some("ck_live_not-a-real-key"), Some("")] {
        let (reply, answer) = call(&web, k, "GET", "/v1/invoices", None, None).await;
        assert_eq!(reply.status, 401, "{k:?}: {answer}");
        assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{answer}");
    }

    // --- another tenant's invoice is not found, for reading and for acting on it ---
    let invoice = ids["invoice"].clone();
    let (reply, answer) = call(&web, Some(&other_key), "GET", &format!("/v1/invoices/{invoice}"), None, None).await;
    assert_eq!(reply.status, 404, "{answer}");
    assert_eq!(answer["error"]["code"].as_str().map(str::is_empty), Some(false));
    let reason = json!({ "reason": "Duplicada" });
    let void = format!("/v1/invoices/{invoice}/void");
    let (reply, answer) = call(&web, Some(&other_key), "POST", &void, Some(&reason), None).await;
    assert_eq!(reply.status, 404, "{answer}");
    let (reply, answer) =
        call(&web, Some(&key), "GET", "/v1/invoices/inv_00000000000000000000000000", None, None).await;
    assert!(matches!(reply.status, 404 | 422), "{answer}");

    // --- bad bodies: 400 for what the document rules out, 422 for what the service refuses;
    // both name the field ---
    let customer = ids["customer"].clone();
    let bad = json!({ "customer_id": customer, "lines": [{ "description": "x", "quantity": 2, "unit_price": "1" }] });
    let (reply, answer) = call(&web, Some(&key), "POST", "/v1/invoices", Some(&bad), None).await;
    assert_eq!(reply.status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "lines[0].quantity", "{answer}");
    let (reply, answer) = call(&web, Some(&key), "POST", "/v1/invoices", Some(&json!({ "lines": [] })), None).await;
    assert_eq!(reply.status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "customer_id", "{answer}");
    let negative =
        json!({ "customer_id": customer, "lines": [{ "description": "x", "quantity": "-1", "unit_price": "1" }] });
    let (reply, answer) = call(&web, Some(&key), "POST", "/v1/invoices", Some(&negative), None).await;
    assert_eq!(reply.status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "lines[0].quantity", "{answer}");
    let country = json!({ "legal_name": "Otra S.A.", "currency": "MXN", "tax_country": "Mexico" });
    let (reply, answer) = call(&web, Some(&key), "POST", "/v1/customers", Some(&country), None).await;
    assert_eq!(reply.status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "tax_country", "{answer}");
    let broken = web
        .request(
            "POST",
            "/v1/customers",
            &[("authorization", &format!("Bearer {key}")), ("content-type", "application/json")],
            Some(b"{\"legal_name\": ".to_vec()),
        )
        .await;
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert_eq!(parse(&broken)["error"]["code"], "invalid_json");
    assert!(!broken.body.contains("serde"), "{}", broken.body);

    // --- the same Idempotency-Key twice creates one payment ---
    let count = |answer: &Value| answer["data"].as_array().unwrap().len();
    let list = format!("/v1/payments?customer_id={customer}&page_size=100");
    let (_, before) = call(&web, Some(&key), "GET", &list, None, None).await;
    let body = json!({ "customer_id": customer, "amount": { "currency": "MXN", "amount": "50.00" } });
    let (first, a) = call(&web, Some(&key), "POST", "/v1/payments", Some(&body), Some("order-1001-attempt")).await;
    let (second, b) = call(&web, Some(&key), "POST", "/v1/payments", Some(&body), Some("order-1001-attempt")).await;
    assert_eq!((first.status, second.status), (201, 201), "{a} {b}");
    assert_eq!(a["id"], b["id"]);
    let (_, after) = call(&web, Some(&key), "GET", &list, None, None).await;
    assert_eq!(count(&after), count(&before) + 1, "{after}");
    // The same key with another request is refused; no key at all is refused naming the header.
    let other_body = json!({ "customer_id": customer, "amount": { "currency": "MXN", "amount": "60.00" } });
    let (reply, answer) =
        call(&web, Some(&key), "POST", "/v1/payments", Some(&other_body), Some("order-1001-attempt")).await;
    assert_eq!(reply.status, 409, "{answer}");
    let (reply, answer) = call(&web, Some(&key), "POST", "/v1/payments", Some(&body), None).await;
    assert_eq!(reply.status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "Idempotency-Key");

    // --- a key without the scope is refused ---
    let reader = api_key(&platform, &tenant, &["invoices:read"]).await;
    let new = json!({ "legal_name": "Sin permiso S.A.", "currency": "MXN" });
    let (reply, answer) = call(&web, Some(&reader), "POST", "/v1/customers", Some(&new), None).await;
    assert_eq!(reply.status, 403, "{answer}");
    let (reply, _) = call(&web, Some(&reader), "GET", "/v1/invoices", None, None).await;
    assert_eq!(reply.status, 200);

    platform.stop().await;
}
