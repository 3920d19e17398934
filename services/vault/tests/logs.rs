//! Everything the process logs at the most verbose level while cards go in and out, and while
//! requests fail, holds no card number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_proto::vault::v1 as pb;
use cobro_proto::vault::v1::vault_service_client::VaultServiceClient;
use cobro_proto::vault::v1::vault_service_server::VaultServiceServer;
use cobro_vault::api::VaultApi;
use common::{AMEX, Harness, VISA};
use tokio_util::sync::CancellationToken;
use tonic::Request;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn no_card_number_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).init();

    let h = Harness::new().await;
    let server = GrpcServer::new(GrpcConfig::default(), Arc::new(h.issuer.verifier()))
        .add_service(VaultServiceServer::new(VaultApi::new(Arc::clone(&h.vault))));
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    tokio::spawn(serving);
    let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(5)).await.unwrap();
    let mut client = VaultServiceClient::new(channel);
    let payments = h.issuer.service_token(h.tenant, "payments", &[]);
    let gateway = h.issuer.service_token(h.tenant, "gateway", &[]);

    let tokenize = |pan: &str| pb::TokenizeRequest {
        pan: pan.into(),
        exp_month: 12,
        exp_year: 2031,
        holder_name: "Ana López".into(),
        dedupe: false,
        ttl_seconds: 0,
    };
    let visa = client.tokenize(bearer(tokenize(VISA), &payments)).await.unwrap().into_inner().card.unwrap();
    client.tokenize(bearer(tokenize("3782 822463 10005"), &payments)).await.unwrap();
    let back = client
        .detokenize(bearer(pb::DetokenizeRequest { token: visa.token.clone(), purpose: "charge".into() }, &payments))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.pan, VISA);
    // Failures of every kind.
    let denied = client
        .detokenize(bearer(pb::DetokenizeRequest { token: visa.token.clone(), purpose: "charge".into() }, &gateway))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    for bad in ["4111111111111112", "4111-1111-1111-111x", "41111111111111111111111"] {
        let err = client.tokenize(bearer(tokenize(bad), &payments)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(!err.message().contains("4111"), "{}", err.message());
    }
    let expired = pb::TokenizeRequest { exp_year: 2020, ..tokenize(VISA) };
    assert!(client.tokenize(bearer(expired, &payments)).await.is_err());
    assert!(client.tokenize(tokenize(VISA)).await.is_err(), "no token at all");
    client.delete_token(bearer(pb::DeleteTokenRequest { token: visa.token.clone() }, &payments)).await.unwrap();
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.lines().count() > 10, "the capture saw the process's logs: {logs}");
    for needle in [VISA, AMEX, "4111111111111112", "411111111111", "3782 822463", "822463 10005"] {
        assert!(!logs.contains(needle), "`{needle}` found in the logs");
    }
    h.finish().await;
}
