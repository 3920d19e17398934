//! The kit's gRPC server over real TCP: health, token checks, machine error codes, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cobro_kit::auth::{PrincipalKind, TestIssuer, principal};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_proto::testing::v1::echo_service_client::EchoServiceClient;
use cobro_proto::testing::v1::echo_service_server::{EchoService, EchoServiceServer};
use cobro_proto::testing::v1::{EchoRequest, EchoResponse};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

/// Answers with the caller's tenant as the only key id, so the test sees what the handler saw;
/// refuses callers without `keys:read`.
struct Echo;

/// Signalled when a call reaches the handler.
static CALL_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let who = principal(&request)?;
        who.require("keys:read")?;
        CALL_STARTED.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Response::new(EchoResponse { tenant_id: who.tenant_id().to_string() }))
    }
}

async fn start(issuer: &TestIssuer) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let server = GrpcServer::new(
        GrpcConfig { shutdown_grace: "5s".into(), ..GrpcConfig::default() },
        Arc::new(issuer.verifier()),
    )
    .add_service(EchoServiceServer::new(Echo));
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(async move { serving.await.unwrap() });
    (format!("http://{addr}"), shutdown, handle)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn health_answers_without_a_token() {
    let issuer = TestIssuer::new();
    let (url, shutdown, handle) = start(&issuer).await;
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "cobro.testing.v1.EchoService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn calls_need_a_valid_token_and_the_permission() {
    let issuer = TestIssuer::new();
    let (url, shutdown, handle) = start(&issuer).await;
    let mut client = EchoServiceClient::connect(url).await.unwrap();

    let missing = client.echo(EchoRequest {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(cobro_kit::error::error_code(&missing), Some("unauthenticated"));

    let forged = TestIssuer::new().token(Uuid::now_v7(), PrincipalKind::User, &["keys:read"]);
    let err = client.echo(with_token(EchoRequest {}, &forged)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "a token from another key must not pass");

    let tenant = Uuid::now_v7();
    let weak = issuer.token(tenant, PrincipalKind::User, &["invoices:read"]);
    let err = client.echo(with_token(EchoRequest {}, &weak)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(cobro_kit::error::error_code(&err), Some("permission_denied"));

    let good = issuer.token(tenant, PrincipalKind::User, &["keys:read"]);
    let seen = client.echo(with_token(EchoRequest {}, &good)).await.unwrap().into_inner().tenant_id;
    assert_eq!(seen, tenant.to_string(), "the handler sees the token's tenant");

    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let issuer = TestIssuer::new();
    let (url, shutdown, handle) = start(&issuer).await;
    let mut client = EchoServiceClient::connect(url).await.unwrap();
    let token = issuer.token(Uuid::now_v7(), PrincipalKind::User, &["keys:read"]);
    let in_flight = tokio::spawn(async move { client.echo(with_token(EchoRequest {}, &token)).await });
    CALL_STARTED.notified().await;
    shutdown.cancel();
    let answered = in_flight.await.unwrap();
    assert!(answered.is_ok(), "a request in flight at shutdown was cut off: {answered:?}");
    tokio::time::timeout(Duration::from_secs(10), handle).await.expect("server did not stop").unwrap();
}

#[tokio::test]
async fn health_turns_not_serving_before_the_listener_closes() {
    let issuer = TestIssuer::new();
    let config = GrpcConfig { drain_delay: "2s".into(), ..GrpcConfig::default() };
    let server = GrpcServer::new(config, Arc::new(issuer.verifier())).add_service(EchoServiceServer::new(Echo));
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(async move { serving.await.unwrap() });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let check = HealthCheckRequest { service: "cobro.testing.v1.EchoService".into() };

    shutdown.cancel();
    let mut saw_not_serving = false;
    for _ in 0..20 {
        match health.check(check.clone()).await {
            Ok(answer) if answer.get_ref().status == ServingStatus::NotServing as i32 => {
                saw_not_serving = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(status) => panic!("the server stopped answering before reporting NOT_SERVING: {status}"),
        }
    }
    assert!(saw_not_serving, "health never reported NOT_SERVING during the drain delay");
    tokio::time::timeout(Duration::from_secs(30), handle).await.expect("server did not stop").unwrap();
}

/// Operators can explore a running service with grpcurl: reflection lists the services.
#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let issuer = TestIssuer::new();
    let (url, shutdown, handle) = start(&issuer).await;
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["cobro.testing.v1.EchoService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    shutdown.cancel();
    handle.await.unwrap();
}
