//! Processor webhooks reach payments through the gateway with their signature: a signed one
//! is taken (and an unknown charge answered as such), a forged or altered one is refused with
//! 400 so the processor shows the failure, and nothing about it changes payments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_e2e::platform::Platform;
use cobro_e2e::web::Web;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The sandbox's signature: `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`, with the
/// development secret of the sandbox (`payments.sandbox.webhook_secret`, unset in development).
fn sign(body: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_sandbox").unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn webhooks_are_forwarded_only_with_a_valid_signature() {
    let platform = Platform::start().await;
    let web = Web::new(&platform.gateway_url);
    let body = r#"{"type":"charge.succeeded","processor_ref":"sbx_nobody_knows","fee":"1.00","currency":"MXN"}"#;
    let now = chrono::Utc::now().timestamp();
    let post = |signature: String, body: &'static str| {
        let web = web.clone();
        async move {
            web.request(
                "POST",
                "/webhooks/sandbox",
                &[("content-type", "application/json"), ("cobro-signature", &signature)],
                Some(body.as_bytes().to_vec()),
            )
            .await
        }
    };

    let signed = post(sign(body, now), body).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(signed.body, r#"{"outcome":"unknown_charge"}"#);

    let altered = r#"{"type":"charge.succeeded","processor_ref":"sbx_someone_else","fee":"1.00","currency":"MXN"}"#;
    let forged = post(sign(body, now), altered).await;
    assert_eq!(forged.status, 400, "a signature over another body is refused: {}", forged.body);
    assert!(forged.body.contains("\"error\""));

    let stale = post(sign(body, now - 3600), body).await;
    assert_eq!(stale.status, 400, "an hour-old signature is refused: {}", stale.body);

    let unsigned = web.request("POST", "/webhooks/sandbox", &[], Some(body.as_bytes().to_vec())).await;
    assert_eq!(unsigned.status, 400);
    platform.stop().await;
}
