//! Stripe, over its PaymentIntents REST API: form-encoded requests, bearer authentication with
//! the account's secret key, `Idempotency-Key` on every create, JSON answers.
//!
//! - A charge is one `POST /v1/payment_intents` with `confirm=true` and automatic capture. The
//!   attempt id is the idempotency key and is stored as `metadata[cobro_attempt]`, so a repeated
//!   call replays Stripe's first answer and [`Connector::sync`] can find an intent whose answer
//!   Cobro never recorded.
//! - Amounts travel in Stripe's integer minor units. Stripe follows ISO 4217 except for a few
//!   currencies (see [`stripe_exponent`]); amounts with more decimals than Stripe accepts are
//!   refused, never rounded.
//! - Card numbers and the secret key never appear in errors, logs or `Debug` output: every
//!   message taken from Stripe is scrubbed of them before it leaves this module.
//! - Webhooks are verified with Stripe's `Stripe-Signature` scheme (HMAC-SHA256 over
//!   `"<t>.<body>"`, five minutes of tolerance).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cobro_kit::money::Currency;
use hmac::{Hmac, Mac};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    ChargeOutcome, ChargeRequest, Connector, ConnectorError, DeclineCode, RefundOutcome, SyncedStatus, WebhookEvent,
};

/// Where Stripe's API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// How long one call may take, connection included, unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The API version every request pins, so the account's default version cannot change the shape
/// of the answers this module reads (`latest_charge`, `next_action.redirect_to_url`, search).
pub const API_VERSION: &str = "2024-06-20";

/// How far a webhook's signed timestamp may be from now, either way, in seconds.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Stripe documents that new intents usually become searchable within a minute, and up to an
/// hour late during incidents. An empty search for an attempt younger than this proves nothing.
const SEARCH_LAG: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Answers larger than this are not Stripe's and are not read.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Longest message taken from Stripe into an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Longest `Stripe-Signature` header considered.
const MAX_SIGNATURE_HEADER: usize = 4096;

const REDACTED: &str = "[redacted]";

/// How Cobro reaches one Stripe account.
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com` in production; a plain `http://` URL is accepted for local stubs.
    pub base_url: String,
    /// The account's secret (`sk_…`) or restricted (`rk_…`) key.
    pub secret_key: SecretString,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: SecretString,
    /// Upper bound on one call, from connecting to reading the whole answer.
    pub timeout: Duration,
}

impl StripeConfig {
    /// Stripe's production API with the default timeout.
    pub fn new(secret_key: SecretString, webhook_secret: SecretString) -> StripeConfig {
        StripeConfig { base_url: DEFAULT_BASE_URL.to_owned(), secret_key, webhook_secret, timeout: DEFAULT_TIMEOUT }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("base_url", &self.base_url)
            .field("secret_key", &REDACTED)
            .field("webhook_secret", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The Stripe connector. Cheap to share: one HTTP client (and its connection pool) is built in
/// [`Stripe::new`] and reused for every call.
pub struct Stripe {
    /// `scheme://authority[/prefix]`, without a trailing slash.
    base_url: String,
    /// `Bearer <secret key>`, marked sensitive so `http` never prints it.
    authorization: HeaderValue,
    secret_key: SecretString,
    webhook_secret: SecretString,
    timeout: Duration,
    client: HttpClient,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .field("secret_key", &REDACTED)
            .field("webhook_secret", &REDACTED)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    /// A connector for `config`. Refuses a base URL that is not an absolute `http`/`https` URL
    /// (or that carries credentials or a query), empty secrets and a zero timeout.
    pub fn new(config: StripeConfig) -> Result<Stripe, ConnectorError> {
        let base_url = parse_base_url(&config.base_url)?;
        if config.secret_key.expose_secret().is_empty() {
            return Err(ConnectorError::Rejected("the Stripe secret key is empty".to_owned()));
        }
        if config.webhook_secret.expose_secret().is_empty() {
            return Err(ConnectorError::Rejected("the Stripe webhook secret is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ConnectorError::Rejected("the Stripe timeout must be positive".to_owned()));
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.secret_key.expose_secret()))
            .map_err(|_| {
                ConnectorError::Rejected("the Stripe secret key contains characters a header cannot carry".to_owned())
            })?;
        authorization.set_sensitive(true);

        let https = HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(https);
        Ok(Stripe {
            base_url,
            authorization,
            secret_key: config.secret_key,
            webhook_secret: config.webhook_secret,
            timeout: config.timeout,
            client,
        })
    }

    /// One call to Stripe. `Ok` carries Stripe's answer, successful or not; `Err` means no answer
    /// arrived (connection failure, timeout, unreadable body).
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        form: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, ConnectorError> {
        let uri: Uri = format!("{}{path_and_query}", self.base_url)
            .parse()
            .map_err(|_| ConnectorError::Rejected("the Stripe request URL is invalid".to_owned()))?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("cobro-payments/", env!("CARGO_PKG_VERSION")))
            .header("Stripe-Version", API_VERSION);
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|_| ConnectorError::Rejected("the Stripe request could not be built".to_owned()))?;

        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                ConnectorError::Unavailable(format!("Stripe could not be reached: {}", error_chain(&e)))
            })?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ConnectorError::Unavailable(format!("Stripe's answer could not be read: {e}")))?
                .to_bytes();
            Ok::<_, ConnectorError>((parts.status, parts.headers, bytes))
        };
        let (status, headers, bytes) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(%method, path = path_only(path_and_query), timeout = ?self.timeout, "Stripe timed out");
                return Err(ConnectorError::Unavailable(format!(
                    "Stripe did not answer within {} ms",
                    self.timeout.as_millis()
                )));
            }
        };
        let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::debug!(%method, path = path_only(path_and_query), status = status.as_u16(), request_id, "Stripe answered");
        if status.is_success() {
            return Ok(Reply::Success(bytes));
        }
        let error = serde_json::from_slice::<ErrorEnvelope>(&bytes).map(|e| e.error).unwrap_or_default();
        tracing::info!(
            %method,
            path = path_only(path_and_query),
            status = status.as_u16(),
            request_id,
            error_type = error.kind.as_deref().unwrap_or(""),
            error_code = error.code.as_deref().unwrap_or(""),
            "Stripe refused a request"
        );
        Ok(Reply::Failure(Failure { status, should_retry: should_retry(&headers), error }))
    }

    /// What a failed answer means when it is not a card decline: Stripe's outages and rate limits
    /// leave the outcome unknown; anything else is Stripe refusing the request.
    fn failure_error(&self, failure: &Failure, pan: Option<&str>) -> ConnectorError {
        let status = failure.status;
        let code = failure.error.code.as_deref().unwrap_or("");
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || code == "lock_timeout"
            || (status == StatusCode::CONFLICT && failure.should_retry == Some(true));
        if transient {
            return ConnectorError::Unavailable(format!("Stripe answered HTTP {}", status.as_u16()));
        }
        ConnectorError::Rejected(self.failure_message(failure, pan))
    }

    /// `"<Stripe's message> (<code>, HTTP <status>)"`, scrubbed of secrets and card data.
    fn failure_message(&self, failure: &Failure, pan: Option<&str>) -> String {
        let message = failure.error.message.as_deref().unwrap_or("no message");
        let kind = failure.error.code.as_deref().or(failure.error.kind.as_deref()).unwrap_or("error");
        self.scrub(&format!("{message} ({kind}, HTTP {})", failure.status.as_u16()), pan)
    }

    /// Remove the secrets, the card number and anything that looks like one, then bound the
    /// length. Applied to every text that comes from Stripe.
    fn scrub(&self, text: &str, pan: Option<&str>) -> String {
        let mut out = text.to_owned();
        for secret in [Some(self.secret_key.expose_secret()), Some(self.webhook_secret.expose_secret()), pan]
            .into_iter()
            .flatten()
        {
            if !secret.is_empty() && out.contains(secret) {
                out = out.replace(secret, REDACTED);
            }
        }
        let out = redact_digit_runs(&out);
        truncate_chars(&out, MAX_MESSAGE_CHARS)
    }

    fn parse<T: DeserializeOwned>(&self, bytes: &Bytes, pan: Option<&str>) -> Result<T, ConnectorError> {
        serde_json::from_slice(bytes).map_err(|e| {
            ConnectorError::Unavailable(self.scrub(&format!("Stripe's answer could not be understood: {e}"), pan))
        })
    }

    /// The processor's fee for a succeeded intent, in the charge's currency. Zero when Stripe did
    /// not include the expanded balance transaction (webhooks never do), or when the fee was taken
    /// in another (settlement) currency: settlement reconciliation accounts for those.
    fn fee(&self, intent: &PaymentIntent) -> Decimal {
        let Some(Expandable::Object(charge)) = &intent.latest_charge else {
            return Decimal::ZERO;
        };
        let Some(Expandable::Object(txn)) = &charge.balance_transaction else {
            return Decimal::ZERO;
        };
        if !txn.currency.eq_ignore_ascii_case(&intent.currency) {
            tracing::warn!(
                intent = %intent.id,
                charge_currency = %intent.currency,
                fee_currency = %txn.currency,
                "Stripe took its fee in another currency; reporting no fee for the charge"
            );
            return Decimal::ZERO;
        }
        match from_minor(txn.fee, &intent.currency) {
            Ok(fee) => fee,
            Err(_) => {
                tracing::warn!(intent = %intent.id, currency = %intent.currency, "unknown fee currency");
                Decimal::ZERO
            }
        }
    }

    /// A declined outcome from an intent's `last_payment_error` (or its cancellation).
    fn declined(&self, intent: &PaymentIntent, pan: Option<&str>) -> ChargeOutcome {
        let (code, message) = match &intent.last_payment_error {
            Some(error) => {
                (decline_code(error), error.message.clone().unwrap_or_else(|| "the card was declined".to_owned()))
            }
            None if intent.status == "canceled" => (
                DeclineCode::Other,
                match &intent.cancellation_reason {
                    Some(reason) => format!("the payment was canceled ({reason})"),
                    None => "the payment was canceled".to_owned(),
                },
            ),
            None => (DeclineCode::Other, "the payment failed".to_owned()),
        };
        ChargeOutcome::Declined { processor_ref: Some(intent.id.clone()), code, message: self.scrub(&message, pan) }
    }

    /// What a confirmed intent's status means for the charge.
    fn charge_outcome(&self, intent: &PaymentIntent, pan: &str) -> Result<ChargeOutcome, ConnectorError> {
        match intent.status.as_str() {
            "succeeded" => Ok(ChargeOutcome::Succeeded { processor_ref: intent.id.clone(), fee: self.fee(intent) }),
            "requires_action" => {
                let redirect = intent
                    .next_action
                    .as_ref()
                    .and_then(|a| a.redirect_to_url.as_ref())
                    .and_then(|r| r.url.clone())
                    .filter(|url| !url.is_empty());
                match redirect {
                    Some(redirect_url) => {
                        Ok(ChargeOutcome::RequiresAction { processor_ref: intent.id.clone(), redirect_url })
                    }
                    // Only a redirect can be handed to the payer; any other action (one meant for
                    // Stripe.js) cannot be completed from here.
                    None => Ok(ChargeOutcome::Declined {
                        processor_ref: Some(intent.id.clone()),
                        code: DeclineCode::AuthenticationFailed,
                        message: format!(
                            "Stripe asked for an action Cobro cannot hand to the payer ({})",
                            self.scrub(
                                intent.next_action.as_ref().and_then(|a| a.kind.as_deref()).unwrap_or("unknown"),
                                Some(pan)
                            )
                        ),
                    }),
                }
            }
            "requires_payment_method" | "canceled" => Ok(self.declined(intent, Some(pan))),
            // The card network has not answered yet. There is no pending charge outcome, and the
            // result is unknown, which is what Unavailable means to the caller: keep the attempt
            // open and sync (or wait for the webhook) before deciding.
            "processing" => Err(ConnectorError::Unavailable("processing".to_owned())),
            other => Err(ConnectorError::Unavailable(format!(
                "Stripe left the payment in state {}",
                self.scrub(other, Some(pan))
            ))),
        }
    }

    /// What an intent's status says, for [`Connector::sync`].
    fn synced(&self, intent: &PaymentIntent) -> SyncedStatus {
        match intent.status.as_str() {
            "succeeded" => SyncedStatus::Settled(ChargeOutcome::Succeeded {
                processor_ref: intent.id.clone(),
                fee: self.fee(intent),
            }),
            "canceled" => SyncedStatus::Settled(self.declined(intent, None)),
            "requires_payment_method" if intent.last_payment_error.is_some() => {
                SyncedStatus::Settled(self.declined(intent, None))
            }
            // requires_action, requires_confirmation, processing, requires_capture, and an intent
            // that never had a payment method: still open on Stripe's side.
            _ => SyncedStatus::Pending { processor_ref: intent.id.clone() },
        }
    }
}

impl Connector for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        let pan = req.card.pan.expose_secret();
        let amount = to_minor(req.amount, &req.currency)?;
        if amount <= 0 {
            return Err(ConnectorError::Rejected("a charge amount must be positive".to_owned()));
        }
        let attempt = req.attempt_id.to_string();
        let mut form = Form::default();
        form.field("amount", &amount.to_string())
            .field("currency", &req.currency.to_ascii_lowercase())
            .field("confirm", "true")
            .field("capture_method", "automatic")
            .field("payment_method_types[]", "card")
            .field("payment_method_data[type]", "card")
            .field("payment_method_data[card][number]", pan)
            .field("payment_method_data[card][exp_month]", &req.card.exp_month.to_string())
            .field("payment_method_data[card][exp_year]", &req.card.exp_year.to_string());
        if !req.card.holder_name.is_empty() {
            form.field("payment_method_data[billing_details][name]", &req.card.holder_name);
        }
        if !req.return_url.is_empty() {
            form.field("return_url", &req.return_url);
        }
        if !req.description.is_empty() {
            form.field("description", &req.description);
        }
        form.field("metadata[cobro_attempt]", &attempt)
            .field("metadata[cobro_tenant]", &req.tenant_id.to_string())
            .field("expand[]", "latest_charge.balance_transaction");

        let reply = self.call(Method::POST, "/v1/payment_intents", Some(form.finish()), Some(&attempt)).await?;
        let failure = match reply {
            Reply::Success(bytes) => {
                let intent: PaymentIntent = self.parse(&bytes, Some(pan))?;
                return self.charge_outcome(&intent, pan);
            }
            Reply::Failure(failure) => failure,
        };
        if failure.error.kind.as_deref() == Some("card_error") && failure.status.is_client_error() {
            let error = &failure.error;
            return Ok(ChargeOutcome::Declined {
                processor_ref: error.payment_intent.as_ref().map(|pi| pi.id.clone()),
                code: decline_code(error),
                message: self.scrub(error.message.as_deref().unwrap_or("the card was declined"), Some(pan)),
            });
        }
        Err(self.failure_error(&failure, Some(pan)))
    }

    async fn void(&self, processor_ref: &str) -> Result<(), ConnectorError> {
        let id = intent_id(processor_ref)?;
        // No idempotency key: Stripe would replay a stored server error for a day. Cancelling twice
        // is harmless, and the second answer is recognised below.
        let path = format!("/v1/payment_intents/{id}/cancel");
        match self.call(Method::POST, &path, Some(String::new()), None).await? {
            Reply::Success(_) => Ok(()),
            Reply::Failure(failure)
                if failure.error.payment_intent.as_ref().and_then(|pi| pi.status.as_deref()) == Some("canceled") =>
            {
                Ok(())
            }
            Reply::Failure(failure) => Err(self.failure_error(&failure, None)),
        }
    }

    async fn refund(
        &self,
        processor_ref: &str,
        amount: Decimal,
        currency: &str,
        idempotency_key: Uuid,
    ) -> Result<RefundOutcome, ConnectorError> {
        let id = intent_id(processor_ref)?;
        let minor = to_minor(amount, currency)?;
        if minor <= 0 {
            return Err(ConnectorError::Rejected("a refund amount must be positive".to_owned()));
        }
        let key = idempotency_key.to_string();
        let mut form = Form::default();
        form.field("payment_intent", id).field("amount", &minor.to_string()).field("metadata[cobro_refund]", &key);
        match self.call(Method::POST, "/v1/refunds", Some(form.finish()), Some(&key)).await? {
            Reply::Success(bytes) => {
                let refund: Refund = self.parse(&bytes, None)?;
                match refund.status.as_deref() {
                    Some("failed") | Some("canceled") => Err(ConnectorError::Rejected(self.scrub(
                        &format!(
                            "Stripe could not refund the payment ({})",
                            refund.failure_reason.as_deref().unwrap_or("no reason given")
                        ),
                        None,
                    ))),
                    // succeeded, pending, or requires_action (never for cards): the refund exists.
                    _ => Ok(RefundOutcome { processor_ref: refund.id }),
                }
            }
            Reply::Failure(failure) => Err(self.failure_error(&failure, None)),
        }
    }

    /// With a reference, reads the intent itself. Without one, asks Stripe's search for the
    /// intent tagged with the attempt id. Search is eventually consistent, so an empty result for
    /// an attempt whose (UUIDv7) id is less than an hour old is reported as
    /// [`ConnectorError::Unavailable`] rather than [`SyncedStatus::NotFound`]: the intent may exist
    /// and not be searchable yet. Retrying the charge with the same attempt id stays safe either
    /// way, since Stripe replays the original answer for the same idempotency key.
    async fn sync(&self, attempt_id: Uuid, processor_ref: Option<&str>) -> Result<SyncedStatus, ConnectorError> {
        let attempt = attempt_id.to_string();
        let intent = match processor_ref {
            Some(processor_ref) => {
                let id = intent_id(processor_ref)?;
                let path = format!("/v1/payment_intents/{id}?expand%5B%5D=latest_charge.balance_transaction");
                match self.call(Method::GET, &path, None, None).await? {
                    Reply::Success(bytes) => self.parse::<PaymentIntent>(&bytes, None)?,
                    Reply::Failure(failure) if failure.status == StatusCode::NOT_FOUND => {
                        return Ok(SyncedStatus::NotFound);
                    }
                    Reply::Failure(failure) => return Err(self.failure_error(&failure, None)),
                }
            }
            None => {
                let mut query = Form::default();
                query
                    .field("query", &format!("metadata['cobro_attempt']:'{attempt}'"))
                    .field("limit", "1")
                    .field("expand[]", "data.latest_charge.balance_transaction");
                let path = format!("/v1/payment_intents/search?{}", query.finish());
                let found = match self.call(Method::GET, &path, None, None).await? {
                    Reply::Success(bytes) => self.parse::<SearchResult>(&bytes, None)?,
                    Reply::Failure(failure) => return Err(self.failure_error(&failure, None)),
                };
                match found.data.into_iter().next() {
                    Some(intent) => intent,
                    None if recently_created(attempt_id, Utc::now()) => {
                        return Err(ConnectorError::Unavailable(
                            "Stripe's search does not show the attempt yet; it may not be indexed".to_owned(),
                        ));
                    }
                    None => return Ok(SyncedStatus::NotFound),
                }
            }
        };
        if let Some(tagged) = intent.metadata.as_ref().and_then(|m| m.get("cobro_attempt"))
            && tagged != &attempt
        {
            return Err(ConnectorError::Rejected(format!(
                "Stripe's PaymentIntent {} belongs to another attempt",
                intent.id
            )));
        }
        Ok(self.synced(&intent))
    }

    fn parse_webhook(&self, signature: &str, body: &[u8], now: DateTime<Utc>) -> Result<WebhookEvent, ConnectorError> {
        verify_signature(self.webhook_secret.expose_secret().as_bytes(), signature, body, now)?;
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| ConnectorError::MalformedWebhook(self.scrub(&e.to_string(), None)))?;
        let succeeded = match event.kind.as_str() {
            "payment_intent.succeeded" => true,
            "payment_intent.payment_failed" => false,
            _ => return Ok(WebhookEvent::Ignored { kind: event.kind }),
        };
        if event.data.object.get("object").and_then(|o| o.as_str()) != Some("payment_intent") {
            return Err(ConnectorError::MalformedWebhook(format!("a {} event without a PaymentIntent", event.kind)));
        }
        let intent: PaymentIntent = serde_json::from_value(event.data.object)
            .map_err(|e| ConnectorError::MalformedWebhook(self.scrub(&e.to_string(), None)))?;
        let attempt_id =
            intent.metadata.as_ref().and_then(|m| m.get("cobro_attempt")).and_then(|s| Uuid::parse_str(s).ok());
        let outcome = if succeeded {
            ChargeOutcome::Succeeded { processor_ref: intent.id.clone(), fee: self.fee(&intent) }
        } else {
            self.declined(&intent, None)
        };
        Ok(WebhookEvent::Charge { attempt_id, processor_ref: intent.id, outcome })
    }
}

/// Stripe's answer to one call.
enum Reply {
    Success(Bytes),
    Failure(Failure),
}

struct Failure {
    status: StatusCode,
    /// Stripe's `Stripe-Should-Retry` header, when present.
    should_retry: Option<bool>,
    error: ApiError,
}

fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("stripe-should-retry")?.to_str().ok()? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

/// Stripe's error object, both in error answers and as an intent's `last_payment_error`.
#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    payment_intent: Option<IntentRef>,
}

#[derive(Deserialize)]
struct IntentRef {
    id: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    currency: String,
    next_action: Option<NextAction>,
    last_payment_error: Option<ApiError>,
    latest_charge: Option<Expandable<Charge>>,
    metadata: Option<HashMap<String, String>>,
    cancellation_reason: Option<String>,
}

#[derive(Deserialize)]
struct NextAction {
    #[serde(rename = "type")]
    kind: Option<String>,
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Deserialize)]
struct RedirectToUrl {
    url: Option<String>,
}

/// A field Stripe returns as an id unless the request asked to expand it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expandable<T> {
    Object(T),
    #[allow(dead_code)]
    Id(String),
}

#[derive(Deserialize)]
struct Charge {
    balance_transaction: Option<Expandable<BalanceTransaction>>,
}

#[derive(Deserialize)]
struct BalanceTransaction {
    fee: i64,
    currency: String,
}

#[derive(Deserialize)]
struct SearchResult {
    data: Vec<PaymentIntent>,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    status: Option<String>,
    failure_reason: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// Stripe's decline code, else its error code. A failed 3-D Secure challenge is reported as
/// `payment_intent_authentication_failure`.
fn decline_code(error: &ApiError) -> DeclineCode {
    match error.decline_code.as_deref().or(error.code.as_deref()) {
        Some("payment_intent_authentication_failure") => DeclineCode::AuthenticationFailed,
        Some(code) => DeclineCode::parse(code),
        None => DeclineCode::Other,
    }
}

/// A PaymentIntent id as it may appear in a path: Stripe ids are ASCII letters, digits and
/// underscores.
fn intent_id(processor_ref: &str) -> Result<&str, ConnectorError> {
    let valid = !processor_ref.is_empty()
        && processor_ref.len() <= 255
        && processor_ref.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid { Ok(processor_ref) } else { Err(ConnectorError::Rejected("not a Stripe PaymentIntent id".to_owned())) }
}

/// Whether `attempt_id` is a UUIDv7 minted less than [`SEARCH_LAG`] before `now`.
fn recently_created(attempt_id: Uuid, now: DateTime<Utc>) -> bool {
    if attempt_id.get_version() != Some(uuid::Version::SortRand) {
        return false;
    }
    let Some(timestamp) = attempt_id.get_timestamp() else {
        return false;
    };
    let (secs, nanos) = timestamp.to_unix();
    let Some(created) = i64::try_from(secs).ok().and_then(|secs| DateTime::from_timestamp(secs, nanos)) else {
        return false;
    };
    now.signed_duration_since(created) < SEARCH_LAG
}

/// Decimals Stripe's API uses for `currency` (ISO 4217 upper case), and the granularity it
/// requires of amounts in those units.
///
/// Stripe follows ISO 4217 except: ISK is still two-decimal in the API (whole krónur only, so
/// multiples of 100); MGA is zero-decimal; and the three-decimal currencies take amounts whose
/// last digit is 0.
fn stripe_exponent(currency: &str) -> Result<(u32, i64), ConnectorError> {
    let iso = Currency::from_code(currency)
        .map_err(|_| ConnectorError::Rejected("the currency is not an ISO 4217 code Stripe can charge".to_owned()))?;
    Ok(match iso.code() {
        "ISK" => (2, 100),
        "MGA" => (0, 1),
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => (3, 10),
        _ => (iso.minor_units(), 1),
    })
}

/// `amount` in Stripe's integer minor units: 10.50 USD is 1050, 1000 JPY is 1000. Amounts with
/// more decimals than Stripe takes in `currency` are refused, not rounded.
fn to_minor(amount: Decimal, currency: &str) -> Result<i64, ConnectorError> {
    let (exponent, step) = stripe_exponent(currency)?;
    let too_precise = || {
        ConnectorError::Rejected(match exponent {
            0 => format!("Stripe takes whole amounts in {currency}"),
            n => format!("Stripe takes at most {n} decimal places in {currency}"),
        })
    };
    let scale = Decimal::from(10_i64.pow(exponent));
    let minor = amount
        .checked_mul(scale)
        .ok_or_else(|| ConnectorError::Rejected("the amount is too large".to_owned()))?
        .normalize();
    if minor.scale() != 0 {
        return Err(too_precise());
    }
    let minor =
        i64::try_from(minor.mantissa()).map_err(|_| ConnectorError::Rejected("the amount is too large".to_owned()))?;
    if minor % step != 0 {
        return Err(ConnectorError::Rejected(match currency {
            "ISK" => "Stripe takes whole amounts in ISK".to_owned(),
            _ => format!("Stripe takes {currency} amounts whose last decimal is 0"),
        }));
    }
    Ok(minor)
}

/// The inverse of [`to_minor`], with the currency's ISO scale where it can carry the value.
fn from_minor(minor: i64, currency: &str) -> Result<Decimal, ConnectorError> {
    let upper = currency.to_ascii_uppercase();
    let (exponent, _) = stripe_exponent(&upper)?;
    let mut amount = Decimal::new(minor, exponent);
    if let Ok(iso) = Currency::from_code(&upper) {
        let normalized = amount.normalize();
        if normalized.scale() <= iso.minor_units() {
            amount = normalized;
            amount.rescale(iso.minor_units());
        }
    }
    Ok(amount)
}

/// Verify a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=<hex>…]`) against the raw body:
/// some v1 signature must equal HMAC-SHA256(secret, "<t>.<body>"), and `t` must be within
/// [`WEBHOOK_TOLERANCE_SECS`] of `now`. v0 and unknown schemes are ignored.
fn verify_signature(secret: &[u8], header: &str, body: &[u8], now: DateTime<Utc>) -> Result<(), ConnectorError> {
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(ConnectorError::BadSignature);
    }
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" if timestamp.is_none() => timestamp = Some(value.trim()),
            "v1" => {
                if let Ok(bytes) = hex::decode(value.trim()) {
                    candidates.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(ConnectorError::BadSignature)?;
    if candidates.is_empty() || timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConnectorError::BadSignature);
    }
    let signed_at: i64 = timestamp.parse().map_err(|_| ConnectorError::BadSignature)?;
    let age = i128::from(now.timestamp()) - i128::from(signed_at);
    if age.abs() > i128::from(WEBHOOK_TOLERANCE_SECS) {
        return Err(ConnectorError::BadSignature);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| ConnectorError::BadSignature)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    let mut matched = subtle::Choice::from(0);
    for candidate in &candidates {
        if candidate.len() == expected.len() {
            matched |= candidate.as_slice().ct_eq(&expected);
        }
    }
    if bool::from(matched) { Ok(()) } else { Err(ConnectorError::BadSignature) }
}

/// An `application/x-www-form-urlencoded` body or query string, built field by field.
#[derive(Default)]
struct Form {
    buf: String,
}

impl Form {
    fn field(&mut self, key: &str, value: &str) -> &mut Form {
        if !self.buf.is_empty() {
            self.buf.push('&');
        }
        form_encode(&mut self.buf, key);
        self.buf.push('=');
        form_encode(&mut self.buf, value);
        self
    }

    fn finish(self) -> String {
        self.buf
    }
}

/// Percent-encode per the URL standard's application/x-www-form-urlencoded serializer: ASCII
/// alphanumerics and `*-._` stay, space becomes `+`, every other byte of the UTF-8 text is `%XX`.
fn form_encode(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
}

/// Validate and normalize the configured base URL to `scheme://authority[/prefix]`.
fn parse_base_url(raw: &str) -> Result<String, ConnectorError> {
    let invalid = || {
        ConnectorError::Rejected(
            "the Stripe base URL must be an absolute http:// or https:// URL without credentials or query".to_owned(),
        )
    };
    let uri: Uri = raw.trim().parse().map_err(|_| invalid())?;
    let scheme = uri.scheme_str().ok_or_else(invalid)?;
    if scheme != "https" && scheme != "http" {
        return Err(invalid());
    }
    let authority = uri.authority().ok_or_else(invalid)?;
    if authority.as_str().contains('@') || authority.host().is_empty() || uri.query().is_some() {
        return Err(invalid());
    }
    if scheme == "http" && !matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]" | "::1") {
        tracing::warn!(host = authority.host(), "Stripe is configured over plain HTTP; use it only for local stubs");
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// A path without its query, for logs.
fn path_only(path_and_query: &str) -> &str {
    path_and_query.split_once('?').map_or(path_and_query, |(path, _)| path)
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Replace runs of 12 or more digits (possibly split by spaces or dashes, as card numbers are
/// written) with a marker.
fn redact_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if !c.is_ascii_digit() {
            out.push(c);
            i += 1;
            continue;
        }
        // Extend over digits and single separators between digits.
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while let Some(&d) = chars.get(j) {
            if d.is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (d == ' ' || d == '-') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= 12 {
            out.push_str(REDACTED);
        } else {
            out.extend(chars.get(i..end).unwrap_or_default());
        }
        i = end;
    }
    out
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_the_url_standard() {
        let mut form = Form::default();
        form.field("metadata[cobro_attempt]", "a b&c=d").field("x", "ñ*~-._/");
        assert_eq!(form.finish(), "metadata%5Bcobro_attempt%5D=a+b%26c%3Dd&x=%C3%B1*%7E-._%2F");
    }

    #[test]
    fn minor_units_follow_stripe() {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
        assert_eq!(to_minor(d("10.50"), "USD").ok(), Some(1050));
        assert_eq!(to_minor(d("10.5"), "USD").ok(), Some(1050));
        assert_eq!(to_minor(d("1000"), "JPY").ok(), Some(1000));
        assert_eq!(to_minor(d("1000.00"), "JPY").ok(), Some(1000));
        assert!(to_minor(d("1000.5"), "JPY").is_err());
        assert!(to_minor(d("1.005"), "USD").is_err());
        assert_eq!(to_minor(d("5"), "ISK").ok(), Some(500));
        assert!(to_minor(d("5.5"), "ISK").is_err());
        assert_eq!(to_minor(d("5.12"), "KWD").ok(), Some(5120));
        assert!(to_minor(d("5.124"), "KWD").is_err());
        assert_eq!(to_minor(d("7"), "MGA").ok(), Some(7));
        assert!(to_minor(d("7.5"), "MGA").is_err());
        assert!(to_minor(d("1"), "usd").is_err());
        assert!(to_minor(d("1"), "XXX").is_err());
        assert!(to_minor(Decimal::MAX, "USD").is_err());
        assert_eq!(from_minor(1050, "usd").ok(), Some(d("10.50")));
        assert_eq!(from_minor(59, "jpy").ok(), Some(d("59")));
        assert_eq!(from_minor(500, "isk").ok(), Some(d("5")));
    }

    #[test]
    fn digit_runs_are_redacted() {
        assert_eq!(redact_digit_runs("card 4242 4242 4242 4242 declined"), "card [redacted] declined");
        assert_eq!(redact_digit_runs("4000000000009995"), "[redacted]");
        assert_eq!(redact_digit_runs("amount 1050 in 2024-06-20"), "amount 1050 in 2024-06-20");
        assert_eq!(truncate_chars("ñññ", 2), "ññ…");
    }

    #[test]
    fn uuid_v7_age_decides_search_trust() {
        let now = Utc::now();
        assert!(recently_created(Uuid::now_v7(), now));
        assert!(!recently_created(Uuid::new_v4(), now));
        assert!(!recently_created(Uuid::now_v7(), now + chrono::TimeDelta::hours(2)));
    }
}
