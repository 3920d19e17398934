//! Where messages go: email (SMTP), SMS (Twilio), WhatsApp (Cloud API), tenants' webhooks.
//!
//! Every channel takes one rendered [`Outgoing`] and answers [`Delivery`] or a [`ChannelError`]
//! that says whether retrying can help. The rules all channels share:
//!
//! - `Outgoing::idempotency_key` is the provider-side idempotency mechanism: it becomes the
//!   email's `Message-ID`, the `Idempotency-Key` header of HTTP providers and the webhook's
//!   `Cobro-Delivery` header, so a retry after a lost answer can be recognised downstream.
//! - Errors never carry secrets (tokens, passwords, webhook secrets) nor whole phone numbers:
//!   every text that reaches an error goes through [`redact`].

mod address;
mod client;
pub mod email;
pub mod twilio;
pub mod webhook;
pub mod whatsapp;

use std::fmt;
use std::future::Future;

pub use address::{check_email, check_phone, mask_phone};
pub use client::HttpClient;
pub use email::{SmtpConfig, SmtpEmail, SmtpTls, message_id};
pub use twilio::{TwilioConfig, TwilioSender, TwilioSms};
pub use webhook::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SIGNATURE_TOLERANCE, Webhook, WebhookConfig, sign_webhook,
    verify_webhook_signature,
};
pub use whatsapp::{WhatsAppCloud, WhatsAppConfig};

/// A message rendered for one channel. Each channel reads the fields it needs: email `to`,
/// `subject`, `text`, `html`; SMS and WhatsApp `to` (E.164) and `sms`; webhooks `to` (the URL),
/// `webhook_event` and `webhook_body`.
#[derive(Clone, Default, PartialEq)]
pub struct Outgoing {
    /// Stable per scheduled message and channel: the same on every retry.
    pub idempotency_key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub sms: String,
    pub webhook_event: String,
    pub webhook_body: serde_json::Value,
}

/// Bodies stay out of logs and the recipient is masked: `Debug` output ends up in traces.
impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("idempotency_key", &self.idempotency_key)
            .field("to", &redact(&self.to, &[]))
            .field("subject_chars", &self.subject.chars().count())
            .field("text_chars", &self.text.chars().count())
            .field("html_chars", &self.html.chars().count())
            .field("sms_chars", &self.sms.chars().count())
            .field("webhook_event", &self.webhook_event)
            .finish_non_exhaustive()
    }
}

/// A provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id for the message: the email's `Message-ID`, Twilio's `SM…` sid,
    /// WhatsApp's `wamid…`, or for webhooks the delivery id (the idempotency key).
    pub provider_id: String,
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth retrying with backoff: timeouts, refused connections, HTTP 5xx/408/429, SMTP 4xx,
    /// an answer lost after the request was sent.
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Retrying cannot help: SMTP 5xx, HTTP 4xx, an invalid recipient, a misconfigured channel.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

impl ChannelError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ChannelError::Transient(_))
    }

    /// The description without the transient/permanent prefix.
    pub fn message(&self) -> &str {
        match self {
            ChannelError::Transient(m) | ChannelError::Permanent(m) => m,
        }
    }
}

/// One way of delivering a message. Written as `impl Future + Send` (what `async fn` in a trait
/// desugars to) so generic callers can spawn the future; implementations use `async fn`.
pub trait Channel: Send + Sync {
    /// `email`, `sms`, `whatsapp` or `webhook`: the names `domain::schedule::Channel` stores.
    fn name(&self) -> &'static str;

    fn send(&self, message: &Outgoing) -> impl Future<Output = Result<Delivery, ChannelError>> + Send;
}

/// Any concrete channel, so callers can hold a mix of them without `dyn`.
#[derive(Debug)]
pub enum AnyChannel {
    Email(SmtpEmail),
    Sms(TwilioSms),
    WhatsApp(WhatsAppCloud),
    Webhook(Webhook),
}

impl Channel for AnyChannel {
    fn name(&self) -> &'static str {
        match self {
            AnyChannel::Email(c) => c.name(),
            AnyChannel::Sms(c) => c.name(),
            AnyChannel::WhatsApp(c) => c.name(),
            AnyChannel::Webhook(c) => c.name(),
        }
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, ChannelError> {
        match self {
            AnyChannel::Email(c) => c.send(message).await,
            AnyChannel::Sms(c) => c.send(message).await,
            AnyChannel::WhatsApp(c) => c.send(message).await,
            AnyChannel::Webhook(c) => c.send(message).await,
        }
    }
}

impl From<SmtpEmail> for AnyChannel {
    fn from(c: SmtpEmail) -> AnyChannel {
        AnyChannel::Email(c)
    }
}

impl From<TwilioSms> for AnyChannel {
    fn from(c: TwilioSms) -> AnyChannel {
        AnyChannel::Sms(c)
    }
}

impl From<WhatsAppCloud> for AnyChannel {
    fn from(c: WhatsAppCloud) -> AnyChannel {
        AnyChannel::WhatsApp(c)
    }
}

impl From<Webhook> for AnyChannel {
    fn from(c: Webhook) -> AnyChannel {
        AnyChannel::Webhook(c)
    }
}

/// Longest text taken from a provider into an error.
const MAX_ERROR_CHARS: usize = 300;

const REDACTED: &str = "[redacted]";

/// Make a text safe for an error or a log: every non-empty `secrets` entry is replaced, digit
/// runs that could be phone numbers (7+ digits, possibly split by spaces, dashes, dots or
/// parentheses) keep only their last 4 digits (identifiers with long digit runs get masked too,
/// which is the safe side), control characters become spaces (provider text
/// must not forge log lines) and the result is bounded.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    let out: String = mask_digit_runs(&out).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    truncate_chars(&out, MAX_ERROR_CHARS)
}

fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let starts_run = c.is_ascii_digit() || (c == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts_run {
            out.push(c);
            i += 1;
            continue;
        }
        // Extend over digits and single separators that sit between digits.
        let mut digits = String::new();
        let mut j = if c == '+' { i + 1 } else { i };
        let mut end = j;
        while let Some(&d) = chars.get(j) {
            if d.is_ascii_digit() {
                digits.push(d);
                j += 1;
                end = j;
            } else if let Some(skip) = separator_before_digit(&chars, j) {
                j += skip;
            } else {
                break;
            }
        }
        if digits.len() >= 7 {
            out.push_str(&mask_phone(&digits));
        } else {
            out.extend(chars.get(i..end).unwrap_or_default());
        }
        i = end;
    }
    out
}

/// How many separator characters (at most two, as in `1 (500) 555-0001`) start at `at` and are
/// followed by a digit.
fn separator_before_digit(chars: &[char], at: usize) -> Option<usize> {
    let is_separator = |c: &char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    if !chars.get(at).is_some_and(is_separator) {
        return None;
    }
    if chars.get(at + 1).is_some_and(char::is_ascii_digit) {
        return Some(1);
    }
    let second_is_separator = chars.get(at + 1).is_some_and(is_separator);
    (second_is_separator && chars.get(at + 2).is_some_and(char::is_ascii_digit)).then_some(2)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// An error and its sources, `: `-separated (hyper and lettre put the useful part in sources).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // lettre repeats its source in its own message; say each part once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_phone_numbers_and_secrets() {
        assert_eq!(redact("The 'To' number +15005550001 is invalid", &[]), "The 'To' number ***0001 is invalid");
        assert_eq!(redact("call +1 (500) 555-0001 now", &[]), "call ***0001 now");
        assert_eq!(redact("code 21211, HTTP 400, 131047", &[]), "code 21211, HTTP 400, 131047");
        assert_eq!(redact("token abc123secret leaked", &["abc123secret", ""]), "token [redacted] leaked");
        assert_eq!(redact("line\r\nforged", &[]), "line  forged");
        assert_eq!(redact(&"x".repeat(400), &[]).chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn outgoing_debug_hides_bodies_and_numbers() {
        let message = Outgoing {
            idempotency_key: "k1".to_owned(),
            to: "+15005550006".to_owned(),
            sms: "your invoice".to_owned(),
            ..Outgoing::default()
        };
        let debug = format!("{message:?}");
        assert!(debug.contains("***0006"), "{debug}");
        assert!(!debug.contains("5005550006"), "{debug}");
        assert!(!debug.contains("your invoice"), "{debug}");
    }
}
