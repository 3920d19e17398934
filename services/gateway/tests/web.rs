//! The gateway's foundations against the real Redis: sessions that end when they should and
//! never leak their tokens, per-address limits, and the security headers on every response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use cobro_gateway::web::i18n::Language;
use cobro_gateway::web::limits::{Allowance, RateLimiter};
use cobro_gateway::web::session::{self, SessionData, SessionId, SessionStore, SignedIn};
use cobro_kit::cache::{RedisConfig, connect_lazy};
use secrecy::SecretString;
use tower::ServiceExt;
use uuid::Uuid;

fn redis() -> redis::aio::ConnectionManager {
    connect_lazy(&RedisConfig::new(cobro_kit::testing::redis_url())).unwrap()
}

fn prefix() -> String {
    format!("test:{}", Uuid::now_v7().simple())
}

fn signed_in() -> SignedIn {
    SignedIn {
        tenant_id: Uuid::now_v7(),
        subject: "usr_1".into(),
        kind: "customer".into(),
        customer_id: Some(Uuid::now_v7()),
        access_token: SecretString::from("eyJ.access.token-value"),
        refresh_token: SecretString::from("refresh-token-value"),
        access_expires_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_session_lives_server_side_and_signing_in_replaces_its_id() {
    let store = SessionStore::new(redis(), prefix(), Duration::from_secs(60), Duration::from_secs(3600));
    let anonymous = SessionData::new(Language::En);
    let id = store.create(&anonymous).await.unwrap();
    let loaded = store.load(&id).await.unwrap().expect("the session is there");
    assert_eq!((loaded.csrf.as_str(), loaded.language), (anonymous.csrf.as_str(), Language::En));

    let mut data = loaded;
    data.signed_in = Some(signed_in());
    let new = store.rotate(&id, &data).await.unwrap();
    assert!(new != id);
    assert!(store.load(&id).await.unwrap().is_none(), "the id from before sign-in is worthless");
    assert!(store.load(&new).await.unwrap().unwrap().signed_in.is_some());

    // What the cookie and the logs get: the id only, never a token.
    let cookie = session::set_cookie(&new, true);
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("; Secure"), "{cookie}");
    assert!(!session::set_cookie(&new, false).contains("Secure"));
    let printed = format!("{:?} {:?}", store.load(&new).await.unwrap().unwrap(), new);
    assert!(!printed.contains("token-value") && !printed.contains(new.cookie_value()), "{printed}");

    store.destroy(&new).await.unwrap();
    assert!(store.load(&new).await.unwrap().is_none(), "signing out ends it");
    assert!(session::clear_cookie(false).contains("Max-Age=0"));
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_limit() {
    let idle = SessionStore::new(redis(), prefix(), Duration::from_secs(1), Duration::from_secs(3600));
    let id = idle.create(&SessionData::new(Language::Es)).await.unwrap();
    // Each request restarts the idle time...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(idle.load(&id).await.unwrap().is_some());
    }
    // ...and without one it ends.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(idle.load(&id).await.unwrap().is_none());

    let absolute = SessionStore::new(redis(), prefix(), Duration::from_secs(60), Duration::from_secs(3600));
    let mut old = SessionData::new(Language::Es);
    old.started_at = Utc::now() - chrono::Duration::hours(2);
    let id = absolute.create(&old).await.unwrap();
    assert!(absolute.load(&id).await.unwrap().is_none(), "older than the absolute limit");
}

#[tokio::test]
async fn cookie_values_that_are_not_session_ids_are_refused() {
    assert!(SessionId::from_cookie("abc").is_none());
    assert!(SessionId::from_cookie(&"a".repeat(44)).is_none());
    assert!(SessionId::from_cookie(&format!("{}/", "a".repeat(42))).is_none());
    let store = SessionStore::new(redis(), prefix(), Duration::from_secs(60), Duration::from_secs(60));
    let unknown = SessionId::from_cookie(&"A".repeat(43)).unwrap();
    assert!(store.load(&unknown).await.unwrap().is_none());
}

#[tokio::test]
async fn an_address_over_its_limit_waits_for_the_window_to_end() {
    let limiter = RateLimiter::new(redis(), prefix());
    let window = Duration::from_secs(30);
    for _ in 0..3 {
        assert_eq!(limiter.hit("signin", "203.0.113.7", 3, window).await.unwrap(), Allowance::Allowed);
    }
    let Allowance::Limited { retry_after } = limiter.hit("signin", "203.0.113.7", 3, window).await.unwrap() else {
        panic!("the fourth request in the window must be limited");
    };
    assert!(retry_after <= window && retry_after > Duration::from_secs(20), "{retry_after:?}");
    // Another address, or another action, counts on its own.
    assert_eq!(limiter.hit("signin", "203.0.113.8", 3, window).await.unwrap(), Allowance::Allowed);
    assert_eq!(limiter.hit("pay", "203.0.113.7", 3, window).await.unwrap(), Allowance::Allowed);

    // When the window ends the address may try again.
    let short = Duration::from_millis(400);
    assert_eq!(limiter.hit("short", "203.0.113.9", 1, short).await.unwrap(), Allowance::Allowed);
    if let Allowance::Limited { retry_after } = limiter.hit("short", "203.0.113.9", 1, short).await.unwrap() {
        assert!(retry_after <= short);
        tokio::time::sleep(retry_after + Duration::from_millis(100)).await;
    }
    assert_eq!(limiter.hit("short", "203.0.113.9", 1, short).await.unwrap(), Allowance::Allowed);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    for secure in [false, true] {
        let response =
            cobro_gateway::router(secure).oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{csp}");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "same-origin");
        assert_eq!(h.contains_key("strict-transport-security"), secure);
    }
    let missing =
        cobro_gateway::router(false).oneshot(Request::get("/nowhere").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("content-security-policy"));
}
