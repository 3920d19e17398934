//! The use cases: each method validates its input, applies the rules in `domain`, reads and
//! writes through `store` in one transaction, and records what security needs to know.

mod admin;
mod credentials;
mod mfa;
mod signin;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cobro_kit::auth::{Claims, Principal, PrincipalKind};
use cobro_kit::service::AuthConfig;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use self::admin::{NewContact, NewStaffUser, TenantBootstrap, TenantChanges};
pub use self::credentials::{CreatedApiKey, NewApiKey};
pub use self::mfa::{Enroller, Enrolment, EnrolmentConfirmed, current_code};
pub use self::signin::{Challenge, LoginOutcome, MfaCompleted, MfaFactor};
use crate::config::Settings;
use crate::domain::password::PasswordHasher;
use crate::domain::secret::{random_token, token_hash};
use crate::error::{IdentityError, Result};
use crate::keys::KeyRing;
use crate::limiter::{Limiter, LimiterError, Limits, Subject};
use crate::store;
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;

/// Prefixes of ids at the API edge.
pub mod prefix {
    pub const TENANT: &str = "ten";
    pub const USER: &str = "usr";
    pub const API_KEY: &str = "key";
    pub const CUSTOMER: &str = "cus";
}

pub struct Identity {
    pub(crate) pool: PgPool,
    pub(crate) settings: Arc<Settings>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) limiter: Limiter,
    pub(crate) hasher: Arc<PasswordHasher>,
    pub(crate) auth: AuthConfig,
}

/// A signed access token. `Debug` shows only its expiry.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("token", &"[redacted]").field("expires_at", &self.expires_at).finish()
    }
}

/// A signed-in session: the access token, the refresh token (shown once) and who it is.
/// `Debug` never shows the tokens.
#[derive(Clone)]
pub struct SessionTokens {
    pub access: AccessToken,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub user: UserRow,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("access", &self.access)
            .field("refresh_token", &"[redacted]")
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("user", &self.user.id)
            .finish()
    }
}

impl Identity {
    pub fn new(pool: PgPool, settings: Arc<Settings>, keys: Arc<KeyRing>, limiter: Limiter, auth: AuthConfig) -> Self {
        Self { pool, settings, keys, limiter, hasher: Arc::new(PasswordHasher::new()), auth }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    // --- password hashing, off the async threads: each hash costs tens of milliseconds ---

    pub(crate) async fn hash_secret(&self, secret: String) -> Result<String> {
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || hasher.hash(&secret))
            .await
            .map_err(|_| IdentityError::Internal("hashing task failed".to_owned()))?
            .map_err(|_| IdentityError::Internal("hashing failed".to_owned()))
    }

    /// Verify against `phc`, or against a dummy hash when there is none, so both take as long.
    pub(crate) async fn verify_secret(&self, secret: String, phc: Option<String>) -> Result<bool> {
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => hasher.verify(&secret, &phc),
            None => {
                hasher.verify_dummy(&secret);
                false
            }
        })
        .await
        .map_err(|_| IdentityError::Internal("hashing task failed".to_owned()))
    }

    // --- tokens ---

    fn claims(&self, tenant_id: Uuid, subject: String, kind: PrincipalKind, ttl: Duration) -> (Claims, DateTime<Utc>) {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
        let claims = Claims {
            iss: self.auth.issuer.clone(),
            sub: subject,
            aud: self.auth.audience.clone(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: None,
            jti: Uuid::now_v7().simple().to_string(),
            tid: tenant_id,
            knd: kind,
            roles: Vec::new(),
            perms: Vec::new(),
            cid: None,
            svc: None,
        };
        (claims, expires_at)
    }

    fn sign(&self, claims: &Claims, expires_at: DateTime<Utc>) -> Result<AccessToken> {
        Ok(AccessToken { token: self.keys.sign(claims)?, expires_at })
    }

    /// The access token of a user or contact, with the permissions of their role.
    pub(crate) fn user_access_token(&self, user: &UserRow) -> Result<AccessToken> {
        let subject = cobro_kit::ids::format(prefix::USER, user.id);
        let (mut claims, expires_at) = if user.kind == "customer" {
            let (mut c, exp) =
                self.claims(user.tenant_id, subject, PrincipalKind::Customer, self.settings.access_token_ttl);
            c.cid = user.customer_id;
            c.perms = crate::domain::roles::CONTACT_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect();
            (c, exp)
        } else {
            let role = user
                .role
                .as_deref()
                .and_then(|r| r.parse::<crate::domain::roles::Role>().ok())
                .ok_or_else(|| IdentityError::Internal("staff user without a known role".to_owned()))?;
            let (mut c, exp) =
                self.claims(user.tenant_id, subject, PrincipalKind::User, self.settings.access_token_ttl);
            c.roles = vec![role.as_str().to_owned()];
            c.perms = role.permissions().iter().map(|p| (*p).to_owned()).collect();
            (c, exp)
        };
        claims.perms.sort();
        self.sign(&claims, expires_at)
    }

    /// Issue a session: a new refresh token in `family` (a new family for a new sign-in).
    pub(crate) async fn open_session(
        &self,
        conn: &mut PgConnection,
        user: UserRow,
        family: Option<Uuid>,
    ) -> Result<SessionTokens> {
        let access = self.user_access_token(&user)?;
        let refresh_token = random_token("crt_", 43);
        let refresh_expires_at = Utc::now()
            + chrono::Duration::from_std(self.settings.refresh_token_ttl).unwrap_or(chrono::Duration::hours(12));
        store::sessions::insert(
            conn,
            &store::sessions::NewRefresh {
                id: Uuid::now_v7(),
                tenant_id: user.tenant_id,
                user_id: user.id,
                family_id: family.unwrap_or_else(Uuid::now_v7),
                token_hash: &token_hash(&refresh_token),
                expires_at: refresh_expires_at,
            },
        )
        .await?;
        Ok(SessionTokens { access, refresh_token, refresh_expires_at, user })
    }

    /// The last step of every sign-in, in the caller's transaction: record it and issue the
    /// session. `method` says how the user proved who they are.
    pub(crate) async fn finish_sign_in(
        &self,
        conn: &mut PgConnection,
        user: UserRow,
        client_ip: &str,
        method: &str,
    ) -> Result<SessionTokens> {
        let who = cobro_kit::ids::format(prefix::USER, user.id);
        store::audit::record(
            conn,
            user.tenant_id,
            &store::audit::Entry::own("login.succeeded", &who, client_ip, method),
        )
        .await?;
        store::users::touch_login(conn, user.tenant_id, user.id).await?;
        self.open_session(conn, user, None).await
    }

    // --- sign-in limits ---

    pub(crate) fn limits(&self, tenant: Option<&TenantRow>) -> Limits {
        let (threshold, lockout) = tenant.map_or((10, 1800), |t| {
            (
                u32::try_from(t.lockout_threshold).unwrap_or(10),
                u64::try_from(t.lockout_duration_seconds).unwrap_or(1800),
            )
        });
        Limits {
            account_threshold: threshold.max(1),
            lockout: Duration::from_secs(lockout.max(1)),
            window: self.settings.failure_window,
            ip_threshold: self.settings.ip_failure_limit,
        }
    }

    pub(crate) fn subject(tenant_slug: &str, email: &str, ip: &str) -> Subject {
        Subject::new(tenant_slug, email, ip)
    }
}

/// The limiter cannot count: refuse rather than allow unlimited guesses.
pub(crate) fn limiter_down(err: LimiterError) -> IdentityError {
    tracing::error!(error = %err, "sign-in limiter unavailable; refusing sign-ins");
    IdentityError::Unavailable("sign-in rate limiting")
}

/// The staff or contact user a principal stands for.
pub(crate) fn user_of(principal: &Principal) -> Result<(Uuid, Uuid)> {
    match principal.kind {
        PrincipalKind::User | PrincipalKind::Customer => {
            let id = cobro_kit::ids::parse("sub", prefix::USER, &principal.subject)
                .map_err(|_| IdentityError::PermissionDenied("this call needs a user's session".to_owned()))?;
            Ok((principal.tenant_id, id))
        }
        _ => Err(IdentityError::PermissionDenied("this call needs a user's session".to_owned())),
    }
}

pub(crate) fn require(principal: &Principal, permission: &str) -> Result<()> {
    if principal.has(permission) {
        Ok(())
    } else {
        Err(IdentityError::PermissionDenied(format!("missing permission {permission}")))
    }
}
