//! WhatsApp through Meta's Cloud API: `POST /{version}/{phone_number_id}/messages` with a bearer
//! token and a JSON text message; the answer carries the message id (`wamid…`), errors are
//! `{error: {message, type, code}}`.
//!
//! Meta only delivers free-form text inside the 24-hour window a customer opens by writing;
//! outside it the API refuses (code 131047) and only approved templates go through. That refusal
//! is permanent for this message.

use std::fmt;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Uri};
use hyper::body::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::client::{HttpClient, key_header, parse_base_url, sensitive_header, status_error, status_is_transient};
use super::{Channel, ChannelError, Delivery, Outgoing, REDACTED, check_phone, mask_phone, redact};

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The Graph API version every request pins, so the app's default cannot change the answers.
pub const API_VERSION: &str = "v21.0";

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest text body the Cloud API accepts.
const MAX_BODY_CHARS: usize = 4096;

/// Graph API error codes that mean "later" even when the HTTP status is 400: throttling
/// (4, 80007, 130429, 131048, 131056) and Meta-side trouble (1, 2, 131000, 131016, 133004).
const TRANSIENT_CODES: [i64; 10] = [1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004];

#[derive(Clone)]
pub struct WhatsAppConfig {
    /// `https://graph.facebook.com` in production; plain `http://` is accepted for local stubs.
    pub base_url: String,
    /// The WhatsApp Business phone number's id (not the number itself).
    pub phone_number_id: String,
    /// A system-user access token.
    pub access_token: SecretString,
    pub timeout: Duration,
}

impl WhatsAppConfig {
    pub fn new(phone_number_id: impl Into<String>, access_token: SecretString) -> WhatsAppConfig {
        WhatsAppConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            phone_number_id: phone_number_id.into(),
            access_token,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("base_url", &self.base_url)
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct WhatsAppCloud {
    client: HttpClient,
    endpoint: Uri,
    authorization: HeaderValue,
    access_token: SecretString,
    timeout: Duration,
}

impl fmt::Debug for WhatsAppCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppCloud")
            .field("endpoint", &self.endpoint)
            .field("access_token", &REDACTED)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WhatsAppCloud {
    /// Refuses an invalid base URL, a phone number id that is not numeric, an empty token and a
    /// zero timeout.
    pub fn new(client: HttpClient, config: WhatsAppConfig) -> Result<WhatsAppCloud, ChannelError> {
        let base_url = parse_base_url("WhatsApp", &config.base_url)?;
        let id = config.phone_number_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ChannelError::Permanent("the WhatsApp phone number id must be numeric".to_owned()));
        }
        let token = config.access_token.expose_secret();
        if token.is_empty() {
            return Err(ChannelError::Permanent("the WhatsApp access token is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ChannelError::Permanent("the WhatsApp timeout must be positive".to_owned()));
        }
        let endpoint: Uri = format!("{base_url}/{API_VERSION}/{id}/messages")
            .parse()
            .map_err(|_| ChannelError::Permanent("the WhatsApp endpoint URL is invalid".to_owned()))?;
        let authorization = sensitive_header("WhatsApp", &format!("Bearer {token}"))?;
        Ok(WhatsAppCloud {
            client,
            endpoint,
            authorization,
            access_token: config.access_token,
            timeout: config.timeout,
        })
    }
}

#[derive(Deserialize)]
struct SendAnswer {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize, Default)]
struct ErrorEnvelope {
    #[serde(default)]
    error: GraphError,
}

#[derive(Deserialize, Default)]
struct GraphError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<i64>,
}

impl Channel for WhatsAppCloud {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, ChannelError> {
        let to = check_phone(&message.to).map_err(|reason| {
            ChannelError::Permanent(format!("invalid phone number {}: {reason}", mask_phone(&message.to)))
        })?;
        if message.sms.trim().is_empty() {
            return Err(ChannelError::Permanent("the WhatsApp message body is empty".to_owned()));
        }
        if message.sms.chars().count() > MAX_BODY_CHARS {
            return Err(ChannelError::Permanent("the WhatsApp message body is longer than 4096 characters".to_owned()));
        }
        // The Cloud API takes the number without the `+`.
        let digits = to.trim_start_matches('+');
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": digits,
            "type": "text",
            "text": { "preview_url": false, "body": message.sms },
        });
        let body = serde_json::to_vec(&body)
            .map_err(|_| ChannelError::Permanent("the WhatsApp request could not be encoded".to_owned()))?;
        let headers = vec![
            (AUTHORIZATION, self.authorization.clone()),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (HeaderName::from_static("idempotency-key"), key_header(&message.idempotency_key)?),
        ];
        let secrets = [self.access_token.expose_secret()];
        let answer = self
            .client
            .post("WhatsApp", self.endpoint.clone(), headers, Bytes::from(body), self.timeout, &secrets)
            .await?;

        if answer.status.is_success() {
            let sent: Option<SentMessage> =
                serde_json::from_slice::<SendAnswer>(&answer.body).ok().and_then(|a| a.messages.into_iter().next());
            let Some(sent) = sent else {
                return Err(ChannelError::Transient(format!(
                    "WhatsApp answered HTTP {} without a message id",
                    answer.status.as_u16()
                )));
            };
            tracing::debug!(key = %message.idempotency_key, id = %sent.id, "WhatsApp accepted a message");
            return Ok(Delivery { provider_id: sent.id });
        }
        let error = serde_json::from_slice::<ErrorEnvelope>(&answer.body).map(|e| e.error).unwrap_or_default();
        let code = error.code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"));
        let description = redact(
            &format!(
                "WhatsApp refused the message: {} ({}, {code}, HTTP {})",
                error.message.as_deref().unwrap_or("no message"),
                error.kind.as_deref().unwrap_or("error"),
                answer.status.as_u16()
            ),
            &secrets,
        );
        tracing::info!(key = %message.idempotency_key, status = answer.status.as_u16(), code = error.code, "WhatsApp refused a message");
        let throttled = error.code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
        if throttled && !status_is_transient(answer.status) {
            return Err(ChannelError::Transient(description));
        }
        Err(status_error(answer.status, description))
    }
}
