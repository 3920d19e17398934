//! Two-factor sign-in against real Postgres and Redis: enrolment, replay protection, drift,
//! recovery codes, enforced enrolment, secrets at rest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cobro_identity::app::{Enroller, LoginOutcome, MfaFactor, TenantChanges};
use cobro_identity::error::IdentityError;
use common::{Harness, PASSWORD, TenantFixture, away_from_step_boundary, code, code_at};
use secrecy::ExposeSecret;

/// Enrol the owner; returns the base32 secret and the recovery codes.
async fn enrol(h: &Harness, t: &TenantFixture) -> (String, Vec<String>) {
    away_from_step_boundary().await;
    let enrolment = h.app.begin_totp_enrolment(Enroller::Principal(&t.owner), PASSWORD, "").await.unwrap();
    let secret = enrolment.secret_base32.expose_secret().to_owned();
    assert!(enrolment.otpauth_uri.expose_secret().starts_with("otpauth://totp/Cobro:"));
    assert!(enrolment.otpauth_uri.expose_secret().contains(&format!("secret={secret}")));
    assert!(enrolment.qr_svg.starts_with("<svg") && enrolment.qr_svg.contains("<path"));
    let confirmed =
        h.app.confirm_totp_enrolment(Enroller::Principal(&t.owner), &code_at(&secret, 0), "").await.unwrap();
    assert!(confirmed.session.is_none());
    let codes: Vec<String> = confirmed.recovery_codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn challenge(h: &Harness, t: &TenantFixture) -> String {
    match h.login(&t.slug, &t.owner_email, PASSWORD).await.unwrap() {
        LoginOutcome::Challenge(c) => {
            assert!(!c.enrolment_required);
            c.token
        }
        LoginOutcome::Session(_) => panic!("an enrolled user must get a challenge"),
    }
}

async fn with_code(h: &Harness, t: &TenantFixture, code: String) -> Result<(), IdentityError> {
    let token = challenge(h, t).await;
    h.app.complete_mfa(&token, MfaFactor::Totp(code), "203.0.113.7").await.map(|_| ())
}

#[tokio::test]
async fn codes_work_once_within_one_step_of_drift_and_never_backwards() {
    let h = Harness::new().await;
    let t = h.tenant("totp").await;
    let (secret, _) = enrol(&h, &t).await;
    // Enrolment used the current step: the same code is a replay.
    let err = with_code(&h, &t, code_at(&secret, 0)).await.unwrap_err();
    assert_eq!(code(&err), "invalid_mfa_code");

    away_from_step_boundary().await;
    // Two steps ahead is too much drift.
    assert_eq!(code(&with_code(&h, &t, code_at(&secret, 2)).await.unwrap_err()), "invalid_mfa_code");
    // One step ahead (a phone clock 30 s fast) is accepted, once.
    let ahead = code_at(&secret, 1);
    with_code(&h, &t, ahead.clone()).await.unwrap();
    assert_eq!(code(&with_code(&h, &t, ahead).await.unwrap_err()), "invalid_mfa_code");
    // A code of an earlier step than one already used is refused even though it is in the window.
    assert_eq!(code(&with_code(&h, &t, code_at(&secret, 0)).await.unwrap_err()), "invalid_mfa_code");

    // Malformed codes name the field rather than count as a guess.
    let token = challenge(&h, &t).await;
    let err = h.app.complete_mfa(&token, MfaFactor::Totp("12ab56".into()), "").await.unwrap_err();
    assert_eq!(common::field(&err).as_deref(), Some("totp_code"));
    let actions = h.audit_actions(t.id).await;
    assert!(actions.contains(&"mfa.enrolled".to_owned()) && actions.contains(&"mfa.failed".to_owned()));
    h.finish().await;
}

#[tokio::test]
async fn a_challenge_allows_few_attempts_and_works_once() {
    let h = Harness::new().await;
    let t = h.tenant("chal").await;
    let (secret, _) = enrol(&h, &t).await;
    let token = challenge(&h, &t).await;
    for _ in 0..5 {
        let err = h.app.complete_mfa(&token, MfaFactor::Totp("000000".into()), "").await.unwrap_err();
        assert!(matches!(code(&err), "invalid_mfa_code"), "{err}");
    }
    away_from_step_boundary().await;
    let err = h.app.complete_mfa(&token, MfaFactor::Totp(code_at(&secret, 1)), "").await.unwrap_err();
    assert_eq!(code(&err), "mfa_challenge_invalid", "the challenge is used up after 5 wrong codes");

    let token = challenge(&h, &t).await;
    h.app.complete_mfa(&token, MfaFactor::Totp(code_at(&secret, 1)), "").await.unwrap();
    let again = h.app.complete_mfa(&token, MfaFactor::Totp(code_at(&secret, 1)), "").await.unwrap_err();
    assert_eq!(code(&again), "mfa_challenge_invalid");
    h.finish().await;
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_kills_the_old_set() {
    let h = Harness::new().await;
    let t = h.tenant("recovery").await;
    let (secret, codes) = enrol(&h, &t).await;

    let token = challenge(&h, &t).await;
    let done = h.app.complete_mfa(&token, MfaFactor::RecoveryCode(codes[0].to_uppercase()), "").await.unwrap();
    assert_eq!(done.recovery_codes_remaining, 9);
    let token = challenge(&h, &t).await;
    let err = h.app.complete_mfa(&token, MfaFactor::RecoveryCode(codes[0].clone()), "").await.unwrap_err();
    assert_eq!(code(&err), "invalid_mfa_code", "a used recovery code is dead");
    assert!(h.audit_actions(t.id).await.contains(&"recovery_code.used".to_owned()));

    away_from_step_boundary().await;
    let fresh = h.app.regenerate_recovery_codes(&t.owner, &code_at(&secret, 1), "").await.unwrap();
    assert_eq!(fresh.len(), 10);
    let token = challenge(&h, &t).await;
    let err = h.app.complete_mfa(&token, MfaFactor::RecoveryCode(codes[1].clone()), "").await.unwrap_err();
    assert_eq!(code(&err), "invalid_mfa_code", "the old set died with regeneration");
    let token = challenge(&h, &t).await;
    let done =
        h.app.complete_mfa(&token, MfaFactor::RecoveryCode(fresh[3].expose_secret().to_owned()), "").await.unwrap();
    assert_eq!(done.recovery_codes_remaining, 9);

    // Hashes only, never the codes.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT secret_hash FROM recovery_codes").fetch_all(&h.db.pool).await.unwrap();
    assert!(stored.iter().all(|hash| hash.starts_with("$argon2id$")));
    let err =
        h.app.complete_mfa(&challenge(&h, &t).await, MfaFactor::RecoveryCode("nope".into()), "").await.unwrap_err();
    assert_eq!(common::field(&err).as_deref(), Some("recovery_code"));
    h.finish().await;
}

#[tokio::test]
async fn a_tenant_that_requires_mfa_makes_staff_enrol_during_sign_in() {
    let h = Harness::new().await;
    let t = h.tenant("enforce").await;
    h.app
        .update_tenant(&t.owner, TenantChanges { mfa_required_for_staff: Some(true), ..Default::default() })
        .await
        .unwrap();
    let LoginOutcome::Challenge(challenge) = h.login(&t.slug, &t.owner_email, PASSWORD).await.unwrap() else {
        panic!("policy requires a second factor");
    };
    assert!(challenge.enrolment_required);
    let err = h.app.complete_mfa(&challenge.token, MfaFactor::Totp("123456".into()), "").await.unwrap_err();
    assert_eq!(code(&err), "mfa_enrolment_required");

    away_from_step_boundary().await;
    let enrolment = h.app.begin_totp_enrolment(Enroller::Challenge(&challenge.token), "", "").await.unwrap();
    let secret = enrolment.secret_base32.expose_secret().to_owned();
    let wrong = h.app.confirm_totp_enrolment(Enroller::Challenge(&challenge.token), "000000", "").await.unwrap_err();
    assert_eq!(code(&wrong), "invalid_mfa_code");
    let done =
        h.app.confirm_totp_enrolment(Enroller::Challenge(&challenge.token), &code_at(&secret, 0), "").await.unwrap();
    let session = done.session.expect("enrolment finished the sign-in");
    assert!(session.user.mfa_enrolled);
    assert_eq!(done.recovery_codes.len(), 10);
    h.principal(&session.access.token).await;
    // The challenge is spent.
    let err = h.app.begin_totp_enrolment(Enroller::Challenge(&challenge.token), "", "").await.unwrap_err();
    assert_eq!(code(&err), "mfa_challenge_invalid");
    h.finish().await;
}

#[tokio::test]
async fn the_secret_is_sealed_at_rest_and_removal_needs_a_current_code() {
    let h = Harness::new().await;
    let t = h.tenant("sealed").await;
    let (secret, _) = enrol(&h, &t).await;
    let raw = cobro_identity::domain::totp::base32_decode(&secret).unwrap();
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT secret_sealed FROM totp_credentials").fetch_one(&h.db.pool).await.unwrap();
    assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()), "the seed is not stored in the clear");
    assert!(!String::from_utf8_lossy(&sealed).contains(&secret));

    let again = h.app.begin_totp_enrolment(Enroller::Principal(&t.owner), PASSWORD, "").await.unwrap_err();
    assert_eq!(code(&again), "mfa_already_enrolled");
    assert_eq!(code(&h.app.remove_totp(&t.owner, "000000", "").await.unwrap_err()), "invalid_mfa_code");
    away_from_step_boundary().await;
    h.app.remove_totp(&t.owner, &code_at(&secret, 1), "").await.unwrap();
    assert!(matches!(h.login(&t.slug, &t.owner_email, PASSWORD).await.unwrap(), LoginOutcome::Session(_)));
    assert!(h.audit_actions(t.id).await.contains(&"mfa.removed".to_owned()));

    // Neither the secret nor a code reached the audit log or its events.
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_log a").fetch_all(&h.db.pool).await.unwrap();
    let events: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM outbox").fetch_all(&h.db.pool).await.unwrap();
    assert!(events.len() >= audit.len());
    for text in audit.iter().cloned().chain(events.iter().map(|e| String::from_utf8_lossy(e).into_owned())) {
        assert!(!text.contains(&secret) && !text.contains(PASSWORD));
    }
    h.finish().await;
}

#[tokio::test]
async fn enrolling_with_a_session_needs_the_password() {
    let h = Harness::new().await;
    let t = h.tenant("reauth").await;
    let err = h.app.begin_totp_enrolment(Enroller::Principal(&t.owner), "", "").await.unwrap_err();
    assert_eq!(common::field(&err).as_deref(), Some("current_password"));
    let err =
        h.app.begin_totp_enrolment(Enroller::Principal(&t.owner), "not my password at all", "").await.unwrap_err();
    assert_eq!(common::field(&err).as_deref(), Some("current_password"));
    assert!(h.audit_actions(t.id).await.contains(&"reauthentication.failed".to_owned()));
    h.finish().await;
}

#[tokio::test]
async fn wrong_codes_lock_the_account_and_a_locked_account_cannot_finish_or_step_up() {
    let h = Harness::new().await;
    let t = h.tenant("mfalock").await;
    h.app.update_tenant(&t.owner, TenantChanges { lockout_threshold: Some(3), ..Default::default() }).await.unwrap();
    let (secret, codes) = enrol(&h, &t).await;
    // Password right, codes wrong: the password step counts until the second factor succeeds.
    let token = challenge(&h, &t).await;
    assert_eq!(
        code(&h.app.complete_mfa(&token, MfaFactor::Totp("000000".into()), "").await.unwrap_err()),
        "invalid_mfa_code"
    );
    let err = h.app.complete_mfa(&token, MfaFactor::Totp("000001".into()), "").await.unwrap_err();
    assert!(matches!(code(&err), "invalid_mfa_code" | "account_locked"), "{err}");
    away_from_step_boundary().await;
    let err = h.app.complete_mfa(&token, MfaFactor::Totp(code_at(&secret, 1)), "").await.unwrap_err();
    assert_eq!(code(&err), "account_locked", "a locked account cannot finish signing in, even with a good code");
    let err = h.app.complete_mfa(&token, MfaFactor::RecoveryCode(codes[0].clone()), "").await.unwrap_err();
    assert_eq!(code(&err), "account_locked");
    let err = h.app.regenerate_recovery_codes(&t.owner, &code_at(&secret, 1), "").await.unwrap_err();
    assert_eq!(code(&err), "account_locked", "step-up checks respect the lock");
    assert!(h.audit_actions(t.id).await.contains(&"account.locked".to_owned()));
    h.finish().await;
}

#[tokio::test]
async fn one_code_used_twice_at_once_works_once() {
    let h = Harness::new().await;
    let t = h.tenant("race").await;
    let (secret, _) = enrol(&h, &t).await;
    away_from_step_boundary().await;
    let code = code_at(&secret, 1);
    let (a, b) = (challenge(&h, &t).await, challenge(&h, &t).await);
    let (ra, rb) = tokio::join!(
        h.app.complete_mfa(&a, MfaFactor::Totp(code.clone()), ""),
        h.app.complete_mfa(&b, MfaFactor::Totp(code.clone()), "")
    );
    assert_eq!(usize::from(ra.is_ok()) + usize::from(rb.is_ok()), 1, "exactly one of two concurrent uses wins");
    h.finish().await;
}
