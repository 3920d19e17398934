//! A small browser without a screen: HTTP/1.1 to the gateway with a cookie jar, forms posted
//! urlencoded, redirects left for the test to see (and follow with `get`).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::platform::{Customer, Tenant};

#[derive(Clone)]
pub struct Web {
    base: String,
    /// This browser's address, as the ingress would state it in `X-Forwarded-For`: each
    /// browser of a test is its own client for the gateway's per-address limits.
    address: String,
    client: Client<HttpConnector, Full<Bytes>>,
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub content_disposition: String,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("location", &self.location)
            .field("content_type", &self.content_type)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Web {
    pub fn new(base: &str) -> Web {
        Web {
            base: base.trim_end_matches('/').to_owned(),
            address: {
                let n = uuid::Uuid::new_v4().as_u128();
                format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
            },
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookies: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The address this browser's requests come from, as the gateway sees it.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, Vec::new()).await
    }

    /// A form post, urlencoded; the test passes `csrf_token` itself (or leaves it out).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        self.send("POST", path, Some("application/x-www-form-urlencoded".to_owned()), body.into_bytes()).await
    }

    /// A multipart form post: text fields, then one file field.
    pub async fn post_multipart(&self, path: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Reply {
        let boundary = format!("cobro{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (name, filename, content) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send("POST", path, Some(format!("multipart/form-data; boundary={boundary}")), body).await
    }

    /// A request with any method, body and extra headers (for JSON APIs).
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.send_with(method, path, headers, body.unwrap_or_default()).await
    }

    async fn send(&self, method: &str, path: &str, content_type: Option<String>, body: Vec<u8>) -> Reply {
        let headers: Vec<(&str, &str)> = content_type.as_deref().map(|c| vec![("content-type", c)]).unwrap_or_default();
        self.send_with(method, path, &headers, body).await
    }

    /// `get`, or `None` when nothing answers (a server still starting).
    pub async fn try_get(&self, path: &str) -> Option<Reply> {
        self.try_send_with("GET", path, &[], Vec::new()).await.ok()
    }

    async fn send_with(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.try_send_with(method, path, headers, body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn try_send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        let mut request = hyper::Request::builder().method(method).uri(&url);
        let cookie = {
            let jar = self.cookies.lock().unwrap();
            jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
        };
        request = request.header("x-forwarded-for", &self.address);
        if !cookie.is_empty() {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("a request");
        let response = self.client.request(request).await?;
        {
            let mut jar = self.cookies.lock().unwrap();
            for value in response.headers().get_all("set-cookie") {
                let Ok(value) = value.to_str() else { continue };
                let pair = value.split(';').next().unwrap_or_default();
                if let Some((name, v)) = pair.split_once('=') {
                    let expired = value.to_ascii_lowercase().contains("max-age=0");
                    if expired || v.is_empty() {
                        jar.remove(name.trim());
                    } else {
                        jar.insert(name.trim().to_owned(), v.to_owned());
                    }
                }
            }
        }
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default()
        };
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type");
        let content_disposition = header("content-disposition");
        let bytes = response.into_body().collect().await.expect("a body").to_bytes().to_vec();
        Ok(Reply {
            status,
            location,
            content_type,
            content_disposition,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        })
    }

    /// Sign in as the tenant's owner (password, then a TOTP code); panics if it fails.
    pub async fn sign_in_staff(&self, t: &Tenant) {
        let form = self.get("/signin").await;
        let token = csrf(&form.body);
        let answer = self
            .post(
                "/signin",
                &[("csrf_token", &token), ("tenant", &t.slug), ("email", &t.owner_email), ("password", &t.password)],
            )
            .await;
        assert_eq!(
            answer.location.as_deref(),
            Some("/signin/mfa"),
            "staff sign-in asks for the second factor: {answer:?}"
        );
        let page = self.get("/signin/mfa").await;
        let code = t.totp().await;
        let done = self.post("/signin/mfa", &[("csrf_token", &csrf(&page.body)), ("code", &code)]).await;
        assert_eq!(done.location.as_deref(), Some("/"), "signed in: {done:?}");
    }

    /// Sign in as a customer's portal contact (password only); panics if it fails.
    pub async fn sign_in_contact(&self, t: &Tenant, c: &Customer) {
        let form = self.get("/signin").await;
        let token = csrf(&form.body);
        let answer = self
            .post(
                "/signin",
                &[("csrf_token", &token), ("tenant", &t.slug), ("email", &c.email), ("password", &c.password)],
            )
            .await;
        assert_eq!(answer.location.as_deref(), Some("/"), "contact signed in: {answer:?}");
    }
}

/// The value of a page's `csrf_token` field.
pub fn csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no csrf_token field in the page:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
