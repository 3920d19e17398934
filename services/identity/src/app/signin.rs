//! Sign-in: password, second factor, refresh, logout.

use chrono::{DateTime, Utc};
use cobro_kit::auth::Principal;
use cobro_kit::error::InvalidField;
use uuid::Uuid;

use super::{Identity, SessionTokens, limiter_down, prefix, user_of};
use crate::domain::secret::{random_token, token_hash};
use crate::domain::{recovery, totp, validate};
use crate::error::{IdentityError, Result};
use crate::limiter::Gate;
use crate::store;
use crate::store::audit::Entry;
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;

/// Passwords longer than this are refused before hashing, so huge inputs cost nothing.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Wrong codes one challenge tolerates before the user must sign in again.
const MAX_CHALLENGE_ATTEMPTS: i32 = 5;

pub struct Challenge {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub enrolment_required: bool,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("enrolment_required", &self.enrolment_required)
            .finish()
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum LoginOutcome {
    Session(SessionTokens),
    Challenge(Challenge),
}

pub enum MfaFactor {
    Totp(String),
    RecoveryCode(String),
}

/// A reserved sign-in attempt.
pub(crate) struct Attempt {
    pub(crate) subject: crate::limiter::Subject,
    pub(crate) limits: crate::limiter::Limits,
    pub(crate) client_ip: String,
}

#[derive(Debug)]
pub struct MfaCompleted {
    pub session: SessionTokens,
    pub recovery_codes_remaining: u32,
}

impl std::fmt::Debug for MfaFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MfaFactor::Totp(_) => "Totp([redacted])",
            MfaFactor::RecoveryCode(_) => "RecoveryCode([redacted])",
        })
    }
}

fn user_subject(user: &UserRow) -> String {
    cobro_kit::ids::format(prefix::USER, user.id)
}

impl Identity {
    /// The password step.
    pub async fn login(&self, tenant: &str, email: &str, password: &str, client_ip: &str) -> Result<LoginOutcome> {
        let slug = validate::slug("tenant", tenant)?;
        let email = validate::email("email", email)?;
        validate::present("password", password, MAX_PASSWORD_BYTES)?;

        let tenant = store::tenants::by_slug(&self.pool, &slug).await?;
        let attempt = self.begin_attempt(tenant.as_ref(), &slug, &email, client_ip).await?;
        // An unknown tenant still looks a user up (in no tenant), so it costs what a known one does.
        let user = store::users::by_email(&self.pool, tenant.as_ref().map_or(Uuid::nil(), |t| t.id), &email).await?;
        let password_ok =
            self.verify_secret(password.to_owned(), user.as_ref().map(|u| u.password_hash.clone())).await?;
        let failure = match (&user, password_ok) {
            (None, _) => Some("unknown_email"),
            (Some(_), false) => Some("wrong_password"),
            (Some(u), true) if u.disabled_at.is_some() => Some("disabled"),
            (Some(_), true) => None,
        };
        // Who the attempt was about, for the audit log: the user when there is one.
        let about = user.as_ref().map_or_else(|| email.clone(), user_subject);
        let (Some(tenant), Some(user), None) = (&tenant, user, failure) else {
            self.attempt_failed(tenant.as_ref(), &attempt, "login.failed", &about, failure.unwrap_or("unknown"))
                .await?;
            if tenant.is_none() {
                tracing::info!(tenant = %slug, "sign-in to an unknown tenant");
            }
            return Err(IdentityError::InvalidCredentials);
        };

        let required =
            if user.kind == "customer" { tenant.mfa_required_for_contacts } else { tenant.mfa_required_for_staff };
        if user.mfa_enrolled || required {
            // The attempt stays counted until the second factor succeeds, so a known password
            // does not reset the count that limits guessing the second factor.
            return Ok(LoginOutcome::Challenge(self.new_challenge(&user, !user.mfa_enrolled, client_ip).await?));
        }
        let mut tx = self.pool.begin().await?;
        let session = self.finish_sign_in(&mut tx, user, client_ip, "password").await?;
        tx.commit().await?;
        self.limiter.succeeded(&attempt.subject).await.map_err(limiter_down)?;
        Ok(LoginOutcome::Session(session))
    }

    /// Reserve a sign-in attempt (password or code) on the account, before any check.
    pub(crate) async fn begin_attempt(
        &self,
        tenant: Option<&TenantRow>,
        slug: &str,
        email: &str,
        client_ip: &str,
    ) -> Result<Attempt> {
        let attempt = Attempt {
            subject: Self::subject(slug, email, client_ip),
            limits: self.limits(tenant),
            client_ip: client_ip.to_owned(),
        };
        match self.limiter.begin(&attempt.subject, &attempt.limits).await.map_err(limiter_down)? {
            Gate::Open => Ok(attempt),
            Gate::AccountLocked { retry_after } => {
                if let Some(t) = tenant {
                    self.audit(
                        t.id,
                        Entry {
                            action: "login.refused",
                            subject: email.to_owned(),
                            client_ip: client_ip.to_owned(),
                            detail: "account_locked".to_owned(),
                            ..Entry::default()
                        },
                    )
                    .await?;
                }
                Err(IdentityError::AccountLocked { retry_after_secs: retry_after.as_secs().max(1) })
            }
            Gate::AddressLimited { retry_after } => {
                Err(IdentityError::TooManyAttempts { retry_after_secs: retry_after.as_secs().max(1) })
            }
        }
    }

    /// A reserved attempt failed: keep it counted, record it, lock when the threshold is reached.
    pub(crate) async fn attempt_failed(
        &self,
        tenant: Option<&TenantRow>,
        attempt: &Attempt,
        action: &'static str,
        about: &str,
        detail: &str,
    ) -> Result<()> {
        let locked = self.limiter.failed(&attempt.subject, &attempt.limits).await.map_err(limiter_down)?;
        // Without a tenant there is nowhere to file the entry; the log line suffices.
        let Some(t) = tenant else { return Ok(()) };
        let mut tx = self.pool.begin().await?;
        store::audit::record(
            &mut tx,
            t.id,
            &Entry {
                action,
                subject: about.to_owned(),
                client_ip: attempt.client_ip.clone(),
                detail: detail.to_owned(),
                ..Entry::default()
            },
        )
        .await?;
        if locked {
            store::audit::record(
                &mut tx,
                t.id,
                &Entry {
                    action: "account.locked",
                    subject: about.to_owned(),
                    client_ip: attempt.client_ip.clone(),
                    detail: format!("{} failed attempts", attempt.limits.account_threshold),
                    ..Entry::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn new_challenge(&self, user: &UserRow, enrolment_required: bool, client_ip: &str) -> Result<Challenge> {
        let token = random_token("cmc_", 43);
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.settings.mfa_challenge_ttl).unwrap_or(chrono::Duration::minutes(5));
        let mut conn = self.pool.acquire().await?;
        store::mfa::insert_challenge(
            &mut conn,
            &store::mfa::NewChallenge {
                id: Uuid::now_v7(),
                tenant_id: user.tenant_id,
                user_id: user.id,
                token_hash: &token_hash(&token),
                enrolment_required,
                client_ip,
                expires_at,
            },
        )
        .await?;
        Ok(Challenge { token, expires_at, enrolment_required })
    }

    /// The user and tenant behind a live challenge, with one of its attempts reserved.
    pub(crate) async fn challenge_user(
        &self,
        challenge_token: &str,
    ) -> Result<(store::mfa::ChallengeRow, UserRow, TenantRow)> {
        validate::present("challenge_token", challenge_token, 128)?;
        let mut conn = self.pool.acquire().await?;
        let challenge = store::mfa::live_challenge(&mut conn, &token_hash(challenge_token))
            .await?
            .ok_or(IdentityError::ChallengeInvalid)?;
        if !store::mfa::reserve_challenge_attempt(&mut conn, challenge.id, MAX_CHALLENGE_ATTEMPTS).await? {
            return Err(IdentityError::ChallengeInvalid);
        }
        let user = store::users::get(&mut conn, challenge.tenant_id, challenge.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(IdentityError::ChallengeInvalid)?;
        let tenant =
            store::tenants::get(&self.pool, challenge.tenant_id).await?.ok_or(IdentityError::ChallengeInvalid)?;
        Ok((challenge, user, tenant))
    }

    /// Check a TOTP code for a confirmed authenticator and record its time step in `conn`'s
    /// transaction, so the same code (or an older one) never works again. False for a wrong or
    /// replayed code.
    pub(crate) async fn accept_totp(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &UserRow,
        code: &str,
        field: &str,
    ) -> Result<bool> {
        let code = totp::normalize_code(code)
            .ok_or_else(|| InvalidField::new(field, "must be the 6 digits shown by the authenticator app"))?;
        let Some(row) = store::mfa::totp(conn, user.tenant_id, user.id).await? else {
            return Err(IdentityError::MfaNotEnrolled);
        };
        if row.confirmed_at.is_none() {
            return Err(IdentityError::MfaNotEnrolled);
        }
        let secret = self.open_totp_secret(user, &row.secret_sealed)?;
        let Some(step) = totp::matching_step(&secret, &code, unix_now()) else {
            return Ok(false);
        };
        let step = i64::try_from(step).map_err(|_| IdentityError::Internal("time step out of range".to_owned()))?;
        store::mfa::accept_step(conn, user.tenant_id, user.id, step, false, None).await
    }

    /// The second step. The challenge, the code and the session are one transaction: a wrong
    /// code spends nothing but the attempt.
    pub async fn complete_mfa(
        &self,
        challenge_token: &str,
        factor: MfaFactor,
        client_ip: &str,
    ) -> Result<MfaCompleted> {
        let (challenge, user, tenant) = self.challenge_user(challenge_token).await?;
        if challenge.enrolment_required {
            return Err(IdentityError::MfaEnrolmentRequired);
        }
        // Shape first, so a typo is not counted as a guess.
        let recovery = match &factor {
            MfaFactor::Totp(code) => {
                totp::normalize_code(code).ok_or_else(|| {
                    InvalidField::new("totp_code", "must be the 6 digits shown by the authenticator app")
                })?;
                None
            }
            MfaFactor::RecoveryCode(code) => Some(recovery::parse(code).ok_or_else(|| {
                InvalidField::new("recovery_code", "must be a recovery code like abcd-efgh-jkmn-pqrs")
            })?),
        };
        let attempt = self.begin_attempt(Some(&tenant), &tenant.slug, &user.email, client_ip).await?;
        // The slow hash is checked before the transaction opens.
        let recovery_ok = match &recovery {
            Some((selector, secret)) => {
                let hash = store::mfa::unused_recovery_code(&self.pool, user.tenant_id, user.id, selector).await?;
                self.verify_secret(secret.clone(), hash).await?
            }
            None => false,
        };

        let mut tx = self.pool.begin().await?;
        if !store::mfa::consume_challenge(&mut tx, challenge.id).await? {
            return Err(IdentityError::ChallengeInvalid);
        }
        let (accepted, method) = match (&factor, &recovery) {
            (MfaFactor::Totp(code), _) => (self.accept_totp(&mut tx, &user, code, "totp_code").await?, "totp"),
            (MfaFactor::RecoveryCode(_), Some((selector, _))) => (
                recovery_ok && store::mfa::use_recovery_code(&mut tx, user.tenant_id, user.id, selector).await?,
                "recovery_code",
            ),
            (MfaFactor::RecoveryCode(_), None) => (false, "recovery_code"),
        };
        if !accepted {
            drop(tx);
            self.attempt_failed(Some(&tenant), &attempt, "mfa.failed", &user_subject(&user), method).await?;
            return Err(IdentityError::InvalidMfaCode);
        }
        if method == "recovery_code" {
            store::audit::record(
                &mut tx,
                tenant.id,
                &Entry::own("recovery_code.used", &user_subject(&user), client_ip, ""),
            )
            .await?;
        }
        let remaining = store::mfa::recovery_codes_remaining(&mut tx, user.tenant_id, user.id).await?;
        let session = self.finish_sign_in(&mut tx, user, client_ip, method).await?;
        tx.commit().await?;
        self.limiter.succeeded(&attempt.subject).await.map_err(limiter_down)?;
        Ok(MfaCompleted { session, recovery_codes_remaining: u32::try_from(remaining).unwrap_or(0) })
    }

    /// Rotate a refresh token. Reuse of a rotated token ends the whole sign-in: either the
    /// legitimate client or a thief holds a copy, and we cannot tell which.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionTokens> {
        validate::present("refresh_token", refresh_token, 128)?;
        let mut tx = self.pool.begin().await?;
        let row = store::sessions::for_update(&mut tx, &token_hash(refresh_token))
            .await?
            .ok_or(IdentityError::InvalidRefreshToken)?;
        if row.revoked_at.is_some() {
            return Err(IdentityError::InvalidRefreshToken);
        }
        if row.rotated_at.is_some() {
            store::sessions::revoke_family(&mut tx, row.tenant_id, row.family_id, "reuse_detected").await?;
            let subject = cobro_kit::ids::format(prefix::USER, row.user_id);
            store::audit::record(
                &mut tx,
                row.tenant_id,
                &Entry {
                    action: "session.reuse_detected",
                    subject,
                    detail: "a rotated refresh token was presented; the sign-in was revoked".to_owned(),
                    ..Entry::default()
                },
            )
            .await?;
            tx.commit().await?;
            return Err(IdentityError::RefreshTokenReused);
        }
        if row.expires_at <= Utc::now() {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let user = store::users::get(&mut tx, row.tenant_id, row.user_id).await?;
        let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
            store::sessions::revoke_family(&mut tx, row.tenant_id, row.family_id, "user_disabled").await?;
            tx.commit().await?;
            return Err(IdentityError::InvalidRefreshToken);
        };
        store::sessions::mark_rotated(&mut tx, row.id).await?;
        let session = self.open_session(&mut tx, user, Some(row.family_id)).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// End the sign-in the token belongs to. Unknown tokens are accepted silently: logging out
    /// twice is not an error, and the answer must not tell whether a token exists.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        validate::present("refresh_token", refresh_token, 128)?;
        let mut tx = self.pool.begin().await?;
        if let Some(row) = store::sessions::for_update(&mut tx, &token_hash(refresh_token)).await?
            && store::sessions::revoke_family(&mut tx, row.tenant_id, row.family_id, "logout").await? > 0
        {
            let subject = cobro_kit::ids::format(prefix::USER, row.user_id);
            store::audit::record(
                &mut tx,
                row.tenant_id,
                &Entry { action: "logout", actor: subject.clone(), subject, ..Entry::default() },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revoke every refresh token of the caller. Returns how many sign-ins ended.
    pub async fn logout_everywhere(&self, principal: &Principal) -> Result<u64> {
        let (tenant_id, user_id) = user_of(principal)?;
        let mut tx = self.pool.begin().await?;
        let ended = store::sessions::revoke_user(&mut tx, tenant_id, user_id, "logout_everywhere").await?;
        store::audit::record(
            &mut tx,
            tenant_id,
            &Entry::own("logout.everywhere", &principal.subject, "", format!("{ended} sign-ins ended")),
        )
        .await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// An audit entry in a transaction of its own.
    pub(crate) async fn audit(&self, tenant_id: Uuid, entry: Entry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        store::audit::record(&mut tx, tenant_id, &entry).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}
