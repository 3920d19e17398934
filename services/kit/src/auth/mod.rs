//! Authentication: verify identity's access tokens locally and hand handlers a [`Principal`].
//!
//! - [`jwt`]: a small compact-JWS implementation, EdDSA (Ed25519) only.
//! - [`jwks`]: identity's public keys and a rate-limited refreshing cache of them.
//! - [`principal`]: the verified caller, its tenant and permission checks.
//!
//! A server installs [`AuthLayer`]; handlers call [`principal`] and then
//! [`Principal::require`]. Tokens never reach logs or errors: [`AuthError`]'s `Display` says which
//! check failed, and callers only ever see one generic message.

pub mod jwks;
pub mod jwt;
pub mod principal;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::{Code, Status};

pub use jwks::{IdentityJwks, Jwk, JwkSet, JwksCache, JwksSource, StaticJwks};
pub use jwt::{Claims, SigningKey, Validation};
pub use principal::{Principal, PrincipalKind};
#[cfg(any(test, feature = "testing"))]
pub use testing::TestIssuer;

use crate::error::{DomainError, to_status};

/// Machine code of every authentication failure.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// The one message callers get for any token problem, so probing teaches nothing.
pub const UNAUTHENTICATED_MESSAGE: &str = "missing, invalid or expired access token";

/// Path prefixes that never need a token: health checks and reflection.
const ALWAYS_PUBLIC_PREFIXES: [&str; 2] = ["/grpc.health.v1.", "/grpc.reflection."];

/// Why a request could not be authenticated. `Display` is for logs and names the failed check;
/// no variant carries any part of the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token larger than {} bytes", jwt::MAX_TOKEN_LEN)]
    TooLarge,
    #[error("token algorithm is not EdDSA")]
    UnsupportedAlgorithm,
    #[error("unsupported token header: {0}")]
    UnsupportedHeader(&'static str),
    #[error("token signed with an unknown key id")]
    UnknownKey,
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token for another audience")]
    WrongAudience,
    #[error("token from another issuer")]
    WrongIssuer,
    #[error("invalid token claims: {0}")]
    InvalidClaims(&'static str),
    /// Identity's keys could not be fetched: not the caller's fault, so it is retryable.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl DomainError for AuthError {
    fn code(&self) -> &'static str {
        match self {
            AuthError::KeysUnavailable(_) => "unavailable",
            _ => UNAUTHENTICATED,
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            AuthError::KeysUnavailable(_) => Code::Unavailable,
            _ => Code::Unauthenticated,
        }
    }

    fn public_message(&self) -> String {
        match self {
            AuthError::KeysUnavailable(_) => "service temporarily unavailable, retry later".to_owned(),
            _ => UNAUTHENTICATED_MESSAGE.to_owned(),
        }
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        to_status(&err)
    }
}

/// Source of "now" in seconds since the Unix epoch; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Verifies bearer tokens against identity's keys and turns them into principals.
pub struct Verifier {
    keys: Arc<JwksCache>,
    validation: Validation,
    clock: Clock,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys).field("validation", &self.validation).finish()
    }
}

impl Verifier {
    /// Accept tokens from `issuer` for `audience`, with the default leeway and the system clock.
    pub fn new(keys: Arc<JwksCache>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self { keys, validation: Validation::new(issuer, audience), clock: Arc::new(jwt::now_unix) }
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway;
        self
    }

    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The key cache, e.g. to run its periodic refresh.
    pub fn keys(&self) -> &Arc<JwksCache> {
        &self.keys
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Verify a bearer token (without the `Bearer ` prefix) and build its principal.
    pub async fn verify(&self, bearer_token: &str) -> Result<Principal, AuthError> {
        let unverified = jwt::decode(bearer_token)?;
        let key = self.keys.key(unverified.kid()).await?;
        let claims = unverified.verify(&key, &self.validation, (self.clock)())?;
        Principal::from_claims(claims)
    }
}

/// The token of an `authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    // Two credentials leave it ambiguous which one a proxy or a handler looked at.
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one authorization header"));
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed("authorization header is not visible ASCII"))?;
    let (scheme, token) =
        value.trim().split_once(' ').ok_or(AuthError::Malformed("authorization header is not a bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("authorization scheme is not Bearer"));
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// The principal [`AuthLayer`] attached to this request; Unauthenticated if there is none (a
/// public method, or a server without the layer).
pub fn principal<T>(req: &tonic::Request<T>) -> Result<&Principal, Status> {
    req.extensions().get::<Principal>().ok_or_else(|| to_status(&AuthError::MissingToken))
}

/// Tower layer that authenticates every gRPC call except health, reflection and the listed
/// public methods, and puts the [`Principal`] in the request extensions.
///
/// ```ignore
/// tonic::transport::Server::builder()
///     .layer(AuthLayer::new(verifier, vec!["/cobro.identity.v1.IdentityService/GetJwks".into()]))
///     .add_service(svc)
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    public_methods: Arc<HashSet<String>>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer").field("public_methods", &self.public_methods).finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// `public_methods` are full method paths, e.g. `/cobro.identity.v1.IdentityService/GetJwks`.
    pub fn new(verifier: Arc<Verifier>, public_methods: Vec<String>) -> Self {
        Self { verifier, public_methods: Arc::new(public_methods.into_iter().collect()) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: Arc::clone(&self.verifier), public_methods: Arc::clone(&self.public_methods) }
    }
}

/// The service [`AuthLayer`] wraps around the routes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    public_methods: Arc<HashSet<String>>,
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").field("public_methods", &self.public_methods).finish_non_exhaustive()
    }
}

impl<S> AuthService<S> {
    fn is_public(&self, path: &str) -> bool {
        ALWAYS_PUBLIC_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) || self.public_methods.contains(path)
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    // tonic's `Body` is `Default`: the rejection is a trailers-only response with an empty body.
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // The clone may not be ready; keep the instance that was polled ready for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        if self.is_public(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        // Own the token (zeroized on drop) so the future does not borrow the request.
        let token = bearer_token(req.headers()).map(|token| SecretString::from(token.to_owned()));
        let verifier = Arc::clone(&self.verifier);
        Box::pin(async move {
            let result = match token {
                Ok(token) => verifier.verify(token.expose_secret()).await,
                Err(err) => Err(err),
            };
            match result {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(err) => {
                    let path = req.uri().path();
                    if matches!(err, AuthError::KeysUnavailable(_)) {
                        tracing::warn!(path, error = %err, "cannot authenticate request");
                    } else {
                        tracing::debug!(path, error = %err, "request rejected");
                    }
                    Ok(to_status(&err).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer as _, ServiceExt as _};
    use uuid::Uuid;

    use super::*;
    use crate::error::error_code;

    const GET_JWKS: &str = "/cobro.identity.v1.IdentityService/GetJwks";

    /// Echoes who it thinks is calling.
    fn echo()
    -> impl tower::Service<
        http::Request<String>,
        Response = http::Response<String>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|req: http::Request<String>| async move {
            let body = match req.extensions().get::<Principal>() {
                Some(p) => format!("{}|{}|{}", p.tenant_id, p.kind, p.subject),
                None => "anonymous".to_owned(),
            };
            Ok::<_, Infallible>(http::Response::new(body))
        })
    }

    async fn call(layer: &AuthLayer, path: &str, authorization: Option<&str>) -> http::Response<String> {
        let mut req = http::Request::builder().method("POST").uri(format!("http://cobro.test{path}"));
        if let Some(value) = authorization {
            req = req.header(http::header::AUTHORIZATION, value);
        }
        layer.layer(echo()).oneshot(req.body(String::new()).unwrap()).await.unwrap()
    }

    fn grpc_status(res: &http::Response<String>) -> Option<&str> {
        res.headers().get("grpc-status").map(|v| v.to_str().unwrap())
    }

    fn layer(issuer: &TestIssuer) -> AuthLayer {
        AuthLayer::new(Arc::new(issuer.verifier()), vec![GET_JWKS.to_owned()])
    }

    #[tokio::test]
    async fn verifier_accepts_a_valid_token() {
        let issuer = TestIssuer::new();
        let tenant = Uuid::now_v7();
        let token = issuer.token(tenant, PrincipalKind::User, &["invoices.read"]);
        let p = issuer.verifier().verify(&token).await.unwrap();
        assert_eq!(p.tenant_id(), tenant);
        assert_eq!(p.kind, PrincipalKind::User);
        assert!(p.require("invoices.read").is_ok());
        assert_eq!(p.require("invoices.write").unwrap_err().code(), Code::PermissionDenied);
    }

    #[tokio::test]
    async fn verifier_uses_its_clock_and_leeway() {
        let issuer = TestIssuer::new();
        let token = issuer.token(Uuid::now_v7(), PrincipalKind::ApiKey, &[]);
        let later = jwt::now_unix() + 3600;
        let err = issuer.verifier().with_clock(move || later).verify(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::Expired));
        let lenient = issuer.verifier().with_clock(move || later).with_leeway(Duration::from_secs(7200));
        assert!(lenient.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn verifier_rejects_other_issuers_keys() {
        let issuer = TestIssuer::new();
        let stranger = TestIssuer::new();
        let token = stranger.token(Uuid::now_v7(), PrincipalKind::User, &["invoices.read"]);
        assert!(issuer.verifier().verify(&token).await.is_err());
    }

    #[test]
    fn auth_errors_are_generic_to_callers() {
        for err in [
            AuthError::MissingToken,
            AuthError::Malformed("x"),
            AuthError::TooLarge,
            AuthError::UnsupportedAlgorithm,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::WrongAudience,
            AuthError::InvalidClaims("x"),
        ] {
            let status = Status::from(err);
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.message(), UNAUTHENTICATED_MESSAGE);
            assert_eq!(error_code(&status), Some(UNAUTHENTICATED));
        }
        let status = Status::from(AuthError::KeysUnavailable("identity down".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("identity"));
    }

    #[test]
    fn bearer_header_parsing() {
        let parse = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(http::header::AUTHORIZATION, http::HeaderValue::from_str(v).unwrap());
            }
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(parse(&["Bearer abc.def.ghi"]).unwrap(), "abc.def.ghi");
        assert_eq!(parse(&["bearer abc"]).unwrap(), "abc");
        assert_eq!(parse(&["BEARER  abc"]).unwrap(), "abc");
        assert!(matches!(parse(&[]), Err(AuthError::MissingToken)));
        assert!(matches!(parse(&["Bearer "]), Err(AuthError::Malformed(_) | AuthError::MissingToken)));
        assert!(parse(&["Bearer"]).is_err());
        assert!(parse(&["Basic dXNlcjpwYXNz"]).is_err());
        assert!(parse(&["abc.def.ghi"]).is_err());
        assert!(parse(&["Bearer a", "Bearer b"]).is_err());
    }

    #[tokio::test]
    async fn layer_rejects_a_request_without_token() {
        let issuer = TestIssuer::new();
        let res = call(&layer(&issuer), "/cobro.invoicing.v1.InvoicingService/GetInvoice", None).await;
        assert_eq!(grpc_status(&res), Some("16"));
        assert_eq!(res.headers().get(crate::error::ERROR_CODE_HEADER).unwrap(), UNAUTHENTICATED);
        assert_eq!(res.headers().get("content-type").unwrap(), "application/grpc");
        assert_eq!(res.body(), "", "the inner service never ran");
    }

    #[tokio::test]
    async fn layer_rejects_bad_tokens_without_echoing_them() {
        let issuer = TestIssuer::new();
        let stranger = TestIssuer::new();
        let forged = stranger.token(Uuid::now_v7(), PrincipalKind::User, &[]);
        for auth in [format!("Bearer {forged}"), "Bearer not-a-token".to_owned(), format!("Basic {forged}")] {
            let res = call(&layer(&issuer), "/cobro.invoicing.v1.InvoicingService/GetInvoice", Some(&auth)).await;
            assert_eq!(grpc_status(&res), Some("16"));
            for value in res.headers().values() {
                assert!(!value.as_bytes().windows(16).any(|w| forged.as_bytes().windows(16).any(|f| f == w)));
            }
        }
    }

    #[tokio::test]
    async fn layer_passes_the_principal_to_the_inner_service() {
        let issuer = TestIssuer::new();
        let tenant = Uuid::now_v7();
        let token = issuer.token(tenant, PrincipalKind::Customer, &["portal.invoices.read"]);
        let res =
            call(&layer(&issuer), "/cobro.invoicing.v1.InvoicingService/GetInvoice", Some(&format!("bearer {token}")))
                .await;
        assert_eq!(grpc_status(&res), None);
        let body = res.body();
        assert!(body.starts_with(&format!("{tenant}|customer|")), "{body}");
    }

    #[tokio::test]
    async fn layer_lets_public_paths_through() {
        let issuer = TestIssuer::new();
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            GET_JWKS,
        ] {
            let res = call(&layer(&issuer), path, None).await;
            assert_eq!(grpc_status(&res), None, "{path}");
            assert_eq!(res.body(), "anonymous");
        }
        // Only exact public methods, not their neighbours or prefixes.
        for path in
            ["/cobro.identity.v1.IdentityService/GetJwksX", "/cobro.identity.v1.IdentityService/", "/grpc.healthz/x"]
        {
            assert_eq!(grpc_status(&call(&layer(&issuer), path, None).await), Some("16"), "{path}");
        }
    }

    #[test]
    fn principal_helper_reads_the_extension() {
        let req = tonic::Request::new(());
        assert_eq!(principal(&req).unwrap_err().code(), Code::Unauthenticated);

        let issuer = TestIssuer::new();
        let claims = issuer.claims(Uuid::now_v7(), PrincipalKind::User, &["a"]);
        let p = Principal::from_claims(claims).unwrap();
        let mut http_req = http::Request::new(());
        http_req.extensions_mut().insert(p.clone());
        let req = tonic::Request::from_http(http_req);
        assert_eq!(principal(&req).unwrap(), &p);
    }

    #[tokio::test]
    async fn layer_fits_a_tonic_server() {
        let issuer = TestIssuer::new();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let router = tonic::transport::Server::builder().layer(layer(&issuer)).add_service(health);
        // Never polled: this checks the trait bounds tonic puts on a server layer, not the network.
        let serve = router.serve_with_shutdown("127.0.0.1:0".parse().unwrap(), async {});
        drop(serve);
    }
}
