//! The REST/JSON API under `/v1` for e-commerce plugins and scripts, authenticated by API key
//! (exchanged at identity for a short-lived token), and its OpenAPI 3 document at
//! `/openapi.json`, generated from the same route table the router is built from.
//!
//! Every operation goes through `dispatch`: the key is exchanged (or its cached token used),
//! path, query and body are checked against the operation's documented schema, and only then
//! does the operation's handler call a service with the key's token. The services decide what
//! the key may do; their refusals become `{"error": {"code", "message", "field"}}`.

mod handlers;
pub mod openapi;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use chrono::{DateTime, Utc};
use cobro_proto::identity::v1 as idpb;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use handlers::OPERATIONS;

use crate::pages::{Pages, Services};
use crate::web::limits::Allowance;

/// The largest request body accepted.
const BODY_LIMIT: usize = 256 * 1024;

/// How long before its expiry a cached access token is exchanged again.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::seconds(60);

/// Cached tokens at most; past it, expired ones go first, then all.
const CACHE_LIMIT: usize = 10_000;

/// Key exchanges (requests whose key has no cached token) per client address and window: a
/// valid key is exchanged about once per token lifetime, so only guessing comes near it.
const EXCHANGE_LIMIT: u32 = 120;
const EXCHANGE_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// An HTTP method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }

    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
        }
    }
}

/// A query parameter an operation accepts.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    /// `string` or `integer` (a non-negative one).
    pub kind: &'static str,
}

/// What an operation's handler gives back: the JSON body of its success status.
pub type Reply = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

/// An operation's handler: the checked request in, the service's answer out.
pub type Handler = fn(Call) -> Reply;

/// One operation of the API: the router serves it and the document describes it from this.
pub struct Operation {
    pub verb: Verb,
    /// An axum path, whose `{name}` segments are the path parameters.
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// The permission the key needs (the services enforce it); empty for a public operation.
    pub scope: &'static str,
    pub query: &'static [Param],
    /// Takes a required `Idempotency-Key` header, passed to the service.
    pub idempotent: bool,
    /// The request body's schema (a component name), and whether a body is required.
    pub request: Option<(&'static str, bool)>,
    /// The success status and its body's schema (a component name).
    pub success: (u16, &'static str),
    /// The error statuses it may answer, each with an `Error` body.
    pub errors: &'static [u16],
    pub handler: Handler,
}

impl Operation {
    /// Needs an API key.
    pub fn authenticated(&self) -> bool {
        !self.scope.is_empty()
    }

    /// The names of its path parameters, in order.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// A checked request, ready for a handler.
pub struct Call {
    pub services: Services,
    token: Option<SecretString>,
    path: HashMap<String, String>,
    query: HashMap<String, String>,
    pub body: Value,
    pub idempotency_key: String,
}

impl Call {
    /// A request to a service, with the key's access token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token
            && let Ok(value) = format!("Bearer {}", token.expose_secret()).parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// A path parameter (checked present before the handler runs).
    pub fn param(&self, name: &str) -> String {
        self.path.get(name).cloned().unwrap_or_default()
    }

    /// A query parameter, empty when absent.
    pub fn query(&self, name: &str) -> String {
        self.query.get(name).cloned().unwrap_or_default()
    }

    /// A non-negative integer query parameter (checked before the handler runs), 0 when absent.
    pub fn query_u32(&self, name: &str) -> u32 {
        self.query.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The body as `T`; it was checked against its schema already.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_value(self.body.clone())
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, "invalid_body", strip_position(&e.to_string()), ""))
    }
}

/// serde_json's message without "at line 1 column 7".
fn strip_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_owned()
}

/// A refusal, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: String,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>, field: &str) -> Failure {
        Failure { status, code: code.to_owned(), message: message.into(), field: field.to_owned(), retry_after: None }
    }

    fn bad_request(field: &str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "invalid_request", message, field)
    }

    /// A service's refusal: its machine code and message (which name the field and the rule,
    /// never internals) for the statuses a caller can act on; a fixed sentence otherwise.
    pub fn from_status(status: &tonic::Status) -> Failure {
        use tonic::Code;
        let detail = cobro_kit::error::error_detail(status);
        let (http, code, message) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", "The request is not valid.")
            }
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "The API key is not valid."),
            Code::PermissionDenied => {
                (StatusCode::FORBIDDEN, "permission_denied", "The API key is not allowed to do this.")
            }
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found."),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                (StatusCode::CONFLICT, "conflict", "The request conflicts with the current state.")
            }
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests."),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The service is unavailable; try again shortly.")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong; try again later."),
        };
        let actionable = matches!(
            http,
            StatusCode::UNPROCESSABLE_ENTITY
                | StatusCode::CONFLICT
                | StatusCode::NOT_FOUND
                | StatusCode::FORBIDDEN
                | StatusCode::TOO_MANY_REQUESTS
        );
        match detail {
            Some(d) if actionable => {
                let message = if d.message.is_empty() { status.message().to_owned() } else { d.message };
                Failure { status: http, code: d.code, message, field: d.field, retry_after: None }
            }
            // Without a detail, the status's own message is the service's sentence for the
            // statuses a caller can act on, and is dropped for the others.
            None if actionable && !status.message().is_empty() => Failure::new(http, code, status.message(), ""),
            _ => Failure::new(http, code, message, ""),
        }
    }

    /// The field a service named, in the request's own terms (`customer.legal_name` is the
    /// body's `legal_name`; `idempotency_key` is the header).
    pub fn renamed(mut self, from_prefix: &str) -> Failure {
        if !from_prefix.is_empty() {
            if let Some(rest) = self.field.strip_prefix(from_prefix) {
                self.field = rest.to_owned();
            }
            if let Some(rest) = self.message.strip_prefix(from_prefix) {
                self.message = rest.to_owned();
            }
        }
        if self.field == "idempotency_key" {
            self.field = "Idempotency-Key".to_owned();
        }
        self
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        Failure::from_status(&status)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let field = if self.field.is_empty() { Value::Null } else { Value::String(self.field) };
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": field } });
        let mut response = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}

/// The API's routes: every operation of [`OPERATIONS`], a JSON 405 for other methods on their
/// paths and a JSON 404 for any other path under `/v1`.
pub fn routes() -> axum::Router<Arc<Pages>> {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<Pages>>)> = Vec::new();
    for op in OPERATIONS {
        let handler = move |State(p): State<Arc<Pages>>, request: Request| dispatch(op, p, request);
        match by_path.iter_mut().find(|(path, _)| *path == op.path) {
            Some((_, router)) => *router = std::mem::take(router).on(op.verb.filter(), handler),
            None => by_path.push((op.path, axum::routing::on(op.verb.filter(), handler))),
        }
    }
    let mut router = axum::Router::new();
    for (path, methods) in by_path {
        router = router.route(path, methods.fallback(method_not_allowed));
    }
    router.route("/v1/{*rest}", axum::routing::any(no_such_route)).route("/v1", axum::routing::any(no_such_route))
}

async fn method_not_allowed() -> Response {
    Failure::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This path does not take that method.", "")
        .into_response()
}

async fn no_such_route() -> Response {
    Failure::new(StatusCode::NOT_FOUND, "no_such_route", "There is no such operation; see /openapi.json.", "")
        .into_response()
}

/// One operation's request, from the key to the answer.
async fn dispatch(op: &'static Operation, p: Arc<Pages>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let token = if op.authenticated() {
        match api_token(&p, &parts.headers).await {
            Ok(token) => Some(token),
            Err(failure) => return failure.into_response(),
        }
    } else {
        None
    };
    let path = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        Err(_) => HashMap::new(),
    };
    let query = match check_query(op, parts.uri.query()) {
        Ok(query) => query,
        Err(failure) => return failure.into_response(),
    };
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The body is too large.", "")
                .into_response();
        }
    };
    let body = match check_body(op, &parts.headers, &body) {
        Ok(body) => body,
        Err(failure) => return failure.into_response(),
    };
    let idempotency_key = match check_idempotency_key(op, &parts.headers) {
        Ok(key) => key,
        Err(failure) => return failure.into_response(),
    };
    let call = Call { services: p.services.clone(), token, path, query, body, idempotency_key };
    match (op.handler)(call).await {
        Ok(value) => json_response(StatusCode::from_u16(op.success.0).unwrap_or(StatusCode::OK), &value),
        Err(failure) => {
            if failure.status == StatusCode::UNAUTHORIZED {
                // The service no longer takes the key's token (the key was revoked or its
                // creator disabled): the next request exchanges the key again.
                forget(&parts.headers);
            }
            failure.into_response()
        }
    }
}

fn check_query(op: &Operation, raw: Option<&str>) -> Result<HashMap<String, String>, Failure> {
    let pairs: Vec<(String, String)> = match raw {
        Some(raw) => serde_urlencoded_pairs(raw)?,
        None => Vec::new(),
    };
    let mut query = HashMap::new();
    for (name, value) in pairs {
        let Some(param) = op.query.iter().find(|p| p.name == name) else {
            return Err(Failure::bad_request(&name, format!("{name}: unknown query parameter")));
        };
        if param.kind == "integer" && !value.is_empty() && value.parse::<u32>().is_err() {
            return Err(Failure::bad_request(&name, format!("{name}: must be a non-negative integer")));
        }
        if query.insert(name.clone(), value).is_some() {
            return Err(Failure::bad_request(&name, format!("{name}: given more than once")));
        }
    }
    Ok(query)
}

/// `a=1&b=x%20y` as pairs, through axum's own query parser.
fn serde_urlencoded_pairs(raw: &str) -> Result<Vec<(String, String)>, Failure> {
    let uri: axum::http::Uri =
        format!("/?{raw}").parse().map_err(|_| Failure::bad_request("", "The query string is not valid."))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|_| Failure::bad_request("", "The query string is not valid."))
}

/// The body as JSON, checked against the operation's request schema.
fn check_body(op: &Operation, headers: &HeaderMap, body: &Bytes) -> Result<Value, Failure> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    if empty {
        return match op.request {
            Some((_, true)) => {
                Err(Failure::new(StatusCode::BAD_REQUEST, "invalid_body", "The request needs a JSON body.", ""))
            }
            _ => Ok(json!({})),
        };
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false);
    if !json_type {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as Content-Type: application/json.",
            "",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Failure::new(StatusCode::BAD_REQUEST, "invalid_json", format!("The body is not valid JSON: {e}"), "")
    })?;
    let schema = match op.request {
        Some((name, _)) => openapi::reference(name),
        None => json!({ "type": "object", "additionalProperties": false }),
    };
    openapi::validate(&schema, &value, false).map_err(|(field, reason)| {
        let message = if field.is_empty() { format!("body: {reason}") } else { format!("{field}: {reason}") };
        Failure::new(StatusCode::BAD_REQUEST, "invalid_body", message, &field)
    })?;
    Ok(value)
}

fn check_idempotency_key(op: &Operation, headers: &HeaderMap) -> Result<String, Failure> {
    if !op.idempotent {
        return Ok(String::new());
    }
    let key = headers.get("idempotency-key").map(|v| v.to_str().map(str::trim));
    match key {
        Some(Ok(key)) if !key.is_empty() && key.len() <= 255 => Ok(key.to_owned()),
        Some(_) => {
            Err(Failure::bad_request("Idempotency-Key", "Idempotency-Key: must be 1 to 255 printable characters"))
        }
        None => Err(Failure::bad_request("Idempotency-Key", "Idempotency-Key: is required for this operation")),
    }
}

struct Cached {
    token: SecretString,
    /// Used until then, after which the key is exchanged again.
    until: DateTime<Utc>,
}

/// Access tokens per API key, by the key's SHA-256: a key is exchanged at identity once per
/// token lifetime, not once per request. The keys themselves are never kept.
#[derive(Default)]
struct TokenCache {
    tokens: Mutex<HashMap<[u8; 32], Cached>>,
}

impl TokenCache {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key's token, unless it expires within [`RENEW_BEFORE`] of `now`.
    fn get(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Option<SecretString> {
        self.tokens().get(hash).filter(|cached| cached.until > now).map(|cached| cached.token.clone())
    }

    /// Keep a token that expires at `expires` (not one that is about to).
    fn put(&self, hash: [u8; 32], token: SecretString, expires: DateTime<Utc>, now: DateTime<Utc>) {
        let until = expires - RENEW_BEFORE;
        if until <= now {
            return;
        }
        let mut tokens = self.tokens();
        if tokens.len() >= CACHE_LIMIT {
            tokens.retain(|_, cached| cached.until > now);
            if tokens.len() >= CACHE_LIMIT {
                tokens.clear();
            }
        }
        tokens.insert(hash, Cached { token, until });
    }

    fn forget(&self, hash: &[u8; 32]) {
        self.tokens().remove(hash);
    }
}

static TOKENS: LazyLock<TokenCache> = LazyLock::new(TokenCache::default);

fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The API key of `Authorization: Bearer <key>`.
fn bearer(headers: &HeaderMap) -> Result<&str, Failure> {
    let unauthenticated = |message: &str| Failure::new(StatusCode::UNAUTHORIZED, "unauthenticated", message, "");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated("Send the API key as Authorization: Bearer <key>."));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 512);
    key.ok_or_else(|| unauthenticated("Send the API key as Authorization: Bearer <key>."))
}

fn forget(headers: &HeaderMap) {
    if let Ok(key) = bearer(headers) {
        TOKENS.forget(&key_hash(key));
    }
}

/// The access token for the request's API key: the cached one, or a new one from identity.
async fn api_token(p: &Pages, headers: &HeaderMap) -> Result<SecretString, Failure> {
    let key = bearer(headers)?;
    let hash = key_hash(key);
    let now = Utc::now();
    if let Some(token) = TOKENS.get(&hash, now) {
        return Ok(token);
    }
    let unavailable = || {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service is unavailable; try again shortly.",
            "",
        )
    };
    match p.limiter.hit("api_key", &crate::pages::client_ip(headers), EXCHANGE_LIMIT, EXCHANGE_WINDOW).await {
        Ok(Allowance::Allowed) => {}
        Ok(Allowance::Limited { retry_after }) => {
            let mut failure =
                Failure::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many API key attempts; wait.", "");
            failure.retry_after = Some(retry_after.as_secs().max(1));
            return Err(failure);
        }
        // A limiter that cannot count lets no guess through.
        Err(_) => return Err(unavailable()),
    }
    let answer = p.identity.clone().exchange_api_key(idpb::ExchangeApiKeyRequest { api_key: key.to_owned() }).await;
    let access = match answer {
        Ok(access) => access.into_inner(),
        Err(status) => {
            let failure = Failure::from_status(&status);
            return Err(match failure.status {
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => failure,
                StatusCode::INTERNAL_SERVER_ERROR => {
                    tracing::warn!(code = ?status.code(), "identity failed an API key exchange");
                    unavailable()
                }
                // Unknown, revoked, expired, malformed: all the same to the caller.
                _ => Failure::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "The API key is not valid.", ""),
            });
        }
    };
    let token = SecretString::from(access.access_token);
    let expires = access.expires_at.and_then(|t| DateTime::from_timestamp(t.seconds, 0)).unwrap_or(now);
    TOKENS.put(hash, token.clone(), expires, now);
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use axum::body::Body;
    use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
    use tower::ServiceExt;

    use super::*;

    /// The whole gateway, its clients pointed at a port where nothing listens.
    fn gateway() -> axum::Router {
        let redis = cobro_kit::cache::connect_lazy(&cobro_kit::cache::RedisConfig::new("redis://127.0.0.1:1")).unwrap();
        let channel = cobro_kit::grpc::connect_lazy("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
        let jwks: Arc<dyn cobro_kit::auth::JwksSource> = Arc::new(cobro_kit::auth::IdentityJwks::new(channel.clone()));
        let verifier = cobro_kit::auth::Verifier::new(Arc::new(cobro_kit::auth::JwksCache::new(jwks)), "i", "a");
        let config = crate::GatewayConfig {
            invoicing_url: "http://127.0.0.1:1".into(),
            payments_url: "http://127.0.0.1:1".into(),
            notifications_url: "http://127.0.0.1:1".into(),
            reconciliation_url: "http://127.0.0.1:1".into(),
            ..Default::default()
        };
        let pages = Pages {
            sessions: crate::web::session::SessionStore::new(
                redis.clone(),
                "t",
                Duration::from_secs(60),
                Duration::from_secs(60),
            ),
            limiter: crate::web::limits::RateLimiter::new(redis, "t"),
            identity: IdentityServiceClient::new(channel),
            edge: crate::web::edge::EdgeCredential::new(None),
            services: Services::connect_lazy(&config).unwrap(),
            verifier: Arc::new(verifier),
            templates: crate::pages::templates(),
            secure: false,
        };
        crate::router_with_pages(Arc::new(pages))
    }

    async fn send(
        router: &axum::Router,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router.clone().oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(content_type, "application/json", "{uri}: {}", String::from_utf8_lossy(&bytes));
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn concrete(path: &str) -> String {
        path.split('/').map(|s| if s.starts_with('{') { "xyz_1" } else { s }).collect::<Vec<_>>().join("/")
    }

    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => refs(item, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_of_the_document_resolves() {
        let doc = openapi::document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{}", found.len());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "{target} does not resolve");
        }
        // And every schema is used somewhere.
        let text = doc["paths"].to_string() + &doc["components"]["schemas"].to_string();
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(text.contains(&format!("\"#/components/schemas/{name}\"")), "{name} is never used");
        }
    }

    #[test]
    fn every_path_parameter_is_declared_and_every_declared_one_is_in_the_path() {
        let doc = openapi::document();
        assert_eq!(doc["openapi"], "3.0.3");
        for (path, item) in doc["paths"].as_object().unwrap() {
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            for (verb, op) in item.as_object().unwrap() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{verb} {path}");
                        p["name"].as_str().unwrap()
                    })
                    .collect();
                assert_eq!(declared, in_path, "{verb} {path}");
                assert!(op["operationId"].is_string() && op["summary"].is_string(), "{verb} {path}");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.keys().any(|k| k.starts_with('2')), "{verb} {path} has no success");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique_and_paths_are_the_api_s() {
        let mut ids = BTreeSet::new();
        let mut routes = BTreeSet::new();
        for op in OPERATIONS {
            assert!(ids.insert(op.id), "{} twice", op.id);
            assert!(routes.insert((op.path, op.verb.as_str())), "{} {} twice", op.verb.as_str(), op.path);
            assert!(op.path.starts_with("/v1/") || !op.authenticated(), "{}", op.path);
            assert!(!op.idempotent || op.verb == Verb::Post, "{}", op.id);
        }
        let doc = openapi::document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |verb| (path.clone(), verb.clone())))
            .collect();
        let table: BTreeSet<(String, String)> =
            routes.iter().map(|(path, verb)| ((*path).to_owned(), (*verb).to_owned())).collect();
        assert_eq!(documented, table);
    }

    /// The router answers every documented operation (asking for the key first) and nothing
    /// else: other methods on the same paths get 405, other paths under /v1 get 404.
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_operations() {
        let router = gateway();
        let doc = openapi::document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let uri = concrete(path);
            let item = item.as_object().unwrap();
            for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let verb = method.as_str().to_ascii_lowercase();
                let (status, body) = send(&router, method.clone(), &uri, &[], "").await;
                match item.get(&verb) {
                    Some(op) if op.get("security") == Some(&json!([])) => {
                        assert_eq!(status, 200, "{verb} {uri}");
                        assert_eq!(body, doc, "the served document is the generated one");
                    }
                    Some(op) => {
                        assert_eq!(status, 401, "{verb} {uri}: {body}");
                        assert_eq!(body["error"]["code"], "unauthenticated");
                        assert!(op["responses"].get("401").is_some(), "{verb} {path}");
                    }
                    None => assert_eq!(status, 405, "{verb} {uri}: {body}"),
                }
            }
        }
        for uri in ["/v1", "/v1/nothing", "/v1/invoices/inv_1/pay", "/v1/customers/cus_1/invoices"] {
            let (status, body) = send(&router, Method::GET, uri, &[("authorization", "Bearer ck_live_x")], "").await;
            assert_eq!(status, 404, "{uri}");
            assert_eq!(body["error"]["code"], "no_such_route");
        }
    }

    #[tokio::test]
    async fn an_unreachable_backend_is_a_503_not_a_401_and_a_bad_header_is_a_401() {
        let router = gateway();
        let key = [("authorization", "Bearer ck_live_unreachable")];
        let (status, body) = send(&router, Method::GET, "/v1/customers", &key, "").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        for bad in ["Basic abc", "Bearer ", "ck_live_x"] {
            let (status, body) = send(&router, Method::GET, "/v1/customers", &[("authorization", bad)], "").await;
            assert_eq!(status, 401, "{bad}: {body}");
        }
    }

    #[test]
    fn bodies_are_held_to_their_schemas_and_the_field_is_named() {
        let check = |schema: &str, body: Value| openapi::validate(&openapi::reference(schema), &body, false);
        let line = json!({ "description": "Widget", "quantity": "1", "unit_price": "100.00" });
        check("InvoiceCreate", json!({ "customer_id": "cus_1", "lines": [line] })).unwrap();
        let cases = [
            ("InvoiceCreate", json!({ "lines": [line] }), "customer_id", "is required"),
            ("InvoiceCreate", json!({ "customer_id": "cus_1", "lines": [] }), "lines", "must have at least 1 entries"),
            (
                "InvoiceCreate",
                json!({ "customer_id": "cus_1", "lines": [line, { "description": "x", "quantity": 2, "unit_price": "1" }] }),
                "lines[1].quantity",
                "must be a string",
            ),
            (
                "InvoiceCreate",
                json!({ "customer_id": "cus_1", "lines": [line], "colour": "red" }),
                "colour",
                "is not a known field",
            ),
            ("CustomerCreate", json!({ "legal_name": 5, "currency": "MXN" }), "legal_name", "must be a string"),
            (
                "CustomerCreate",
                json!({ "legal_name": "A", "currency": "MXN", "payment_terms_days": -1 }),
                "payment_terms_days",
                "must be at least 0",
            ),
            (
                "CustomerCreate",
                json!({ "legal_name": "A", "currency": "MXN", "contacts": [{ "email": null }] }),
                "contacts[0].email",
                "must not be null",
            ),
            (
                "PaymentCreate",
                json!({ "customer_id": "cus_1", "amount": { "amount": "1" } }),
                "amount.currency",
                "is required",
            ),
            ("PaymentCreate", json!([]), "", "must be an object"),
        ];
        for (schema, body, field, reason) in cases {
            assert_eq!(check(schema, body.clone()), Err((field.to_owned(), reason.to_owned())), "{schema} {body}");
        }
    }

    /// What the handlers print has exactly the documented shape: every required property,
    /// nothing undocumented, types as documented.
    #[test]
    fn responses_have_their_documented_shape() {
        use cobro_proto::common::v1::Money;
        use cobro_proto::invoicing::v1 as inv;
        use cobro_proto::payments::v1 as pay;
        let check = |schema: &str, value: Value| {
            openapi::validate(&openapi::reference(schema), &value, true)
                .unwrap_or_else(|e| panic!("{schema}: {e:?} in {value}"));
        };
        let m = Some(Money { currency: "MXN".into(), amount: "10.00".into() });
        let at = Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });
        let customer = inv::Customer {
            id: "cus_1".into(),
            billing_address: Some(inv::Address::default()),
            contacts: vec![inv::Contact::default()],
            tags: vec!["vip".into()],
            credit_balance: m.clone(),
            created_at: at,
            ..Default::default()
        };
        check("Customer", handlers::customer(&customer));
        check("Customer", handlers::customer(&inv::Customer::default()));
        let discount = Some(inv::Discount { kind: Some(inv::discount::Kind::Percent("10".into())) });
        let invoice = inv::Invoice {
            status: "open".into(),
            lines: vec![inv::Line {
                input: Some(inv::LineInput {
                    discount: discount.clone(),
                    taxes: vec![inv::TaxRate::default()],
                    ..Default::default()
                }),
                net: m.clone(),
                ..Default::default()
            }],
            discount,
            installments: vec![inv::Installment { amount: m.clone(), ..Default::default() }],
            total: m.clone(),
            ..Default::default()
        };
        check("Invoice", handlers::invoice(&invoice));
        check("InvoiceList", json!({ "data": [handlers::invoice(&invoice)], "next_page_token": "" }));
        let refund =
            pay::Refund { status: "succeeded".into(), amount: m.clone(), created_at: at, ..Default::default() };
        check("Refund", handlers::refund(&refund));
        let payment = pay::PaymentIntent {
            status: "requires_payment_method".into(),
            amount: m.clone(),
            transfer: Some(pay::TransferInstructions { amount: m.clone(), ..Default::default() }),
            refunds: vec![refund],
            created_at: at,
            ..Default::default()
        };
        check("Payment", handlers::payment(&payment));
        let link = pay::PaymentLink { amount: m, expires_at: at, ..Default::default() };
        check("PaymentLink", handlers::payment_link(&link));
        check(
            "PaymentLinkCreated",
            json!({ "link": handlers::payment_link(&link), "token": "pl_x", "url_path": "/pay/pl_x" }),
        );
        let error = Failure::new(StatusCode::NOT_FOUND, "not_found", "Not found.", "").into_response();
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn tokens_are_kept_by_key_hash_until_shortly_before_they_expire() {
        let cache = TokenCache::default();
        let now = Utc::now();
        let (a, b) = (key_hash("ck_live_a"), key_hash("ck_live_b"));
        assert_ne!(a, b);
        cache.put(a, SecretString::from("token-a"), now + chrono::Duration::minutes(10), now);
        assert_eq!(cache.get(&a, now).map(|t| t.expose_secret().to_owned()).as_deref(), Some("token-a"));
        assert!(cache.get(&b, now).is_none());
        // Within a minute of its expiry it is exchanged again.
        assert!(cache.get(&a, now + chrono::Duration::seconds(541)).is_none());
        assert!(cache.get(&a, now + chrono::Duration::seconds(539)).is_some());
        // A token about to expire is not kept at all.
        cache.put(b, SecretString::from("token-b"), now + chrono::Duration::seconds(30), now);
        assert!(cache.get(&b, now).is_none());
        cache.forget(&a);
        assert!(cache.get(&a, now).is_none());
        // Full: expired tokens go first.
        for i in 0..CACHE_LIMIT {
            cache.put(key_hash(&format!("ck_{i}")), SecretString::from("t"), now + chrono::Duration::minutes(2), now);
        }
        let later = now + chrono::Duration::minutes(5);
        cache.put(a, SecretString::from("token-a2"), later + chrono::Duration::minutes(10), later);
        assert_eq!(cache.tokens().len(), 1);
    }

    #[test]
    fn service_refusals_map_to_statuses_and_internals_never_leak() {
        use tonic::{Code, Status};
        let cases = [
            (Code::InvalidArgument, 422),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 409),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ];
        for (code, http) in cases {
            let failure = Failure::from_status(&Status::new(code, "amount: must be positive"));
            assert_eq!(failure.status.as_u16(), http, "{code:?}");
        }
        let leak = Failure::from_status(&Status::internal("connection to postgres://u:p@db failed"));
        assert!(!leak.message.contains("postgres"), "{leak:?}");
        let leak = Failure::from_status(&Status::unavailable("tcp connect error 10.0.0.3:5432"));
        assert!(!leak.message.contains("10.0.0.3"), "{leak:?}");
        let renamed = Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "x",
            "customer.legal_name: is required",
            "customer.legal_name",
        )
        .renamed("customer.");
        assert_eq!((renamed.field.as_str(), renamed.message.as_str()), ("legal_name", "legal_name: is required"));
        let renamed = Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "x", "m", "idempotency_key").renamed("");
        assert_eq!(renamed.field, "Idempotency-Key");
    }
}
