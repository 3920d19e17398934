//! TOTP enrolment, removal and recovery codes.

use cobro_kit::auth::Principal;
use cobro_kit::error::InvalidField;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::signin::unix_now;
use super::{Identity, SessionTokens, limiter_down, prefix, user_of};
use crate::domain::recovery::RecoveryCode;
use crate::domain::totp::{self, TotpSecret};
use crate::domain::{qr, validate};
use crate::error::{IdentityError, Result};
use crate::store;
use crate::store::audit::Entry;
use crate::store::mfa::ChallengeRow;
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;

/// What the user needs to add Cobro to an authenticator app. `Debug` hides the secret.
pub struct Enrolment {
    pub secret_base32: SecretString,
    pub otpauth_uri: SecretString,
    pub qr_svg: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment { [redacted] }")
    }
}

#[derive(Debug)]
pub struct EnrolmentConfirmed {
    /// Shown once.
    pub recovery_codes: Vec<SecretString>,
    /// When enrolment finished a sign-in.
    pub session: Option<SessionTokens>,
}

/// Who is enrolling: the caller, or the user of a sign-in challenge that requires enrolment.
pub enum Enroller<'a> {
    Principal(&'a Principal),
    Challenge(&'a str),
}

fn aad(tenant_id: Uuid, user_id: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32);
    aad.extend_from_slice(tenant_id.as_bytes());
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

impl Identity {
    pub(crate) fn open_totp_secret(&self, user: &UserRow, sealed: &[u8]) -> Result<TotpSecret> {
        let bytes = self
            .settings
            .data_key
            .open(sealed, &aad(user.tenant_id, user.id))
            .map_err(|_| IdentityError::Internal("an authenticator secret cannot be decrypted".to_owned()))?;
        Ok(TotpSecret::from_bytes(bytes))
    }

    async fn enroller(&self, who: Enroller<'_>) -> Result<(UserRow, TenantRow, Option<ChallengeRow>)> {
        match who {
            Enroller::Challenge(token) => {
                let (challenge, user, tenant) = self.challenge_user(token).await?;
                if !challenge.enrolment_required {
                    return Err(IdentityError::MfaAlreadyEnrolled);
                }
                Ok((user, tenant, Some(challenge)))
            }
            Enroller::Principal(principal) => {
                let (user, tenant) = self.own_user(principal).await?;
                Ok((user, tenant, None))
            }
        }
    }

    /// The caller's own user (enabled) and tenant.
    pub(crate) async fn own_user(&self, principal: &Principal) -> Result<(UserRow, TenantRow)> {
        let (tenant_id, user_id) = user_of(principal)?;
        let mut conn = self.pool.acquire().await?;
        let user = store::users::get(&mut conn, tenant_id, user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(IdentityError::NotFound("user"))?;
        let tenant = store::tenants::get(&self.pool, tenant_id).await?.ok_or(IdentityError::NotFound("tenant"))?;
        Ok((user, tenant))
    }

    /// Re-authenticate the caller with their password, counted like a sign-in attempt.
    pub(crate) async fn confirm_password(
        &self,
        user: &UserRow,
        tenant: &TenantRow,
        password: &str,
        field: &str,
        client_ip: &str,
    ) -> Result<()> {
        validate::present(field, password, 1024)?;
        let attempt = self.begin_attempt(Some(tenant), &tenant.slug, &user.email, client_ip).await?;
        if self.verify_secret(password.to_owned(), Some(user.password_hash.clone())).await? {
            self.limiter.succeeded(&attempt.subject).await.map_err(limiter_down)?;
            Ok(())
        } else {
            let who = cobro_kit::ids::format(prefix::USER, user.id);
            self.attempt_failed(Some(tenant), &attempt, "reauthentication.failed", &who, "wrong_password").await?;
            Err(InvalidField::new(field, "is not correct").into())
        }
    }

    /// Start (or restart) enrolment: a fresh secret, stored sealed and unconfirmed. A signed-in
    /// user confirms their password first, so a stolen access token cannot bind an attacker's
    /// authenticator.
    pub async fn begin_totp_enrolment(&self, who: Enroller<'_>, password: &str, client_ip: &str) -> Result<Enrolment> {
        let by_principal = matches!(who, Enroller::Principal(_));
        let (user, tenant, _) = self.enroller(who).await?;
        if user.mfa_enrolled {
            return Err(IdentityError::MfaAlreadyEnrolled);
        }
        if by_principal {
            self.confirm_password(&user, &tenant, password, "current_password", client_ip).await?;
        }
        let secret = TotpSecret::generate();
        let sealed = self
            .settings
            .data_key
            .seal(secret.as_bytes(), &aad(user.tenant_id, user.id))
            .map_err(|_| IdentityError::Internal("cannot seal an authenticator secret".to_owned()))?;
        let mut conn = self.pool.acquire().await?;
        if !store::mfa::put_pending_totp(&mut conn, user.tenant_id, user.id, &sealed).await? {
            return Err(IdentityError::MfaAlreadyEnrolled);
        }
        let uri = totp::otpauth_uri(&secret, &self.settings.totp_issuer, &user.email);
        let qr_svg = qr::svg(&uri).map_err(|_| IdentityError::Internal("cannot draw the QR code".to_owned()))?;
        Ok(Enrolment {
            secret_base32: SecretString::from(secret.to_base32()),
            otpauth_uri: SecretString::from(uri),
            qr_svg,
        })
    }

    /// Confirm enrolment with a code from the app; issues recovery codes, and finishes the
    /// sign-in when enrolment was part of one.
    pub async fn confirm_totp_enrolment(
        &self,
        who: Enroller<'_>,
        code: &str,
        client_ip: &str,
    ) -> Result<EnrolmentConfirmed> {
        let code = totp::normalize_code(code)
            .ok_or_else(|| InvalidField::new("code", "must be the 6 digits shown by the authenticator app"))?;
        let (user, tenant, challenge) = self.enroller(who).await?;
        let mut conn = self.pool.acquire().await?;
        let row = store::mfa::totp(&mut conn, user.tenant_id, user.id).await?;
        drop(conn);
        let Some(row) = row.filter(|r| r.confirmed_at.is_none()) else {
            return Err(if user.mfa_enrolled {
                IdentityError::MfaAlreadyEnrolled
            } else {
                IdentityError::FailedPrecondition("no enrolment in progress: call BeginTotpEnrolment first")
            });
        };
        let attempt = self.begin_attempt(Some(&tenant), &tenant.slug, &user.email, client_ip).await?;
        let secret = self.open_totp_secret(&user, &row.secret_sealed)?;
        let step = totp::matching_step(&secret, &code, unix_now()).and_then(|s| i64::try_from(s).ok());

        let codes = RecoveryCode::generate_set();
        let hashed = self.hash_recovery_codes(&codes).await?;
        let mut tx = self.pool.begin().await?;
        let accepted = match step {
            Some(step) => {
                store::mfa::accept_step(&mut tx, user.tenant_id, user.id, step, true, Some(&row.secret_sealed)).await?
            }
            None => false,
        };
        if !accepted {
            drop(tx);
            let who = cobro_kit::ids::format(prefix::USER, user.id);
            self.attempt_failed(Some(&tenant), &attempt, "mfa.failed", &who, "enrolment").await?;
            return Err(IdentityError::InvalidMfaCode);
        }
        store::mfa::replace_recovery_codes(&mut tx, user.tenant_id, user.id, &hashed).await?;
        let actor = cobro_kit::ids::format(prefix::USER, user.id);
        store::audit::record(&mut tx, tenant.id, &Entry::own("mfa.enrolled", &actor, client_ip, "totp")).await?;
        let session = match challenge {
            Some(challenge) => {
                if !store::mfa::consume_challenge(&mut tx, challenge.id).await? {
                    return Err(IdentityError::ChallengeInvalid);
                }
                let mut user = user;
                user.mfa_enrolled = true;
                Some(self.finish_sign_in(&mut tx, user, client_ip, "totp_enrolment").await?)
            }
            None => None,
        };
        tx.commit().await?;
        self.limiter.succeeded(&attempt.subject).await.map_err(limiter_down)?;
        Ok(EnrolmentConfirmed {
            recovery_codes: codes.iter().map(|c| SecretString::from(c.display())).collect(),
            session,
        })
    }

    async fn hash_recovery_codes(&self, codes: &[RecoveryCode]) -> Result<Vec<(String, String)>> {
        let mut hashed = Vec::with_capacity(codes.len());
        for code in codes {
            hashed.push((code.selector().to_owned(), self.hash_secret(code.secret().to_owned()).await?));
        }
        Ok(hashed)
    }

    /// Run `change` in a transaction after the caller proves a current TOTP code there, the
    /// attempt counted like a sign-in.
    async fn with_current_code(
        &self,
        principal: &Principal,
        code: &str,
        client_ip: &str,
        action: &'static str,
        detail: &str,
        replace_codes: Option<&[(String, String)]>,
    ) -> Result<()> {
        let (user, tenant) = self.own_user(principal).await?;
        if !user.mfa_enrolled {
            return Err(IdentityError::MfaNotEnrolled);
        }
        totp::normalize_code(code)
            .ok_or_else(|| InvalidField::new("code", "must be the 6 digits shown by the authenticator app"))?;
        let attempt = self.begin_attempt(Some(&tenant), &tenant.slug, &user.email, client_ip).await?;
        let mut tx = self.pool.begin().await?;
        if !self.accept_totp(&mut tx, &user, code, "code").await? {
            drop(tx);
            self.attempt_failed(Some(&tenant), &attempt, "mfa.failed", &principal.subject, "confirmation").await?;
            return Err(IdentityError::InvalidMfaCode);
        }
        match replace_codes {
            Some(hashed) => store::mfa::replace_recovery_codes(&mut tx, user.tenant_id, user.id, hashed).await?,
            None => {
                store::mfa::delete_totp(&mut tx, user.tenant_id, user.id).await?;
            }
        }
        store::audit::record(&mut tx, user.tenant_id, &Entry::own(action, &principal.subject, client_ip, detail))
            .await?;
        tx.commit().await?;
        self.limiter.succeeded(&attempt.subject).await.map_err(limiter_down)?;
        Ok(())
    }

    pub async fn remove_totp(&self, principal: &Principal, code: &str, client_ip: &str) -> Result<()> {
        self.with_current_code(principal, code, client_ip, "mfa.removed", "by the user", None).await
    }

    /// A new set of recovery codes; every earlier code stops working.
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        code: &str,
        client_ip: &str,
    ) -> Result<Vec<SecretString>> {
        let codes = RecoveryCode::generate_set();
        let hashed = self.hash_recovery_codes(&codes).await?;
        self.with_current_code(principal, code, client_ip, "recovery_codes.regenerated", "", Some(&hashed)).await?;
        Ok(codes.iter().map(|c| SecretString::from(c.display())).collect())
    }
}

/// For tests and tools: the current code of a base32 secret.
pub fn current_code(secret_base32: &SecretString) -> Option<String> {
    let key = totp::base32_decode(secret_base32.expose_secret())?;
    Some(totp::totp(totp::Algorithm::Sha1, &key, unix_now(), totp::DIGITS))
}
