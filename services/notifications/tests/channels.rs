//! The delivery channels against local stand-ins: an SMTP sink, Twilio- and WhatsApp-like HTTP
//! stubs and a webhook receiver that verifies signatures the way tenants are told to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use cobro_notifications::channels::{
    AnyChannel, Channel, ChannelError, HttpClient, Outgoing, SIGNATURE_TOLERANCE, SmtpConfig, SmtpEmail, SmtpTls,
    TwilioConfig, TwilioSender, TwilioSms, Webhook, WebhookConfig, WhatsAppCloud, WhatsAppConfig, check_email,
    check_phone, message_id, sign_webhook, verify_webhook_signature,
};
use common::{HttpStub, SmtpSink, StubReply, closed_port, graph_error, twilio_error};
use secrecy::SecretString;
use serde_json::json;

const SMTP_PASSWORD: &str = "smtp-pass-Zq9-do-not-leak";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio_token_5f1e9c0d_do_not_leak";
const WHATSAPP_TOKEN: &str = "EAAGwhatsapp_token_do_not_leak";
const WEBHOOK_SECRET: &str = "whsec_cobro_tenant_secret_do_not_leak";
const PHONE: &str = "+15005550006";
const PHONE_DIGITS: &str = "15005550006";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn email_message(key: &str) -> Outgoing {
    Outgoing {
        idempotency_key: key.to_owned(),
        to: "Ana.Perez@Example.COM".to_owned(),
        subject: "Invoice INV-0042 is due".to_owned(),
        text: "Hello Ana, invoice INV-0042 is due on 2026-03-01.".to_owned(),
        html: "<p>Hello Ana, invoice <b>INV-0042</b> is due on 2026-03-01.</p>".to_owned(),
        ..Outgoing::default()
    }
}

fn sms_message(key: &str) -> Outgoing {
    Outgoing {
        idempotency_key: key.to_owned(),
        to: "+1 (500) 555-0006".to_owned(),
        sms: "Cobro: invoice INV-0042 is due on 2026-03-01.".to_owned(),
        ..Outgoing::default()
    }
}

fn webhook_message(key: &str, url: &str) -> Outgoing {
    Outgoing {
        idempotency_key: key.to_owned(),
        to: format!("{url}/hooks/cobro"),
        webhook_event: "reminder.sent".to_owned(),
        webhook_body: json!({ "event": "reminder.sent", "invoice": "INV-0042", "amount": "120.50" }),
        ..Outgoing::default()
    }
}

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: SecretString::from(""),
        from: "Cobro Billing <billing@cobro.example>".to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn smtp(port: u16) -> SmtpEmail {
    SmtpEmail::new(smtp_config(port)).unwrap()
}

fn twilio(url: &str, timeout: Duration) -> TwilioSms {
    let mut config =
        TwilioConfig::new(TWILIO_SID, SecretString::from(TWILIO_TOKEN), TwilioSender::From("+15005550001".to_owned()));
    config.base_url = url.to_owned();
    config.timeout = timeout;
    TwilioSms::new(HttpClient::new(), config).unwrap()
}

fn whatsapp(url: &str) -> WhatsAppCloud {
    let mut config = WhatsAppConfig::new("106540352242922", SecretString::from(WHATSAPP_TOKEN));
    config.base_url = url.to_owned();
    config.timeout = Duration::from_secs(5);
    WhatsAppCloud::new(HttpClient::new(), config).unwrap()
}

/// A webhook channel allowed to call the loopback stubs.
fn webhook(secret: &str) -> Webhook {
    let mut config = WebhookConfig::new(SecretString::from(secret));
    config.timeout = Duration::from_secs(5);
    config.allow_plain_http = true;
    config.allow_private_networks = true;
    Webhook::new(HttpClient::new(), config).unwrap()
}

/// The error's text must not carry any secret nor the whole phone number.
fn assert_clean(error: &ChannelError) {
    let text = error.to_string();
    for secret in [SMTP_PASSWORD, TWILIO_TOKEN, WHATSAPP_TOKEN, WEBHOOK_SECRET, PHONE_DIGITS, "5005550006"] {
        assert!(!text.contains(secret), "error leaks {secret:?}: {text}");
    }
}

fn transient(result: Result<cobro_notifications::channels::Delivery, ChannelError>) -> ChannelError {
    match result {
        Err(e @ ChannelError::Transient(_)) => e,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

fn permanent(result: Result<cobro_notifications::channels::Delivery, ChannelError>) -> ChannelError {
    match result {
        Err(e @ ChannelError::Permanent(_)) => e,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn email_is_delivered_with_text_and_html_parts_and_the_derived_message_id() {
    let sink = SmtpSink::start().await;
    let delivery = smtp(sink.port()).send(&email_message("01J0REMINDER:email")).await.unwrap();

    let expected_id = message_id("01J0REMINDER:email", "cobro.example");
    assert_eq!(expected_id, "<01J0REMINDER=3Aemail@cobro.example>");
    assert_eq!(delivery.provider_id, expected_id);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.mail_from, "billing@cobro.example");
    // The domain is normalized to lowercase; the local part is kept.
    assert_eq!(message.recipients, vec!["Ana.Perez@example.com".to_owned()]);
    assert_eq!(message.message_id, expected_id);
    assert_eq!(message.header("Subject").as_deref(), Some("Invoice INV-0042 is due"));
    assert!(message.header("From").unwrap().contains("billing@cobro.example"));
    assert!(message.header("Content-Type").unwrap().starts_with("multipart/alternative"));
    let text = &message.data;
    assert!(text.contains("Content-Type: text/plain"), "{text}");
    assert!(text.contains("Content-Type: text/html"), "{text}");
    assert!(text.contains("Hello Ana, invoice INV-0042 is due on 2026-03-01."), "{text}");
    assert!(text.contains("<p>Hello Ana, invoice <b>INV-0042</b> is due on 2026-03-01.</p>"), "{text}");
}

#[tokio::test]
async fn email_with_only_text_is_a_single_plain_part() {
    let sink = SmtpSink::start().await;
    let mut message = email_message("k-text-only");
    message.html.clear();
    smtp(sink.port()).send(&message).await.unwrap();
    let received = &sink.messages()[0];
    assert!(received.header("Content-Type").unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn a_subject_with_line_breaks_cannot_add_headers() {
    let sink = SmtpSink::start().await;
    let mut message = email_message("k-subject");
    message.subject = "Due\r\nBcc: thief@evil.example".to_owned();
    smtp(sink.port()).send(&message).await.unwrap();
    let received = &sink.messages()[0];
    assert_eq!(received.recipients, vec!["Ana.Perez@example.com".to_owned()]);
    assert_eq!(received.header("Bcc"), None);
    assert!(!received.data.contains("\r\nBcc:"), "{}", received.data);
}

#[tokio::test]
async fn the_same_message_sent_twice_carries_the_same_message_id() {
    let sink = SmtpSink::start().await;
    let channel = smtp(sink.port());
    let first = channel.send(&email_message("k-repeat")).await.unwrap();
    let second = channel.send(&email_message("k-repeat")).await.unwrap();
    let other = channel.send(&email_message("k-other")).await.unwrap();

    assert_eq!(first, second);
    let ids: Vec<_> = sink.messages().into_iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_eq!(ids[2], other.provider_id);
}

#[tokio::test]
async fn smtp_451_is_transient() {
    let sink = SmtpSink::start().await;
    sink.fail_next(451);
    let error = transient(smtp(sink.port()).send(&email_message("k-451")).await);
    assert!(error.message().contains("451"), "{error}");
    assert!(sink.messages().is_empty());

    // The failure was one-shot: the retry goes through.
    smtp(sink.port()).send(&email_message("k-451")).await.unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn smtp_550_for_the_recipient_is_permanent() {
    let sink = SmtpSink::start().await;
    sink.fail_recipient("ana.perez@example.com", 550);
    let error = permanent(smtp(sink.port()).send(&email_message("k-550")).await);
    assert!(error.message().contains("550"), "{error}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_keeps_refusing_stays_transient_until_it_recovers() {
    let sink = SmtpSink::start().await;
    let channel = smtp(sink.port());
    sink.fail_always(421);
    for _ in 0..2 {
        transient(channel.send(&email_message("k-421")).await);
    }
    sink.clear_failures();
    channel.send(&email_message("k-421")).await.unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_slow_server_delivers_within_the_timeout_and_is_transient_beyond_it() {
    let sink = SmtpSink::start().await;
    sink.delay_replies(Duration::from_millis(20));
    smtp(sink.port()).send(&email_message("k-slow")).await.unwrap();

    sink.delay_replies(Duration::from_millis(150));
    let mut config = smtp_config(sink.port());
    config.timeout = Duration::from_millis(300);
    transient(SmtpEmail::new(config).unwrap().send(&email_message("k-too-slow")).await);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn refused_smtp_connection_is_transient() {
    let error = transient(smtp(closed_port()).send(&email_message("k-refused")).await);
    assert_clean(&error);
}

#[tokio::test]
async fn smtp_connection_dropped_after_data_is_transient_and_the_retry_keeps_the_message_id() {
    let sink = SmtpSink::start().await;
    sink.drop_after_next_data();
    let channel = smtp(sink.port());
    transient(channel.send(&email_message("k-crash")).await);

    // The server had the whole message when it went away; the client cannot know it.
    let unacknowledged = sink.unacknowledged();
    assert_eq!(unacknowledged.len(), 1);
    assert!(sink.messages().is_empty());

    let retry = channel.send(&email_message("k-crash")).await.unwrap();
    let delivered = sink.messages();
    assert_eq!(delivered.len(), 1);
    // Same Message-ID on both copies, so the duplicate is recognisable downstream.
    assert_eq!(unacknowledged[0].message_id, delivered[0].message_id);
    assert_eq!(delivered[0].message_id, retry.provider_id);
}

#[tokio::test]
async fn smtp_server_that_never_answers_the_data_times_out_as_transient() {
    let sink = SmtpSink::start().await;
    sink.stall_after_next_data();
    let mut config = smtp_config(sink.port());
    config.timeout = Duration::from_millis(400);
    let started = std::time::Instant::now();
    let error = transient(SmtpEmail::new(config).unwrap().send(&email_message("k-stall")).await);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(error.message().contains("did not finish"), "{error}");
    assert_eq!(sink.unacknowledged().len(), 1);
}

#[tokio::test]
async fn smtp_authenticates_and_a_rejected_login_is_permanent_without_the_password() {
    let sink = SmtpSink::start().await;
    let mut config = smtp_config(sink.port());
    config.username = Some("cobro".to_owned());
    config.password = SecretString::from(SMTP_PASSWORD);
    let channel = SmtpEmail::new(config).unwrap();

    channel.send(&email_message("k-auth")).await.unwrap();
    assert_eq!(sink.auths(), vec![("cobro".to_owned(), SMTP_PASSWORD.to_owned())]);

    // The sink's rejection echoes the credentials; the error must not.
    sink.reject_auth(535);
    let error = permanent(channel.send(&email_message("k-auth-2")).await);
    assert!(error.message().contains("535"), "{error}");
    assert_clean(&error);
    assert!(!format!("{channel:?}").contains(SMTP_PASSWORD));
}

#[tokio::test]
async fn invalid_email_recipient_is_permanent_without_connecting() {
    let sink = SmtpSink::start().await;
    let mut message = email_message("k-bad-address");
    message.to = "ana perez@example".to_owned();
    permanent(smtp(sink.port()).send(&message).await);
    assert_eq!(sink.connections(), 0);
}

// A pooled transport belongs to a runtime: built (and dropped) inside one, as the service does.
#[tokio::test]
async fn smtp_configuration_is_checked() {
    let mut config = smtp_config(25);
    config.from = "not an address".to_owned();
    assert!(SmtpEmail::new(config).is_err());
    let mut config = smtp_config(25);
    config.host = " ".to_owned();
    assert!(SmtpEmail::new(config).is_err());
    let mut config = smtp_config(25);
    config.timeout = Duration::ZERO;
    assert!(SmtpEmail::new(config).is_err());
    let mut config = smtp_config(465);
    config.tls = SmtpTls::Tls;
    config.host = "smtp.example.com".to_owned();
    assert!(SmtpEmail::new(config).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Twilio
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn twilio_success_returns_the_sid_with_idempotency_key_and_basic_auth() {
    let stub = HttpStub::twilio().await;
    let delivery = twilio(stub.url(), Duration::from_secs(5)).send(&sms_message("k-sms-1")).await.unwrap();
    assert_eq!(delivery.provider_id, format!("SM{:032x}", 1));

    let request = stub.last();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"));
    assert_eq!(request.header("idempotency-key"), Some("k-sms-1"));
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    let expected_auth = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}")))
    };
    assert_eq!(request.header("authorization"), Some(expected_auth.as_str()));
    // The number is sent normalized to E.164.
    assert_eq!(request.field("To").as_deref(), Some(PHONE));
    assert_eq!(request.field("From").as_deref(), Some("+15005550001"));
    assert_eq!(request.field("Body").as_deref(), Some("Cobro: invoice INV-0042 is due on 2026-03-01."));
    assert_eq!(request.field("MessagingServiceSid"), None);
}

#[tokio::test]
async fn twilio_can_send_through_a_messaging_service() {
    let stub = HttpStub::twilio().await;
    let mut config = TwilioConfig::new(
        TWILIO_SID,
        SecretString::from(TWILIO_TOKEN),
        TwilioSender::MessagingService("MG0123456789abcdef0123456789abcdef".to_owned()),
    );
    config.base_url = stub.url().to_owned();
    TwilioSms::new(HttpClient::new(), config).unwrap().send(&sms_message("k-mg")).await.unwrap();
    let request = stub.last();
    assert_eq!(request.field("MessagingServiceSid").as_deref(), Some("MG0123456789abcdef0123456789abcdef"));
    assert_eq!(request.field("From"), None);
}

#[tokio::test]
async fn twilio_400_is_permanent_and_the_error_hides_the_token_and_the_number() {
    let stub = HttpStub::twilio().await;
    // A provider message that quotes the number and (carelessly) the credentials.
    stub.respond_next(twilio_error(
        400,
        21211,
        &format!("The 'To' number {PHONE} is not a valid phone number (auth {TWILIO_SID}:{TWILIO_TOKEN})."),
    ));
    let error = permanent(twilio(stub.url(), Duration::from_secs(5)).send(&sms_message("k-400")).await);
    assert!(error.message().contains("21211"), "{error}");
    assert!(error.message().contains("HTTP 400"), "{error}");
    assert!(error.message().contains("0006"), "the last 4 digits help support: {error}");
    assert_clean(&error);
}

#[tokio::test]
async fn twilio_503_is_transient() {
    let stub = HttpStub::twilio().await;
    stub.respond_next(twilio_error(503, 20503, "Service Unavailable"));
    let error = transient(twilio(stub.url(), Duration::from_secs(5)).send(&sms_message("k-503")).await);
    assert!(error.message().contains("HTTP 503"), "{error}");
}

#[tokio::test]
async fn twilio_429_is_transient() {
    let stub = HttpStub::twilio().await;
    stub.respond_next(twilio_error(429, 20429, "Too Many Requests"));
    let error = transient(twilio(stub.url(), Duration::from_secs(5)).send(&sms_message("k-429")).await);
    assert!(error.message().contains("20429"), "{error}");
}

#[tokio::test]
async fn twilio_that_never_answers_times_out_as_transient() {
    let stub = HttpStub::twilio().await;
    stub.hang();
    let started = std::time::Instant::now();
    let error = transient(twilio(stub.url(), Duration::from_millis(300)).send(&sms_message("k-hang")).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error.message().contains("did not answer"), "{error}");
    assert_clean(&error);
}

#[tokio::test]
async fn twilio_connection_refused_is_transient() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let error = transient(twilio(&url, Duration::from_secs(5)).send(&sms_message("k-refused")).await);
    assert_clean(&error);
}

#[tokio::test]
async fn an_invalid_phone_number_is_permanent_masked_and_never_sent() {
    let stub = HttpStub::twilio().await;
    let mut message = sms_message("k-bad-phone");
    message.to = "15005550006".to_owned(); // no country-code marker
    let error = permanent(twilio(stub.url(), Duration::from_secs(5)).send(&message).await);
    assert!(error.message().contains("***0006"), "{error}");
    assert_clean(&error);
    assert!(stub.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// WhatsApp
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn whatsapp_success_returns_the_message_id() {
    let stub = HttpStub::whatsapp().await;
    let delivery = whatsapp(stub.url()).send(&sms_message("k-wa-1")).await.unwrap();
    assert_eq!(delivery.provider_id, "wamid.STUB00000001");

    let request = stub.last();
    assert_eq!(request.path, "/v21.0/106540352242922/messages");
    assert_eq!(request.header("authorization"), Some(format!("Bearer {WHATSAPP_TOKEN}").as_str()));
    assert_eq!(request.header("idempotency-key"), Some("k-wa-1"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], PHONE_DIGITS);
    assert_eq!(body["type"], "text");
    assert_eq!(body["text"]["body"], "Cobro: invoice INV-0042 is due on 2026-03-01.");
}

#[tokio::test]
async fn whatsapp_error_is_permanent_and_hides_the_token_and_the_number() {
    let stub = HttpStub::whatsapp().await;
    stub.respond_next(graph_error(
        400,
        131030,
        "OAuthException",
        &format!("(#131030) Recipient phone number {PHONE_DIGITS} not in allowed list; token {WHATSAPP_TOKEN}"),
    ));
    let error = permanent(whatsapp(stub.url()).send(&sms_message("k-wa-400")).await);
    assert!(error.message().contains("131030"), "{error}");
    assert!(error.message().contains("OAuthException"), "{error}");
    assert_clean(&error);
}

#[tokio::test]
async fn whatsapp_throttling_and_server_errors_are_transient() {
    let stub = HttpStub::whatsapp().await;
    let channel = whatsapp(stub.url());
    // Meta answers some rate limits with HTTP 400 and a throttling code.
    stub.respond_next(graph_error(400, 130429, "OAuthException", "Rate limit hit"));
    transient(channel.send(&sms_message("k-wa-throttle")).await);
    stub.respond_next(graph_error(500, 131000, "OAuthException", "Something went wrong"));
    transient(channel.send(&sms_message("k-wa-500")).await);
    // An answer without a message id is not a confirmation.
    stub.respond_next(StubReply::json(200, &json!({ "messaging_product": "whatsapp" })));
    transient(channel.send(&sms_message("k-wa-empty")).await);
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhook_signature_verifies_on_the_receiver_side() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    let message = webhook_message("k-hook-1", receiver.url());
    let delivery = webhook(WEBHOOK_SECRET).send(&message).await.unwrap();
    assert_eq!(delivery.provider_id, "k-hook-1");

    let request = receiver.last();
    assert_eq!(request.path, "/hooks/cobro");
    assert_eq!(request.header("cobro-event"), Some("reminder.sent"));
    assert_eq!(request.header("cobro-delivery"), Some("k-hook-1"));
    assert_eq!(request.header("idempotency-key"), Some("k-hook-1"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), message.webhook_body);

    let signature = request.header("cobro-signature").unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert!((Utc::now().timestamp() - t).abs() < 60);
    assert_eq!(v1.strip_prefix("v1=").unwrap().len(), 64);
    assert!(verify_webhook_signature(
        WEBHOOK_SECRET.as_bytes(),
        signature,
        &request.body,
        Utc::now(),
        SIGNATURE_TOLERANCE
    ));
}

#[tokio::test]
async fn webhook_tampered_body_fails_verification() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    webhook(WEBHOOK_SECRET).send(&webhook_message("k-hook-tamper", receiver.url())).await.unwrap();
    let request = receiver.last();
    let signature = request.header("cobro-signature").unwrap();
    let tampered = String::from_utf8(request.body.to_vec()).unwrap().replace("120.50", "1.50");
    assert!(!verify_webhook_signature(
        WEBHOOK_SECRET.as_bytes(),
        signature,
        tampered.as_bytes(),
        Utc::now(),
        SIGNATURE_TOLERANCE
    ));
}

#[tokio::test]
async fn webhook_old_timestamp_fails_verification() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    webhook(WEBHOOK_SECRET).send(&webhook_message("k-hook-old", receiver.url())).await.unwrap();
    let request = receiver.last();
    let signature = request.header("cobro-signature").unwrap();
    // Replayed ten minutes later.
    let later = Utc::now() + TimeDelta::minutes(10);
    assert!(!verify_webhook_signature(WEBHOOK_SECRET.as_bytes(), signature, &request.body, later, SIGNATURE_TOLERANCE));

    // A correctly signed but stale request.
    let body = br#"{"event":"reminder.sent"}"#;
    let old = sign_webhook(WEBHOOK_SECRET.as_bytes(), Utc::now().timestamp() - 3600, body);
    assert!(!verify_webhook_signature(WEBHOOK_SECRET.as_bytes(), &old, body, Utc::now(), SIGNATURE_TOLERANCE));
    let fresh = sign_webhook(WEBHOOK_SECRET.as_bytes(), Utc::now().timestamp() - 60, body);
    assert!(verify_webhook_signature(WEBHOOK_SECRET.as_bytes(), &fresh, body, Utc::now(), SIGNATURE_TOLERANCE));
}

#[tokio::test]
async fn webhook_rejected_by_the_receiver_is_permanent_without_the_secret() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    let error = permanent(webhook("the-wrong-secret").send(&webhook_message("k-hook-401", receiver.url())).await);
    assert!(error.message().contains("HTTP 401"), "{error}");
    assert!(!error.to_string().contains("the-wrong-secret"), "{error}");
    assert!(!error.to_string().contains("/hooks/cobro"), "the URL may carry tokens: {error}");
}

#[tokio::test]
async fn webhook_server_errors_and_timeouts_are_transient() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    receiver.respond_next(StubReply::empty(502));
    transient(webhook(WEBHOOK_SECRET).send(&webhook_message("k-hook-502", receiver.url())).await);
    receiver.respond_next(StubReply::empty(429));
    transient(webhook(WEBHOOK_SECRET).send(&webhook_message("k-hook-429", receiver.url())).await);
    receiver.respond_next(StubReply::empty(308));
    permanent(webhook(WEBHOOK_SECRET).send(&webhook_message("k-hook-308", receiver.url())).await);

    receiver.hang();
    let mut config = WebhookConfig::new(SecretString::from(WEBHOOK_SECRET));
    config.timeout = Duration::from_millis(300);
    config.allow_plain_http = true;
    config.allow_private_networks = true;
    let channel = Webhook::new(HttpClient::new(), config).unwrap();
    let error = transient(channel.send(&webhook_message("k-hook-hang", receiver.url())).await);
    assert_clean(&error);
}

#[tokio::test]
async fn webhook_refuses_plain_http_and_internal_addresses_by_default() {
    let receiver = HttpStub::webhook_receiver(WEBHOOK_SECRET).await;
    let strict = Webhook::new(HttpClient::new(), WebhookConfig::new(SecretString::from(WEBHOOK_SECRET))).unwrap();

    let error = permanent(strict.send(&webhook_message("k-hook-http", receiver.url())).await);
    assert!(error.message().contains("https"), "{error}");

    let port = receiver.url().rsplit(':').next().unwrap();
    for url in [format!("https://127.0.0.1:{port}"), format!("https://localhost:{port}"), "https://[::1]".to_owned()] {
        let error = permanent(strict.send(&webhook_message("k-hook-local", &url)).await);
        assert!(error.message().contains("private or local"), "{url}: {error}");
    }
    assert!(receiver.requests().is_empty());

    let mut bad = webhook_message("k-hook-creds", "https://user:pass@hooks.example.com");
    bad.to = "https://user:pass@hooks.example.com/x".to_owned();
    permanent(strict.send(&bad).await);
}

// ---------------------------------------------------------------------------------------------
// Any channel
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn any_channel_dispatches_to_the_concrete_channel() {
    let sink = SmtpSink::start().await;
    let twilio_stub = HttpStub::twilio().await;
    let channels: Vec<AnyChannel> = vec![
        smtp(sink.port()).into(),
        twilio(twilio_stub.url(), Duration::from_secs(5)).into(),
        whatsapp("http://127.0.0.1:9").into(),
        webhook(WEBHOOK_SECRET).into(),
    ];
    let names: Vec<_> = channels.iter().map(Channel::name).collect();
    assert_eq!(names, ["email", "sms", "whatsapp", "webhook"]);

    // The future is Send, so a dispatcher can spawn it.
    let email = channels.into_iter().next().unwrap();
    let delivery = tokio::spawn(async move { email.send(&email_message("k-any")).await }).await.unwrap().unwrap();
    assert_eq!(delivery.provider_id, sink.messages()[0].message_id);
}

// ---------------------------------------------------------------------------------------------
// Input checks
// ---------------------------------------------------------------------------------------------

#[test]
fn check_email_table() {
    let long_local = "a".repeat(64);
    let too_long_local = "a".repeat(65);
    let long_domain = format!("{}.{}.{}.com", "b".repeat(63), "c".repeat(63), "d".repeat(57)); // 188 + 4
    let ok = [
        ("ana@example.com", "ana@example.com"),
        ("  Ana.Perez@Example.COM ", "Ana.Perez@example.com"),
        ("a+tag@sub.example.co", "a+tag@sub.example.co"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x@xn--80ak6aa92e.com", "x@xn--80ak6aa92e.com"),
        ("first_last-1@my-domain.example", "first_last-1@my-domain.example"),
    ];
    for (input, expected) in ok {
        assert_eq!(check_email(input).as_deref(), Ok(expected), "{input:?}");
    }
    assert!(check_email(&format!("{long_local}@example.com")).is_ok());
    assert!(check_email(&format!("{}@{long_domain}", "e".repeat(60))).is_ok());

    let bad = [
        "",
        "   ",
        "ana",
        "ana@",
        "@example.com",
        "ana@@example.com",
        "ana@b@example.com",
        "ana perez@example.com",
        "ana@exa mple.com",
        "ana@localhost",
        "ana@example",
        "ana@example.",
        "ana@.example.com",
        "ana@example..com",
        "ana@-example.com",
        "ana@example-.com",
        "ana@exa_mple.com",
        "ana@1.2.3.4",
        "ana@[1.2.3.4]",
        ".ana@example.com",
        "ana.@example.com",
        "an..a@example.com",
        "\"ana\"@example.com",
        "ana(comment)@example.com",
        "añа@example.com",
        "ana@exämple.com",
        "ana\n@example.com",
        "<ana@example.com>",
        "Ana <ana@example.com>",
    ];
    for input in bad {
        assert!(check_email(input).is_err(), "{input:?} was accepted");
    }
    assert!(check_email(&format!("{too_long_local}@example.com")).is_err());
    assert!(check_email(&format!("a@{}.com", "b".repeat(64))).is_err());
    let over_254 = format!("{}@{}.{}.{}.com", "e".repeat(64), "b".repeat(63), "c".repeat(63), "d".repeat(58));
    assert!(over_254.len() > 254);
    assert!(check_email(&over_254).is_err());
}

#[test]
fn check_phone_table() {
    let ok = [
        ("+15005550006", "+15005550006"),
        (" +1 (500) 555-0006 ", "+15005550006"),
        ("+54 9 11 2345-6789", "+5491123456789"),
        ("+55 (11) 91234-5678", "+5511912345678"),
        ("+4930123456", "+4930123456"),
        ("+12345678", "+12345678"),               // 8 digits
        ("+123456789012345", "+123456789012345"), // 15 digits
        ("(+52) 55 1234 5678", "+525512345678"),
    ];
    for (input, expected) in ok {
        assert_eq!(check_phone(input).as_deref(), Ok(expected), "{input:?}");
    }
    let bad = [
        "",
        "+",
        "15005550006",
        "005215512345678",
        "+1234567",          // 7 digits
        "+1234567890123456", // 16 digits
        "+0123456789",
        "++15005550006",
        "+1500+5550006",
        "+1.500.555.0006",
        "+1500555000a",
        "tel:+15005550006",
        "+1 500 555 0006 ext 12",
        "+１５００５５５０００６",
    ];
    for input in bad {
        assert!(check_phone(input).is_err(), "{input:?} was accepted");
    }
}
