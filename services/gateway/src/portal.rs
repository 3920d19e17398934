//! The customer portal: what a portal contact sees of their own customer (dashboard, invoices,
//! paying, history, statements, saved cards and autopay, "I can't pay", disputes, preferences,
//! help). Every call goes to the services with the contact's own token, so another customer's
//! ids answer NotFound there and 404 here.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cobro_proto::common::v1::{Money, PageRequest};
use cobro_proto::invoicing::v1 as inv;
use cobro_proto::notifications::v1 as notif;
use cobro_proto::payments::v1 as pay;
use minijinja::context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pages::{LangQuery, Pages, Visit, refusal_message, server_error};
use crate::web::format;
use crate::web::i18n::{self, Language};

pub const TEMPLATES: &[(&str, &str)] = &[
    ("portal_nav.html", include_str!("../templates/portal_nav.html")),
    ("portal_dashboard.html", include_str!("../templates/portal_dashboard.html")),
    ("portal_invoices.html", include_str!("../templates/portal_invoices.html")),
    ("portal_invoice.html", include_str!("../templates/portal_invoice.html")),
    ("portal_payment.html", include_str!("../templates/portal_payment.html")),
    ("portal_payments.html", include_str!("../templates/portal_payments.html")),
    ("portal_receipt.html", include_str!("../templates/portal_receipt.html")),
    ("portal_statement.html", include_str!("../templates/portal_statement.html")),
    ("portal_cards.html", include_str!("../templates/portal_cards.html")),
    ("portal_hardship.html", include_str!("../templates/portal_hardship.html")),
    ("portal_dispute.html", include_str!("../templates/portal_dispute.html")),
    ("portal_done.html", include_str!("../templates/portal_done.html")),
    ("portal_preferences.html", include_str!("../templates/portal_preferences.html")),
    ("portal_help.html", include_str!("../templates/portal_help.html")),
];

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
        .route("/portal", get(dashboard))
        .route("/portal/invoices", get(invoices))
        .route("/portal/invoices/{id}", get(invoice))
        .route("/portal/invoices/{id}/pdf", get(invoice_pdf))
        .route("/portal/invoices/{id}/hardship", get(hardship_form).post(hardship))
        .route("/portal/invoices/{id}/dispute", get(dispute_form).post(dispute))
        .route("/portal/pay", post(pay_invoices))
        .route("/portal/payments", get(payments))
        .route("/portal/payments/{id}", get(payment))
        .route("/portal/payments/{id}/confirm", post(confirm))
        .route("/portal/payments/{id}/return", get(payment_return))
        .route("/portal/payments/{id}/receipt", get(receipt))
        .route("/portal/statement", get(statement))
        .route("/portal/cards", get(cards))
        .route("/portal/cards/default", post(card_default))
        .route("/portal/cards/remove", post(card_remove))
        .route("/portal/cards/autopay", post(autopay_on))
        .route("/portal/cards/autopay/off", post(autopay_off))
        .route("/portal/preferences", get(preferences_form).post(preferences))
        .route("/portal/help", get(help))
}

// --- words ---

/// The portal's words, per language.
fn words(lang: Language) -> minijinja::Value {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    context! {
        dashboard => pick("Resumen", "Overview"),
        invoices => pick("Facturas", "Invoices"),
        invoice => pick("Factura", "Invoice"),
        payments => pick("Pagos", "Payments"),
        statement => pick("Estado de cuenta", "Statement"),
        cards => pick("Tarjetas y pago automático", "Cards and autopay"),
        preferences => pick("Preferencias", "Preferences"),
        help => pick("Ayuda", "Help"),
        total_due => pick("Total por pagar", "Total due"),
        overdue_amount => pick("Vencido", "Overdue"),
        nothing_due => pick("No tienes nada pendiente de pago.", "You have nothing to pay."),
        next_due => pick("Próximos vencimientos", "Next due dates"),
        number => pick("Número", "Number"),
        status => pick("Estado", "Status"),
        issue_date => pick("Fecha de emisión", "Issue date"),
        due_date => pick("Vencimiento", "Due date"),
        total => pick("Total", "Total"),
        balance => pick("Saldo", "Balance"),
        amount => pick("Importe", "Amount"),
        date => pick("Fecha", "Date"),
        view => pick("Ver", "View"),
        pay => pick("Pagar", "Pay"),
        pay_selected => pick("Pagar las seleccionadas", "Pay the selected ones"),
        select => pick("Seleccionar", "Select"),
        all => pick("Todas", "All"),
        filter_open => pick("Pendientes", "Open"),
        filter_overdue => pick("Vencidas", "Overdue"),
        filter_paid => pick("Pagadas", "Paid"),
        no_invoices => pick("No hay facturas que mostrar.", "There are no invoices to show."),
        cant_pay => pick("No puedo pagar", "I can't pay"),
        dispute => pick("Reclamar esta factura", "Dispute this invoice"),
        download_pdf => pick("Descargar PDF", "Download PDF"),
        lines => pick("Conceptos", "Lines"),
        description => pick("Descripción", "Description"),
        quantity => pick("Cantidad", "Quantity"),
        unit_price => pick("Precio unitario", "Unit price"),
        taxes => pick("Impuestos", "Taxes"),
        subtotal => pick("Subtotal", "Subtotal"),
        discount => pick("Descuento", "Discount"),
        credited => pick("Notas de crédito", "Credited"),
        paid_amount => pick("Pagado", "Paid"),
        installments => pick("Parcialidades", "Installments"),
        installment => pick("Parcialidad", "Installment"),
        pay_installment => pick("Pagar esta parcialidad", "Pay this installment"),
        pay_invoice => pick("Pagar la factura", "Pay the invoice"),
        memo => pick("Nota", "Memo"),
        choose_method => pick("¿Cómo quieres pagar?", "How do you want to pay?"),
        saved_card => pick("Tarjeta guardada", "Saved card"),
        pay_with_saved => pick("Pagar con esta tarjeta", "Pay with this card"),
        new_card => pick("Tarjeta nueva", "New card"),
        pan => pick("Número de tarjeta", "Card number"),
        exp_month => pick("Mes de vencimiento (MM)", "Expiry month (MM)"),
        exp_year => pick("Año de vencimiento (AAAA)", "Expiry year (YYYY)"),
        holder_name => pick("Titular de la tarjeta", "Cardholder name"),
        save_card => pick("Guardar la tarjeta para próximos pagos", "Save the card for later payments"),
        pay_with_card => pick("Pagar con tarjeta", "Pay by card"),
        bank_transfer => pick("Transferencia bancaria", "Bank transfer"),
        transfer_help => pick(
            "Transfiere el importe exacto a esta cuenta y escribe la referencia tal cual en el concepto: así tu pago se aplica solo.",
            "Transfer the exact amount to this account and write the reference exactly as shown: your payment is then matched by itself."
        ),
        pay_by_transfer => pick("Pagaré por transferencia", "I will pay by bank transfer"),
        account_holder => pick("Titular", "Account holder"),
        iban => pick("IBAN / CLABE", "IBAN"),
        bic => pick("BIC / SWIFT", "BIC / SWIFT"),
        reference => pick("Referencia", "Reference"),
        payment => pick("Pago", "Payment"),
        paid => pick("Pagado", "Paid"),
        paid_help => pick("Recibimos tu pago. Gracias.", "We received your payment. Thank you."),
        receipt => pick("Recibo", "Receipt"),
        print => pick("Para imprimirlo usa la función de imprimir de tu navegador.", "Use your browser's print function to print it."),
        failed => pick("El pago no se pudo completar", "The payment could not be completed"),
        retry => pick("Intentar de nuevo", "Try again"),
        processing => pick("Estamos procesando el pago.", "The payment is being processed."),
        action_needed => pick("Tu banco pide confirmar el pago.", "Your bank asks you to confirm the payment."),
        continue_action => pick("Confirmar con mi banco", "Confirm with my bank"),
        canceled => pick("El pago fue cancelado.", "The payment was canceled."),
        method => pick("Método", "Method"),
        no_payments => pick("Aún no hay pagos.", "No payments yet."),
        for_invoices => pick("Facturas pagadas", "Invoices paid"),
        customer => pick("Cliente", "Customer"),
        from => pick("Desde", "From"),
        to => pick("Hasta", "To"),
        show => pick("Mostrar", "Show"),
        opening_balance => pick("Saldo inicial", "Opening balance"),
        closing_balance => pick("Saldo final", "Closing balance"),
        charge => pick("Cargo", "Charge"),
        credit => pick("Abono", "Credit"),
        kind => pick("Movimiento", "Entry"),
        download_pdf => pick("Descargar PDF", "Download PDF"),
        download_csv => pick("Descargar CSV", "Download CSV"),
        no_entries => pick("No hay movimientos en este periodo.", "No entries in this period."),
        statement_pdf_note => pick(
            "El estado de cuenta se descarga en PDF, para imprimirlo o guardarlo, o en CSV, que abre cualquier hoja de cálculo.",
            "The statement downloads as a PDF, to print or keep, or as CSV, which any spreadsheet opens."
        ),
        no_cards => pick("No tienes tarjetas guardadas. Puedes guardar una al pagar.", "You have no saved cards. You can save one when you pay."),
        card => pick("Tarjeta", "Card"),
        expires => pick("Vence", "Expires"),
        default_card => pick("Predeterminada", "Default"),
        make_default => pick("Usar como predeterminada", "Make default"),
        remove => pick("Eliminar", "Remove"),
        autopay => pick("Pago automático", "Autopay"),
        autopay_help => pick(
            "Con el pago automático cobramos cada factura en su fecha de vencimiento con tu tarjeta. Puedes desactivarlo cuando quieras.",
            "With autopay each invoice is charged to your card on its due date. You can turn it off at any time."
        ),
        autopay_consent => pick(
            "Autorizo que se cargue a mi tarjeta el saldo de cada factura en su fecha de vencimiento hasta que desactive el pago automático.",
            "I authorise charging my card with the balance of each invoice on its due date until I turn autopay off."
        ),
        autopay_card => pick("Tarjeta para el pago automático", "Card for autopay"),
        the_default => pick("La predeterminada", "The default one"),
        agree => pick("Acepto", "I agree"),
        autopay_enable => pick("Activar el pago automático", "Turn autopay on"),
        autopay_disable => pick("Desactivar el pago automático", "Turn autopay off"),
        done_default => pick("La tarjeta es ahora la predeterminada.", "The card is now the default."),
        done_removed => pick("Eliminamos la tarjeta.", "The card was removed."),
        done_autopay_on => pick("El pago automático está activado.", "Autopay is on."),
        done_autopay_off => pick("El pago automático está desactivado.", "Autopay is off."),
        done_saved => pick("Guardamos tus preferencias.", "Your preferences were saved."),
        hardship_title => pick("No puedo pagar", "I can't pay"),
        hardship_help => pick(
            "Cuéntanos qué pasa y propón en cuántas parcialidades puedes pagar. Mientras lo revisamos no te enviaremos recordatorios de esta factura.",
            "Tell us what is happening and propose how many installments you can pay in. While we review it you will get no reminders for this invoice."
        ),
        reason => pick("Motivo", "Reason"),
        proposed_installments => pick("Número de parcialidades (2 a 60)", "Number of installments (2 to 60)"),
        first_date => pick("Fecha del primer pago", "Date of the first payment"),
        note => pick("Comentario (opcional)", "Note (optional)"),
        send => pick("Enviar", "Send"),
        hardship_done => pick(
            "Recibimos tu solicitud. Te escribiremos cuando la revisemos; mientras tanto no recibirás recordatorios de esta factura.",
            "We received your request. We will write to you once it is reviewed; meanwhile you will get no reminders for this invoice."
        ),
        dispute_title => pick("Reclamar una factura", "Dispute an invoice"),
        dispute_help => pick(
            "Dinos qué está mal en la factura (importe, conceptos, algo que no recibiste). Mientras lo revisamos no te enviaremos recordatorios.",
            "Tell us what is wrong with the invoice (amount, lines, something you did not receive). While we review it you will get no reminders."
        ),
        dispute_done => pick(
            "Recibimos tu reclamación. Te escribiremos con la respuesta.",
            "We received your dispute. We will write to you with the answer."
        ),
        request_number => pick("Número de solicitud", "Request number"),
        back_to_invoice => pick("Volver a la factura", "Back to the invoice"),
        language => pick("Idioma", "Language"),
        spanish => "Español",
        english => "English",
        notifications => pick("Avisos", "Notifications"),
        notifications_help => pick(
            "Marca los canales por los que no quieres recibir recordatorios, y escribe la dirección o el teléfono al que se refiere.",
            "Tick the channels you do not want reminders on, and write the address or phone number it applies to."
        ),
        address => pick("Correo o teléfono", "Email or phone"),
        opt_out_email => pick("No quiero correos", "No emails"),
        autopay_on => pick("El pago automático está activo", "Autopay is on"),
        autopay_on_since => pick("desde el", "since"),
        autopay_off_now => pick("El pago automático está desactivado.", "Autopay is off."),
        opt_out_sms => pick("No quiero SMS", "No text messages"),
        opt_out_whatsapp => pick("No quiero WhatsApp", "No WhatsApp messages"),
        save => pick("Guardar", "Save"),
        faq => pick("Preguntas frecuentes", "Frequently asked questions"),
        faq_pay_q => pick("¿Cómo pago?", "How do I pay?"),
        faq_pay_a => pick(
            "En Facturas marca las que quieras pagar y pulsa «Pagar las seleccionadas», o abre una factura y pulsa «Pagar la factura». Puedes pagar con tarjeta (nueva o guardada) o por transferencia.",
            "In Invoices tick the ones you want to pay and press “Pay the selected ones”, or open an invoice and press “Pay the invoice”. You can pay by card (new or saved) or by bank transfer."
        ),
        faq_transfer_q => pick("¿Qué referencia pongo en la transferencia?", "Which reference do I quote in a bank transfer?"),
        faq_transfer_a => pick(
            "Elige «Transferencia bancaria» al pagar: te mostramos la cuenta, el importe y una referencia que empieza por RF. Escríbela tal cual en el concepto y tu pago se aplicará solo.",
            "Choose “Bank transfer” when paying: you will see the account, the amount and a reference starting with RF. Quote it exactly and your payment is matched by itself."
        ),
        faq_cant_q => pick("No puedo pagar a tiempo, ¿qué hago?", "I cannot pay on time. What can I do?"),
        faq_cant_a => pick(
            "Abre la factura y pulsa «No puedo pagar». Propón un número de parcialidades y una fecha; mientras lo revisamos no recibirás recordatorios.",
            "Open the invoice and press “I can't pay”. Propose a number of installments and a date; while it is reviewed you will get no reminders."
        ),
        faq_dispute_q => pick("Una factura está mal", "An invoice is wrong"),
        faq_dispute_a => pick(
            "Abre la factura y pulsa «Reclamar esta factura». Explica qué está mal; te responderemos y, si procede, emitiremos una nota de crédito.",
            "Open the invoice and press “Dispute this invoice”. Explain what is wrong; you will get an answer and, where it applies, a credit note."
        ),
        contact => pick("Contacto", "Contact"),
        contact_help => pick(
            "Para cualquier otra cosa responde a cualquiera de los correos que te enviamos sobre tus facturas.",
            "For anything else, reply to any of the emails we sent you about your invoices."
        ),
        required => pick("es obligatorio", "is required"),
        field_error => pick("Revisa este campo:", "Check this field:"),
    }
}

/// What a status is called, for invoices and payments.
fn status_label(lang: Language, status: &str) -> &'static str {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    match status {
        "open" => pick("Pendiente", "Open"),
        "partially_paid" => pick("Pago parcial", "Partially paid"),
        "paid" => pick("Pagada", "Paid"),
        "void" => pick("Anulada", "Void"),
        "uncollectible" => pick("Incobrable", "Uncollectible"),
        "overdue" => pick("Vencida", "Overdue"),
        "requires_payment_method" | "requires_confirmation" => pick("Por pagar", "Awaiting payment"),
        "processing" => pick("En proceso", "Processing"),
        "requires_action" => pick("Confirmación pendiente", "Awaiting confirmation"),
        "succeeded" => pick("Pagado", "Paid"),
        "failed" => pick("Rechazado", "Failed"),
        "canceled" => pick("Cancelado", "Canceled"),
        _ => pick("Otro", "Other"),
    }
}

fn method_label(lang: Language, method: &str) -> &'static str {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    match method {
        "card" => pick("Tarjeta", "Card"),
        "bank_transfer" => pick("Transferencia", "Bank transfer"),
        "direct_debit" => pick("Domiciliación", "Direct debit"),
        "" => "",
        _ => pick("Otro", "Other"),
    }
}

/// The name a person knows a form field by, for messages that point at it.
fn field_label(lang: Language, field: &str) -> &'static str {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    let last = field.rsplit('.').next().unwrap_or(field);
    match last {
        "pan" | "card" => pick("Número de tarjeta", "Card number"),
        "exp_month" => pick("Mes de vencimiento", "Expiry month"),
        "exp_year" => pick("Año de vencimiento", "Expiry year"),
        "holder_name" => pick("Titular de la tarjeta", "Cardholder name"),
        "payment_method_id" => pick("Tarjeta", "Card"),
        "reason" => pick("Motivo", "Reason"),
        "installments" => pick("Número de parcialidades", "Number of installments"),
        "first_date" => pick("Fecha del primer pago", "Date of the first payment"),
        "note" => pick("Comentario", "Note"),
        "from" => pick("Desde", "From"),
        "to" => pick("Hasta", "To"),
        "language" => pick("Idioma", "Language"),
        "address" => pick("Correo o teléfono", "Email or phone"),
        "consent" => pick("Autorización", "Consent"),
        "invoice_ids" => pick("Facturas", "Invoices"),
        _ => "",
    }
}

// --- plumbing ---

#[derive(Debug, Deserialize, Default, Clone)]
pub struct PortalQuery {
    pub lang: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    pub done: Option<String>,
}

impl PortalQuery {
    fn lang(&self) -> LangQuery {
        LangQuery { lang: self.lang.clone() }
    }
}

/// An urlencoded form body, keeping repeated names (the invoices ticked on the list).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Fields {
        let pairs = body
            .split(|b| *b == b'&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut halves = part.splitn(2, |b| *b == b'=');
                let name = decode(halves.next().unwrap_or_default());
                let value = decode(halves.next().unwrap_or_default());
                (name, value)
            })
            .collect();
        Fields(pairs)
    }

    /// The first value of `name`, trimmed; empty when absent.
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim()).unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(n, v)| n == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_owned()).collect()
    }
}

fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Ids go into paths and `Location` headers: only the characters the services' ids use.
fn plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => server_error(),
    }
}

/// The signed-in portal contact and their customer's id; staff go to the console.
async fn contact(p: &Pages, headers: &HeaderMap, q: &PortalQuery) -> Result<(Visit, String), Response> {
    let visit = p.visit(headers, &q.lang()).await?;
    own_customer(p, visit).await
}

/// `contact` for a form post: 403 without the session's CSRF token.
async fn contact_form(p: &Pages, headers: &HeaderMap, fields: &Fields) -> Result<(Visit, String), Response> {
    let visit = p.visit_form(headers, fields.get("csrf_token")).await?;
    own_customer(p, visit).await
}

async fn own_customer(p: &Pages, visit: Visit) -> Result<(Visit, String), Response> {
    match visit.person.customer_id {
        Some(customer) if !visit.is_staff() => Ok((visit, cobro_kit::ids::format("cus", customer))),
        _ => Err(p.finish(visit, Redirect::to("/console").into_response()).await),
    }
}

/// Render a portal page (with the portal's words as `w`) and finish the visit.
async fn show(p: &Pages, visit: Visit, status: StatusCode, name: &str, extra: minijinja::Value) -> Response {
    let page = p.page(&visit, name, context! { w => words(visit.lang()), ..extra });
    let page =
        if page.status().is_success() && status != StatusCode::OK { (status, page).into_response() } else { page };
    p.finish(visit, page).await
}

/// A lookup by an id from the address: one that is not even shaped like an id is not found
/// either.
fn missing(status: tonic::Status) -> tonic::Status {
    if status.code() == tonic::Code::InvalidArgument { tonic::Status::not_found("not found") } else { status }
}

async fn fail(p: &Pages, visit: Visit, status: &tonic::Status) -> Response {
    let page = p.failure(&visit, status);
    p.finish(visit, page).await
}

/// A refusal's message for the form, naming the field in the person's words.
fn form_error(lang: Language, status: &tonic::Status) -> (String, String) {
    let detail = cobro_kit::error::error_detail(status);
    let field = detail.as_ref().map(|d| d.field.clone()).unwrap_or_default();
    let message = detail.map(|d| d.message).filter(|m| !m.is_empty()).unwrap_or_else(|| refusal_message(status));
    let label = field_label(lang, &field);
    let text = if label.is_empty() { message } else { format!("{label}: {}", without_field_names(&message)) };
    (field, text)
}

/// A service's message without the machine names of fields in front ("card.pan: pan: is not
/// valid" reads "is not valid" after the field's own name).
fn without_field_names(message: &str) -> &str {
    let mut rest = message;
    while let Some((name, after)) = rest.split_once(": ") {
        let machine = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'[' | b']'));
        if !machine {
            break;
        }
        rest = after;
    }
    rest
}

fn invalid(lang: Language, field: &str, rule: &str) -> (String, String) {
    (field.to_owned(), format!("{}: {rule}", field_label(lang, field)))
}

fn is_form_refusal(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists)
}

fn money(m: Option<&Money>, lang: Language) -> String {
    format::money(m, lang)
}

fn positive(m: Option<&Money>) -> bool {
    m.and_then(|m| cobro_kit::money::Money::parse(&m.amount, &m.currency).ok()).is_some_and(|m| m.is_positive())
}

/// Sums per currency (a customer has one, but nothing here assumes it).
#[derive(Default)]
struct Totals(BTreeMap<String, cobro_kit::money::Money>);

impl Totals {
    fn add(&mut self, m: Option<&Money>) {
        let Some(m) = m else { return };
        let Ok(value) = cobro_kit::money::Money::parse(&m.amount, &m.currency) else { return };
        let sum = match self.0.get(&m.currency) {
            Some(current) => current.checked_add(&value).unwrap_or(value),
            None => value,
        };
        self.0.insert(m.currency.clone(), sum);
    }

    fn shown(&self, lang: Language) -> Vec<String> {
        self.0
            .iter()
            .map(|(currency, sum)| {
                format::money(Some(&Money { currency: currency.clone(), amount: sum.amount().to_string() }), lang)
            })
            .collect()
    }
}

fn timestamp_date(t: Option<&prost_types::Timestamp>, lang: Language) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|d| format::date(&d.date_naive().to_string(), lang))
        .unwrap_or_default()
}

// --- views ---

#[derive(Serialize, Default, Clone)]
struct LineView {
    description: String,
    quantity: String,
    unit_price: String,
    taxes: String,
    net: String,
    tax: String,
    total: String,
}

#[derive(Serialize, Default, Clone)]
struct InstallmentView {
    id: String,
    seq: u32,
    due_date: String,
    amount: String,
    balance: String,
    overdue: bool,
    payable: bool,
    /// The idempotency key of this installment's pay form.
    pay_key: String,
}

#[derive(Serialize, Default, Clone)]
struct InvoiceView {
    id: String,
    number: String,
    status: String,
    status_label: String,
    issue_date: String,
    due_date: String,
    due_iso: String,
    subtotal: String,
    discount_total: String,
    tax_total: String,
    total: String,
    credited: String,
    paid: String,
    balance: String,
    overdue: bool,
    payable: bool,
    memo: String,
    lines: Vec<LineView>,
    installments: Vec<InstallmentView>,
}

fn invoice_view(i: &inv::Invoice, lang: Language) -> InvoiceView {
    let payable = matches!(i.status.as_str(), "open" | "partially_paid") && positive(i.balance.as_ref());
    let shown_status = if payable && i.overdue { "overdue" } else { i.status.as_str() };
    let number = if i.number.is_empty() { i.id.clone() } else { i.number.clone() };
    InvoiceView {
        id: i.id.clone(),
        number,
        status: shown_status.to_owned(),
        status_label: status_label(lang, shown_status).to_owned(),
        issue_date: format::date(&i.issue_date, lang),
        due_date: format::date(&i.due_date, lang),
        due_iso: i.due_date.clone(),
        subtotal: money(i.subtotal.as_ref(), lang),
        discount_total: if positive(i.discount_total.as_ref()) {
            money(i.discount_total.as_ref(), lang)
        } else {
            String::new()
        },
        tax_total: money(i.tax_total.as_ref(), lang),
        total: money(i.total.as_ref(), lang),
        credited: if positive(i.credited.as_ref()) { money(i.credited.as_ref(), lang) } else { String::new() },
        paid: money(i.paid.as_ref(), lang),
        balance: money(i.balance.as_ref(), lang),
        overdue: payable && i.overdue,
        payable,
        memo: i.memo.clone(),
        lines: i
            .lines
            .iter()
            .map(|l| {
                let input = l.input.clone().unwrap_or_default();
                let taxes = input
                    .taxes
                    .iter()
                    .map(|t| format!("{} {}%", t.name, format::number(&t.rate_percent, lang)))
                    .collect::<Vec<_>>()
                    .join(", ");
                LineView {
                    description: input.description,
                    quantity: format::number(&input.quantity, lang),
                    unit_price: format::number(&input.unit_price, lang),
                    taxes,
                    net: money(l.net.as_ref(), lang),
                    tax: money(l.tax.as_ref(), lang),
                    total: money(l.total.as_ref(), lang),
                }
            })
            .collect(),
        installments: i
            .installments
            .iter()
            .map(|s| InstallmentView {
                id: s.id.clone(),
                seq: s.seq,
                due_date: format::date(&s.due_date, lang),
                amount: money(s.amount.as_ref(), lang),
                balance: money(s.balance.as_ref(), lang),
                overdue: s.overdue,
                payable: payable && positive(s.balance.as_ref()),
                pay_key: Uuid::new_v4().to_string(),
            })
            .collect(),
    }
}

#[derive(Serialize, Default, Clone)]
struct TransferView {
    holder: String,
    iban: String,
    bic: String,
    reference: String,
    amount: String,
}

fn transfer_view(t: &pay::TransferInstructions, lang: Language) -> TransferView {
    TransferView {
        holder: t.account_holder.clone(),
        iban: t.iban.clone(),
        bic: t.bic.clone(),
        reference: if t.reference_grouped.is_empty() { t.reference.clone() } else { t.reference_grouped.clone() },
        amount: money(t.amount.as_ref(), lang),
    }
}

#[derive(Serialize, Default, Clone)]
struct PaymentView {
    id: String,
    status: String,
    status_label: String,
    amount: String,
    method: String,
    card: String,
    date: String,
    invoice_ids: Vec<String>,
    installment_id: String,
    failure_message: String,
    next_action_url: String,
    transfer: Option<TransferView>,
}

fn payment_view(i: &pay::PaymentIntent, lang: Language) -> PaymentView {
    let card =
        if i.card_last4.is_empty() { String::new() } else { format!("{} ···· {}", i.card_brand, i.card_last4) };
    PaymentView {
        id: i.id.clone(),
        status: i.status.clone(),
        status_label: status_label(lang, &i.status).to_owned(),
        amount: money(i.amount.as_ref(), lang),
        method: method_label(lang, &i.method).to_owned(),
        card,
        date: timestamp_date(i.created_at.as_ref(), lang),
        invoice_ids: i.invoice_ids.clone(),
        installment_id: i.installment_id.clone(),
        failure_message: i.failure_message.clone(),
        next_action_url: if i.next_action_url.is_empty() || !plain_id(&i.id) {
            String::new()
        } else {
            let separator = if i.next_action_url.contains('?') { '&' } else { '?' };
            format!("{}{separator}return=/portal/payments/{}/return", i.next_action_url, i.id)
        },
        transfer: i.transfer.as_ref().map(|t| transfer_view(t, lang)),
    }
}

#[derive(Serialize, Default, Clone)]
struct CardView {
    id: String,
    label: String,
    expires: String,
    is_default: bool,
}

fn card_view(m: &pay::PaymentMethod) -> CardView {
    let label = if m.kind == "card" {
        format!("{} ···· {}", m.brand, m.last4)
    } else {
        format!("{} {}", m.kind, m.account_masked)
    };
    let expires = if m.exp_month > 0 { format!("{:02}/{}", m.exp_month, m.exp_year) } else { String::new() };
    CardView { id: m.id.clone(), label, expires, is_default: m.is_default }
}

#[derive(Serialize, Default, Clone)]
struct DueView {
    invoice_id: String,
    number: String,
    due_iso: String,
    due_date: String,
    amount: String,
    overdue: bool,
}

#[derive(Serialize, Default, Clone)]
struct EntryView {
    date: String,
    kind: String,
    reference: String,
    charge: String,
    credit: String,
    balance: String,
}

// --- service calls ---

/// Every invoice of the customer the contact may see (drafts are not theirs to see yet).
async fn all_invoices(p: &Pages, visit: &Visit, customer: &str) -> Result<Vec<inv::Invoice>, tonic::Status> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..20 {
        let request = inv::ListInvoicesRequest {
            customer_id: customer.to_owned(),
            status: String::new(),
            page: Some(PageRequest { page_size: 100, page_token: token }),
        };
        let answer = p.services.invoicing.clone().list_invoices(visit.call(request)).await?.into_inner();
        out.extend(answer.invoices.into_iter().filter(|i| i.status != "draft"));
        token = answer.page.map(|page| page.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(out)
}

async fn saved_cards(p: &Pages, visit: &Visit, customer: &str) -> Result<Vec<pay::PaymentMethod>, tonic::Status> {
    let request = pay::ListPaymentMethodsRequest { customer_id: customer.to_owned() };
    Ok(p.services.payments.clone().list_payment_methods(visit.call(request)).await?.into_inner().methods)
}

// --- dashboard and invoices ---

pub async fn dashboard(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let all = match all_invoices(&p, &visit, &customer).await {
        Ok(all) => all,
        Err(status) => return fail(&p, visit, &status).await,
    };
    let mut due = Totals::default();
    let mut overdue = Totals::default();
    let mut upcoming: Vec<DueView> = Vec::new();
    for i in &all {
        let view = invoice_view(i, lang);
        if !view.payable {
            continue;
        }
        due.add(i.balance.as_ref());
        let open_installments: Vec<&inv::Installment> =
            i.installments.iter().filter(|s| positive(s.balance.as_ref())).collect();
        if open_installments.is_empty() {
            if i.overdue {
                overdue.add(i.balance.as_ref());
            }
            upcoming.push(DueView {
                invoice_id: i.id.clone(),
                number: view.number.clone(),
                due_iso: i.due_date.clone(),
                due_date: view.due_date.clone(),
                amount: view.balance.clone(),
                overdue: i.overdue,
            });
        } else {
            for s in open_installments {
                if s.overdue {
                    overdue.add(s.balance.as_ref());
                }
                upcoming.push(DueView {
                    invoice_id: i.id.clone(),
                    number: format!("{} ({})", view.number, s.seq),
                    due_iso: s.due_date.clone(),
                    due_date: format::date(&s.due_date, lang),
                    amount: money(s.balance.as_ref(), lang),
                    overdue: s.overdue,
                });
            }
        }
    }
    upcoming.sort_by(|a, b| a.due_iso.cmp(&b.due_iso));
    upcoming.truncate(5);
    let title = if lang == Language::Es { "Resumen" } else { "Overview" };
    show(
        &p,
        visit,
        StatusCode::OK,
        "portal_dashboard.html",
        context! { title => title, total_due => due.shown(lang), overdue => overdue.shown(lang), upcoming => upcoming },
    )
    .await
}

async fn invoices_page(
    p: &Pages,
    visit: Visit,
    customer: &str,
    filter: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let lang = visit.lang();
    let all = match all_invoices(p, &visit, customer).await {
        Ok(all) => all,
        Err(status) => return fail(p, visit, &status).await,
    };
    let rows: Vec<InvoiceView> = all
        .iter()
        .map(|i| invoice_view(i, lang))
        .filter(|v| match filter {
            "open" => v.payable,
            "overdue" => v.overdue,
            "paid" => v.status == "paid",
            _ => true,
        })
        .collect();
    let any_payable = rows.iter().any(|v| v.payable);
    let title = if lang == Language::Es { "Facturas" } else { "Invoices" };
    show(
        p,
        visit,
        status,
        "portal_invoices.html",
        context! { title => title, invoices => rows, filter => filter, any_payable => any_payable,
        pay_key => Uuid::new_v4().to_string(), error => error },
    )
    .await
}

pub async fn invoices(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let filter = q.status.as_deref().filter(|s| matches!(*s, "open" | "overdue" | "paid")).unwrap_or_default();
    invoices_page(&p, visit, &customer, filter, "", StatusCode::OK).await
}

pub async fn invoice(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let request = inv::GetInvoiceRequest { id };
    let found = p.services.invoicing.clone().get_invoice(visit.call(request)).await;
    let invoice = match found {
        Ok(answer) => answer.into_inner(),
        Err(status) => return fail(&p, visit, &missing(status)).await,
    };
    if invoice.status == "draft" {
        return fail(&p, visit, &tonic::Status::not_found("invoice")).await;
    }
    let view = invoice_view(&invoice, visit.lang());
    let title = format!("{} {}", if visit.lang() == Language::Es { "Factura" } else { "Invoice" }, view.number);
    show(
        &p,
        visit,
        StatusCode::OK,
        "portal_invoice.html",
        context! { title => title, invoice => view,
        pay_key => Uuid::new_v4().to_string() },
    )
    .await
}

pub async fn invoice_pdf(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let request = inv::GetInvoicePdfRequest { id };
    let pdf = match p.services.invoicing.clone().get_invoice_pdf(visit.call(request)).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return fail(&p, visit, &missing(status)).await,
    };
    let name: String =
        pdf.filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let name = if name.is_empty() { "invoice.pdf".to_owned() } else { name };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        pdf.pdf,
    )
        .into_response();
    p.finish(visit, response).await
}

// --- paying ---

/// Pay the invoices ticked on the list, one invoice, or one installment: one payment intent,
/// made once however often the form is sent (its key is in the form).
pub async fn pay_invoices(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let invoice_ids = fields.all("invoice_ids");
    let installment_id = fields.get("installment_id").to_owned();
    if invoice_ids.is_empty() {
        let (_, message) = invalid(
            lang,
            "invoice_ids",
            if lang == Language::Es { "marca al menos una factura" } else { "tick at least one invoice" },
        );
        return invoices_page(&p, visit, &customer, "", &message, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // A form without a key of its own still pays once per submission.
    let key = Uuid::parse_str(fields.get("idempotency_key")).unwrap_or_else(|_| Uuid::new_v4());
    let request = pay::CreatePaymentIntentRequest {
        idempotency_key: key.to_string(),
        customer_id: customer.clone(),
        amount: None,
        invoice_ids,
        installment_id,
        description: String::new(),
    };
    match p.services.payments.clone().create_payment_intent(visit.call(request)).await {
        Ok(answer) => {
            let intent = answer.into_inner();
            if !plain_id(&intent.id) {
                return server_error();
            }
            let to = format!("/portal/payments/{}", intent.id);
            p.finish(visit, Redirect::to(&to).into_response()).await
        }
        Err(status) if is_form_refusal(&status) => {
            let (_, message) = form_error(lang, &status);
            invoices_page(&p, visit, &customer, "", &message, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

/// What the payment page shows: how to pay while it waits for a method, else its outcome.
async fn payment_page(
    p: &Pages,
    visit: Visit,
    customer: &str,
    id: String,
    error: (String, String),
    form: (String, String, String),
    status: StatusCode,
) -> Response {
    let lang = visit.lang();
    let found = p.services.payments.clone().get_payment_intent(visit.call(pay::GetPaymentIntentRequest { id })).await;
    let intent = match found {
        Ok(answer) => answer.into_inner(),
        Err(status) => return fail(p, visit, &missing(status)).await,
    };
    let choosing = matches!(intent.status.as_str(), "requires_payment_method" | "requires_confirmation");
    let mut cards = Vec::new();
    let mut transfer = None;
    if choosing {
        cards = saved_cards(p, &visit, customer).await.unwrap_or_default().iter().map(card_view).collect();
        if let Some(first) = intent.invoice_ids.first() {
            let request =
                pay::GetTransferInstructionsRequest { customer_id: customer.to_owned(), invoice_id: first.clone() };
            transfer = p
                .services
                .payments
                .clone()
                .get_transfer_instructions(visit.call(request))
                .await
                .ok()
                .map(|t| transfer_view(&t.into_inner(), lang));
        }
    }
    let view = payment_view(&intent, lang);
    let title = if lang == Language::Es { "Pago" } else { "Payment" };
    let (error_field, error) = error;
    let (exp_month, exp_year, holder_name) = form;
    show(
        p,
        visit,
        status,
        "portal_payment.html",
        context! { title => title, payment => view, choosing => choosing, cards => cards, transfer => transfer,
        confirm_key => Uuid::new_v4().to_string(), retry_key => Uuid::new_v4().to_string(),
        error => error, error_field => error_field, exp_month => exp_month, exp_year => exp_year,
        holder_name => holder_name },
    )
    .await
}

pub async fn payment(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    payment_page(&p, visit, &customer, id, Default::default(), Default::default(), StatusCode::OK).await
}

/// The scheme and host the browser used, for the address the bank sends the payer back to.
fn origin(p: &Pages, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        })
        .unwrap_or("localhost");
    let scheme = if p.secure { "https" } else { "http" };
    format!("{scheme}://{host}")
}

fn parse_number(value: &str) -> Option<u32> {
    if value.is_empty() || value.len() > 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

pub async fn confirm(State(p): State<Arc<Pages>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !plain_id(&id) {
        return fail(&p, visit, &tonic::Status::not_found("payment")).await;
    }
    let lang = visit.lang();
    let exp_month_raw = fields.get("exp_month").to_owned();
    let exp_year_raw = fields.get("exp_year").to_owned();
    let holder = fields.get("holder_name").to_owned();
    // The card number is never put back into a page.
    let kept = (exp_month_raw.clone(), exp_year_raw.clone(), holder.clone());
    let pan: String = fields.get("pan").chars().filter(char::is_ascii_digit).collect();
    let required = if lang == Language::Es { "es obligatorio" } else { "is required" };
    let method = match fields.get("method") {
        "saved" => {
            let chosen = fields.get("payment_method_id");
            if chosen.is_empty() {
                let error = invalid(lang, "payment_method_id", required);
                return payment_page(&p, visit, &customer, id, error, kept, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
            pay::confirm_payment_intent_request::Method::PaymentMethodId(chosen.to_owned())
        }
        "transfer" => pay::confirm_payment_intent_request::Method::BankTransfer(true),
        _ => match crate::web::card::new_card(lang, fields.get("pan"), &exp_month_raw, &exp_year_raw, &holder) {
            Ok(card) => pay::confirm_payment_intent_request::Method::Card(card),
            Err((field, why)) => {
                let error = invalid(lang, field, why);
                return payment_page(&p, visit, &customer, id, error, kept, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        },
    };
    let key = Uuid::parse_str(fields.get("idempotency_key")).unwrap_or_else(|_| Uuid::new_v4());
    let request = pay::ConfirmPaymentIntentRequest {
        idempotency_key: key.to_string(),
        id: id.clone(),
        method: Some(method),
        return_url: format!("{}/portal/payments/{id}/return", origin(&p, &headers)),
        save_card: !fields.get("save_card").is_empty(),
    };
    match p.services.payments.clone().confirm_payment_intent(visit.call(request)).await {
        Ok(answer) => {
            let intent = answer.into_inner();
            if intent.status == "requires_action" && !intent.next_action_url.is_empty() {
                // The bank's page; the sandbox's sends the payer back to the path it is given.
                let response = if HeaderValue::from_str(&intent.next_action_url).is_ok() {
                    crate::public::challenge_redirect(&intent.next_action_url, &format!("/portal/payments/{id}/return"))
                } else {
                    server_error()
                };
                return p.finish(visit, response).await;
            }
            p.finish(visit, Redirect::to(&format!("/portal/payments/{id}")).into_response()).await
        }
        Err(status) if is_form_refusal(&status) => {
            let (field, mut message) = form_error(lang, &status);
            if !pan.is_empty() && message.contains(&pan) {
                message = format!(
                    "{}: {}",
                    field_label(lang, "pan"),
                    if lang == Language::Es { "no es válido" } else { "is not valid" }
                );
            }
            payment_page(&p, visit, &customer, id, (field, message), kept, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

/// Back from the bank's 3-D Secure page: the outcome is checked with the processor.
pub async fn payment_return(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !plain_id(&id) {
        return fail(&p, visit, &tonic::Status::not_found("payment")).await;
    }
    let request = pay::CompletePaymentActionRequest { id: id.clone() };
    match p.services.payments.clone().complete_payment_action(visit.call(request)).await {
        Ok(_) => p.finish(visit, Redirect::to(&format!("/portal/payments/{id}")).into_response()).await,
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            // Already settled (a reload of this page): the payment page shows how it ended.
            p.finish(visit, Redirect::to(&format!("/portal/payments/{id}")).into_response()).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

pub async fn payments(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let mut rows = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let request = pay::ListPaymentIntentsRequest {
            customer_id: customer.clone(),
            status: String::new(),
            page: Some(PageRequest { page_size: 100, page_token: token }),
        };
        let answer = match p.services.payments.clone().list_payment_intents(visit.call(request)).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => return fail(&p, visit, &status).await,
        };
        rows.extend(answer.payments.iter().map(|i| payment_view(i, lang)));
        token = answer.page.map(|page| page.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    let title = if lang == Language::Es { "Pagos" } else { "Payments" };
    show(&p, visit, StatusCode::OK, "portal_payments.html", context! { title => title, payments => rows }).await
}

pub async fn receipt(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let found = p.services.payments.clone().get_payment_intent(visit.call(pay::GetPaymentIntentRequest { id })).await;
    let intent = match found {
        Ok(answer) => answer.into_inner(),
        Err(status) => return fail(&p, visit, &missing(status)).await,
    };
    if intent.status != "succeeded" || !plain_id(&intent.id) {
        let to = format!("/portal/payments/{}", intent.id);
        return p.finish(visit, see_other(&to)).await;
    }
    // The invoices by the numbers people know them by.
    let mut numbers = Vec::new();
    for invoice_id in intent.invoice_ids.iter().take(20) {
        let request = inv::GetInvoiceRequest { id: invoice_id.clone() };
        let number = match p.services.invoicing.clone().get_invoice(visit.call(request)).await {
            Ok(answer) => answer.into_inner().number,
            Err(_) => String::new(),
        };
        numbers.push(if number.is_empty() { invoice_id.clone() } else { number });
    }
    let view = payment_view(&intent, lang);
    let title = if lang == Language::Es { "Recibo" } else { "Receipt" };
    show(
        &p,
        visit,
        StatusCode::OK,
        "portal_receipt.html",
        context! { title => title, payment => view,
        numbers => numbers, customer => customer },
    )
    .await
}

// --- statement ---

fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn amount_of(m: Option<&Money>) -> String {
    m.map(|m| m.amount.clone()).unwrap_or_default()
}

pub async fn statement(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let today = chrono::Utc::now().date_naive();
    let from = q.from.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| (today - chrono::Days::new(90)).to_string());
    let to = q.to.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| today.to_string());
    let title = if lang == Language::Es { "Estado de cuenta" } else { "Statement" };
    let must_be_date =
        if lang == Language::Es { "debe ser una fecha como 2026-12-05" } else { "must be a date like 2026-12-05" };
    let mut bad = [("from", &from), ("to", &to)]
        .into_iter()
        .find(|(_, v)| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err())
        .map(|(field, _)| invalid(lang, field, must_be_date));
    if bad.is_none() && q.format.as_deref() == Some("pdf") {
        let request = inv::GetStatementRequest { customer_id: customer.clone(), from: from.clone(), to: to.clone() };
        match p.services.invoicing.clone().get_statement_pdf(visit.call(request)).await {
            Ok(answer) => return statement_pdf(&p, visit, answer.into_inner()).await,
            Err(status) if is_form_refusal(&status) => bad = Some(form_error(lang, &status)),
            Err(status) => return fail(&p, visit, &status).await,
        }
    }
    let answer = match bad {
        Some(error) => Err(error),
        None => {
            let request =
                inv::GetStatementRequest { customer_id: customer.clone(), from: from.clone(), to: to.clone() };
            match p.services.invoicing.clone().get_statement(visit.call(request)).await {
                Ok(answer) => Ok(answer.into_inner()),
                Err(status) if is_form_refusal(&status) => Err(form_error(lang, &status)),
                Err(status) => return fail(&p, visit, &status).await,
            }
        }
    };
    let st = match answer {
        Ok(st) => st,
        Err((field, error)) => {
            return show(
                &p,
                visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                "portal_statement.html",
                context! { title => title, from => from, to => to, error => error, error_field => field,
                entries => Vec::<EntryView>::new(), opening => "", closing => "", shown => false },
            )
            .await;
        }
    };
    if q.format.as_deref() == Some("csv") {
        let mut csv = String::from("date,kind,reference,charge,credit,balance\r\n");
        csv.push_str(&format!(",opening_balance,,,,{}\r\n", amount_of(st.opening_balance.as_ref())));
        for e in &st.entries {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\r\n",
                csv_cell(&e.date),
                csv_cell(&e.kind),
                csv_cell(&e.reference),
                amount_of(e.charge.as_ref()),
                amount_of(e.credit.as_ref()),
                amount_of(e.balance.as_ref())
            ));
        }
        csv.push_str(&format!(",closing_balance,,,,{}\r\n", amount_of(st.closing_balance.as_ref())));
        let disposition =
            HeaderValue::from_str(&format!("attachment; filename=\"statement-{}-{}.csv\"", st.from, st.to))
                .unwrap_or(HeaderValue::from_static("attachment"));
        let response = (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
                (header::CONTENT_DISPOSITION, disposition),
                (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
            ],
            csv,
        )
            .into_response();
        return p.finish(visit, response).await;
    }
    let kind = |k: &str| -> String {
        let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
        match k {
            "invoice" => pick("Factura", "Invoice"),
            "payment" => pick("Pago", "Payment"),
            "credit_note" => pick("Nota de crédito", "Credit note"),
            _ => pick("Otro", "Other"),
        }
        .to_owned()
    };
    let entries: Vec<EntryView> = st
        .entries
        .iter()
        .map(|e| EntryView {
            date: format::date(&e.date, lang),
            kind: kind(&e.kind),
            reference: e.reference.clone(),
            charge: if positive(e.charge.as_ref()) { money(e.charge.as_ref(), lang) } else { String::new() },
            credit: if positive(e.credit.as_ref()) { money(e.credit.as_ref(), lang) } else { String::new() },
            balance: money(e.balance.as_ref(), lang),
        })
        .collect();
    show(
        &p,
        visit,
        StatusCode::OK,
        "portal_statement.html",
        context! { title => title, from => from, to => to,
        error => "", error_field => "", entries => entries, shown => true,
        opening => money(st.opening_balance.as_ref(), lang), closing => money(st.closing_balance.as_ref(), lang) },
    )
    .await
}

/// The statement's PDF as a download, never cached.
async fn statement_pdf(p: &Pages, visit: Visit, pdf: inv::StatementPdf) -> Response {
    let name: String =
        pdf.filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let name = if name.is_empty() { "statement.pdf".to_owned() } else { name };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        pdf.pdf,
    )
        .into_response();
    p.finish(visit, response).await
}

// --- cards and autopay ---

async fn cards_page(p: &Pages, visit: Visit, customer: &str, done: &str, error: &str, status: StatusCode) -> Response {
    let lang = visit.lang();
    let request = pay::ListPaymentMethodsRequest { customer_id: customer.to_owned() };
    let listed = match p.services.payments.clone().list_payment_methods(visit.call(request)).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return fail(p, visit, &status).await,
    };
    let cards: Vec<CardView> = listed.methods.iter().map(card_view).collect();
    // Autopay on: which card it charges and since when.
    let autopay = listed.autopay.map(|m| {
        let card = cards.iter().find(|c| c.id == m.payment_method_id).map(|c| c.label.clone()).unwrap_or_default();
        let since = m
            .consented_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| crate::web::format::date(&t.date_naive().to_string(), lang))
            .unwrap_or_default();
        context! { card => card, since => since }
    });
    let title = if lang == Language::Es { "Tarjetas" } else { "Cards" };
    show(
        p,
        visit,
        status,
        "portal_cards.html",
        context! { title => title, cards => cards, done => done, error => error, autopay => autopay },
    )
    .await
}

pub async fn cards(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let done = q
        .done
        .as_deref()
        .filter(|d| matches!(*d, "default" | "removed" | "autopay_on" | "autopay_off"))
        .unwrap_or_default();
    cards_page(&p, visit, &customer, done, "", StatusCode::OK).await
}

/// The answer to a change on the cards page: back to it with a notice, or the refusal shown.
async fn card_outcome<T>(
    p: &Pages,
    visit: Visit,
    customer: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    done: &str,
) -> Response {
    match result {
        Ok(_) => p.finish(visit, Redirect::to(&format!("/portal/cards?done={done}")).into_response()).await,
        Err(status) if is_form_refusal(&status) => {
            let (_, message) = form_error(visit.lang(), &status);
            cards_page(p, visit, customer, "", &message, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(status) => fail(p, visit, &status).await,
    }
}

pub async fn card_default(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let request = pay::SetDefaultPaymentMethodRequest {
        customer_id: customer.clone(),
        payment_method_id: fields.get("payment_method_id").to_owned(),
    };
    let result = p.services.payments.clone().set_default_payment_method(visit.call(request)).await;
    card_outcome(&p, visit, &customer, result, "default").await
}

pub async fn card_remove(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let request = pay::RemovePaymentMethodRequest {
        customer_id: customer.clone(),
        payment_method_id: fields.get("payment_method_id").to_owned(),
    };
    let result = p.services.payments.clone().remove_payment_method(visit.call(request)).await;
    card_outcome(&p, visit, &customer, result, "removed").await
}

pub async fn autopay_on(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    if fields.get("consent") != "yes" {
        let rule =
            if lang == Language::Es { "marca «Acepto» para activarlo" } else { "tick “I agree” to turn it on" };
        let (_, message) = invalid(lang, "consent", rule);
        return cards_page(&p, visit, &customer, "", &message, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // The very words shown beside the box.
    let consent_text = words(lang).get_attr("autopay_consent").map(|v| v.to_string()).unwrap_or_default();
    let request = pay::EnableAutopayRequest {
        customer_id: customer.clone(),
        payment_method_id: fields.get("payment_method_id").to_owned(),
        consent_text,
        consent_ip: crate::pages::client_ip(&headers),
    };
    let result = p.services.payments.clone().enable_autopay(visit.call(request)).await;
    card_outcome(&p, visit, &customer, result, "autopay_on").await
}

pub async fn autopay_off(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let request = pay::DisableAutopayRequest { customer_id: customer.clone() };
    let result = p.services.payments.clone().disable_autopay(visit.call(request)).await;
    card_outcome(&p, visit, &customer, result, "autopay_off").await
}

// --- I can't pay, disputes ---

async fn invoice_for_form(p: &Pages, visit: &Visit, id: &str) -> Result<InvoiceView, tonic::Status> {
    let invoice =
        p.services.invoicing.clone().get_invoice(visit.call(inv::GetInvoiceRequest { id: id.to_owned() })).await?;
    let invoice = invoice.into_inner();
    if invoice.status == "draft" {
        return Err(tonic::Status::not_found("invoice"));
    }
    Ok(invoice_view(&invoice, visit.lang()))
}

#[derive(Serialize, Default, Clone)]
struct HardshipForm {
    reason: String,
    installments: String,
    first_date: String,
    note: String,
}

async fn hardship_page(
    p: &Pages,
    visit: Visit,
    id: &str,
    form: HardshipForm,
    error: (String, String),
    status: StatusCode,
) -> Response {
    let view = match invoice_for_form(p, &visit, id).await {
        Ok(view) => view,
        Err(status) => return fail(p, visit, &missing(status)).await,
    };
    let title = if visit.lang() == Language::Es { "No puedo pagar" } else { "I can't pay" };
    let (error_field, error) = error;
    show(
        p,
        visit,
        status,
        "portal_hardship.html",
        context! { title => title, invoice => view, form => form,
        error => error, error_field => error_field },
    )
    .await
}

pub async fn hardship_form(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let first_date = (chrono::Utc::now().date_naive() + chrono::Days::new(30)).to_string();
    let form = HardshipForm { installments: "3".to_owned(), first_date, ..Default::default() };
    hardship_page(&p, visit, &id, form, Default::default(), StatusCode::OK).await
}

pub async fn hardship(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let (visit, _customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let form = HardshipForm {
        reason: fields.get("reason").to_owned(),
        installments: fields.get("installments").to_owned(),
        first_date: fields.get("first_date").to_owned(),
        note: fields.get("note").to_owned(),
    };
    let required = if lang == Language::Es { "es obligatorio" } else { "is required" };
    let problem = if form.reason.is_empty() {
        Some(invalid(lang, "reason", required))
    } else if !parse_number(&form.installments).is_some_and(|n| (2..=60).contains(&n)) {
        Some(invalid(
            lang,
            "installments",
            if lang == Language::Es { "debe ser un número de 2 a 60" } else { "must be a number from 2 to 60" },
        ))
    } else if chrono::NaiveDate::parse_from_str(&form.first_date, "%Y-%m-%d").is_err() {
        Some(invalid(
            lang,
            "first_date",
            if lang == Language::Es { "debe ser una fecha como 2026-12-05" } else { "must be a date like 2026-12-05" },
        ))
    } else {
        None
    };
    if let Some(error) = problem {
        return hardship_page(&p, visit, &id, form, error, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let request = inv::RequestHardshipRequest {
        invoice_id: id.clone(),
        reason: form.reason.clone(),
        installments: parse_number(&form.installments).unwrap_or_default(),
        first_date: form.first_date.clone(),
        note: form.note.clone(),
    };
    match p.services.invoicing.clone().request_hardship(visit.call(request)).await {
        Ok(answer) => {
            let reference = answer.into_inner().id;
            let title = if lang == Language::Es { "Solicitud recibida" } else { "Request received" };
            show(
                &p,
                visit,
                StatusCode::OK,
                "portal_done.html",
                context! { title => title, kind => "hardship",
                reference => reference, invoice_id => id },
            )
            .await
        }
        Err(status) if is_form_refusal(&status) => {
            let error = form_error(lang, &status);
            hardship_page(&p, visit, &id, form, error, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

async fn dispute_page(
    p: &Pages,
    visit: Visit,
    id: &str,
    reason: &str,
    error: (String, String),
    status: StatusCode,
) -> Response {
    let view = match invoice_for_form(p, &visit, id).await {
        Ok(view) => view,
        Err(status) => return fail(p, visit, &missing(status)).await,
    };
    let title = if visit.lang() == Language::Es { "Reclamar una factura" } else { "Dispute an invoice" };
    let (error_field, error) = error;
    show(
        p,
        visit,
        status,
        "portal_dispute.html",
        context! { title => title, invoice => view, reason => reason,
        error => error, error_field => error_field },
    )
    .await
}

pub async fn dispute_form(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    dispute_page(&p, visit, &id, "", Default::default(), StatusCode::OK).await
}

pub async fn dispute(State(p): State<Arc<Pages>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (visit, _customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let reason = fields.get("reason").to_owned();
    if reason.is_empty() {
        let error = invalid(lang, "reason", if lang == Language::Es { "es obligatorio" } else { "is required" });
        return dispute_page(&p, visit, &id, &reason, error, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let request = inv::OpenDisputeRequest { invoice_id: id.clone(), reason: reason.clone() };
    match p.services.invoicing.clone().open_dispute(visit.call(request)).await {
        Ok(answer) => {
            let reference = answer.into_inner().id;
            let title = if lang == Language::Es { "Reclamación recibida" } else { "Dispute received" };
            show(
                &p,
                visit,
                StatusCode::OK,
                "portal_done.html",
                context! { title => title, kind => "dispute",
                reference => reference, invoice_id => id },
            )
            .await
        }
        Err(status) if is_form_refusal(&status) => {
            let error = form_error(lang, &status);
            dispute_page(&p, visit, &id, &reason, error, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

// --- preferences and help ---

#[derive(Serialize, Default, Clone)]
struct PreferencesForm {
    language: String,
    address: String,
    email: bool,
    sms: bool,
    whatsapp: bool,
}

async fn preferences_page(
    p: &Pages,
    visit: Visit,
    form: PreferencesForm,
    saved: bool,
    error: (String, String),
    status: StatusCode,
) -> Response {
    let title = if visit.lang() == Language::Es { "Preferencias" } else { "Preferences" };
    let (error_field, error) = error;
    show(
        p,
        visit,
        status,
        "portal_preferences.html",
        context! { title => title, form => form, saved => saved,
        error => error, error_field => error_field },
    )
    .await
}

pub async fn preferences_form(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Query(q): Query<PortalQuery>,
) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = PreferencesForm { language: visit.lang().code().to_owned(), ..Default::default() };
    let saved = q.done.as_deref() == Some("saved");
    preferences_page(&p, visit, form, saved, Default::default(), StatusCode::OK).await
}

pub async fn preferences(State(p): State<Arc<Pages>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (mut visit, customer) = match contact_form(&p, &headers, &fields).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let opted: Vec<String> = fields.all("opt_out");
    let form = PreferencesForm {
        language: fields.get("language").to_owned(),
        address: fields.get("address").to_owned(),
        email: opted.iter().any(|c| c == "email"),
        sms: opted.iter().any(|c| c == "sms"),
        whatsapp: opted.iter().any(|c| c == "whatsapp"),
    };
    let Some(chosen) = Language::parse(&form.language).filter(|_| matches!(form.language.as_str(), "es" | "en")) else {
        let error = invalid(
            lang,
            "language",
            if lang == Language::Es { "elige español o inglés" } else { "choose Spanish or English" },
        );
        return preferences_page(&p, visit, form, false, error, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if form.address.is_empty() && opted.iter().any(|_| true) {
        let error = invalid(
            lang,
            "address",
            if lang == Language::Es {
                "es obligatorio para dejar de recibir avisos"
            } else {
                "is required to stop notifications"
            },
        );
        return preferences_page(&p, visit, form, false, error, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    if !form.address.is_empty() {
        // An address is an email or a phone number: each channel is set for the address it uses.
        let channels = if form.address.contains('@') {
            vec![("email", form.email)]
        } else {
            vec![("sms", form.sms), ("whatsapp", form.whatsapp)]
        };
        for (channel, out) in channels {
            let request = notif::SetOptOutRequest {
                customer_id: customer.clone(),
                address: form.address.clone(),
                channel: channel.to_owned(),
                opted_out: out,
            };
            if let Err(status) = p.services.notifications.clone().set_opt_out(visit.call(request)).await {
                let error = match status.code() {
                    _ if is_form_refusal(&status) => form_error(lang, &status),
                    _ => return fail(&p, visit, &status).await,
                };
                return preferences_page(&p, visit, form, false, error, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        }
    }
    visit.data.language = chosen;
    visit.data.language_chosen = true;
    let mut response = Redirect::to("/portal/preferences?done=saved").into_response();
    let cookie = format!("{}={}; Path=/; SameSite=Lax; Max-Age=31536000", i18n::COOKIE, chosen.code());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    p.finish(visit, response).await
}

pub async fn help(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<PortalQuery>) -> Response {
    let (visit, _customer) = match contact(&p, &headers, &q).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let title = if visit.lang() == Language::Es { "Ayuda" } else { "Help" };
    show(&p, visit, StatusCode::OK, "portal_help.html", context! { title => title }).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn sample_invoice() -> InvoiceView {
        InvoiceView {
            id: "inv_1".into(),
            number: "A-1".into(),
            status: "overdue".into(),
            status_label: "Overdue".into(),
            total: "1,160.00 MXN".into(),
            balance: "1,160.00 MXN".into(),
            overdue: true,
            payable: true,
            lines: vec![LineView { description: "Service".into(), taxes: "IVA 16%".into(), ..Default::default() }],
            installments: vec![InstallmentView { id: "ins_1".into(), seq: 1, payable: true, ..Default::default() }],
            ..Default::default()
        }
    }

    fn sample_payment(status: &str) -> PaymentView {
        PaymentView {
            id: "pay_1".into(),
            status: status.into(),
            status_label: "x".into(),
            amount: "10.00 MXN".into(),
            invoice_ids: vec!["inv_1".into()],
            failure_message: "the card was declined".into(),
            next_action_url: "http://x/sandbox/3ds/r".into(),
            transfer: Some(TransferView { reference: "RF18 5390".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    /// The shared words the layout reads (pages.rs keeps its own list private).
    fn layout_words() -> minijinja::Value {
        context! { skip => "Skip", sections => "Sections", language => "Language", account => "Account",
        nav_dashboard => "Overview", back_home => "Back" }
    }

    #[test]
    fn every_portal_page_renders_in_both_languages() {
        let env = crate::pages::templates();
        let card =
            CardView {
                id: "pm_1".into(), label: "visa ···· 4242".into(), expires: "12/2030".into(), is_default: true
            };
        let entry = EntryView { date: "05/12/2026".into(), kind: "Invoice".into(), ..Default::default() };
        let due = DueView { invoice_id: "inv_1".into(), number: "A-1".into(), overdue: true, ..Default::default() };
        let mut pages: Vec<(&str, minijinja::Value)> = vec![
            (
                "portal_dashboard.html",
                context! { total_due => vec!["1.00 MXN"], overdue => vec!["1.00 MXN"], upcoming => vec![due] },
            ),
            (
                "portal_dashboard.html",
                context! { total_due => Vec::<String>::new(), overdue => Vec::<String>::new(), upcoming => Vec::<DueView>::new() },
            ),
            (
                "portal_invoices.html",
                context! { invoices => vec![sample_invoice()], filter => "open", any_payable => true, pay_key => "k", error => "e" },
            ),
            ("portal_invoice.html", context! { invoice => sample_invoice(), pay_key => "k" }),
            ("portal_payments.html", context! { payments => vec![sample_payment("succeeded")] }),
            (
                "portal_receipt.html",
                context! { payment => sample_payment("succeeded"), numbers => vec!["A-1"], customer => "cus_1" },
            ),
            (
                "portal_statement.html",
                context! { from => "2026-01-01", to => "2026-02-01", error => "", error_field => "", entries => vec![entry], shown => true, opening => "0", closing => "1" },
            ),
            ("portal_cards.html", context! { cards => vec![card.clone()], done => "default", error => "" }),
            (
                "portal_hardship.html",
                context! { invoice => sample_invoice(), form => HardshipForm::default(), error => "x", error_field => "reason" },
            ),
            (
                "portal_dispute.html",
                context! { invoice => sample_invoice(), reason => "", error => "", error_field => "" },
            ),
            ("portal_done.html", context! { kind => "hardship", reference => "hrd_1", invoice_id => "inv_1" }),
            ("portal_done.html", context! { kind => "dispute", reference => "dsp_1", invoice_id => "inv_1" }),
            (
                "portal_preferences.html",
                context! { form => PreferencesForm::default(), saved => true, error => "", error_field => "" },
            ),
            ("portal_help.html", context! {}),
        ];
        for status in ["requires_payment_method", "succeeded", "failed", "processing", "requires_action", "canceled"] {
            pages.push(("portal_payment.html", context! { payment => sample_payment(status),
                choosing => status == "requires_payment_method", cards => vec![card.clone()], transfer => Some(TransferView::default()),
                confirm_key => "k", retry_key => "r", error => "Card number: is not valid", error_field => "pan",
                exp_month => "12", exp_year => "2030", holder_name => "Ana" }));
        }
        let names: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).filter(|n| *n != "portal_nav.html").collect();
        for name in &names {
            assert!(pages.iter().any(|(n, _)| n == name), "{name} has no sample");
        }
        for lang in [Language::Es, Language::En] {
            for (name, extra) in &pages {
                let html = env
                    .get_template(name)
                    .and_then(|t| {
                        t.render(context! { lang => lang.code(), t => layout_words(), csrf => "tok",
                        staff => false, person => "con_1", title => "Cobro", w => words(lang), ..extra.clone() })
                    })
                    .unwrap_or_else(|e| panic!("{name} ({lang:?}): {e:#}"));
                assert!(html.contains("href=\"/portal/invoices\""), "{name}: the portal's sections are shown");
                if html.contains("method=\"post\"") {
                    assert!(html.contains("name=\"csrf_token\" value=\"tok\""), "{name}: a form without its token");
                }
                assert!(!html.contains("style="), "{name}: inline styles do not apply under the CSP");
                assert!(!html.contains("<script"), "{name}: no inline scripts");
            }
        }
    }

    #[test]
    fn forms_keep_repeated_names_and_decode() {
        let f = Fields::parse(b"csrf_token=a%2Bb&invoice_ids=inv_1&invoice_ids=inv_2&reason=no+money%21&x=%zz");
        assert_eq!(f.get("csrf_token"), "a+b");
        assert_eq!(f.all("invoice_ids"), vec!["inv_1", "inv_2"]);
        assert_eq!(f.get("reason"), "no money!");
        assert_eq!(f.get("x"), "%zz");
        assert_eq!(f.get("missing"), "");
        assert!(plain_id("pay_0192abc") && !plain_id("pay/../x") && !plain_id(""));
        assert_eq!(without_field_names("card.pan: pan: is not a valid card number"), "is not a valid card number");
        assert_eq!(without_field_names("Tarjeta: no válida"), "Tarjeta: no válida");
    }

    #[test]
    fn totals_add_up_per_currency_without_floats() {
        let mut t = Totals::default();
        t.add(Some(&Money { currency: "MXN".into(), amount: "1000.10".into() }));
        t.add(Some(&Money { currency: "MXN".into(), amount: "0.20".into() }));
        assert_eq!(t.shown(Language::En), vec!["1,000.30 MXN"]);
    }
}
