//! The Stripe connector against a local stub that answers like Stripe's PaymentIntents API:
//! the stub picks its answer by the card number in the form body (as Stripe's test cards do)
//! and records every request so the tests can check what was sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use cobro_payments::connector::stripe::{Stripe, StripeConfig};
use cobro_payments::connector::{
    CardData, ChargeOutcome, ChargeRequest, Connector, ConnectorError, DeclineCode, SyncedStatus, WebhookEvent,
};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_51Cobro0stub0secret0key0do0not0leak";
const WEBHOOK_SECRET: &str = "whsec_cobro_stub_webhook_signing_secret";

const CARD_SUCCESS: &str = "4242424242424242";
const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
const CARD_THREE_DS: &str = "4000000000003220";
const CARD_GENERIC_DECLINE: &str = "4000000000000002";
/// Stub-only: the intent stays `processing`.
const CARD_PROCESSING: &str = "4000000000000077";

// ---------------------------------------------------------------------------------------------
// The stub
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A status, a body and extra headers.
type Forced = (u16, Value, Vec<(&'static str, &'static str)>);

#[derive(Default)]
struct StubState {
    requests: Vec<Recorded>,
    intents: HashMap<String, Value>,
    /// Answer every request with this status and body instead.
    forced: Option<Forced>,
    /// Never answer.
    hang: bool,
    next_id: u32,
}

#[derive(Clone, Default)]
struct Stub {
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    async fn start() -> (Stub, String) {
        let stub = Stub::default();
        let app = Router::new()
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/search", get(search_intents))
            .route("/v1/payment_intents/{id}", get(retrieve_intent))
            .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
            .route("/v1/refunds", post(create_refund))
            .fallback(unknown_url)
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (stub, format!("http://{addr}"))
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn last(&self) -> Recorded {
        self.requests().last().cloned().expect("the stub received no request")
    }

    fn force(&self, status: u16, body: Value, headers: Vec<(&'static str, &'static str)>) {
        self.state.lock().unwrap().forced = Some((status, body, headers));
    }

    fn hang(&self) {
        self.state.lock().unwrap().hang = true;
    }

    /// What the payer finishing 3-D Secure does to an intent.
    fn complete_three_ds(&self, id: &str) {
        let mut state = self.state.lock().unwrap();
        let intent = state.intents.get_mut(id).unwrap();
        let amount = intent["amount"].as_i64().unwrap();
        let currency = intent["currency"].as_str().unwrap().to_owned();
        intent["status"] = json!("succeeded");
        intent["next_action"] = Value::Null;
        intent["amount_received"] = json!(amount);
        intent["latest_charge"] = charge_object(id, amount, &currency, "4000000000003220");
    }

    /// Record a request; answer it as forced or hung if so configured.
    async fn intercept(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        fields: Vec<(String, String)>,
    ) -> Option<Response> {
        let (forced, hang) = {
            let mut state = self.state.lock().unwrap();
            state.requests.push(Recorded {
                method,
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
                headers: headers.clone(),
                fields,
            });
            (state.forced.clone(), state.hang)
        };
        if hang {
            return Some(std::future::pending::<Response>().await);
        }
        if let Some((status, body, extra)) = forced {
            let mut response = stripe_json(status, &body);
            for (name, value) in extra {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            return Some(response);
        }
        let expected = format!("Bearer {SECRET_KEY}");
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if auth != expected {
            // Stripe masks the key it echoes; this stub deliberately does not, so the connector's
            // own scrubbing is what keeps the key out of errors.
            let key = auth.strip_prefix("Bearer ").unwrap_or(auth);
            return Some(stripe_json(
                401,
                &json!({"error": {
                    "message": format!("Invalid API Key provided: {key}"),
                    "type": "invalid_request_error"
                }}),
            ));
        }
        None
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        format!("{prefix}_3PStub{:06}LkdIwHu7ix", state.next_id)
    }
}

fn stripe_json(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json"), ("request-id", "req_stub0000000001")],
        body.to_string(),
    )
        .into_response()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("")
}

fn metadata_of(fields: &[(String, String)]) -> Value {
    let mut metadata = serde_json::Map::new();
    for (k, v) in fields {
        if let Some(key) = k.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')) {
            metadata.insert(key.to_owned(), json!(v));
        }
    }
    Value::Object(metadata)
}

/// A Charge with its balance transaction expanded; Stripe's fee is 2.9% + 30 minor units (for
/// zero-decimal currencies, 3.6%).
fn charge_object(intent: &str, amount: i64, currency: &str, card: &str) -> Value {
    let fee = if currency == "jpy" { amount * 36 / 1000 } else { amount * 29 / 1000 + 30 };
    json!({
        "id": intent.replacen("pi_", "ch_", 1),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "balance_transaction": {
            "id": intent.replacen("pi_", "txn_", 1),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": 1_681_344_000,
            "created": 1_680_800_504,
            "currency": currency,
            "description": null,
            "exchange_rate": null,
            "fee": fee,
            "fee_details": [{
                "amount": fee,
                "application": null,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee"
            }],
            "net": amount - fee,
            "reporting_category": "charge",
            "source": intent.replacen("pi_", "ch_", 1),
            "status": "pending",
            "type": "charge"
        },
        "captured": true,
        "created": 1_680_800_504,
        "currency": currency,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": null,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized"
        },
        "paid": true,
        "payment_intent": intent,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": &card[card.len() - 4..],
                "network": "visa"
            },
            "type": "card"
        },
        "refunded": false,
        "status": "succeeded"
    })
}

/// A PaymentIntent shaped like https://docs.stripe.com/api/payment_intents/object.
fn intent_object(id: &str, fields: &[(String, String)], status: &str) -> Value {
    let amount: i64 = field(fields, "amount").parse().unwrap_or(0);
    let currency = field(fields, "currency");
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{id}_secret_YrKJUKribcBjcG8HVhfZluoGH"),
        "confirmation_method": "automatic",
        "created": 1_680_800_504,
        "currency": currency,
        "customer": null,
        "description": field(fields, "description"),
        "last_payment_error": null,
        "latest_charge": null,
        "livemode": false,
        "metadata": metadata_of(fields),
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": id.replacen("pi_", "pm_", 1),
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null
    })
}

fn card_error(id: &str, intent: &Value, code: &str, decline_code: &str, message: &str) -> Value {
    let mut intent = intent.clone();
    let error = json!({
        "charge": id.replacen("pi_", "ch_", 1),
        "code": code,
        "decline_code": decline_code,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
        "message": message,
        "payment_method": {"id": id.replacen("pi_", "pm_", 1), "object": "payment_method", "type": "card"},
        "type": "card_error"
    });
    intent["status"] = json!("requires_payment_method");
    intent["last_payment_error"] = error.clone();
    intent["payment_method"] = Value::Null;
    let mut body = error;
    body["payment_intent"] = intent;
    body["request_log_url"] = json!("https://dashboard.stripe.com/test/logs/req_stub0000000001");
    json!({ "error": body })
}

async fn create_intent(
    State(stub): State<Stub>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = stub.intercept(Method::POST, &uri, headers, fields.clone()).await {
        return response;
    }
    let id = stub.new_id("pi");
    let card = field(&fields, "payment_method_data[card][number]").to_owned();
    let amount: i64 = field(&fields, "amount").parse().unwrap_or(0);
    let currency = field(&fields, "currency").to_owned();
    let (status, body) = match card.as_str() {
        CARD_SUCCESS => {
            let mut intent = intent_object(&id, &fields, "succeeded");
            intent["latest_charge"] = charge_object(&id, amount, &currency, &card);
            (200, intent)
        }
        CARD_THREE_DS => {
            let mut intent = intent_object(&id, &fields, "requires_action");
            intent["next_action"] = json!({
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "return_url": field(&fields, "return_url"),
                    "url": format!(
                        "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1Cobro&payment_intent={id}&payment_intent_client_secret={id}_secret_x&publishable_key=pk_test_x&source=payatt_{id}"
                    )
                }
            });
            (200, intent)
        }
        CARD_PROCESSING => (200, intent_object(&id, &fields, "processing")),
        CARD_INSUFFICIENT_FUNDS => {
            let intent = intent_object(&id, &fields, "requires_payment_method");
            (402, card_error(&id, &intent, "card_declined", "insufficient_funds", "Your card has insufficient funds."))
        }
        CARD_GENERIC_DECLINE => {
            let intent = intent_object(&id, &fields, "requires_payment_method");
            (402, card_error(&id, &intent, "card_declined", "generic_decline", "Your card was declined."))
        }
        _ => (
            402,
            json!({"error": {
                "code": "incorrect_number",
                "doc_url": "https://stripe.com/docs/error-codes/incorrect-number",
                "message": "Your card number is incorrect.",
                "param": "payment_method_data[card][number]",
                "type": "card_error"
            }}),
        ),
    };
    if status == 200 {
        stub.state.lock().unwrap().intents.insert(id, body.clone());
    } else if let Some(intent) = body["error"].get("payment_intent") {
        stub.state.lock().unwrap().intents.insert(id, intent.clone());
    }
    stripe_json(status, &body)
}

async fn retrieve_intent(
    State(stub): State<Stub>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = stub.intercept(Method::GET, &uri, headers, query).await {
        return response;
    }
    let found = stub.state.lock().unwrap().intents.get(&id).cloned();
    match found {
        Some(intent) => stripe_json(200, &intent),
        None => stripe_json(
            404,
            &json!({"error": {
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": format!("No such payment_intent: '{id}'"),
                "param": "intent",
                "type": "invalid_request_error"
            }}),
        ),
    }
}

async fn search_intents(
    State(stub): State<Stub>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = stub.intercept(Method::GET, &uri, headers, query.clone()).await {
        return response;
    }
    // Understands exactly the query the connector sends: metadata['cobro_attempt']:'<uuid>'.
    let q = field(&query, "query");
    let wanted = q.strip_prefix("metadata['cobro_attempt']:'").and_then(|rest| rest.strip_suffix('\''));
    let data: Vec<Value> = stub
        .state
        .lock()
        .unwrap()
        .intents
        .values()
        .filter(|pi| wanted.is_some() && pi["metadata"]["cobro_attempt"].as_str() == wanted)
        .cloned()
        .collect();
    stripe_json(
        200,
        &json!({
            "object": "search_result",
            "data": data,
            "has_more": false,
            "next_page": null,
            "url": "/v1/payment_intents/search"
        }),
    )
}

async fn cancel_intent(
    State(stub): State<Stub>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = stub.intercept(Method::POST, &uri, headers, fields).await {
        return response;
    }
    let mut state = stub.state.lock().unwrap();
    let Some(intent) = state.intents.get_mut(&id) else {
        return stripe_json(404, &json!({"error": {"code": "resource_missing", "type": "invalid_request_error"}}));
    };
    if intent["status"] == "canceled" || intent["status"] == "succeeded" {
        let status = intent["status"].as_str().unwrap().to_owned();
        return stripe_json(
            400,
            &json!({"error": {
                "code": "payment_intent_unexpected_state",
                "doc_url": "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
                "message": format!("You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing."),
                "payment_intent": intent.clone(),
                "type": "invalid_request_error"
            }}),
        );
    }
    intent["status"] = json!("canceled");
    intent["cancellation_reason"] = Value::Null;
    intent["canceled_at"] = json!(1_680_801_000);
    intent["next_action"] = Value::Null;
    stripe_json(200, intent)
}

async fn unknown_url(State(stub): State<Stub>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(response) = stub.intercept(method.clone(), &uri, headers, Vec::new()).await {
        return response;
    }
    stripe_json(
        404,
        &json!({"error": {
            "message": format!(
                "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                uri.path()
            ),
            "type": "invalid_request_error"
        }}),
    )
}

async fn create_refund(
    State(stub): State<Stub>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = stub.intercept(Method::POST, &uri, headers, fields.clone()).await {
        return response;
    }
    let amount: i64 = field(&fields, "amount").parse().unwrap_or(0);
    let intent = field(&fields, "payment_intent").to_owned();
    if !stub.state.lock().unwrap().intents.contains_key(&intent) {
        return stripe_json(
            400,
            &json!({"error": {
                "code": "resource_missing",
                "message": format!("No such payment_intent: '{intent}'"),
                "param": "payment_intent",
                "type": "invalid_request_error"
            }}),
        );
    }
    // Stub-only: a refund of exactly 13.13 fails at the card network.
    let (status, failure_reason) =
        if amount == 1313 { ("failed", json!("expired_or_canceled_card")) } else { ("succeeded", Value::Null) };
    let id = stub.new_id("re");
    stripe_json(
        200,
        &json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": id.replacen("re_", "txn_", 1),
            "charge": intent.replacen("pi_", "ch_", 1),
            "created": 1_692_942_318,
            "currency": "usd",
            "destination_details": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
            "failure_reason": failure_reason,
            "metadata": metadata_of(&fields),
            "payment_intent": intent,
            "reason": null,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": status,
            "transfer_reversal": null
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn config(base_url: &str) -> StripeConfig {
    StripeConfig {
        base_url: base_url.to_owned(),
        secret_key: SecretString::from(SECRET_KEY),
        webhook_secret: SecretString::from(WEBHOOK_SECRET),
        timeout: Duration::from_secs(5),
    }
}

fn stripe(base_url: &str) -> Stripe {
    Stripe::new(config(base_url)).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn request(card: &str, amount: &str, currency: &str) -> ChargeRequest {
    ChargeRequest {
        attempt_id: Uuid::now_v7(),
        tenant_id: Uuid::now_v7(),
        amount: dec(amount),
        currency: currency.to_owned(),
        card: CardData {
            pan: SecretString::from(card),
            exp_month: 12,
            exp_year: 2034,
            holder_name: "Ana Pérez".to_owned(),
        },
        return_url: "https://pay.cobro.test/attempts/return?x=1&y=2".to_owned(),
        description: "Invoice INV-0042 & more".to_owned(),
    }
}

/// Everything a caller might print about an error or a connector must be free of card numbers
/// and secrets.
fn assert_clean(text: &str) {
    for secret in [
        SECRET_KEY,
        WEBHOOK_SECRET,
        CARD_SUCCESS,
        CARD_INSUFFICIENT_FUNDS,
        CARD_THREE_DS,
        CARD_GENERIC_DECLINE,
        CARD_PROCESSING,
        "4000000000000069",
    ] {
        assert!(!text.contains(secret), "{text:?} contains {secret:?}");
    }
}

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap()
}

fn event(kind: &str, object: Value) -> String {
    json!({
        "id": "evt_3PStubEventLkdIwHu7ix0001",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_717_000_000,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind
    })
    .to_string()
}

fn webhook_intent(attempt: Option<Uuid>, status: &str) -> Value {
    let mut fields = vec![("amount".to_owned(), "1050".to_owned()), ("currency".to_owned(), "usd".to_owned())];
    if let Some(attempt) = attempt {
        fields.push(("metadata[cobro_attempt]".to_owned(), attempt.to_string()));
    }
    let mut intent = intent_object("pi_3PStubWebhookLkdIwHu7ix", &fields, status);
    // Webhooks carry the charge as an id: it is never expanded.
    intent["latest_charge"] = if status == "succeeded" { json!("ch_3PStubWebhookLkdIwHu7ix") } else { Value::Null };
    intent
}

// ---------------------------------------------------------------------------------------------
// Charges
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_successful_charge_sends_what_stripe_expects_and_reports_the_fee() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_SUCCESS, "10.50", "USD");

    let outcome = stripe.charge(&req).await.unwrap();
    let ChargeOutcome::Succeeded { processor_ref, fee } = outcome else { panic!("{outcome:?}") };
    assert!(processor_ref.starts_with("pi_"), "{processor_ref}");
    // 2.9% of 1050 + 30 = 60 cents.
    assert_eq!(fee, dec("0.60"));
    assert_eq!(fee.scale(), 2);

    let sent = stub.last();
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/v1/payment_intents");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));
    assert_eq!(sent.header("idempotency-key"), Some(req.attempt_id.to_string().as_str()));
    assert_eq!(sent.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(sent.header("stripe-version").is_some());
    let expected = [
        ("amount", "1050".to_owned()),
        ("currency", "usd".to_owned()),
        ("confirm", "true".to_owned()),
        ("capture_method", "automatic".to_owned()),
        ("payment_method_data[type]", "card".to_owned()),
        ("payment_method_data[card][number]", CARD_SUCCESS.to_owned()),
        ("payment_method_data[card][exp_month]", "12".to_owned()),
        ("payment_method_data[card][exp_year]", "2034".to_owned()),
        ("payment_method_data[billing_details][name]", "Ana Pérez".to_owned()),
        ("return_url", "https://pay.cobro.test/attempts/return?x=1&y=2".to_owned()),
        ("description", "Invoice INV-0042 & more".to_owned()),
        ("metadata[cobro_attempt]", req.attempt_id.to_string()),
        ("metadata[cobro_tenant]", req.tenant_id.to_string()),
        ("expand[]", "latest_charge.balance_transaction".to_owned()),
    ];
    for (key, value) in expected {
        assert_eq!(sent.field(key), Some(value.as_str()), "{key}");
    }
}

#[tokio::test]
async fn a_repeated_charge_reuses_the_attempt_as_idempotency_key() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_SUCCESS, "10.50", "USD");
    stripe.charge(&req).await.unwrap();
    stripe.charge(&req).await.unwrap();
    let keys: Vec<_> = stub.requests().iter().map(|r| r.header("idempotency-key").unwrap().to_owned()).collect();
    assert_eq!(keys, vec![req.attempt_id.to_string(), req.attempt_id.to_string()]);
}

#[tokio::test]
async fn insufficient_funds_is_a_soft_decline() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    let outcome = stripe.charge(&request(CARD_INSUFFICIENT_FUNDS, "25.00", "USD")).await.unwrap();
    let ChargeOutcome::Declined { processor_ref, code, message } = &outcome else { panic!("{outcome:?}") };
    assert!(processor_ref.as_deref().unwrap().starts_with("pi_"));
    assert_eq!(*code, DeclineCode::InsufficientFunds);
    assert!(code.is_soft());
    assert_eq!(message, "Your card has insufficient funds.");
    assert_clean(&format!("{outcome:?}"));
}

#[tokio::test]
async fn a_generic_decline_is_hard() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    let outcome = stripe.charge(&request(CARD_GENERIC_DECLINE, "25.00", "USD")).await.unwrap();
    let ChargeOutcome::Declined { code, message, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(*code, DeclineCode::DoNotHonor);
    assert!(!code.is_soft());
    assert_eq!(message, "Your card was declined.");
}

#[tokio::test]
async fn a_card_error_without_an_intent_is_a_decline_without_reference() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    let outcome = stripe.charge(&request("4000000000000069", "25.00", "USD")).await.unwrap();
    let ChargeOutcome::Declined { processor_ref, code, message } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(*processor_ref, None);
    assert_eq!(*code, DeclineCode::Other);
    assert_eq!(message, "Your card number is incorrect.");
    assert_clean(&format!("{outcome:?}"));
}

#[tokio::test]
async fn three_d_secure_redirects_then_syncs_to_succeeded() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_THREE_DS, "99.99", "MXN");

    let outcome = stripe.charge(&req).await.unwrap();
    let ChargeOutcome::RequiresAction { processor_ref, redirect_url } = outcome else { panic!("{outcome:?}") };
    assert!(redirect_url.starts_with("https://hooks.stripe.com/3d_secure_2/hosted?"), "{redirect_url}");
    assert!(redirect_url.contains(&processor_ref));
    assert_eq!(stub.last().field("amount"), Some("9999"));
    assert_eq!(stub.last().field("currency"), Some("mxn"));

    // Before the payer is back: still open.
    let status = stripe.sync(req.attempt_id, Some(&processor_ref)).await.unwrap();
    assert_eq!(status, SyncedStatus::Pending { processor_ref: processor_ref.clone() });
    let sent = stub.last();
    assert_eq!(sent.method, Method::GET);
    assert_eq!(sent.path, format!("/v1/payment_intents/{processor_ref}"));
    assert_eq!(sent.field("expand[]"), Some("latest_charge.balance_transaction"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));

    stub.complete_three_ds(&processor_ref);
    let status = stripe.sync(req.attempt_id, Some(&processor_ref)).await.unwrap();
    // 2.9% of 9999 + 30 = 319 centavos.
    assert_eq!(status, SyncedStatus::Settled(ChargeOutcome::Succeeded { processor_ref, fee: dec("3.19") }));
}

#[tokio::test]
async fn a_processing_charge_is_unavailable_until_synced() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_PROCESSING, "10.00", "USD");

    let err = stripe.charge(&req).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");

    let status = stripe.sync(req.attempt_id, None).await.unwrap();
    assert!(matches!(status, SyncedStatus::Pending { .. }), "{status:?}");
}

#[tokio::test]
async fn zero_decimal_currencies_are_sent_as_whole_units() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    let outcome = stripe.charge(&request(CARD_SUCCESS, "1000", "JPY")).await.unwrap();
    let ChargeOutcome::Succeeded { fee, .. } = outcome else { panic!("{outcome:?}") };
    // 3.6% of 1000 yen.
    assert_eq!(fee, dec("36"));
    assert_eq!(fee.scale(), 0);
    assert_eq!(stub.last().field("amount"), Some("1000"));
    assert_eq!(stub.last().field("currency"), Some("jpy"));

    let before = stub.requests().len();
    let err = stripe.charge(&request(CARD_SUCCESS, "1000.5", "JPY")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    let err = stripe.charge(&request(CARD_SUCCESS, "10.505", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    let err = stripe.charge(&request(CARD_SUCCESS, "10.50", "usd")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    let err = stripe.charge(&request(CARD_SUCCESS, "0", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    assert_eq!(stub.requests().len(), before, "refused amounts never reach Stripe");

    // Trailing zeros are not extra decimals.
    stripe.charge(&request(CARD_SUCCESS, "1000.00", "JPY")).await.unwrap();
    assert_eq!(stub.last().field("amount"), Some("1000"));
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_error_is_unavailable() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    stub.force(500, json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}), vec![]);

    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert_clean(&format!("{err} {err:?}"));
    let err = stripe.sync(Uuid::now_v7(), Some("pi_3PStub000001LkdIwHu7ix")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    let err = stripe.refund("pi_3PStub000001LkdIwHu7ix", dec("1"), "USD", Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn rate_limits_are_unavailable() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    stub.force(
        429,
        json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}}),
        vec![],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_hung_stripe_times_out_as_unavailable() {
    let (stub, url) = Stub::start().await;
    let stripe = Stripe::new(StripeConfig { timeout: Duration::from_millis(300), ..config(&url) }).unwrap();
    stub.hang();

    let started = Instant::now();
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_clean(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let stripe = stripe(&format!("http://{addr}"));

    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert_clean(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn a_wrong_key_is_rejected_without_repeating_it() {
    let (_stub, url) = Stub::start().await;
    let wrong_key = "sk_test_51Wrong0key0that0must0not0appear";
    let stripe = Stripe::new(StripeConfig { secret_key: SecretString::from(wrong_key), ..config(&url) }).unwrap();

    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    let ConnectorError::Rejected(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("Invalid API Key provided"), "{message}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong_key), "{shown}");
    assert_clean(&shown);
}

#[tokio::test]
async fn invalid_requests_and_idempotency_conflicts_are_rejected() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    stub.force(
        400,
        json!({"error": {
            "code": "parameter_invalid_integer",
            "message": "Invalid integer: 10.5",
            "param": "amount",
            "type": "invalid_request_error"
        }}),
        vec![],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    let ConnectorError::Rejected(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("Invalid integer"), "{message}");

    stub.force(
        409,
        json!({"error": {
            "message": "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'x' if you meant to execute a different request.",
            "type": "idempotency_error"
        }}),
        vec![("stripe-should-retry", "false")],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");

    // The same key still in flight on Stripe's side: the outcome is not known yet.
    stub.force(
        409,
        json!({"error": {
            "message": "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.",
            "type": "idempotency_error"
        }}),
        vec![("stripe-should-retry", "true")],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");

    // A message that echoes the card number is scrubbed.
    stub.force(
        400,
        json!({"error": {
            "message": format!("Card {CARD_SUCCESS} cannot be used (4242 4242 4242 4242)"),
            "type": "invalid_request_error"
        }}),
        vec![],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    assert_clean(&format!("{err} {err:?}"));
    assert!(!format!("{err}").contains("4242 4242"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Sync, void, refund
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_without_a_reference_searches_by_attempt() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_SUCCESS, "10.50", "USD");
    let ChargeOutcome::Succeeded { processor_ref, fee } = stripe.charge(&req).await.unwrap() else { panic!() };

    let status = stripe.sync(req.attempt_id, None).await.unwrap();
    assert_eq!(status, SyncedStatus::Settled(ChargeOutcome::Succeeded { processor_ref, fee }));
    let sent = stub.last();
    assert_eq!(sent.method, Method::GET);
    assert_eq!(sent.path, "/v1/payment_intents/search");
    assert_eq!(sent.field("query"), Some(format!("metadata['cobro_attempt']:'{}'", req.attempt_id).as_str()));
    let raw = sent.query.unwrap();
    assert!(raw.contains(&format!("query=metadata%5B%27cobro_attempt%27%5D%3A%27{}%27", req.attempt_id)), "{raw}");
}

#[tokio::test]
async fn sync_finds_declines_by_search() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_INSUFFICIENT_FUNDS, "10.50", "USD");
    let ChargeOutcome::Declined { processor_ref, .. } = stripe.charge(&req).await.unwrap() else { panic!() };

    let status = stripe.sync(req.attempt_id, None).await.unwrap();
    let SyncedStatus::Settled(ChargeOutcome::Declined { processor_ref: found, code, .. }) = status else {
        panic!("{status:?}")
    };
    assert_eq!(found, processor_ref);
    assert_eq!(code, DeclineCode::InsufficientFunds);
}

#[tokio::test]
async fn an_empty_search_is_not_found_once_the_index_has_caught_up() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);

    // An attempt minted two hours ago (UUIDv7 carries its creation time) or a non-v7 id.
    let old = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, (Utc::now().timestamp() - 7200) as u64, 0));
    assert_eq!(stripe.sync(old, None).await.unwrap(), SyncedStatus::NotFound);
    assert_eq!(stub.last().path, "/v1/payment_intents/search");
    assert_eq!(stripe.sync(Uuid::new_v4(), None).await.unwrap(), SyncedStatus::NotFound);

    // A fresh attempt may simply not be searchable yet.
    let err = stripe.sync(Uuid::now_v7(), None).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn sync_by_an_unknown_reference_is_not_found() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let status = stripe.sync(Uuid::now_v7(), Some("pi_3PStubMissingLkdIwHu7ix")).await.unwrap();
    assert_eq!(status, SyncedStatus::NotFound);
}

#[tokio::test]
async fn sync_refuses_an_intent_of_another_attempt() {
    let (_stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let ChargeOutcome::Succeeded { processor_ref, .. } =
        stripe.charge(&request(CARD_SUCCESS, "1.00", "USD")).await.unwrap()
    else {
        panic!()
    };
    let err = stripe.sync(Uuid::now_v7(), Some(&processor_ref)).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn void_cancels_the_intent_and_tolerates_repeats() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let req = request(CARD_THREE_DS, "10.00", "USD");
    let ChargeOutcome::RequiresAction { processor_ref, .. } = stripe.charge(&req).await.unwrap() else { panic!() };

    stripe.void(&processor_ref).await.unwrap();
    let sent = stub.last();
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, format!("/v1/payment_intents/{processor_ref}/cancel"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));

    // A second cancel finds it already canceled.
    stripe.void(&processor_ref).await.unwrap();

    let status = stripe.sync(req.attempt_id, Some(&processor_ref)).await.unwrap();
    let SyncedStatus::Settled(ChargeOutcome::Declined { processor_ref: found, .. }) = status else {
        panic!("{status:?}")
    };
    assert_eq!(found.as_deref(), Some(processor_ref.as_str()));

    // A succeeded intent cannot be canceled.
    let ChargeOutcome::Succeeded { processor_ref, .. } =
        stripe.charge(&request(CARD_SUCCESS, "1.00", "USD")).await.unwrap()
    else {
        panic!()
    };
    let err = stripe.void(&processor_ref).await.unwrap_err();
    let ConnectorError::Rejected(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("status of succeeded"), "{message}");

    // Something that is not an id never reaches Stripe.
    let before = stub.requests().len();
    for bad in ["", "../v1/refunds", "pi_1?x=1", "pi 1"] {
        let err = stripe.void(bad).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    }
    assert_eq!(stub.requests().len(), before);
}

#[tokio::test]
async fn refunds_post_the_amount_with_the_refund_id_as_idempotency_key() {
    let (stub, url) = Stub::start().await;
    let stripe = stripe(&url);
    let ChargeOutcome::Succeeded { processor_ref, .. } =
        stripe.charge(&request(CARD_SUCCESS, "10.50", "USD")).await.unwrap()
    else {
        panic!()
    };

    let key = Uuid::now_v7();
    let refund = stripe.refund(&processor_ref, dec("5.25"), "USD", key).await.unwrap();
    assert!(refund.processor_ref.starts_with("re_"), "{refund:?}");
    let sent = stub.last();
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/v1/refunds");
    assert_eq!(sent.header("idempotency-key"), Some(key.to_string().as_str()));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));
    assert_eq!(sent.field("payment_intent"), Some(processor_ref.as_str()));
    assert_eq!(sent.field("amount"), Some("525"));

    let err = stripe.refund(&processor_ref, dec("13.13"), "USD", Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    let err = stripe.refund("pi_3PStubMissingLkdIwHu7ix", dec("1.00"), "USD", Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    let before = stub.requests().len();
    let err = stripe.refund(&processor_ref, dec("1.001"), "USD", Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected(_)), "{err:?}");
    assert_eq!(stub.requests().len(), before);
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn signed_webhooks_are_parsed() {
    let stripe = stripe("http://127.0.0.1:9");
    let now = 1_717_000_100;
    let attempt = Uuid::now_v7();

    let body = event("payment_intent.succeeded", webhook_intent(Some(attempt), "succeeded"));
    let parsed = stripe.parse_webhook(&sign(WEBHOOK_SECRET, now - 20, &body), body.as_bytes(), at(now)).unwrap();
    assert_eq!(
        parsed,
        WebhookEvent::Charge {
            attempt_id: Some(attempt),
            processor_ref: "pi_3PStubWebhookLkdIwHu7ix".to_owned(),
            outcome: ChargeOutcome::Succeeded {
                processor_ref: "pi_3PStubWebhookLkdIwHu7ix".to_owned(),
                fee: Decimal::ZERO
            },
        }
    );

    let mut failed = webhook_intent(Some(attempt), "requires_payment_method");
    failed["last_payment_error"] = json!({
        "code": "payment_intent_authentication_failure",
        "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
        "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
        "type": "invalid_request_error"
    });
    let body = event("payment_intent.payment_failed", failed);
    let parsed = stripe.parse_webhook(&sign(WEBHOOK_SECRET, now, &body), body.as_bytes(), at(now)).unwrap();
    let WebhookEvent::Charge { attempt_id, outcome: ChargeOutcome::Declined { processor_ref, code, message }, .. } =
        parsed
    else {
        panic!("{parsed:?}")
    };
    assert_eq!(attempt_id, Some(attempt));
    assert_eq!(processor_ref.as_deref(), Some("pi_3PStubWebhookLkdIwHu7ix"));
    assert_eq!(code, DeclineCode::AuthenticationFailed);
    assert!(message.starts_with("The provided PaymentMethod has failed authentication"), "{message}");

    let mut declined = webhook_intent(None, "requires_payment_method");
    declined["last_payment_error"] = json!({
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "type": "card_error"
    });
    let body = event("payment_intent.payment_failed", declined);
    let parsed = stripe.parse_webhook(&sign(WEBHOOK_SECRET, now, &body), body.as_bytes(), at(now)).unwrap();
    let WebhookEvent::Charge { attempt_id: None, outcome: ChargeOutcome::Declined { code, .. }, .. } = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(code, DeclineCode::InsufficientFunds);

    let body = event("charge.refunded", json!({"id": "ch_3PStub", "object": "charge"}));
    let parsed = stripe.parse_webhook(&sign(WEBHOOK_SECRET, now, &body), body.as_bytes(), at(now)).unwrap();
    assert_eq!(parsed, WebhookEvent::Ignored { kind: "charge.refunded".to_owned() });

    // Several v1 signatures (as during a secret roll) and a v0: any valid v1 is enough.
    let body = event("payment_intent.succeeded", webhook_intent(Some(attempt), "succeeded"));
    let header = format!(
        "t={now},v1={},v1={},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
        signature("whsec_old_secret", now, &body),
        signature(WEBHOOK_SECRET, now, &body)
    );
    assert!(stripe.parse_webhook(&header, body.as_bytes(), at(now)).is_ok());
}

#[tokio::test]
async fn unsigned_or_tampered_webhooks_are_refused() {
    let stripe = stripe("http://127.0.0.1:9");
    let now = 1_717_000_100;
    let body = event("payment_intent.succeeded", webhook_intent(Some(Uuid::now_v7()), "succeeded"));
    let good = sign(WEBHOOK_SECRET, now, &body);

    let tampered = body.replace("1050", "1");
    let stale = sign(WEBHOOK_SECRET, now - 301, &body);
    let future = sign(WEBHOOK_SECRET, now + 301, &body);
    let wrong_secret = sign("whsec_someone_else", now, &body);
    let no_v1 = format!("t={now},v0={}", signature(WEBHOOK_SECRET, now, &body));
    let no_t = format!("v1={}", signature(WEBHOOK_SECRET, now, &body));
    let other_t = format!("t={},v1={}", now - 1, signature(WEBHOOK_SECRET, now, &body));
    let short = format!("t={now},v1={}", &signature(WEBHOOK_SECRET, now, &body)[..32]);
    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("tampered body", &good, tampered.as_bytes()),
        ("stale timestamp", &stale, body.as_bytes()),
        ("future timestamp", &future, body.as_bytes()),
        ("wrong secret", &wrong_secret, body.as_bytes()),
        ("missing v1", &no_v1, body.as_bytes()),
        ("missing t", &no_t, body.as_bytes()),
        ("other timestamp", &other_t, body.as_bytes()),
        ("truncated signature", &short, body.as_bytes()),
        ("garbage", "garbage", body.as_bytes()),
        ("empty", "", body.as_bytes()),
        ("bad hex", "t=1717000100,v1=zz", body.as_bytes()),
        ("bad t", "t=-5,v1=00", body.as_bytes()),
        ("huge t", "t=99999999999999999999999,v1=00", body.as_bytes()),
    ];
    for (name, header, body) in cases {
        let err = stripe.parse_webhook(header, body, at(now)).unwrap_err();
        assert!(matches!(err, ConnectorError::BadSignature), "{name}: {err:?}");
    }

    // Within tolerance either way.
    assert!(stripe.parse_webhook(&sign(WEBHOOK_SECRET, now - 300, &body), body.as_bytes(), at(now)).is_ok());
    assert!(stripe.parse_webhook(&sign(WEBHOOK_SECRET, now + 300, &body), body.as_bytes(), at(now)).is_ok());
}

#[tokio::test]
async fn signed_but_malformed_webhooks_are_malformed() {
    let stripe = stripe("http://127.0.0.1:9");
    let now = 1_717_000_100;
    for body in [
        "{not json".to_owned(),
        r#"{"type":"payment_intent.succeeded"}"#.to_owned(),
        event("payment_intent.succeeded", json!({"id": "ch_1", "object": "charge"})),
        event("payment_intent.succeeded", json!({"object": "payment_intent"})),
    ] {
        let err = stripe.parse_webhook(&sign(WEBHOOK_SECRET, now, &body), body.as_bytes(), at(now)).unwrap_err();
        assert!(matches!(err, ConnectorError::MalformedWebhook(_)), "{body}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and secrecy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_base_url_is_validated() {
    for bad in [
        "",
        "api.stripe.com",
        "ftp://api.stripe.com",
        "https://",
        "https://user:pass@api.stripe.com",
        "https://api.stripe.com/?x=1",
        "not a url",
    ] {
        let err = Stripe::new(config(bad)).unwrap_err();
        assert!(matches!(err, ConnectorError::Rejected(_)), "{bad}: {err:?}");
    }
    for good in
        ["https://api.stripe.com", "https://api.stripe.com/", "http://127.0.0.1:12111", "http://localhost/stripe/"]
    {
        assert!(Stripe::new(config(good)).is_ok(), "{good}");
    }
    let empty_key = StripeConfig { secret_key: SecretString::from(""), ..config("https://api.stripe.com") };
    assert!(Stripe::new(empty_key).is_err());
    let zero = StripeConfig { timeout: Duration::ZERO, ..config("https://api.stripe.com") };
    assert!(Stripe::new(zero).is_err());
    let default = StripeConfig::new(SecretString::from(SECRET_KEY), SecretString::from(WEBHOOK_SECRET));
    assert_eq!(default.base_url, "https://api.stripe.com");
    assert!(Stripe::new(default).is_ok());
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_honoured() {
    let (stub, url) = Stub::start().await;
    stripe(&format!("{url}/")).charge(&request(CARD_SUCCESS, "1.00", "USD")).await.unwrap();
    assert_eq!(stub.last().path, "/v1/payment_intents");

    // The stub serves at its root, so a prefixed path is an unknown URL to it.
    let err = stripe(&format!("{url}/stripe/")).charge(&request(CARD_SUCCESS, "1.00", "USD")).await.unwrap_err();
    assert_eq!(stub.last().path, "/stripe/v1/payment_intents");
    let ConnectorError::Rejected(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("Unrecognized request URL"), "{message}");
    assert_clean(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn nothing_printable_carries_card_numbers_or_secrets() {
    let (stub, url) = Stub::start().await;
    let cfg = config(&url);
    let stripe = Stripe::new(cfg.clone()).unwrap();
    let mut shown = vec![format!("{cfg:?}"), format!("{stripe:?}")];

    for card in [CARD_SUCCESS, CARD_INSUFFICIENT_FUNDS, CARD_GENERIC_DECLINE, CARD_THREE_DS, "4000000000000069"] {
        let req = request(card, "10.00", "USD");
        shown.push(format!("{req:?}"));
        shown.push(format!("{:?}", stripe.charge(&req).await));
    }
    shown.push(format!("{:?}", stripe.charge(&request(CARD_PROCESSING, "10.00", "USD")).await));
    shown.push(format!("{:?}", stripe.charge(&request(CARD_SUCCESS, "10.001", "USD")).await));
    shown.push(format!("{:?}", stripe.charge(&request(CARD_SUCCESS, "10.00", "XYZ")).await));
    stub.force(500, json!({"error": {"type": "api_error", "message": format!("boom {SECRET_KEY}")}}), vec![]);
    shown.push(format!("{:?}", stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await));
    stub.force(
        400,
        json!({"error": {"type": "invalid_request_error", "message": format!("bad {CARD_SUCCESS}")}}),
        vec![],
    );
    let err = stripe.charge(&request(CARD_SUCCESS, "10.00", "USD")).await.unwrap_err();
    shown.push(format!("{err} {err:?}"));
    shown.push(format!("{:?}", stripe.parse_webhook("t=1,v1=00", b"{}", Utc::now())));

    for text in &shown {
        assert_clean(text);
    }
    assert!(shown.iter().any(|t| t.contains("StripeConfig")));
}
