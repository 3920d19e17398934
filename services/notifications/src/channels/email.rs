//! Email over SMTP (lettre), to the relay the deployment configures (SES, Postmark, Mailgun,
//! a local MTA…). One connection per message: reminders are not bulk mail, and a fresh
//! connection never inherits a half-broken session.
//!
//! The `Message-ID` is derived from the idempotency key, so a retry after a lost answer carries
//! the same id as the first attempt and receivers (and the relay's logs) can tell they are one
//! message.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Channel, ChannelError, Delivery, Outgoing, REDACTED, check_email, error_chain, redact};

/// Bound on one message, from connecting to the server's answer to the data.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longer keys are hashed so the `Message-ID` header stays short.
const MAX_ID_LOCAL_CHARS: usize = 128;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text. Local relays and tests only: credentials and mail travel readable.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `None`: no AUTH (a relay that trusts the network).
    pub username: Option<String>,
    /// Used only with a username.
    pub password: SecretString,
    /// `"Cobro Billing <billing@example.com>"` or a bare address.
    pub from: String,
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct SmtpEmail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of every `Message-ID`: the sender's domain.
    id_domain: String,
    /// Where errors say the failure happened.
    server: String,
    /// Kept to scrub it from server replies that reach an error.
    password: SecretString,
    timeout: Duration,
}

impl fmt::Debug for SmtpEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpEmail")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("password", &REDACTED)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpEmail {
    /// Refuses an empty host, an unparsable or invalid `from`, a zero timeout, and TLS settings
    /// rustls cannot build. Server certificates are checked against the webpki roots.
    pub fn new(config: SmtpConfig) -> Result<SmtpEmail, ChannelError> {
        let host = config.host.trim().to_owned();
        if host.is_empty() {
            return Err(ChannelError::Permanent("the SMTP host is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ChannelError::Permanent("the SMTP timeout must be positive".to_owned()));
        }
        let from: Mailbox = config
            .from
            .trim()
            .parse()
            .map_err(|_| ChannelError::Permanent("the SMTP from address cannot be parsed".to_owned()))?;
        check_email(from.email.as_ref())
            .map_err(|reason| ChannelError::Permanent(format!("the SMTP from address is invalid: {reason}")))?;
        let id_domain = from.email.domain().to_ascii_lowercase();

        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_parameters(&host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(config.port)
            .tls(tls)
            // lettre applies this to connecting only; `send` bounds the whole exchange.
            .timeout(Some(config.timeout));
        if let Some(username) = config.username.as_deref().filter(|u| !u.is_empty()) {
            if config.tls == SmtpTls::None && !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
                tracing::warn!(%host, "SMTP credentials are configured without TLS; they will cross the network readable");
            }
            builder =
                builder.credentials(Credentials::new(username.to_owned(), config.password.expose_secret().to_owned()));
        }
        Ok(SmtpEmail {
            transport: builder.build(),
            from,
            id_domain,
            server: format!("{host}:{}", config.port),
            password: config.password,
            timeout: config.timeout,
        })
    }

    /// A lettre error as retry-or-not: the server's 4xx is transient and 5xx permanent; lettre
    /// refusing to proceed (no usable AUTH mechanism, …) is permanent; everything else (network,
    /// TLS, a connection closed mid-reply, an unparsable reply) may succeed on retry.
    fn classify(&self, error: &lettre::transport::smtp::Error) -> ChannelError {
        let text =
            redact(&format!("SMTP server {}: {}", self.server, error_chain(error)), &[self.password.expose_secret()]);
        if error.is_permanent() || error.is_client() {
            ChannelError::Permanent(text)
        } else {
            ChannelError::Transient(text)
        }
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, ChannelError> {
    TlsParameters::builder(host.to_owned())
        .certificate_store(CertificateStore::WebpkiRoots)
        .build_rustls()
        .map_err(|e| ChannelError::Permanent(format!("SMTP TLS could not be set up: {e}")))
}

/// The `Message-ID` for an idempotency key: `<local@domain>` where `local` keeps ASCII letters,
/// digits, `-` and `_` and writes every other byte as `=XX` (so distinct keys never collide and
/// the id is valid RFC 5322 dot-atom text); keys that would encode to more than 128 characters
/// use the hex SHA-256 of the key instead.
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut local = String::with_capacity(idempotency_key.len());
    for byte in idempotency_key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            local.push(char::from(byte));
        } else {
            local.push('=');
            local.push(char::from(HEX[usize::from(byte >> 4)]));
            local.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    if local.len() > MAX_ID_LOCAL_CHARS {
        local = hex::encode(Sha256::digest(idempotency_key.as_bytes()));
    }
    format!("<{local}@{domain}>")
}

impl Channel for SmtpEmail {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, ChannelError> {
        if message.idempotency_key.is_empty() {
            return Err(ChannelError::Permanent("the message has no idempotency key".to_owned()));
        }
        let to = check_email(&message.to)
            .map_err(|reason| ChannelError::Permanent(format!("invalid email address: {reason}")))?;
        let to: Address = to
            .parse()
            .map_err(|_| ChannelError::Permanent("invalid email address: not accepted by lettre".to_owned()))?;
        let id = message_id(&message.idempotency_key, &self.id_domain);
        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            // Line breaks in a subject are never intended; dropping them keeps any header
            // smuggling off the table whatever the template produced.
            .subject(message.subject.replace(|c: char| c.is_control(), " ").trim())
            .message_id(Some(id.clone()));
        let email = match (message.text.trim().is_empty(), message.html.trim().is_empty()) {
            (false, false) => {
                builder.multipart(MultiPart::alternative_plain_html(message.text.clone(), message.html.clone()))
            }
            (false, true) => builder.singlepart(SinglePart::plain(message.text.clone())),
            (true, false) => builder.singlepart(SinglePart::html(message.html.clone())),
            (true, true) => return Err(ChannelError::Permanent("the email has no body".to_owned())),
        }
        .map_err(|e| ChannelError::Permanent(format!("the email could not be built: {e}")))?;

        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => {
                tracing::debug!(key = %message.idempotency_key, message_id = %id, "SMTP server accepted an email");
                Ok(Delivery { provider_id: id })
            }
            Ok(Err(e)) => {
                let error = self.classify(&e);
                tracing::info!(key = %message.idempotency_key, transient = error.is_transient(), error = %error, "SMTP send failed");
                Err(error)
            }
            // Possibly after the data went out: the retry's identical Message-ID lets it be
            // recognised as the same message.
            Err(_) => Err(ChannelError::Transient(format!(
                "SMTP server {} did not finish within {} ms",
                self.server,
                self.timeout.as_millis()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_sanitized_and_injective() {
        assert_eq!(message_id("0190a1b2-c3d4_email", "cobro.example"), "<0190a1b2-c3d4_email@cobro.example>");
        assert_eq!(message_id("a:b <c>", "x.example"), "<a=3Ab=20=3Cc=3E@x.example>");
        assert_ne!(message_id("a:b", "d"), message_id("a=3Ab", "d"));
        let long = message_id(&"k".repeat(200), "d.example");
        assert_eq!(long.len(), "<@d.example>".len() + 64);
    }
}
