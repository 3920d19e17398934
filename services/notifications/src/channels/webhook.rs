//! Events POSTed to a tenant's own URL, signed so the tenant can tell they come from Cobro.
//!
//! Each request carries the JSON body and:
//! - `Cobro-Event`: the event name (`reminder.sent`, …);
//! - `Cobro-Delivery` (and `Idempotency-Key`): the idempotency key, the same on every retry, so
//!   receivers can drop duplicates;
//! - `Cobro-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: receivers
//!   recompute it over the raw body with [`verify_webhook_signature`] and reject stale
//!   timestamps, which stops replays.
//!
//! The URL is the tenant's choice, so by default it must be `https` and must not resolve to a
//! loopback, private, link-local or otherwise internal address (Cobro must not be a way into its
//! own network). The address check runs before connecting; it does not stop a DNS answer that
//! changes between the check and the connection, which needs an egress proxy or a resolver-level
//! filter.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Uri};
use hyper::body::Bytes;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::client::{HttpClient, key_header, status_error};
use super::{Channel, ChannelError, Delivery, Outgoing, REDACTED};

pub const SIGNATURE_HEADER: &str = "Cobro-Signature";
pub const EVENT_HEADER: &str = "Cobro-Event";
pub const DELIVERY_HEADER: &str = "Cobro-Delivery";

/// How far a signature's timestamp may be from the receiver's clock, either way.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// Tenants' endpoints should acknowledge and queue; a slow one is retried later.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest `Cobro-Signature` header a receiver considers.
const MAX_SIGNATURE_HEADER: usize = 4096;

/// Bound on resolving the tenant's host name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct WebhookConfig {
    /// The tenant's signing secret.
    pub secret: SecretString,
    pub timeout: Duration,
    /// Accept `http://` URLs. For local development and tests only: bodies carry invoice data.
    pub allow_plain_http: bool,
    /// Accept URLs that resolve to loopback, private or link-local addresses. For local
    /// development and tests only.
    pub allow_private_networks: bool,
}

impl WebhookConfig {
    /// HTTPS to public addresses only, with the default timeout.
    pub fn new(secret: SecretString) -> WebhookConfig {
        WebhookConfig { secret, timeout: DEFAULT_TIMEOUT, allow_plain_http: false, allow_private_networks: false }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &REDACTED)
            .field("timeout", &self.timeout)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("allow_private_networks", &self.allow_private_networks)
            .finish()
    }
}

/// Delivers to the URL in `Outgoing::to`, signing with one tenant's secret: build one per tenant
/// (cheap: the HTTP client is shared).
pub struct Webhook {
    client: HttpClient,
    config: WebhookConfig,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Webhook {
    /// Refuses an empty secret and a zero timeout.
    pub fn new(client: HttpClient, config: WebhookConfig) -> Result<Webhook, ChannelError> {
        if config.secret.expose_secret().is_empty() {
            return Err(ChannelError::Permanent("the webhook signing secret is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(ChannelError::Permanent("the webhook timeout must be positive".to_owned()));
        }
        Ok(Webhook { client, config })
    }

    /// The URL's host and port, if the URL is one Cobro may call.
    fn target(&self, raw: &str) -> Result<(Uri, String, u16), ChannelError> {
        let invalid = |why: &str| ChannelError::Permanent(format!("the webhook URL {why}"));
        let uri: Uri = raw.trim().parse().map_err(|_| invalid("is not a valid URL"))?;
        let port = match uri.scheme_str() {
            Some("https") => 443,
            Some("http") if self.config.allow_plain_http => 80,
            Some("http") => return Err(invalid("must use https")),
            _ => return Err(invalid("must be an absolute https URL")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("must not carry credentials"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(invalid("has no host"));
        }
        let port = uri.port_u16().unwrap_or(port);
        Ok((uri, host, port))
    }

    /// Refuse hosts that resolve to internal addresses; see the module documentation.
    async fn check_public(&self, host: &str, port: u16) -> Result<(), ChannelError> {
        let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
            Ok(Err(_)) | Err(_) => {
                return Err(ChannelError::Transient(format!("the webhook host {host} could not be resolved")));
            }
        };
        if addrs.is_empty() {
            return Err(ChannelError::Transient(format!("the webhook host {host} has no addresses")));
        }
        if addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(ChannelError::Permanent(format!(
                "the webhook host {host} resolves to a private or local address"
            )));
        }
        Ok(())
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, ChannelError> {
        let key = key_header(&message.idempotency_key)?;
        let event =
            HeaderValue::try_from(message.webhook_event.as_str()).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                ChannelError::Permanent("the webhook event name is empty or not a header value".to_owned())
            })?;
        let (uri, host, port) = self.target(&message.to)?;
        if !self.config.allow_private_networks {
            self.check_public(&host, port).await?;
        }
        let body = serde_json::to_vec(&message.webhook_body)
            .map_err(|_| ChannelError::Permanent("the webhook body could not be encoded".to_owned()))?;
        let signature = sign_webhook(self.config.secret.expose_secret().as_bytes(), Utc::now().timestamp(), &body);
        let signature = HeaderValue::try_from(signature)
            .map_err(|_| ChannelError::Permanent("the webhook signature is not a header value".to_owned()))?;
        let headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (HeaderName::from_static("cobro-event"), event),
            (HeaderName::from_static("cobro-delivery"), key.clone()),
            (HeaderName::from_static("idempotency-key"), key),
            (HeaderName::from_static("cobro-signature"), signature),
        ];
        let what = format!("the webhook endpoint at {host}");
        let secrets = [self.config.secret.expose_secret()];
        let answer = self.client.post(&what, uri, headers, Bytes::from(body), self.config.timeout, &secrets).await?;
        if answer.status.is_success() {
            tracing::debug!(key = %message.idempotency_key, %host, status = answer.status.as_u16(), "webhook delivered");
            return Ok(Delivery { provider_id: message.idempotency_key.clone() });
        }
        tracing::info!(key = %message.idempotency_key, %host, status = answer.status.as_u16(), "webhook refused");
        // The tenant's answer body is not quoted: it is theirs and may be anything.
        let mut description = format!("{what} answered HTTP {}", answer.status.as_u16());
        if answer.status.is_redirection() {
            description.push_str(" (redirects are not followed)");
        }
        Err(status_error(answer.status, description))
    }
}

/// The `Cobro-Signature` header value for `body` signed at `timestamp` (unix seconds).
pub fn sign_webhook(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let signature = signed_mac(secret, &timestamp.to_string(), body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={timestamp},v1={signature}")
}

/// Whether `header` (`t=<unix>,v1=<hex>[,v1=<hex>…]`) signs `body` (the raw bytes received)
/// with `secret`, at a time within `tolerance` of `now`. Several `v1` entries are accepted (one
/// per secret while a secret is rotated); unknown entries are ignored. Comparison is constant
/// time.
pub fn verify_webhook_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> bool {
    if secret.is_empty() || header.len() > MAX_SIGNATURE_HEADER {
        return false;
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
    let Some(timestamp) = timestamp else {
        return false;
    };
    if candidates.is_empty() || timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(signed_at) = timestamp.parse::<i64>() else {
        return false;
    };
    let age = i128::from(now.timestamp()) - i128::from(signed_at);
    if age.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return false;
    }
    let Some(mac) = signed_mac(secret, timestamp, body) else {
        return false;
    };
    // Check every candidate so the time taken does not say which one matched.
    candidates.iter().fold(false, |matched, candidate| mac.clone().verify_slice(candidate).is_ok() | matched)
}

/// HMAC-SHA256 over `"<t>.<body>"`. `None` cannot happen (HMAC takes keys of any length) but is
/// not worth a panic.
fn signed_mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast, reserved or unspecified).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., c, d] = segments;
                return is_public_v4(Ipv4Addr::from((u32::from(c) << 16) | u32::from(d)));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8)) // documentation 2001:db8::/32
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn signatures_round_trip() {
        let now = Utc::now();
        let header = sign_webhook(b"s3cret", now.timestamp(), b"{\"a\":1}");
        assert!(verify_webhook_signature(b"s3cret", &header, b"{\"a\":1}", now, SIGNATURE_TOLERANCE));
        assert!(!verify_webhook_signature(b"other", &header, b"{\"a\":1}", now, SIGNATURE_TOLERANCE));
        assert!(!verify_webhook_signature(b"", &header, b"{\"a\":1}", now, SIGNATURE_TOLERANCE));
        let rotated = format!("{header},v1=00ff,v0=zz");
        assert!(verify_webhook_signature(b"s3cret", &rotated, b"{\"a\":1}", now, SIGNATURE_TOLERANCE));
        assert!(!verify_webhook_signature(b"s3cret", "v1=00", b"{}", now, SIGNATURE_TOLERANCE));
        assert!(!verify_webhook_signature(b"s3cret", "t=-5,v1=00", b"{}", now, SIGNATURE_TOLERANCE));
    }
}
