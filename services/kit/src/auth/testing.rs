//! Tokens for tests, until (and besides) identity: a throwaway key, its key set, and a minter
//! with sensible defaults.

use std::sync::Arc;

use uuid::Uuid;

use super::jwks::{JwkSet, JwksCache, StaticJwks};
use super::jwt::{self, Claims, SigningKey};
use super::principal::PrincipalKind;
use super::{Principal, Verifier};

/// Issuer name test tokens carry.
pub const TEST_ISSUER: &str = "cobro-identity";
/// Audience test tokens carry.
pub const TEST_AUDIENCE: &str = "cobro";
/// Lifetime of test tokens.
pub const TEST_TOKEN_TTL_SECS: i64 = 15 * 60;

/// A throwaway token issuer.
///
/// ```ignore
/// let issuer = TestIssuer::new();
/// let layer = AuthLayer::new(Arc::new(issuer.verifier()), vec![]);
/// let token = issuer.token(tenant_id, PrincipalKind::User, &["invoices.read"]);
/// ```
#[derive(Debug)]
pub struct TestIssuer {
    key: SigningKey,
    jwks: Arc<StaticJwks>,
}

impl Default for TestIssuer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestIssuer {
    pub fn new() -> Self {
        Self::with_kid(format!("test-{}", Uuid::new_v4()))
    }

    pub fn with_kid(kid: impl Into<String>) -> Self {
        let key = SigningKey::generate(kid);
        let jwks = Arc::new(StaticJwks::new(JwkSet::new().with_key(key.kid(), key.verifying_key())));
        Self { key, jwks }
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The key set, replaceable to simulate rotation.
    pub fn jwks(&self) -> Arc<StaticJwks> {
        Arc::clone(&self.jwks)
    }

    /// A fresh cache over [`TestIssuer::jwks`].
    pub fn cache(&self) -> Arc<JwksCache> {
        Arc::new(JwksCache::new(self.jwks()))
    }

    /// A verifier accepting this issuer's tokens.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.cache(), TEST_ISSUER, TEST_AUDIENCE)
    }

    /// Valid-now claims: random subject, `cid` for customers, `svc = "test"` for services.
    pub fn claims(&self, tenant_id: Uuid, kind: PrincipalKind, permissions: &[&str]) -> Claims {
        let now = jwt::now_unix();
        Claims {
            iss: TEST_ISSUER.to_owned(),
            sub: Uuid::now_v7().to_string(),
            aud: TEST_AUDIENCE.to_owned(),
            exp: now + TEST_TOKEN_TTL_SECS,
            iat: now,
            nbf: Some(now),
            jti: Uuid::now_v7().to_string(),
            tid: tenant_id,
            knd: kind,
            roles: Vec::new(),
            perms: permissions.iter().map(|p| (*p).to_owned()).collect(),
            cid: (kind == PrincipalKind::Customer).then(Uuid::now_v7),
            svc: (kind == PrincipalKind::Service).then(|| "test".to_owned()),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        jwt::sign(&self.key, claims)
    }

    /// A token with [`TestIssuer::claims`] defaults.
    pub fn token(&self, tenant_id: Uuid, kind: PrincipalKind, permissions: &[&str]) -> String {
        self.sign(&self.claims(tenant_id, kind, permissions))
    }

    /// A token for the service principal `service`, e.g. payments calling the vault.
    pub fn service_token(&self, tenant_id: Uuid, service: &str, permissions: &[&str]) -> String {
        let mut claims = self.claims(tenant_id, PrincipalKind::Service, permissions);
        claims.sub = service.to_owned();
        claims.svc = Some(service.to_owned());
        self.sign(&claims)
    }

    /// The principal of the service `service`, without a token round trip.
    pub fn service_principal(&self, tenant_id: Uuid, service: &str, permissions: &[&str]) -> Principal {
        let mut claims = self.claims(tenant_id, PrincipalKind::Service, permissions);
        claims.sub = service.to_owned();
        claims.svc = Some(service.to_owned());
        #[allow(clippy::expect_used)]
        Principal::from_claims(claims).expect("the test issuer mints valid claims")
    }

    /// The principal a handler would see for these arguments, without a token round trip.
    pub fn principal(&self, tenant_id: Uuid, kind: PrincipalKind, permissions: &[&str]) -> Principal {
        #[allow(clippy::expect_used)]
        Principal::from_claims(self.claims(tenant_id, kind, permissions)).expect("the test issuer mints valid claims")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn minted_tokens_verify_for_every_kind() {
        let issuer = TestIssuer::new();
        let tenant = Uuid::now_v7();
        let verifier = issuer.verifier();
        for kind in [PrincipalKind::User, PrincipalKind::Customer, PrincipalKind::ApiKey, PrincipalKind::Service] {
            let p = verifier.verify(&issuer.token(tenant, kind, &["x.read"])).await.unwrap();
            assert_eq!((p.tenant_id, p.kind), (tenant, kind));
            assert!(p.has("x.read"));
        }
        let payments = verifier.verify(&issuer.service_token(tenant, "payments", &[])).await.unwrap();
        assert!(payments.require_service("payments").is_ok());
    }

    #[tokio::test]
    async fn rotation_through_the_verifier() {
        let issuer = TestIssuer::new();
        let verifier = issuer.verifier();
        let tenant = Uuid::now_v7();
        assert!(verifier.verify(&issuer.token(tenant, PrincipalKind::User, &[])).await.is_ok());

        let next = SigningKey::generate("next");
        issuer.jwks().replace(
            JwkSet::new()
                .with_key(issuer.signing_key().kid(), issuer.signing_key().verifying_key())
                .with_key(next.kid(), next.verifying_key()),
        );
        verifier.keys().refresh().await.unwrap();
        let token = jwt::sign(&next, &issuer.claims(tenant, PrincipalKind::User, &[]));
        assert!(verifier.verify(&token).await.is_ok());
    }
}
