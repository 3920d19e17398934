//! Pages and endpoints without sign-in: payment-link pages (only what the link grants), the
//! sandbox's 3-D Secure challenge page, and processor webhooks forwarded to payments.
//!
//! A link's token is its whole credential: the page shows only what `ResolvePaymentLink`
//! returns and charges only through `PayPaymentLink`. Forms still carry a CSRF token (from an
//! anonymous session) and card attempts are limited per address.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use cobro_proto::payments::v1 as pb;
use minijinja::context;
use serde::Deserialize;

use crate::pages::{LangQuery, Pages, client_ip, refusal_code, server_error};
use crate::web::format;
use crate::web::i18n::Language;
use crate::web::limits::Allowance;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("public_link.html", include_str!("../templates/public_link.html")),
    ("public_3ds.html", include_str!("../templates/public_3ds.html")),
];

/// Card attempts per address and window on public pages (a link is a bearer credential; this
/// keeps it from becoming a card-testing oracle).
const PAY_LIMIT: u32 = 10;
const PAY_WINDOW: Duration = Duration::from_secs(600);

pub fn routes() -> axum::Router<Arc<Pages>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/pay/{token}", get(link_page).post(pay_link))
        .route("/sandbox/3ds/{reference}", get(challenge_page).post(challenge_answer))
        .route("/webhooks/{connector}", post(webhook))
}

fn words(lang: Language) -> minijinja::Value {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    context! {
        pay_title => pick("Pagar", "Pay"),
        amount_due => pick("Importe a pagar", "Amount due"),
        reference => pick("Referencia", "Reference"),
        description => pick("Concepto", "Description"),
        expires => pick("Vence el enlace", "Link expires"),
        card_number => pick("Número de tarjeta", "Card number"),
        exp_month => pick("Mes de vencimiento (MM)", "Expiry month (MM)"),
        exp_year => pick("Año de vencimiento (AAAA)", "Expiry year (YYYY)"),
        holder => pick("Titular de la tarjeta", "Cardholder name"),
        pay => pick("Pagar ahora", "Pay now"),
        paid => pick("Pagado. Gracias.", "Paid. Thank you."),
        paid_help => pick("Recibirás el comprobante por correo.", "Your receipt is on its way by email."),
        transfer_help => pick(
            "¿Prefieres transferencia? Usa esta referencia al pagar:",
            "Prefer a bank transfer? Quote this reference when you pay:"
        ),
        processing => pick(
            "Tu pago se está procesando. Esta página mostrará el resultado en cuanto lo tengamos.",
            "Your payment is being processed. This page shows the result as soon as we have it."
        ),
        challenge_title => pick("Verificación 3-D Secure (pruebas)", "3-D Secure check (sandbox)"),
        challenge_help => pick(
            "Tu banco pide confirmar este pago. En el entorno de pruebas, elige el resultado.",
            "Your bank asks you to confirm this payment. In the sandbox, choose the outcome."
        ),
        approve => pick("Autorizar", "Approve"),
        decline => pick("Rechazar", "Decline"),
        challenge_done => pick("Respuesta enviada al banco.", "Answer sent to the bank."),
    }
}

/// The link page's refusal words, by payments' machine code.
fn link_refusal(lang: Language, code: &str, message: &str) -> String {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    match code {
        "card_declined" | "payment_declined" => {
            format!("{} {message}", pick("La tarjeta fue rechazada:", "The card was declined:"))
        }
        "too_many_attempts" => {
            pick("Demasiados intentos. Espera unos minutos.", "Too many attempts. Wait a few minutes.").to_owned()
        }
        "" => pick(
            "No podemos cobrar ahora. Inténtalo en un momento.",
            "Payment is not possible right now. Try again in a moment.",
        )
        .to_owned(),
        // The service's message names the field at fault ("pan: fails the Luhn check").
        _ => message.to_owned(),
    }
}

fn link_not_found(lang: Language) -> Response {
    let text = if lang == Language::Es {
        "Este enlace de pago no es válido o ya venció. Pide uno nuevo a quien te lo envió."
    } else {
        "This payment link is not valid or has expired. Ask whoever sent it for a new one."
    };
    (StatusCode::NOT_FOUND, text).into_response()
}

pub async fn link_page(
    State(p): State<Arc<Pages>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let (id, mut data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang_cookie = Pages::with_language(&mut data, &q);
    let mut response = render_link(&p, &data, &token, "", StatusCode::OK).await;
    if let Some(value) = lang_cookie {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    p.respond(id, &data, response).await
}

async fn render_link(
    p: &Pages,
    data: &crate::web::session::SessionData,
    token: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let lang = data.language;
    let link = match p
        .services
        .payments
        .clone()
        .resolve_payment_link(pb::ResolvePaymentLinkRequest { token: token.to_owned() })
        .await
    {
        Ok(link) => link.into_inner(),
        Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
            return link_not_found(lang);
        }
        Err(_) => return server_error(),
    };
    let expires = link
        .expires_at
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| format::date(&t.date_naive().to_string(), lang))
        .unwrap_or_default();
    let page = p.render(
        "public_link.html",
        data,
        context! {
            title => words(lang).get_attr("pay_title").unwrap_or_default(),
            w => words(lang),
            token => token,
            amount => format::money(link.amount_due.as_ref(), lang),
            merchant_reference => link.merchant_reference,
            description => link.description,
            transfer_reference => link.transfer_reference,
            expires => expires,
            paid => link.paid,
            error => error,
            idempotency_key => uuid::Uuid::new_v4().to_string(),
        },
    );
    (status, page).into_response()
}

#[derive(Deserialize)]
pub struct CardForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    pan: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    holder_name: String,
}

impl CardForm {
    /// The card as payments takes it, or "field: why" for the page (never the number).
    pub fn card(&self, lang: Language) -> Result<pb::NewCard, String> {
        crate::web::card::new_card(lang, &self.pan, &self.exp_month, &self.exp_year, &self.holder_name)
            .map_err(|(field, why)| format!("{field}: {why}"))
    }
}

/// `scheme://host` of the request, for return addresses handed to the processor.
pub fn origin(p: &Pages, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:8080");
    format!("{}://{host}", if p.secure { "https" } else { "http" })
}

/// Where to send the payer for 3-D Secure: the processor's page, told where to come back to.
pub fn challenge_redirect(next_action_url: &str, return_path: &str) -> Response {
    let separator = if next_action_url.contains('?') { '&' } else { '?' };
    let back: String = url_encode(return_path);
    Redirect::to(&format!("{next_action_url}{separator}return={back}")).into_response()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn pay_link(
    State(p): State<Arc<Pages>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CardForm>,
) -> Response {
    let (_, data) = match p.form_session(&headers, &form.csrf_token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang = data.language;
    match p.limiter.hit("pay-link", &client_ip(&headers), PAY_LIMIT, PAY_WINDOW).await {
        Ok(Allowance::Allowed) => {}
        Ok(Allowance::Limited { .. }) => {
            let message = link_refusal(lang, "too_many_attempts", "");
            return render_link(&p, &data, &token, &message, StatusCode::TOO_MANY_REQUESTS).await;
        }
        Err(_) => return server_error(),
    }
    let card = match form.card(lang) {
        Ok(card) => card,
        Err(message) => return render_link(&p, &data, &token, &message, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let request = pb::PayPaymentLinkRequest {
        idempotency_key: form.idempotency_key.clone(),
        token: token.clone(),
        card: Some(card),
        return_url: format!("{}/pay/{token}", origin(&p, &headers)),
    };
    match p.services.payments.clone().pay_payment_link(request).await {
        Ok(result) => {
            let result = result.into_inner();
            if result.status == "requires_action" && !result.next_action_url.is_empty() {
                return challenge_redirect(&result.next_action_url, &format!("/pay/{token}"));
            }
            if result.status == "failed" {
                let message = link_refusal(lang, "card_declined", &result.failure_message);
                return render_link(&p, &data, &token, &message, StatusCode::PAYMENT_REQUIRED).await;
            }
            // Succeeded or processing: the page itself says which, from the link.
            Redirect::to(&format!("/pay/{token}")).into_response()
        }
        Err(status) if status.code() == tonic::Code::NotFound => link_not_found(lang),
        Err(status) => {
            let message = link_refusal(lang, &refusal_code(&status), &crate::pages::refusal_message(&status));
            render_link(&p, &data, &token, &message, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ChallengeQuery {
    #[serde(default, rename = "return")]
    back: String,
    #[serde(default)]
    lang: Option<String>,
}

/// Only a path on this site: never another origin (`//evil`, `https://…`, `/\evil`).
fn local_path(back: &str) -> Option<&str> {
    let ok = back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') && !back.contains("://");
    ok.then_some(back)
}

pub async fn challenge_page(
    State(p): State<Arc<Pages>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ChallengeQuery>,
) -> Response {
    let (id, mut data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang_cookie = Pages::with_language(&mut data, &LangQuery { lang: q.lang.clone() });
    let lang = data.language;
    let page = p.render(
        "public_3ds.html",
        &data,
        context! {
            title => words(lang).get_attr("challenge_title").unwrap_or_default(),
            w => words(lang),
            reference => reference,
            back => local_path(&q.back).unwrap_or(""),
        },
    );
    let mut response = page;
    if let Some(value) = lang_cookie {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    p.respond(id, &data, response).await
}

#[derive(Deserialize)]
pub struct ChallengeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
    #[serde(default, rename = "return")]
    back: String,
}

pub async fn challenge_answer(
    State(p): State<Arc<Pages>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ChallengeForm>,
) -> Response {
    let (_, data) = match p.form_session(&headers, &form.csrf_token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = pb::CompleteSandboxChallengeRequest { processor_ref: reference, approve: form.decision == "approve" };
    match p.services.payments.clone().complete_sandbox_challenge(request).await {
        Ok(_) => match local_path(&form.back) {
            Some(back) => Redirect::to(back).into_response(),
            None => {
                let text = words(data.language).get_attr("challenge_done").map(|v| v.to_string()).unwrap_or_default();
                (StatusCode::OK, text).into_response()
            }
        },
        Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
            (StatusCode::NOT_FOUND, "Unknown or finished challenge.").into_response()
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            (StatusCode::NOT_FOUND, "There is no sandbox here.").into_response()
        }
        Err(_) => server_error(),
    }
}

/// The signature header of each processor's webhooks.
fn signature_header(connector: &str) -> &'static str {
    match connector {
        "stripe" => "stripe-signature",
        _ => "cobro-signature",
    }
}

/// A processor's webhook, forwarded to payments with its signature; payments verifies it and
/// answers what it did. Bad signatures get 400 so the processor shows the failure; outages
/// get 503 so it retries.
pub async fn webhook(
    State(p): State<Arc<Pages>>,
    Path(connector): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature =
        headers.get(signature_header(&connector)).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let request = pb::HandleWebhookRequest { connector, signature, body: body.to_vec() };
    match p.services.payments.clone().handle_webhook(request).await {
        Ok(answer) => {
            let body = serde_json::json!({ "outcome": answer.into_inner().outcome });
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(status) => {
            let code = match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    StatusCode::BAD_REQUEST
                }
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            // The service's message is written for callers ("signature: does not verify").
            let message = crate::pages::refusal_message(&status);
            let body = serde_json::json!({ "error": { "code": refusal_code(&status), "message": message } });
            (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_returns_only_to_this_site() {
        assert_eq!(local_path("/portal/payments/pay_1/return"), Some("/portal/payments/pay_1/return"));
        for bad in ["//evil.example", "https://evil.example/", "/\\evil.example", "evil", "", "/x?u=http://evil"] {
            assert_eq!(local_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_card_form_never_puts_the_number_in_its_errors() {
        let form = CardForm {
            csrf_token: String::new(),
            idempotency_key: String::new(),
            pan: "4242 4242 4242 4242".into(),
            exp_month: "diciembre".into(),
            exp_year: "2031".into(),
            holder_name: " Ana ".into(),
        };
        let err = form.card(Language::Es).unwrap_err();
        assert!(err.starts_with("exp_month") && !err.contains("4242"), "{err}");
        let ok = CardForm { exp_month: "12".into(), ..form }.card(Language::En);
        assert!(matches!(ok, Ok(c) if c.pan == "4242424242424242" && c.holder_name == "Ana" && c.exp_month == 12));
    }

    #[test]
    fn the_return_address_is_carried_encoded() {
        let r = challenge_redirect("http://127.0.0.1:8080/sandbox/3ds/sbx_1", "/pay/pl_a b");
        let location = r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(location, "http://127.0.0.1:8080/sandbox/3ds/sbx_1?return=/pay/pl_a%20b");
    }
}
