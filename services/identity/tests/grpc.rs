//! Identity over the wire: a real gRPC server on a free port, the tonic client, and a verifier
//! that knows only what GetJwks publishes, as every other service does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use cobro_identity::api::{IdentityApi, PUBLIC_METHODS};
use cobro_kit::auth::{IdentityJwks, JwksCache, JwksSource, Verifier};
use cobro_kit::config::GrpcConfig;
use cobro_kit::error::{error_code, error_detail};
use cobro_kit::grpc::GrpcServer;
use cobro_proto::identity::v1 as pb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::identity::v1::identity_service_server::IdentityServiceServer;
use common::{Harness, PASSWORD};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};

struct Served {
    client: IdentityServiceClient<Channel>,
    channel: Channel,
    shutdown: CancellationToken,
}

async fn serve(h: &Harness) -> Served {
    let server = GrpcServer::new(GrpcConfig::default(), Arc::clone(&h.verifier))
        .add_service(IdentityServiceServer::new(IdentityApi::new(Arc::clone(&h.app), Arc::clone(&h.verifier))))
        .public_methods(PUBLIC_METHODS);
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    tokio::spawn(serving);
    let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(5)).await.unwrap();
    Served { client: IdentityServiceClient::new(channel.clone()), channel, shutdown }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn login(client: &mut IdentityServiceClient<Channel>, slug: &str, email: &str) -> pb::Session {
    let response = client
        .login(pb::LoginRequest {
            tenant: slug.into(),
            email: email.into(),
            password: PASSWORD.into(),
            client_ip: "198.51.100.20".into(),
        })
        .await
        .unwrap()
        .into_inner();
    match response.result {
        Some(pb::login_response::Result::Session(session)) => session,
        other => panic!("expected a session, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_issued_over_the_wire_verify_against_the_published_keys() {
    let h = Harness::new().await;
    let t = h.tenant("wire").await;
    let mut s = serve(&h).await;
    let session = login(&mut s.client, &t.slug, &t.owner_email).await;
    let token = session.access.unwrap().access_token;

    // Another service's view: keys only from GetJwks.
    let source: Arc<dyn JwksSource> = Arc::new(IdentityJwks::new(s.channel.clone()));
    let other_service = Verifier::new(Arc::new(JwksCache::new(source)), "cobro-identity", "cobro");
    let who = other_service.verify(&token).await.unwrap();
    assert_eq!(who.tenant_id, t.id);
    assert_eq!(session.user.unwrap().role, "owner");

    // Tampered payload, wrong audience: refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert!(other_service.verify(&parts.join(".")).await.is_err());
    let wrong_audience = Verifier::new(
        Arc::new(JwksCache::new(Arc::new(IdentityJwks::new(s.channel.clone())))),
        "cobro-identity",
        "somebody-else",
    );
    assert!(wrong_audience.verify(&token).await.is_err());

    let tenant = s.client.get_tenant(bearer(pb::GetTenantRequest {}, &token)).await.unwrap().into_inner();
    assert_eq!(tenant.slug, t.slug);
    assert_eq!(tenant.security_policy.unwrap().lockout_threshold, 10);
    s.shutdown.cancel();
    h.finish().await;
}

#[tokio::test]
async fn errors_cross_the_wire_with_their_code_and_field() {
    let h = Harness::new().await;
    let t = h.tenant("errors").await;
    let mut s = serve(&h).await;

    let unauthenticated = s.client.get_tenant(pb::GetTenantRequest {}).await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let no_token = s.client.begin_totp_enrolment(pb::BeginTotpEnrolmentRequest::default()).await.unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);

    let bad = s
        .client
        .login(pb::LoginRequest {
            tenant: t.slug.clone(),
            email: "no-at-sign".into(),
            password: "x".into(),
            client_ip: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(error_detail(&bad).unwrap().field, "email");

    let wrong = s
        .client
        .login(pb::LoginRequest {
            tenant: t.slug.clone(),
            email: t.owner_email.clone(),
            password: "wrong password 123".into(),
            client_ip: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(error_code(&wrong), Some("invalid_credentials"));

    // Another tenant's user: NotFound, over the wire too.
    let other = h.tenant("errors-b").await;
    let session = login(&mut s.client, &t.slug, &t.owner_email).await;
    let token = session.access.unwrap().access_token;
    let err =
        s.client.get_user(bearer(pb::GetUserRequest { id: other.owner.subject.clone() }, &token)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Enrolment with a session token works through the public method's own token check.
    let enrolment = s
        .client
        .begin_totp_enrolment(bearer(
            pb::BeginTotpEnrolmentRequest { current_password: PASSWORD.into(), ..Default::default() },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(enrolment.qr_svg.starts_with("<svg"));
    let roles = s.client.list_roles(bearer(pb::ListRolesRequest {}, &token)).await.unwrap().into_inner();
    assert!(roles.roles.iter().any(|r| r.name == "treasurer" && r.permissions.contains(&"recon:confirm".to_owned())));
    s.shutdown.cancel();
    h.finish().await;
}

#[tokio::test]
async fn only_the_gateway_may_state_the_client_address() {
    let settings =
        cobro_identity::config::Settings { ip_failure_limit: 3, ..cobro_identity::config::Settings::generated() };
    let h = Harness::with(settings, &cobro_kit::testing::redis_url()).await;
    let t = h.tenant("spoof").await;
    let mut s = serve(&h).await;
    let attempt = |ip: String| pb::LoginRequest {
        tenant: t.slug.clone(),
        email: format!("guess-{ip}@example.com"),
        password: "wrong password 123".into(),
        client_ip: ip,
    };
    // A caller without the gateway's token states a new address per guess: ignored, the peer
    // address counts, and the fourth guess is refused.
    for i in 0..3 {
        let err = s.client.login(attempt(format!("192.0.2.{i}"))).await.unwrap_err();
        assert_eq!(error_code(&err), Some("invalid_credentials"));
    }
    let err = s.client.login(attempt("192.0.2.99".into())).await.unwrap_err();
    assert_eq!(error_code(&err), Some("too_many_attempts"));

    // The gateway's stated addresses are believed (each end user has their own limit). Its
    // token is the edge's: for no tenant, with no permission.
    let secret = h.app.put_service_client("gateway").await.unwrap();
    let gateway = h.app.exchange_client_credentials("gateway", secret.expose_secret(), "").await.unwrap();
    let edge = h.verifier.verify(&gateway.token).await.unwrap();
    assert_eq!((edge.tenant_id, edge.permissions.len()), (uuid::Uuid::nil(), 0));
    let payments = h.app.put_service_client("payments").await.unwrap();
    let tenantless = h.app.exchange_client_credentials("payments", payments.expose_secret(), "").await.unwrap_err();
    assert_eq!(
        cobro_kit::error::DomainError::code(&tenantless),
        "invalid_argument",
        "only the edge goes without a tenant"
    );
    let err = s.client.login(bearer(attempt("198.51.100.7".into()), &gateway.token)).await.unwrap_err();
    assert_eq!(error_code(&err), Some("invalid_credentials"));
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT client_ip FROM audit_log WHERE action = 'login.failed' ORDER BY id")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(recorded.last().map(String::as_str), Some("198.51.100.7"));
    assert!(recorded[..3].iter().all(|ip| ip == "127.0.0.1"), "{recorded:?}");
    s.shutdown.cancel();
    h.finish().await;
}
