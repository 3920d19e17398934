//! No webhook body or signature makes a connector panic: generated bodies (random bytes,
//! truncated and mutated real events, JSON of every shape) with random, stale and correct
//! signatures. Each either parses or is refused as a bad signature or a malformed body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::Utc;
use cobro_kit::seeded::SeededRng;
use cobro_payments::connector::Connector;
use cobro_payments::connector::sandbox::{Sandbox, SandboxConfig};
use cobro_payments::connector::stripe::{Stripe, StripeConfig};
use secrecy::SecretString;

const SANDBOX_EVENT: &str = r#"{"type":"charge.succeeded","attempt_id":"01a2461b-b42e-735a-8d2c-9dd9e882fef6","processor_ref":"sbx_1","fee":"1.00","currency":"MXN"}"#;
const STRIPE_EVENT: &str = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","object":"payment_intent","amount":12345,"currency":"mxn","status":"succeeded","metadata":{"cobro_attempt":"01a2461b-b42e-735a-8d2c-9dd9e882fef6"},"latest_charge":{"balance_transaction":{"fee":388}}}}}"#;
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"type\":",
    "\"data\":",
    "\"object\":",
    "null",
    "true",
    "-1",
    "1e400",
    "\"\"",
    ",",
    ":",
    "\"charge.succeeded\"",
    "\"payment_intent.payment_failed\"",
    "\"amount\":",
    "99999999999999999999",
    "\u{0}",
    "\"metadata\":{}",
    "\"fee\":\"x\"",
    "\"currency\":\"ZZZ\"",
];

fn body(rng: &mut SeededRng) -> Vec<u8> {
    match rng.below(4) {
        0 => (0..rng.below(200)).map(|_| rng.byte()).collect(),
        1 => {
            let base = if rng.below(2) == 0 { SANDBOX_EVENT } else { STRIPE_EVENT };
            base.as_bytes()[..rng.below(base.len() + 1)].to_vec()
        }
        2 => {
            let base = if rng.below(2) == 0 { SANDBOX_EVENT } else { STRIPE_EVENT };
            let mut b = base.as_bytes().to_vec();
            for _ in 0..=rng.below(6) {
                let at = rng.below(b.len());
                let piece = PIECES[rng.below(PIECES.len())].as_bytes();
                b.splice(at..at, piece.iter().copied());
            }
            b
        }
        _ => (0..rng.below(30)).flat_map(|_| PIECES[rng.below(PIECES.len())].bytes()).collect(),
    }
}

fn stripe_signature(secret: &str, body: &[u8], t: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn no_webhook_makes_a_connector_panic() {
    let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let sandbox = Sandbox::new(pool, SandboxConfig::default());
    let stripe =
        Stripe::new(StripeConfig::new(SecretString::from("sk_test_x"), SecretString::from("whsec_test"))).unwrap();
    let mut rng = SeededRng::new(0xA076_1D64_78BD_642F);
    let now = Utc::now();
    let mut parsed = 0;
    for round in 0..4_000 {
        let body = body(&mut rng);
        let text = String::from_utf8_lossy(&body).into_owned();
        let t = now.timestamp() - i64::try_from(rng.below(900)).unwrap();
        let signatures = [
            String::new(),
            "t=1,v1=00".to_owned(),
            format!("t={t},v1={}", "ab".repeat(rng.below(40))),
            sandbox.sign_webhook(&text, chrono::DateTime::from_timestamp(t, 0).unwrap()),
            stripe_signature("whsec_test", &body, t),
        ];
        for signature in &signatures {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let a = sandbox.parse_webhook(signature, &body, now).is_ok();
                let b = stripe.parse_webhook(signature, &body, now).is_ok();
                usize::from(a) + usize::from(b)
            }));
            match outcome {
                Ok(n) => parsed += n,
                Err(_) => panic!("round {round}: signature {signature:?} on body {text:?} panics"),
            }
        }
    }
    assert!(parsed > 0, "some generated webhooks are well formed and correctly signed");
}
