//! Signing in through the gateway's pages against a real identity (its gRPC server on a free
//! port, a throwaway schema, the real Redis): password, then the second factor when the
//! account has one; CSRF on every form; a new session id at sign-in; sign-out ends it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use cobro_gateway::pages::{self, Pages};
use cobro_gateway::web::limits::RateLimiter;
use cobro_gateway::web::session::{SessionId, SessionStore};
use cobro_identity::app::{Enroller, Identity, TenantBootstrap};
use cobro_identity::config::Settings;
use cobro_kit::auth::Verifier;
use cobro_kit::cache::{RedisConfig, connect_lazy};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::service::AuthConfig;
use cobro_kit::testing::TestDb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::identity::v1::identity_service_server::IdentityServiceServer;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

struct H {
    db: TestDb,
    app: Arc<Identity>,
    sessions: SessionStore,
    router: axum::Router,
    slug: String,
    email: String,
    _shutdown: CancellationToken,
}

impl H {
    async fn new(signin_limit_prefix: Option<&str>) -> H {
        let db = TestDb::new(&cobro_identity::migrator()).await;
        let redis = connect_lazy(&RedisConfig::new(cobro_kit::testing::redis_url())).unwrap();
        let auth = AuthConfig::default();
        let prefix = format!("test:{}", Uuid::now_v7().simple());
        let app = cobro_identity::build(db.pool.clone(), Settings::generated(), redis.clone(), &prefix, auth.clone())
            .await
            .unwrap();
        let verifier: Arc<Verifier> = cobro_identity::verifier(&app, &auth);
        let server = GrpcServer::new(GrpcConfig::default(), Arc::clone(&verifier))
            .add_service(IdentityServiceServer::new(cobro_identity::api::IdentityApi::new(
                Arc::clone(&app),
                Arc::clone(&verifier),
            )))
            .public_methods(cobro_identity::api::PUBLIC_METHODS);
        let shutdown = CancellationToken::new();
        let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
        tokio::spawn(serving);
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(10)).await.unwrap();

        let slug = format!("acme-{}", &Uuid::now_v7().simple().to_string()[20..]);
        let email = format!("owner@{slug}.example.com");
        app.bootstrap_tenant(
            None,
            TenantBootstrap {
                slug: slug.clone(),
                name: "Acme S.A. de C.V.".into(),
                default_locale: "es-MX".into(),
                default_timezone: "America/Mexico_City".into(),
                owner_email: email.clone(),
                owner_name: "Owner".into(),
                owner_password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();

        let gateway_prefix = signin_limit_prefix.map_or_else(|| format!("{prefix}:gw"), str::to_owned);
        let sessions = SessionStore::new(
            redis.clone(),
            format!("{gateway_prefix}:s"),
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        let pages = Pages {
            sessions: sessions.clone(),
            limiter: RateLimiter::new(redis, format!("{gateway_prefix}:l")),
            identity: IdentityServiceClient::new(channel),
            edge: cobro_gateway::web::edge::EdgeCredential::new(None),
            services: pages::Services::connect_lazy(&cobro_gateway::GatewayConfig::default()).unwrap(),
            verifier,
            templates: pages::templates(),
            secure: false,
        };
        let router = cobro_gateway::router_with_pages(Arc::new(pages));
        H { db, app, sessions, router, slug, email, _shutdown: shutdown }
    }

    async fn call(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Response<Body> {
        let mut request = Request::get(path).header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.call(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Response<Body> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-forwarded-for", "198.51.100.23");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.call(request.body(Body::from(body.join("&"))).unwrap()).await
    }

    /// The sign-in page's session cookie and CSRF token.
    async fn open_signin(&self) -> (String, String) {
        let page = self.get("/signin", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = session_cookie(&page).expect("a session cookie");
        let html = text(page).await;
        (cookie, csrf(&html))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

fn session_cookie(response: &Response<Body>) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cobro_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn location(response: &Response<Body>) -> &str {
    response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn staff_signs_in_with_a_password_and_out_again() {
    let h = H::new(None).await;
    let (cookie, token) = h.open_signin().await;

    // A form without the session's token is refused, whatever it says.
    let forged =
        h.post("/signin", Some(&cookie), &[("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let no_session = h
        .post(
            "/signin",
            None,
            &[("csrf_token", &token), ("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(no_session.status(), StatusCode::FORBIDDEN);

    // A wrong password says so without saying which field was wrong, and keeps what was typed.
    let wrong = h
        .post(
            "/signin",
            Some(&cookie),
            &[
                ("csrf_token", &token),
                ("tenant", &h.slug),
                ("email", &h.email),
                ("password", "not the password at all"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let html = text(wrong).await;
    assert!(html.contains("Wrong email or password") && html.contains(&h.email), "{html}");
    assert!(!html.contains("not the password at all"));

    let ok = h
        .post(
            "/signin",
            Some(&cookie),
            &[("csrf_token", &token), ("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!((ok.status(), location(&ok)), (StatusCode::SEE_OTHER, "/"));
    let signed_in = session_cookie(&ok).expect("a new session id");
    assert_ne!(signed_in, cookie, "signing in replaces the session id");
    assert_eq!(location(&h.get("/", Some(&cookie)).await), "/signin", "the old id is worthless");

    let home = h.get("/account", Some(&signed_in)).await;
    assert_eq!(home.status(), StatusCode::OK);
    let html = text(home).await;
    assert!(html.contains("Signed in as") && html.contains("usr_"), "{html}");
    let token = csrf(&html);

    let forged_out = h.post("/signout", Some(&signed_in), &[("csrf_token", "x")]).await;
    assert_eq!(forged_out.status(), StatusCode::FORBIDDEN);
    let out = h.post("/signout", Some(&signed_in), &[("csrf_token", &token)]).await;
    assert_eq!(location(&out), "/signin");
    assert_eq!(location(&h.get("/account", Some(&signed_in)).await), "/signin", "signed out");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn an_account_with_two_factor_authentication_needs_its_code() {
    let h = H::new(None).await;
    // Enrol the owner: identity's own use cases, as the console will.
    let session = match h.app.login(&h.slug, &h.email, PASSWORD, "").await.unwrap() {
        cobro_identity::app::LoginOutcome::Session(s) => s,
        _ => panic!("expected a session without a second factor"),
    };
    let verifier = cobro_identity::verifier(&h.app, &AuthConfig::default());
    let owner = verifier.verify(&session.access.token).await.unwrap();
    let enrolment = h.app.begin_totp_enrolment(Enroller::Principal(&owner), PASSWORD, "").await.unwrap();
    let secret = enrolment.secret_base32.expose_secret().to_owned();
    let code = |offset: i64| {
        use cobro_identity::domain::totp;
        let key = totp::base32_decode(&secret).unwrap();
        let t = chrono::Utc::now().timestamp() + offset * 30;
        totp::totp(totp::Algorithm::Sha1, &key, u64::try_from(t).unwrap(), 6)
    };
    // Away from a step boundary, so "now" is the same step for the code and the check.
    if chrono::Utc::now().timestamp() % 30 >= 27 {
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    h.app.confirm_totp_enrolment(Enroller::Principal(&owner), &code(0), "").await.unwrap();

    let (cookie, token) = h.open_signin().await;
    let first = h
        .post(
            "/signin",
            Some(&cookie),
            &[("csrf_token", &token), ("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&first), "/signin/mfa");
    assert!(session_cookie(&first).is_none(), "not signed in yet: same session");
    assert_eq!(location(&h.get("/", Some(&cookie)).await), "/signin");

    let form = h.get("/signin/mfa", Some(&cookie)).await;
    assert_eq!(form.status(), StatusCode::OK);
    let bad = h.post("/signin/mfa", Some(&cookie), &[("csrf_token", &token), ("code", "000000")]).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(text(bad).await.contains("That code is not valid"));

    // The code of the step after the one enrolment used: a code is good once (no replay).
    let good = h.post("/signin/mfa", Some(&cookie), &[("csrf_token", &token), ("code", &code(1))]).await;
    assert_eq!(location(&good), "/", "status {}", good.status());
    let signed_in = session_cookie(&good).expect("a new session id");
    assert_eq!(h.get("/account", Some(&signed_in)).await.status(), StatusCode::OK);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn pages_speak_the_visitors_language_and_carry_no_inline_code() {
    let h = H::new(None).await;
    let spanish =
        h.call(Request::get("/signin").header(header::ACCEPT_LANGUAGE, "es-MX").body(Body::empty()).unwrap()).await;
    let html = text(spanish).await;
    assert!(html.contains("<html lang=\"es\">") && html.contains("Contraseña"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("<style") && !html.contains("style="),
        "CSP allows no inline code"
    );

    let switched = h.get("/signin?lang=es", None).await;
    let set: Vec<&str> =
        switched.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(set.iter().any(|c| c.starts_with("cobro_lang=es")), "{set:?}");
    assert!(text(switched).await.contains("Iniciar sesión"));

    let css = h.get("/static/cobro.css", None).await;
    assert_eq!(css.headers().get(header::CONTENT_TYPE).unwrap(), "text/css; charset=utf-8");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn an_address_that_keeps_guessing_is_slowed_down() {
    let h = H::new(None).await;
    let (cookie, token) = h.open_signin().await;
    let mut last = StatusCode::OK;
    for i in 0..25 {
        let email = format!("nobody{i}@example.com");
        let answer = h
            .post(
                "/signin",
                Some(&cookie),
                &[("csrf_token", &token), ("tenant", &h.slug), ("email", &email), ("password", "guess guess guess")],
            )
            .await;
        last = answer.status();
        if last == StatusCode::TOO_MANY_REQUESTS {
            assert!(i >= 20, "limited after {i} attempts");
            break;
        }
        assert_eq!(last, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_tenant_that_requires_two_factor_authentication_enrols_the_account_at_sign_in() {
    let h = H::new(None).await;
    let session = match h.app.login(&h.slug, &h.email, PASSWORD, "").await.unwrap() {
        cobro_identity::app::LoginOutcome::Session(s) => s,
        _ => panic!("expected a session before the policy changes"),
    };
    let owner = cobro_identity::verifier(&h.app, &AuthConfig::default()).verify(&session.access.token).await.unwrap();
    let changes = cobro_identity::app::TenantChanges { mfa_required_for_staff: Some(true), ..Default::default() };
    h.app.update_tenant(&owner, changes).await.unwrap();

    let (cookie, token) = h.open_signin().await;
    let first = h
        .post(
            "/signin",
            Some(&cookie),
            &[("csrf_token", &token), ("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&first), "/signin/enrol");
    if chrono::Utc::now().timestamp() % 30 >= 27 {
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let page = h.get("/signin/enrol", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = text(page).await;
    // The QR code as an image (`/` escaped as an HTML entity in the attribute, as browsers read it).
    assert!(html.contains("<img src=\"data:image&#x2f;svg+xml;base64,PHN2Zy"), "the QR code is shown");
    let secret = html.split("<code>").nth(1).and_then(|rest| rest.split("</code>").next()).unwrap().to_owned();
    let code = {
        use cobro_identity::domain::totp;
        let key = totp::base32_decode(&secret).unwrap();
        totp::totp(totp::Algorithm::Sha1, &key, u64::try_from(chrono::Utc::now().timestamp()).unwrap(), 6)
    };
    let wrong = h.post("/signin/enrol", Some(&cookie), &[("csrf_token", &token), ("code", "123456")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(text(wrong).await.contains("That code is not valid"));
    assert_eq!(location(&h.get("/", Some(&cookie)).await), "/signin", "not signed in before the first code");

    let done = h.post("/signin/enrol", Some(&cookie), &[("csrf_token", &token), ("code", &code)]).await;
    assert_eq!(done.status(), StatusCode::OK);
    let signed_in = session_cookie(&done).expect("signed in with a new session id");
    let html = text(done).await;
    assert_eq!(html.matches("<li><code>").count(), 10, "ten recovery codes, shown once: {html}");
    assert_eq!(h.get("/account", Some(&signed_in)).await.status(), StatusCode::OK);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn an_expiring_access_token_is_renewed_and_a_revoked_session_ends_here_too() {
    let h = H::new(None).await;
    let (cookie, token) = h.open_signin().await;
    let ok = h
        .post(
            "/signin",
            Some(&cookie),
            &[("csrf_token", &token), ("tenant", &h.slug), ("email", &h.email), ("password", PASSWORD)],
        )
        .await;
    let signed_in = session_cookie(&ok).unwrap();
    let id = SessionId::from_cookie(signed_in.trim_start_matches("cobro_session=")).unwrap();

    // As if the access token were about to expire: the next page renews it.
    let mut data = h.sessions.load(&id).await.unwrap().unwrap();
    let before = data.signed_in.as_ref().unwrap().refresh_token.expose_secret().to_owned();
    data.signed_in.as_mut().unwrap().access_expires_at = chrono::Utc::now();
    h.sessions.save(&id, &data).await.unwrap();
    assert_eq!(h.get("/account", Some(&signed_in)).await.status(), StatusCode::OK);
    let renewed = h.sessions.load(&id).await.unwrap().unwrap().signed_in.unwrap();
    assert_ne!(renewed.refresh_token.expose_secret(), before, "identity rotated the refresh token");
    assert!(renewed.access_expires_at > chrono::Utc::now() + chrono::Duration::seconds(60));

    // Signed out at identity (elsewhere): at the next renewal the session ends here as well.
    h.app.logout(renewed.refresh_token.expose_secret()).await.unwrap();
    let mut data = h.sessions.load(&id).await.unwrap().unwrap();
    data.signed_in.as_mut().unwrap().access_expires_at = chrono::Utc::now();
    h.sessions.save(&id, &data).await.unwrap();
    assert_eq!(location(&h.get("/account", Some(&signed_in)).await), "/signin");
    assert!(h.sessions.load(&id).await.unwrap().is_none());
    h.db.drop_schema().await;
}
