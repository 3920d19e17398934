//! SMS through Twilio's Programmable Messaging REST API: one form-encoded
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` per message, basic authentication with the
//! account sid and auth token, the message sid (`SM…`) in the JSON answer, errors as
//! `{code, message, status}`.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Uri};
use hyper::body::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::client::{HttpClient, form, key_header, parse_base_url, sensitive_header, status_error};
use super::{Channel, ChannelError, Delivery, Outgoing, REDACTED, check_phone, mask_phone, redact};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// SMS is sent or refused quickly; a slower answer means trouble on Twilio's side.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest body Twilio accepts (it splits it into segments itself).
const MAX_BODY_CHARS: usize = 1600;

/// Who the SMS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    /// A Twilio number (E.164) or alphanumeric sender id, sent as `From`.
    From(String),
    /// A Messaging Service (`MG…`), sent as `MessagingServiceSid`; Twilio picks the number.
    MessagingService(String),
}

#[derive(Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` in production; plain `http://` is accepted for local stubs.
    pub base_url: String,
    /// `AC…`; goes into the URL path and the basic-auth user.
    pub account_sid: String,
    pub auth_token: SecretString,
    pub sender: TwilioSender,
    /// Bound on one call, connecting included.
    pub timeout: Duration,
}

impl TwilioConfig {
    /// Twilio's production API with the default timeout.
    pub fn new(account_sid: impl Into<String>, auth_token: SecretString, sender: TwilioSender) -> TwilioConfig {
        TwilioConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            account_sid: account_sid.into(),
            auth_token,
            sender,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &REDACTED)
            .field("sender", &self.sender)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct TwilioSms {
    client: HttpClient,
    endpoint: Uri,
    /// `Basic base64(sid:token)`, marked sensitive.
    authorization: HeaderValue,
    /// Kept to scrub it (and the encoded header) from anything that reaches an error.
    auth_token: SecretString,
    sender: TwilioSender,
    timeout: Duration,
}

impl fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSms")
            .field("endpoint", &self.endpoint)
            .field("auth_token", &REDACTED)
            .field("sender", &self.sender)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TwilioSms {
    /// Refuses an invalid base URL, a sid that is not alphanumeric (it is a URL path segment),
    /// an empty token or sender and a zero timeout.
    pub fn new(client: HttpClient, config: TwilioConfig) -> Result<TwilioSms, ChannelError> {
        let base_url = parse_base_url("Twilio", &config.base_url)?;
        let sid = config.account_sid.trim();
        if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ChannelError::Permanent("the Twilio account sid must be alphanumeric".to_owned()));
        }
        let token = config.auth_token.expose_secret();
        if token.is_empty() {
            return Err(ChannelError::Permanent("the Twilio auth token is empty".to_owned()));
        }
        let sender_value = match &config.sender {
            TwilioSender::From(v) | TwilioSender::MessagingService(v) => v,
        };
        if sender_value.trim().is_empty() {
            return Err(ChannelError::Permanent("the Twilio sender is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ChannelError::Permanent("the Twilio timeout must be positive".to_owned()));
        }
        let endpoint: Uri = format!("{base_url}/2010-04-01/Accounts/{sid}/Messages.json")
            .parse()
            .map_err(|_| ChannelError::Permanent("the Twilio endpoint URL is invalid".to_owned()))?;
        let authorization =
            sensitive_header("Twilio", &format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))))?;
        Ok(TwilioSms {
            client,
            endpoint,
            authorization,
            auth_token: config.auth_token,
            sender: config.sender,
            timeout: config.timeout,
        })
    }
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
}

#[derive(Deserialize, Default)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl Channel for TwilioSms {
    fn name(&self) -> &'static str {
        "sms"
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, ChannelError> {
        let to = check_phone(&message.to).map_err(|reason| {
            ChannelError::Permanent(format!("invalid phone number {}: {reason}", mask_phone(&message.to)))
        })?;
        if message.sms.trim().is_empty() {
            return Err(ChannelError::Permanent("the SMS body is empty".to_owned()));
        }
        if message.sms.chars().count() > MAX_BODY_CHARS {
            return Err(ChannelError::Permanent("the SMS body is longer than 1600 characters".to_owned()));
        }
        let sender = match &self.sender {
            TwilioSender::From(from) => ("From", from.as_str()),
            TwilioSender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let body = form(&[("To", to.as_str()), sender, ("Body", message.sms.as_str())]);
        let headers = vec![
            (AUTHORIZATION, self.authorization.clone()),
            (CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded")),
            (HeaderName::from_static("idempotency-key"), key_header(&message.idempotency_key)?),
        ];
        let secrets = [self.auth_token.expose_secret(), self.authorization.to_str().unwrap_or_default()];
        let answer = self
            .client
            .post("Twilio", self.endpoint.clone(), headers, Bytes::from(body), self.timeout, &secrets)
            .await?;

        if answer.status.is_success() {
            let resource: MessageResource = serde_json::from_slice(&answer.body).map_err(|_| {
                ChannelError::Transient(format!(
                    "Twilio answered HTTP {} without a message sid",
                    answer.status.as_u16()
                ))
            })?;
            tracing::debug!(key = %message.idempotency_key, sid = %resource.sid, "Twilio accepted an SMS");
            return Ok(Delivery { provider_id: resource.sid });
        }
        let error: TwilioError = serde_json::from_slice(&answer.body).unwrap_or_default();
        let code = error.code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"));
        let description = redact(
            &format!(
                "Twilio refused the SMS: {} ({code}, HTTP {})",
                error.message.as_deref().unwrap_or("no message"),
                answer.status.as_u16()
            ),
            &secrets,
        );
        tracing::info!(key = %message.idempotency_key, status = answer.status.as_u16(), code = error.code, "Twilio refused an SMS");
        Err(status_error(answer.status, description))
    }
}
