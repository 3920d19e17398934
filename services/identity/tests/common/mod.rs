//! A real identity over a throwaway schema, real Redis and, for the wire tests, a real gRPC
//! server on a free port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cobro_identity::app::{Identity, LoginOutcome, SessionTokens, TenantBootstrap};
use cobro_identity::config::Settings;
use cobro_identity::error::IdentityError;
use cobro_kit::auth::{Principal, Verifier};
use cobro_kit::cache::RedisConfig;
use cobro_kit::service::AuthConfig;
use cobro_kit::testing::TestDb;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Harness {
    pub db: TestDb,
    pub app: Arc<Identity>,
    pub verifier: Arc<Verifier>,
    pub auth: AuthConfig,
}

pub struct TenantFixture {
    pub id: Uuid,
    pub slug: String,
    pub owner_email: String,
    pub owner: Principal,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with(Settings::generated(), &cobro_kit::testing::redis_url()).await
    }

    pub async fn with(settings: Settings, redis_url: &str) -> Harness {
        let db = TestDb::new(&cobro_identity::migrator()).await;
        let redis = cobro_kit::cache::connect_lazy(&RedisConfig::new(redis_url)).unwrap();
        let auth = AuthConfig::default();
        // Each harness counts failures under its own prefix, so tests never see each other's.
        let prefix = format!("test:identity:{}", Uuid::now_v7().simple());
        let app = cobro_identity::build(db.pool.clone(), settings, redis, &prefix, auth.clone()).await.unwrap();
        let verifier = cobro_identity::verifier(&app, &auth);
        Harness { db, app, verifier, auth }
    }

    /// A tenant with an owner, signed in.
    pub async fn tenant(&self, slug_hint: &str) -> TenantFixture {
        let slug = format!("{slug_hint}-{}", &Uuid::now_v7().simple().to_string()[20..]);
        let owner_email = format!("owner@{slug}.example.com");
        let (tenant, _) = self
            .app
            .bootstrap_tenant(
                None,
                TenantBootstrap {
                    slug: slug.clone(),
                    name: format!("{slug_hint} S.A. de C.V."),
                    default_locale: "es-MX".into(),
                    default_timezone: "America/Mexico_City".into(),
                    owner_email: owner_email.clone(),
                    owner_name: "Owner".into(),
                    owner_password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
        let session = self.login_session(&slug, &owner_email, PASSWORD).await;
        let owner = self.principal(&session.access.token).await;
        TenantFixture { id: tenant.id, slug, owner_email, owner }
    }

    pub async fn login(&self, slug: &str, email: &str, password: &str) -> Result<LoginOutcome, IdentityError> {
        self.app.login(slug, email, password, "203.0.113.7").await
    }

    pub async fn login_session(&self, slug: &str, email: &str, password: &str) -> SessionTokens {
        match self.login(slug, email, password).await.unwrap() {
            LoginOutcome::Session(s) => s,
            LoginOutcome::Challenge(_) => panic!("expected a session, got an MFA challenge"),
        }
    }

    pub async fn principal(&self, token: &str) -> Principal {
        self.verifier.verify(token).await.unwrap()
    }

    pub async fn audit_actions(&self, tenant: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn finish(self) {
        self.db.drop_schema().await;
    }
}

/// The machine code of an error, as callers see it.
pub fn code(err: &IdentityError) -> &'static str {
    use cobro_kit::error::DomainError;
    err.code()
}

pub fn field(err: &IdentityError) -> Option<String> {
    use cobro_kit::error::DomainError;
    err.field().map(str::to_owned)
}

/// Codes are checked against the server's clock; a step boundary between computing a code and
/// checking it would shift which step counts as "now". Wait out the last second of a step.
pub async fn away_from_step_boundary() {
    let now = chrono::Utc::now();
    let into_step = now.timestamp() % 30;
    if into_step >= 28 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(31 - into_step).unwrap() * 1000)).await;
    }
}

/// The TOTP code of a base32 secret at now + `offset_steps` steps.
pub fn code_at(secret_base32: &str, offset_steps: i64) -> String {
    use cobro_identity::domain::totp;
    let key = totp::base32_decode(secret_base32).unwrap();
    let t = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp::totp(totp::Algorithm::Sha1, &key, u64::try_from(t).unwrap(), 6)
}

/// Retry `f` for up to 10 s until it succeeds (a dependency coming back).
pub async fn eventually_ok<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, IdentityError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("still failing: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
