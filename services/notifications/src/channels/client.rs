//! The HTTP client the SMS, WhatsApp and webhook channels share, and what they have in common:
//! base URLs, one POST with a deadline, and how an HTTP status maps to retry or give up.

use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{ChannelError, error_chain, redact};

/// Bound on opening a TCP connection; the per-call timeout bounds the whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers larger than this are not a provider's and are not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const USER_AGENT_VALUE: &str = concat!("cobro-notifications/", env!("CARGO_PKG_VERSION"));

/// One hyper client (rustls with the webpki roots, HTTP/1.1) and its connection pool. Cheap to
/// clone; build one per process and hand clones to every HTTP channel.
///
/// Plain `http://` is accepted at this level so tests can point channels at local stubs; each
/// channel decides whether it allows it.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    fn default() -> HttpClient {
        HttpClient::new()
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // The TLS layer on top decides by scheme; this layer must not refuse `https` URIs.
        http.enforce_http(false);
        let https =
            HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(https);
        HttpClient { inner }
    }

    /// POST `body` (its `Content-Type` among `headers`) to `uri` and read the answer, all within `timeout`. `Ok` carries any answer,
    /// successful or not; `Err` is always transient: no answer arrived (or it was unreadable), so
    /// the provider may or may not have acted and the idempotency key must settle it on retry.
    /// `what` names the far end in errors ("Twilio"); `secrets` are scrubbed from them.
    pub(crate) async fn post(
        &self,
        what: &str,
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        timeout: Duration,
        secrets: &[&str],
    ) -> Result<Answer, ChannelError> {
        let mut builder =
            Request::post(uri).header(USER_AGENT, USER_AGENT_VALUE).header(http::header::ACCEPT, "application/json");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|_| ChannelError::Permanent(format!("the request to {what} could not be built")))?;

        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| {
                ChannelError::Transient(redact(&format!("{what} could not be reached: {}", error_chain(&e)), secrets))
            })?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    ChannelError::Transient(redact(&format!("{what}'s answer could not be read: {e}"), secrets))
                })?
                .to_bytes();
            Ok::<_, ChannelError>(Answer { status: parts.status, body: bytes })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(ChannelError::Transient(format!("{what} did not answer within {} ms", timeout.as_millis()))),
        }
    }
}

/// A status and a (bounded) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Whether a failed HTTP status is worth retrying: 408, 429 and 5xx are; the rest of 4xx is the
/// provider refusing this request; 1xx/3xx are not answers a POST should get (redirects are not
/// followed) and retrying will not change them.
pub(crate) fn status_is_transient(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Build a failed-answer error from a status and a provider description (already redacted).
pub(crate) fn status_error(status: StatusCode, description: String) -> ChannelError {
    if status_is_transient(status) {
        ChannelError::Transient(description)
    } else {
        ChannelError::Permanent(description)
    }
}

/// Validate and normalize a configured base URL to `scheme://authority[/prefix]`: absolute,
/// `http` or `https`, no credentials, query or fragment.
pub(crate) fn parse_base_url(what: &str, raw: &str) -> Result<String, ChannelError> {
    let invalid = || {
        ChannelError::Permanent(format!(
            "the {what} base URL must be an absolute http:// or https:// URL without credentials or query"
        ))
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
    if scheme == "http" && !matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]") {
        tracing::warn!(host = authority.host(), "{what} is configured over plain HTTP; use it only for local stubs");
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// A header value that `http` will not print (`Debug` of requests shows `Sensitive`).
pub(crate) fn sensitive_header(what: &str, value: &str) -> Result<HeaderValue, ChannelError> {
    let mut header = HeaderValue::try_from(value).map_err(|_| {
        ChannelError::Permanent(format!("the {what} credentials contain characters a header cannot carry"))
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The idempotency key as a header value; keys are generated ASCII, anything else is a bug.
pub(crate) fn key_header(key: &str) -> Result<HeaderValue, ChannelError> {
    if key.is_empty() {
        return Err(ChannelError::Permanent("the message has no idempotency key".to_owned()));
    }
    HeaderValue::try_from(key).map_err(|_| {
        ChannelError::Permanent("the idempotency key contains characters a header cannot carry".to_owned())
    })
}

/// `application/x-www-form-urlencoded`, as the URL standard's serializer writes it.
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in fields {
        if !out.is_empty() {
            out.push('&');
        }
        form_encode(&mut out, key);
        out.push('=');
        form_encode(&mut out, value);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_the_url_standard() {
        assert_eq!(
            form(&[("To", "+15005550006"), ("Body", "Hola ñ & adiós")]),
            "To=%2B15005550006&Body=Hola+%C3%B1+%26+adi%C3%B3s"
        );
    }

    #[test]
    fn statuses_map_to_retry_or_not() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status_is_transient(StatusCode::from_u16(code).unwrap_or_default()), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 409, 410, 422] {
            assert!(!status_is_transient(StatusCode::from_u16(code).unwrap_or_default()), "{code}");
        }
    }

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(parse_base_url("x", "https://api.twilio.com/").ok().as_deref(), Some("https://api.twilio.com"));
        assert_eq!(parse_base_url("x", "http://127.0.0.1:8080/p/").ok().as_deref(), Some("http://127.0.0.1:8080/p"));
        assert!(parse_base_url("x", "ftp://x.example").is_err());
        assert!(parse_base_url("x", "https://u:p@x.example").is_err());
        assert!(parse_base_url("x", "https://x.example?a=b").is_err());
        assert!(parse_base_url("x", "/relative").is_err());
    }
}
