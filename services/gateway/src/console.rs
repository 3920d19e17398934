//! The staff console: collection KPIs and charts, customers, invoices, the reminder policy
//! editor, the reconciliation queue, the hardship and dispute inbox, users and API keys.
//!
//! Every page is for staff only: a portal contact gets the same "not found" as for an address
//! that does not exist. The services decide what each person may see and do; the console shows
//! their refusals beside the form that caused them.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Datelike;
use cobro_proto::common::v1::{Money, PageRequest};
use cobro_proto::identity::v1 as idp;
use cobro_proto::invoicing::v1 as inv;
use cobro_proto::notifications::v1 as ntf;
use cobro_proto::payments::v1 as pay;
use cobro_proto::reconciliation::v1 as rec;
use minijinja::{Value, context};
use serde::Deserialize;

use crate::pages::{LangQuery, Pages, Visit, refusal_message};
use crate::web::format::{date, money, number};
use crate::web::i18n::Language;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("console_nav.html", include_str!("../templates/console_nav.html")),
    ("console_dashboard.html", include_str!("../templates/console_dashboard.html")),
    ("console_customers.html", include_str!("../templates/console_customers.html")),
    ("console_customer.html", include_str!("../templates/console_customer.html")),
    ("console_customer_fields.html", include_str!("../templates/console_customer_fields.html")),
    ("console_invoices.html", include_str!("../templates/console_invoices.html")),
    ("console_invoice.html", include_str!("../templates/console_invoice.html")),
    ("console_policies.html", include_str!("../templates/console_policies.html")),
    ("console_reconciliation.html", include_str!("../templates/console_reconciliation.html")),
    ("console_inbox.html", include_str!("../templates/console_inbox.html")),
    ("console_users.html", include_str!("../templates/console_users.html")),
];

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
        .route("/console", get(dashboard))
        .route("/console/customers", get(customers).post(create_customer))
        .route("/console/customers/{id}", get(customer).post(update_customer))
        .route("/console/invoices", get(invoices).post(create_invoice))
        .route("/console/invoices/{id}", get(invoice))
        .route("/console/invoices/{id}/{action}", post(invoice_action))
        .route("/console/policies", get(policies).post(save_policy))
        .route("/console/reconciliation", get(reconciliation))
        .route("/console/reconciliation/accounts", post(create_bank_account))
        .route("/console/reconciliation/import", post(import_statement))
        .route("/console/reconciliation/run", post(run_matching))
        .route("/console/reconciliation/matches/{id}/{decision}", post(decide_match))
        .route("/console/inbox", get(inbox))
        .route("/console/inbox/hardship/{id}", post(resolve_hardship))
        .route("/console/inbox/disputes/{id}", post(resolve_dispute))
        .route("/console/users", get(users).post(create_user))
        .route("/console/users/{id}/{action}", post(user_action))
        .route("/console/keys", post(create_api_key))
        .route("/console/keys/{id}/revoke", post(revoke_api_key))
}

// --- words ---

/// The console's words, per language.
pub fn words(lang: Language) -> Value {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    context! {
        dashboard => pick("Tablero", "Dashboard"),
        customers => pick("Clientes", "Customers"),
        invoices => pick("Facturas", "Invoices"),
        policies => pick("Recordatorios", "Reminders"),
        reconciliation => pick("Conciliación", "Reconciliation"),
        inbox => pick("Solicitudes", "Requests"),
        users => pick("Usuarios y llaves", "Users and keys"),
        currency => pick("Moneda", "Currency"),
        show => pick("Mostrar", "Show"),
        dso => pick("Días de cobro (DSO, últimos 90 días)", "Days sales outstanding (DSO, last 90 days)"),
        days => pick("días", "days"),
        cei => pick("Efectividad de cobranza (90 días)", "Collection effectiveness (90 days)"),
        overdue_amount => pick("Vencido", "Overdue"),
        collected_month => pick(
            "Cobrado este mes (pagos en línea y transferencias conciliadas)",
            "Collected this month (online payments and matched transfers)"
        ),
        reminders_sent => pick("Recordatorios enviados", "Reminders sent"),
        auto_match => pick("Conciliación automática", "Automatic matching"),
        auto_match_detail => pick("de las conciliaciones confirmadas", "of confirmed matches"),
        not_available => pick("No disponible", "Not available"),
        no_reports => pick(
            "Tu rol no incluye los reportes de cobranza. Usa las secciones de arriba.",
            "Your role does not include the collection reports. Use the sections above."
        ),
        aging => pick("Antigüedad de saldos", "Receivables aging"),
        aging_chart => pick("Gráfica de antigüedad de saldos por tramo", "Receivables aging chart by bucket"),
        forecast => pick("Pronóstico de cobro, 12 semanas", "Collections forecast, 12 weeks"),
        forecast_chart => pick("Gráfica del cobro esperado por semana", "Chart of expected collections per week"),
        bucket => pick("Tramo", "Bucket"),
        amount => pick("Importe", "Amount"),
        week => pick("Semana", "Week"),
        expected => pick("Esperado", "Expected"),
        total => pick("Total", "Total"),
        new_customer => pick("Nuevo cliente", "New customer"),
        edit_customer => pick("Editar cliente", "Edit customer"),
        legal_name => pick("Razón social", "Legal name"),
        tax_id => pick("RFC / identificación fiscal", "Tax id"),
        tax_country => pick("País fiscal (ISO, p. ej. MX)", "Tax country (ISO, e.g. MX)"),
        terms => pick("Plazo de pago (días)", "Payment terms (days)"),
        contact_name => pick("Nombre del contacto", "Contact name"),
        contact_email => pick("Correo del contacto", "Contact email"),
        contact_language => pick("Idioma del contacto", "Contact language"),
        save => pick("Guardar", "Save"),
        create => pick("Crear", "Create"),
        open => pick("Abrir", "Open"),
        none => pick("Nada por aquí todavía.", "Nothing here yet."),
        next_page => pick("Siguiente página", "Next page"),
        status => pick("Estado", "Status"),
        all => pick("Todos", "All"),
        filter => pick("Filtrar", "Filter"),
        customer => pick("Cliente", "Customer"),
        number => pick("Número", "Number"),
        issue_date => pick("Emisión", "Issued"),
        due_date => pick("Vencimiento", "Due"),
        balance => pick("Saldo", "Balance"),
        overdue => pick("Vencida", "Overdue"),
        new_invoice => pick("Nueva factura", "New invoice"),
        currency_help => pick("Vacío: la del cliente", "Empty: the customer's"),
        due_help => pick("Vacío: según el plazo del cliente", "Empty: from the customer's terms"),
        memo => pick("Nota", "Memo"),
        line => pick("Concepto", "Line"),
        description => pick("Descripción", "Description"),
        quantity => pick("Cantidad", "Quantity"),
        unit_price => pick("Precio unitario", "Unit price"),
        tax_rate => pick("Impuesto %", "Tax %"),
        subtotal => pick("Subtotal", "Subtotal"),
        tax => pick("Impuestos", "Tax"),
        paid => pick("Pagado", "Paid"),
        credited => pick("Acreditado", "Credited"),
        issue => pick("Emitir", "Issue"),
        void => pick("Cancelar factura", "Void invoice"),
        reason => pick("Motivo", "Reason"),
        credit_note => pick("Nota de crédito", "Credit note"),
        credit_amount_help => pick("Vacío: todo el saldo", "Empty: the whole balance"),
        plan => pick("Plan de parcialidades", "Installment plan"),
        plan_equal => pick("Parcialidades iguales", "Equal installments"),
        plan_count => pick("Número de parcialidades", "Number of installments"),
        first_date => pick("Primera fecha", "First date"),
        plan_explicit => pick("O fechas e importes explícitos", "Or explicit dates and amounts"),
        installment => pick("Parcialidad", "Installment"),
        installments => pick("Parcialidades", "Installments"),
        date_help => pick("AAAA-MM-DD", "YYYY-MM-DD"),
        policy => pick("Política de recordatorios", "Reminder policy"),
        steps => pick("Pasos", "Steps"),
        step => pick("Paso", "Step"),
        offset_days => pick("Días desde el vencimiento (negativo: antes)", "Days from the due date (negative: before)"),
        channel => pick("Canal", "Channel"),
        tone => pick("Tono", "Tone"),
        template => pick("Plantilla", "Template"),
        business_days => pick("Solo días hábiles", "Business days only"),
        send_at => pick("Hora de envío (HH:MM)", "Send at (HH:MM)"),
        preview => pick("Calendario de una factura", "An invoice's schedule"),
        sample_preview => pick("Calendario para una fecha de vencimiento de ejemplo", "Schedule for a sample due date"),
        sample_due => pick("Vencimiento de ejemplo", "Sample due date"),
        offset_short => pick("Días", "Days"),
        sample_help => pick(
            "Al enviar se ajustan a días hábiles, horario sin molestias y la zona horaria del contacto.",
            "When sending, dates move to business days, outside quiet hours and into the contact's timezone."
        ),
        builtin_policy => pick(
            "Tu organización usa la política predeterminada de Cobro. Guarda pasos arriba para tener la tuya.",
            "Your organisation uses Cobro's default policy. Save steps above to have your own."
        ),
        preview_help => pick("Los recordatorios planeados para una factura abierta.", "The reminders planned for an open invoice."),
        invoice => pick("Factura", "Invoice"),
        paused => pick("En pausa", "Paused"),
        recipient => pick("Destinatario", "Recipient"),
        when => pick("Cuándo", "When"),
        bank_accounts => pick("Cuentas bancarias", "Bank accounts"),
        new_account => pick("Nueva cuenta bancaria", "New bank account"),
        account_name => pick("Nombre", "Name"),
        account_number => pick("Número de cuenta o CLABE", "Account or CLABE number"),
        import => pick("Importar estado de cuenta", "Import a statement"),
        statement_file => pick("Archivo (camt.053/054/052, MT940, BAI2 o CSV)", "File (camt.053/054/052, MT940, BAI2 or CSV)"),
        csv_mapping => pick("Mapeo CSV (solo para CSV)", "CSV mapping (CSV only)"),
        upload => pick("Subir", "Upload"),
        imported => pick("Estado de cuenta importado", "Statement imported"),
        format => pick("Formato", "Format"),
        lines_read => pick("Movimientos leídos", "Lines read"),
        lines_new => pick("Movimientos nuevos", "New lines"),
        run_matching => pick("Conciliar ahora", "Run matching"),
        matching_done => pick("Conciliación terminada", "Matching finished"),
        confirmed => pick("Confirmadas", "Confirmed"),
        suggested => pick("Sugeridas", "Suggested"),
        suggestions => pick("Sugerencias por revisar", "Suggestions to review"),
        rule => pick("Regla", "Rule"),
        confidence => pick("Confianza", "Confidence"),
        confirm => pick("Confirmar", "Confirm"),
        reject => pick("Rechazar", "Reject"),
        discrepancies => pick("Diferencias", "Discrepancies"),
        kind => pick("Tipo", "Kind"),
        detail => pick("Detalle", "Detail"),
        bank_lines => pick("Movimientos bancarios", "Bank lines"),
        counterparty => pick("Contraparte", "Counterparty"),
        reference => pick("Referencia", "Reference"),
        open_requests => pick("Abiertas", "Open"),
        resolved_requests => pick("Resueltas", "Resolved"),
        hardship => pick("No puedo pagar", "Hardship"),
        dispute => pick("Disputa", "Dispute"),
        proposal => pick("Propuesta", "Proposal"),
        proposal_text => pick("parcialidades desde", "installments from"),
        note => pick("Nota", "Note"),
        accept => pick("Aceptar el plan", "Accept the plan"),
        resolve => pick("Resolver", "Resolve"),
        dispute_credit_help => pick("Importe a acreditar; vacío para rechazar", "Amount to credit; empty to reject"),
        requested => pick("Solicitada", "Requested"),
        resolution => pick("Resolución", "Resolution"),
        new_user => pick("Nuevo usuario", "New user"),
        display_name => pick("Nombre", "Name"),
        email => pick("Correo electrónico", "Email"),
        role => pick("Rol", "Role"),
        initial_password => pick("Contraseña inicial", "Initial password"),
        mfa => pick("Verificación en dos pasos", "Two-step verification"),
        enrolled => pick("Activa", "On"),
        not_enrolled => pick("Sin activar", "Off"),
        disabled => pick("Desactivado", "Disabled"),
        active => pick("Activo", "Active"),
        disable => pick("Desactivar", "Disable"),
        unlock => pick("Desbloquear", "Unlock"),
        reset_mfa => pick("Reiniciar verificación", "Reset two-step"),
        api_keys => pick("Llaves de API", "API keys"),
        new_key => pick("Nueva llave de API", "New API key"),
        key_name => pick("Nombre de la llave", "Key name"),
        scopes => pick("Permisos", "Scopes"),
        expires => pick("Vence (opcional, AAAA-MM-DD)", "Expires (optional, YYYY-MM-DD)"),
        secret_once => pick(
            "Copia la llave ahora: no se volverá a mostrar.",
            "Copy the key now: it will not be shown again."
        ),
        prefix => pick("Prefijo", "Prefix"),
        revoke => pick("Revocar", "Revoke"),
        revoked => pick("Revocada", "Revoked"),
        created => pick("Creada", "Created"),
        last_used => pick("Último uso", "Last used"),
        saved => pick("Guardado.", "Saved."),
        actions => pick("Acciones", "Actions"),
    }
}

/// One of the console's words, for a page title.
fn word(lang: Language, key: &str) -> String {
    words(lang).get_attr(key).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn bucket_labels(lang: Language) -> [&'static str; 5] {
    match lang {
        Language::Es => ["Al corriente", "1–30 días", "31–60 días", "61–90 días", "Más de 90 días"],
        Language::En => ["Current", "1–30 days", "31–60 days", "61–90 days", "Over 90 days"],
    }
}

// --- forms ---

/// A submitted form, in order (repeated names kept, for checkboxes); the first value wins.
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn trimmed(&self, name: &str) -> String {
        self.get(name).trim().to_owned()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// What the person typed, to fill the form again (never a password).
    fn value(&self) -> Value {
        let map: std::collections::BTreeMap<&str, &str> = self
            .0
            .iter()
            .rev()
            .filter(|(k, _)| k != "password" && k != "csrf_token")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Value::from_serialize(&map)
    }
}

fn page_of(size: u32, token: &str) -> Option<PageRequest> {
    Some(PageRequest { page_size: size, page_token: token.to_owned() })
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    page: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    invoice_id: String,
    #[serde(default)]
    sample_due: String,
    #[serde(default)]
    state: String,
}

impl ListQuery {
    fn lang(&self) -> LangQuery {
        LangQuery { lang: self.lang.clone() }
    }
}

// --- access ---

/// The signed-in staff member behind a request; a portal contact gets "not found".
async fn staff(p: &Pages, headers: &HeaderMap, q: &LangQuery) -> Result<Visit, Response> {
    let visit = p.visit(headers, q).await?;
    if visit.is_staff() { Ok(visit) } else { Err(hidden(p, visit).await) }
}

/// `staff` for a form post: 403 without the session's CSRF token.
async fn staff_form(p: &Pages, headers: &HeaderMap, form: &Fields) -> Result<Visit, Response> {
    let visit = p.visit_form(headers, form.get("csrf_token")).await?;
    if visit.is_staff() { Ok(visit) } else { Err(hidden(p, visit).await) }
}

async fn hidden(p: &Pages, visit: Visit) -> Response {
    let page = p.failure(&visit, &tonic::Status::not_found("no such page"));
    p.finish(visit, page).await
}

async fn fail(p: &Pages, visit: Visit, status: &tonic::Status) -> Response {
    let page = p.failure(&visit, status);
    p.finish(visit, page).await
}

async fn show(p: &Pages, visit: Visit, code: StatusCode, name: &str, title: &str, extra: Value) -> Response {
    let lang = visit.lang();
    let page = p.page(&visit, name, context! { title => word(lang, title), w => words(lang), ..extra });
    p.finish(visit, (code, page).into_response()).await
}

async fn redirect(p: &Pages, visit: Visit, to: &str) -> Response {
    p.finish(visit, Redirect::to(to).into_response()).await
}

/// A form's refusal: the form again with the service's message (422), or the failure page
/// when the refusal is not about the input.
fn refusal(status: &tonic::Status) -> Option<String> {
    let message = refusal_message(status);
    if message.is_empty() { None } else { Some(message) }
}

// --- numbers ---

/// Ten-thousandths: every amount the services send fits (unit prices carry up to 4 decimals).
const SCALE: i128 = 10_000;

/// A plain decimal string in ten-thousandths; `None` for anything else.
pub fn units(amount: &str) -> Option<i128> {
    let amount = amount.trim();
    let (negative, digits) = amount.strip_prefix('-').map_or((false, amount), |rest| (true, rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || fraction.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let mut part: i128 = 0;
    let mut weight: i128 = 1_000;
    for b in fraction.bytes() {
        part += i128::from(b - b'0') * weight;
        weight /= 10;
    }
    let value = whole.checked_mul(SCALE)?.checked_add(part)?;
    Some(if negative { -value } else { value })
}

fn amount_units(m: Option<&Money>) -> i128 {
    m.and_then(|m| units(&m.amount)).unwrap_or(0)
}

/// Ten-thousandths back to a decimal string with `places` decimals (0..=4), truncated.
pub fn decimal(value: i128, places: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let value = value.abs();
    let whole = value / SCALE;
    if places == 0 {
        return format!("{sign}{whole}");
    }
    let places = places.min(4);
    let fraction = (value % SCALE) / 10_i128.pow(4 - places);
    format!("{sign}{whole}.{fraction:0width$}", width = places as usize)
}

fn places_of(m: Option<&Money>) -> u32 {
    m.and_then(|m| m.amount.split_once('.')).map_or(0, |(_, f)| u32::try_from(f.len()).unwrap_or(2))
}

/// "12.3%": `part` of `whole` in percent with one decimal; empty when `whole` is zero.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    let tenths = u128::from(part) * 1000 / u128::from(whole);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn day(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|d| d.date_naive().to_string())
        .unwrap_or_default()
}

// --- charts ---

/// One bar of a chart: its label under the bar, its value (ten-thousandths) and the text of
/// its tooltip and table row.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: i128,
    pub text: String,
}

/// The plotting area's height, in SVG units; the tallest bar fills it.
pub const CHART_HEIGHT: i128 = 160;
const CHART_TOP: i128 = 10;
const SLOT: i128 = 64;
const BAR_WIDTH: i128 = 44;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A bar chart as inline SVG: one `<rect>` per bar with a `<title>`, its label under it; the
/// heights are proportional to the values (integer arithmetic; negative values draw as zero).
pub fn bar_chart(aria_label: &str, bars: &[Bar]) -> String {
    let count = i128::try_from(bars.len()).unwrap_or(0);
    let width = SLOT * count.max(1) + 16;
    let height = CHART_TOP + CHART_HEIGHT + 40;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(0);
    let base = CHART_TOP + CHART_HEIGHT;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(aria_label)
    );
    svg.push_str(&format!("<line class=\"axis\" x1=\"8\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>", width - 8));
    for (i, bar) in bars.iter().enumerate() {
        let i = i128::try_from(i).unwrap_or(0);
        let h = if max > 0 { bar.value.max(0) * CHART_HEIGHT / max } else { 0 };
        let x = 8 + i * SLOT + (SLOT - BAR_WIDTH) / 2;
        let y = base - h;
        let center = 8 + i * SLOT + SLOT / 2;
        svg.push_str(&format!(
            "<g><title>{label}: {text}</title><rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{BAR_WIDTH}\" height=\"{h}\"/>\
             <text class=\"label\" x=\"{center}\" y=\"{}\" text-anchor=\"middle\">{label}</text></g>",
            base + 16,
            label = escape(&bar.label),
            text = escape(&bar.text),
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn aging_bars(buckets: &inv::AgingBuckets, lang: Language) -> Vec<Bar> {
    let labels = bucket_labels(lang);
    let amounts = [&buckets.current, &buckets.days_1_30, &buckets.days_31_60, &buckets.days_61_90, &buckets.over_90];
    labels
        .iter()
        .zip(amounts)
        .map(|(label, m)| Bar {
            label: (*label).to_owned(),
            value: amount_units(m.as_ref()),
            text: money(m.as_ref(), lang),
        })
        .collect()
}

fn forecast_bars(forecast: &inv::CollectionForecast, lang: Language) -> Vec<Bar> {
    forecast
        .weeks
        .iter()
        .map(|w| {
            let label =
                chrono::NaiveDate::parse_from_str(&w.week_start, "%Y-%m-%d")
                    .map(|d| {
                        if lang == Language::Es { d.format("%d/%m").to_string() } else { d.format("%m/%d").to_string() }
                    })
                    .unwrap_or_else(|_| w.week_start.clone());
            Bar { label, value: amount_units(w.expected.as_ref()), text: money(w.expected.as_ref(), lang) }
        })
        .collect()
}

fn bars_value(bars: &[Bar]) -> Value {
    Value::from(bars.iter().map(|b| context! { label => b.label.clone(), text => b.text.clone() }).collect::<Vec<_>>())
}

// --- dashboard ---

/// DSO and collection effectiveness are measured over the last this many days.
const DSO_DAYS: i64 = 90;

async fn dashboard(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let lang = visit.lang();
    let currency = if q.currency.trim().is_empty() { "MXN".to_owned() } else { q.currency.trim().to_uppercase() };
    let mut invoicing = p.services.invoicing.clone();
    let aging = match invoicing
        .get_aging_report(visit.call(inv::GetAgingReportRequest { as_of: String::new(), currency: currency.clone() }))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => {
            // A bad currency is the form's error; a role without reports still gets the page.
            let (code, error) = match refusal(&status) {
                Some(error) => (StatusCode::UNPROCESSABLE_ENTITY, error),
                None if status.code() == tonic::Code::PermissionDenied => (StatusCode::OK, word(lang, "no_reports")),
                None => return fail(&p, visit, &status).await,
            };
            return show(
                &p,
                visit,
                code,
                "console_dashboard.html",
                "dashboard",
                context! {
                    currency => currency, error => error, kpis => Value::UNDEFINED,
                },
            )
            .await;
        }
    };
    let buckets = aging.tenant.unwrap_or_default();
    let aging_bars = aging_bars(&buckets, lang);
    let places = places_of(buckets.total.as_ref());
    let overdue = amount_units(buckets.days_1_30.as_ref())
        + amount_units(buckets.days_31_60.as_ref())
        + amount_units(buckets.days_61_90.as_ref())
        + amount_units(buckets.over_90.as_ref());
    let overdue = Money { currency: currency.clone(), amount: decimal(overdue, places) };

    // The other figures come from four services' calls at once, not one after another.
    let today = chrono::Utc::now().date_naive();
    let forecast_request = visit.call(inv::GetCollectionForecastRequest { currency: currency.clone(), weeks: 12 });
    let dso_request = visit.call(inv::GetDsoRequest {
        currency: currency.clone(),
        from: (today - chrono::Duration::days(DSO_DAYS - 1)).to_string(),
        to: today.to_string(),
    });
    let (mut forecast_client, mut dso_client) = (invoicing.clone(), invoicing);
    let (forecast, dso, matches, reminders) = tokio::join!(
        async move { forecast_client.get_collection_forecast(forecast_request).await.map(|r| r.into_inner()) },
        async move { dso_client.get_dso(dso_request).await.map(|r| r.into_inner()).ok() },
        confirmed_matches(&p, &visit),
        reminders_sent(&p, &visit),
    );
    let forecast = forecast.unwrap_or_default();
    let forecast_bars = forecast_bars(&forecast, lang);
    let collected = collected_this_month(&p, &visit, &currency, matches.as_deref()).await;
    let auto_rate = matches.as_deref().map(|m| auto_match_rate(m, lang));

    let extra = context! {
        currency => currency.clone(),
        error => "",
        kpis => context! {
            dso => dso.as_ref().map(|d| number(&d.dso, lang)).unwrap_or_default(),
            cei => dso.as_ref().filter(|d| !d.collection_effectiveness_index.is_empty())
                .map(|d| format!("{}%", number(&d.collection_effectiveness_index, lang))).unwrap_or_default(),
            overdue => money(Some(&overdue), lang),
            collected => collected.map(|m| money(Some(&m), lang)).unwrap_or_default(),
            reminders => reminders.unwrap_or_default(),
            auto_rate => auto_rate.unwrap_or_default(),
        },
        aging_svg => bar_chart(&word(lang, "aging_chart"), &aging_bars),
        aging_rows => bars_value(&aging_bars),
        aging_total => money(buckets.total.as_ref(), lang),
        forecast_svg => bar_chart(&word(lang, "forecast_chart"), &forecast_bars),
        forecast_rows => bars_value(&forecast_bars),
    };
    show(&p, visit, StatusCode::OK, "console_dashboard.html", "dashboard", extra).await
}

/// What came in since the first of this month (UTC), in `currency`: online payments that
/// succeeded and bank transfers matched to invoices.
async fn collected_this_month(
    p: &Pages,
    visit: &Visit,
    currency: &str,
    matches: Option<&[rec::Match]>,
) -> Option<Money> {
    let today = chrono::Utc::now().date_naive();
    let first = today.with_day0(0).unwrap_or(today);
    let since = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0);
    let mut total: i128 = matches.map_or(0, |m| transfers_since(m, since, currency));
    let mut places = 2;
    let mut token = String::new();
    for _ in 0..20 {
        let request = pay::ListPaymentIntentsRequest {
            customer_id: String::new(),
            status: "succeeded".into(),
            page: page_of(200, &token),
        };
        let answer = p.services.payments.clone().list_payment_intents(visit.call(request)).await.ok()?.into_inner();
        for payment in &answer.payments {
            let recent = payment.created_at.as_ref().is_some_and(|t| t.seconds >= since);
            let received = payment.amount_received.as_ref();
            if recent && received.is_some_and(|m| m.currency == currency) {
                total += amount_units(received);
                places = places_of(received);
            }
        }
        token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Some(Money { currency: currency.to_owned(), amount: decimal(total, places) })
}

/// How many reminders went out (counted up to a limit, shown as "N+" beyond it).
async fn reminders_sent(p: &Pages, visit: &Visit) -> Option<String> {
    let mut count: u64 = 0;
    let mut token = String::new();
    for _ in 0..10 {
        let request =
            ntf::ListMessagesRequest { status: "sent".into(), page: page_of(200, &token), ..Default::default() };
        let answer = p.services.notifications.clone().list_messages(visit.call(request)).await.ok()?.into_inner();
        count += u64::try_from(answer.messages.len()).unwrap_or(0);
        token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return Some(count.to_string());
        }
    }
    Some(format!("{count}+"))
}

/// Of the confirmed matches, the share confirmed by the rules rather than a person.
async fn confirmed_matches(p: &Pages, visit: &Visit) -> Option<Vec<rec::Match>> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let request = rec::ListMatchesRequest {
            status: "confirmed".into(),
            page: page_of(200, &token),
            bank_line_id: String::new(),
        };
        let answer = p.services.reconciliation.clone().list_matches(visit.call(request)).await.ok()?.into_inner();
        all.extend(answer.matches);
        token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Some(all)
}

/// Of the confirmed matches, the share confirmed by the rules rather than a person.
fn auto_match_rate(matches: &[rec::Match], lang: Language) -> String {
    let all = u64::try_from(matches.len()).unwrap_or(u64::MAX);
    let auto = u64::try_from(matches.iter().filter(|m| m.decided_by == "auto").count()).unwrap_or(0);
    let rate = percent(auto, all);
    let of = if lang == Language::Es { "de" } else { "of" };
    if rate.is_empty() { String::new() } else { format!("{rate} ({auto} {of} {all})") }
}

/// What bank transfers paid on invoices in `currency`, by matches confirmed since `since`
/// (a payout's items were card payments, counted as such).
fn transfers_since(matches: &[rec::Match], since: i64, currency: &str) -> i128 {
    matches
        .iter()
        .filter(|m| m.decided_at.as_ref().is_some_and(|t| t.seconds >= since))
        .flat_map(|m| &m.items)
        .filter(|i| i.payout_id.is_empty() && i.amount.as_ref().is_some_and(|a| a.currency == currency))
        .map(|i| amount_units(i.amount.as_ref()))
        .sum()
}

// --- customers ---

fn customer_row(c: &inv::Customer, lang: Language) -> Value {
    let contact = c.contacts.first().cloned().unwrap_or_default();
    context! {
        id => c.id.clone(), legal_name => c.legal_name.clone(), tax_id => c.tax_id.clone(),
        tax_country => c.tax_country.clone(), currency => c.currency.clone(),
        terms => c.payment_terms_days, credit => money(c.credit_balance.as_ref(), lang),
        contact_name => contact.name, contact_email => contact.email, contact_language => contact.language,
    }
}

async fn customers(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    customers_page(&p, visit, StatusCode::OK, "", Value::from(()), &q.page).await
}

async fn customers_page(p: &Pages, visit: Visit, code: StatusCode, error: &str, form: Value, token: &str) -> Response {
    let lang = visit.lang();
    let request = inv::ListCustomersRequest { page: page_of(50, token) };
    match p.services.invoicing.clone().list_customers(visit.call(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            let rows: Vec<Value> = answer.customers.iter().map(|c| customer_row(c, lang)).collect();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            show(
                p,
                visit,
                code,
                "console_customers.html",
                "customers",
                context! {
                    customers => rows, next => next, error => error, form => form,
                },
            )
            .await
        }
        Err(status) => fail(p, visit, &status).await,
    }
}

/// The customer a form describes, on top of `base` (what is stored, when editing).
fn customer_from(form: &Fields, base: inv::Customer) -> inv::Customer {
    let mut c = base;
    c.legal_name = form.trimmed("legal_name");
    c.tax_id = form.trimmed("tax_id");
    c.tax_country = form.trimmed("tax_country").to_uppercase();
    c.currency = form.trimmed("currency").to_uppercase();
    c.payment_terms_days = form.trimmed("payment_terms_days").parse().unwrap_or(0);
    let email = form.trimmed("contact_email");
    if !email.is_empty() {
        let mut contact = c.contacts.first().cloned().unwrap_or_default();
        contact.email = email;
        contact.name = form.trimmed("contact_name");
        contact.language = form.trimmed("contact_language");
        if c.contacts.is_empty() {
            c.contacts.push(contact);
        } else {
            c.contacts[0] = contact;
        }
    }
    c
}

/// Payment terms are whole days (empty: due on receipt).
fn terms_error(form: &Fields) -> Option<&'static str> {
    let terms = form.trimmed("payment_terms_days");
    if terms.is_empty() || terms.parse::<u32>().is_ok() {
        None
    } else {
        Some("payment_terms_days: must be a whole number of days")
    }
}

async fn create_customer(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(error) = terms_error(&form) {
        return customers_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, error, form.value(), "").await;
    }
    let request =
        inv::UpsertCustomerRequest { id: String::new(), customer: Some(customer_from(&form, Default::default())) };
    match p.services.invoicing.clone().upsert_customer(visit.call(request)).await {
        Ok(c) => {
            let to = format!("/console/customers/{}", c.into_inner().id);
            redirect(&p, visit, &to).await
        }
        Err(status) => match refusal(&status) {
            Some(error) => customers_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, &error, form.value(), "").await,
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn customer(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    customer_page(&p, visit, &id, StatusCode::OK, "", None).await
}

async fn customer_page(
    p: &Pages,
    visit: Visit,
    id: &str,
    code: StatusCode,
    error: &str,
    form: Option<Value>,
) -> Response {
    let lang = visit.lang();
    let mut invoicing = p.services.invoicing.clone();
    let found = match invoicing.get_customer(visit.call(inv::GetCustomerRequest { id: id.to_owned() })).await {
        Ok(c) => c.into_inner(),
        Err(status) => return fail(p, visit, &status).await,
    };
    let request =
        inv::ListInvoicesRequest { customer_id: found.id.clone(), status: String::new(), page: page_of(100, "") };
    let invoices = match invoicing.list_invoices(visit.call(request)).await {
        Ok(r) => r.into_inner().invoices,
        Err(status) => return fail(p, visit, &status).await,
    };
    let row = customer_row(&found, lang);
    let form = form.unwrap_or_else(|| {
        context! {
            legal_name => found.legal_name.clone(), tax_id => found.tax_id.clone(), tax_country => found.tax_country.clone(),
            currency => found.currency.clone(), payment_terms_days => found.payment_terms_days.to_string(),
            contact_name => found.contacts.first().map(|c| c.name.clone()).unwrap_or_default(),
            contact_email => found.contacts.first().map(|c| c.email.clone()).unwrap_or_default(),
            contact_language => found.contacts.first().map(|c| c.language.clone()).unwrap_or_default(),
        }
    });
    show(
        p,
        visit,
        code,
        "console_customer.html",
        "customers",
        context! {
            customer => row,
            invoices => invoices.iter().map(|i| invoice_row(i, lang)).collect::<Vec<_>>(),
            form => form, error => error,
        },
    )
    .await
}

async fn update_customer(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(error) = terms_error(&form) {
        return customer_page(&p, visit, &id, StatusCode::UNPROCESSABLE_ENTITY, error, Some(form.value())).await;
    }
    let mut invoicing = p.services.invoicing.clone();
    let stored = match invoicing.get_customer(visit.call(inv::GetCustomerRequest { id: id.clone() })).await {
        Ok(c) => c.into_inner(),
        Err(status) => return fail(&p, visit, &status).await,
    };
    let request = inv::UpsertCustomerRequest { id: id.clone(), customer: Some(customer_from(&form, stored)) };
    match invoicing.upsert_customer(visit.call(request)).await {
        Ok(_) => redirect(&p, visit, &format!("/console/customers/{id}")).await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                customer_page(&p, visit, &id, StatusCode::UNPROCESSABLE_ENTITY, &error, Some(form.value())).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

// --- invoices ---

fn invoice_row(i: &inv::Invoice, lang: Language) -> Value {
    context! {
        id => i.id.clone(), number => i.number.clone(), status => i.status.clone(), customer_id => i.customer_id.clone(),
        issue_date => date(&i.issue_date, lang), due_date => date(&i.due_date, lang),
        total => money(i.total.as_ref(), lang), balance => money(i.balance.as_ref(), lang), overdue => i.overdue,
    }
}

const INVOICE_STATUSES: [&str; 6] = ["draft", "open", "partially_paid", "paid", "void", "uncollectible"];

/// Line rows in the new-invoice form.
const LINE_ROWS: usize = 4;

async fn invoices(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    invoices_page(&p, visit, &q, StatusCode::OK, "", Value::from(())).await
}

async fn invoices_page(p: &Pages, visit: Visit, q: &ListQuery, code: StatusCode, error: &str, form: Value) -> Response {
    let lang = visit.lang();
    let mut invoicing = p.services.invoicing.clone();
    let request = inv::ListInvoicesRequest {
        customer_id: q.customer_id.clone(),
        status: q.status.clone(),
        page: page_of(50, &q.page),
    };
    let (rows, next) = match invoicing.list_invoices(visit.call(request)).await {
        Ok(r) => {
            let r = r.into_inner();
            (r.invoices, r.page.map(|p| p.next_page_token).unwrap_or_default())
        }
        Err(status) => {
            match refusal(&status) {
                // A filter the service refused: say so above an empty list.
                Some(message) => {
                    return show(p, visit, StatusCode::UNPROCESSABLE_ENTITY, "console_invoices.html", "invoices", context! {
                    invoices => Vec::<Value>::new(), next => "", error => message, form => form,
                    statuses => INVOICE_STATUSES, status => q.status.clone(), customer_id => q.customer_id.clone(),
                    customers => Vec::<Value>::new(), lines => (0..LINE_ROWS).collect::<Vec<_>>(),
                })
                .await;
                }
                None => return fail(p, visit, &status).await,
            }
        }
    };
    let customers =
        match invoicing.list_customers(visit.call(inv::ListCustomersRequest { page: page_of(200, "") })).await {
            Ok(r) => r.into_inner().customers,
            Err(status) => return fail(p, visit, &status).await,
        };
    let names: std::collections::HashMap<&str, &str> =
        customers.iter().map(|c| (c.id.as_str(), c.legal_name.as_str())).collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|i| {
            let name = names.get(i.customer_id.as_str()).copied().unwrap_or(i.customer_id.as_str());
            context! { customer => name, ..invoice_row(i, lang) }
        })
        .collect();
    show(p, visit, code, "console_invoices.html", "invoices", context! {
        invoices => rows, next => next, error => error, form => form,
        statuses => INVOICE_STATUSES, status => q.status.clone(), customer_id => q.customer_id.clone(),
        customers => customers.iter().map(|c| context! { id => c.id.clone(), legal_name => c.legal_name.clone() }).collect::<Vec<_>>(),
        lines => (0..LINE_ROWS).collect::<Vec<_>>(),
    })
    .await
}

fn invoice_from(form: &Fields) -> inv::CreateInvoiceRequest {
    let mut lines = Vec::new();
    for i in 0..LINE_ROWS {
        let field = |name: &str| form.trimmed(&format!("{name}_{i}"));
        let (description, quantity, unit_price, tax) =
            (field("description"), field("quantity"), field("unit_price"), field("tax_rate"));
        if description.is_empty() && quantity.is_empty() && unit_price.is_empty() && tax.is_empty() {
            continue;
        }
        let taxes = if tax.is_empty() {
            Vec::new()
        } else {
            vec![inv::TaxRate { name: "IVA".into(), rate_percent: tax, inclusive: false }]
        };
        lines.push(inv::LineInput { description, quantity, unit_price, discount: None, taxes });
    }
    inv::CreateInvoiceRequest {
        customer_id: form.trimmed("customer_id"),
        currency: form.trimmed("currency").to_uppercase(),
        lines,
        memo: form.trimmed("memo"),
        due_date: form.trimmed("due_date"),
        ..Default::default()
    }
}

async fn create_invoice(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = invoice_from(&form);
    match p.services.invoicing.clone().create_invoice(visit.call(request)).await {
        Ok(i) => {
            let to = format!("/console/invoices/{}", i.into_inner().id);
            redirect(&p, visit, &to).await
        }
        Err(status) => match refusal(&status) {
            Some(error) => {
                let q = ListQuery::default();
                invoices_page(&p, visit, &q, StatusCode::UNPROCESSABLE_ENTITY, &error, form.value()).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn invoice(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    invoice_page(&p, visit, &id, StatusCode::OK, "", "", Value::from(())).await
}

async fn invoice_page(
    p: &Pages,
    visit: Visit,
    id: &str,
    code: StatusCode,
    failed: &str,
    error: &str,
    form: Value,
) -> Response {
    let lang = visit.lang();
    let mut invoicing = p.services.invoicing.clone();
    let found = match invoicing.get_invoice(visit.call(inv::GetInvoiceRequest { id: id.to_owned() })).await {
        Ok(i) => i.into_inner(),
        Err(status) => return fail(p, visit, &status).await,
    };
    let customer = invoicing
        .get_customer(visit.call(inv::GetCustomerRequest { id: found.customer_id.clone() }))
        .await
        .map(|c| c.into_inner().legal_name)
        .unwrap_or_else(|_| found.customer_id.clone());
    let lines: Vec<Value> = found
        .lines
        .iter()
        .map(|l| {
            let input = l.input.clone().unwrap_or_default();
            let taxes: Vec<String> =
                input.taxes.iter().map(|t| format!("{} {}%", t.name, number(&t.rate_percent, lang))).collect();
            context! {
                description => input.description, quantity => number(&input.quantity, lang),
                unit_price => number(&input.unit_price, lang), taxes => taxes.join(", "),
                total => money(l.total.as_ref(), lang),
            }
        })
        .collect();
    let installments: Vec<Value> = found
        .installments
        .iter()
        .map(|s| {
            context! {
                seq => s.seq, due_date => date(&s.due_date, lang), amount => money(s.amount.as_ref(), lang),
                balance => money(s.balance.as_ref(), lang), overdue => s.overdue,
            }
        })
        .collect();
    let open = matches!(found.status.as_str(), "open" | "partially_paid");
    let nothing_paid = amount_units(found.paid.as_ref()) == 0;
    show(
        p,
        visit,
        code,
        "console_invoice.html",
        "invoices",
        context! {
            invoice => context! {
                customer => customer,
                subtotal => money(found.subtotal.as_ref(), lang), tax_total => money(found.tax_total.as_ref(), lang),
                paid => money(found.paid.as_ref(), lang), credited => money(found.credited.as_ref(), lang),
                memo => found.memo.clone(), currency => found.currency.clone(),
                ..invoice_row(&found, lang)
            },
            lines => lines, installments => installments,
            can_issue => found.status == "draft",
            can_void => found.status == "open" && nothing_paid,
            can_credit => open,
            can_plan => open,
            plan_rows => (0..3).collect::<Vec<_>>(),
            failed => failed, error => error, form => form,
        },
    )
    .await
}

async fn invoice_action(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut invoicing = p.services.invoicing.clone();
    let done = match action.as_str() {
        "issue" => invoicing.issue_invoice(visit.call(inv::IssueInvoiceRequest { id: id.clone() })).await.map(|_| ()),
        "void" => invoicing
            .void_invoice(visit.call(inv::VoidInvoiceRequest { id: id.clone(), reason: form.trimmed("reason") }))
            .await
            .map(|_| ()),
        "credit" => invoicing
            .issue_credit_note(visit.call(inv::IssueCreditNoteRequest {
                invoice_id: id.clone(),
                amount: form.trimmed("amount"),
                reason: form.trimmed("reason"),
            }))
            .await
            .map(|_| ()),
        "plan" => {
            let explicit: Vec<inv::InstallmentInput> = (0..3)
                .map(|i| inv::InstallmentInput {
                    due_date: form.trimmed(&format!("due_date_{i}")),
                    amount: form.trimmed(&format!("amount_{i}")),
                })
                .filter(|s| !s.due_date.is_empty() || !s.amount.is_empty())
                .collect();
            let plan = if explicit.is_empty() {
                let count = form.trimmed("count");
                let Ok(count) = count.parse::<u32>() else {
                    let error = "count: must be a whole number of installments";
                    return invoice_page(&p, visit, &id, StatusCode::UNPROCESSABLE_ENTITY, "plan", error, form.value())
                        .await;
                };
                inv::set_installment_plan_request::Plan::Equal(inv::EqualPlan {
                    count,
                    first_due_date: form.trimmed("first_due_date"),
                    every_months: 1,
                })
            } else {
                inv::set_installment_plan_request::Plan::Explicit(inv::ExplicitPlan { installments: explicit })
            };
            invoicing
                .set_installment_plan(
                    visit.call(inv::SetInstallmentPlanRequest { invoice_id: id.clone(), plan: Some(plan) }),
                )
                .await
                .map(|_| ())
        }
        _ => return hidden(&p, visit).await,
    };
    match done {
        Ok(()) => redirect(&p, visit, &format!("/console/invoices/{id}")).await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                invoice_page(&p, visit, &id, StatusCode::UNPROCESSABLE_ENTITY, &action, &error, form.value()).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

// --- reminder policy ---

const CHANNELS: [&str; 4] = ["email", "sms", "whatsapp", "webhook"];
const TONES: [&str; 4] = ["friendly", "firm", "final_notice", "collections"];
const STEP_ROWS: usize = 6;

async fn policies(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    policies_page(&p, visit, &q, StatusCode::OK, "", None).await
}

/// The tenant's default policy (the one without a customer), or an empty one.
async fn default_policy(p: &Pages, visit: &Visit) -> Result<ntf::Policy, tonic::Status> {
    let answer = p.services.notifications.clone().list_policies(visit.call(ntf::ListPoliciesRequest {})).await?;
    Ok(answer.into_inner().policies.into_iter().find(|p| p.customer_id.is_empty()).unwrap_or_default())
}

async fn policies_page(
    p: &Pages,
    visit: Visit,
    q: &ListQuery,
    code: StatusCode,
    error: &str,
    form: Option<Value>,
) -> Response {
    let lang = visit.lang();
    let invoice_id = q.invoice_id.as_str();
    let policy = match default_policy(p, &visit).await {
        Ok(policy) => policy,
        Err(status) => return fail(p, visit, &status).await,
    };
    let (sample, sample_error) = sample_schedule(&policy, q.sample_due.trim(), lang);
    let form = form.unwrap_or_else(|| {
        let mut map = std::collections::BTreeMap::new();
        for (i, step) in policy.steps.iter().enumerate() {
            map.insert(format!("offset_days_{i}"), step.offset_days.to_string());
            map.insert(format!("channel_{i}"), step.channels.first().cloned().unwrap_or_default());
            map.insert(format!("tone_{i}"), step.tone.clone());
            map.insert(format!("template_{i}"), step.template.clone());
        }
        map.insert("send_at".into(), policy.send_at.clone());
        map.insert("business_days".into(), if policy.business_days { "on".into() } else { String::new() });
        Value::from_serialize(&map)
    });
    let open = p
        .services
        .invoicing
        .clone()
        .list_invoices(visit.call(inv::ListInvoicesRequest {
            status: "open".into(),
            page: page_of(100, ""),
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().invoices)
        .unwrap_or_default();
    let preview = if invoice_id.is_empty() {
        Value::from(())
    } else {
        let request = ntf::PreviewScheduleRequest { invoice_id: invoice_id.to_owned() };
        match p.services.notifications.clone().preview_schedule(visit.call(request)).await {
            Ok(r) => {
                let r = r.into_inner();
                context! {
                    invoice_id => r.invoice_id, status => r.status, paused => r.paused,
                    messages => r.messages.iter().map(|m| context! {
                        step => m.step, channel => m.channel.clone(), tone => m.tone.clone(),
                        send_at => date(&day(m.send_at.as_ref()), lang), status => m.status.clone(),
                        recipient => m.recipient.clone(),
                    }).collect::<Vec<_>>(),
                }
            }
            Err(status) if status.code() == tonic::Code::NotFound => context! { missing => true },
            Err(status) => return fail(p, visit, &status).await,
        }
    };
    show(
        p,
        visit,
        code,
        "console_policies.html",
        "policies",
        context! {
            form => form, error => error, rows => (0..STEP_ROWS).collect::<Vec<_>>(),
            channels => CHANNELS, tones => TONES, preview => preview, invoice_id => invoice_id,
        sample_due => q.sample_due.trim(), sample => sample, sample_error => sample_error,
        custom => !policy.steps.is_empty(),
            open_invoices => open.iter().map(|i| context! { id => i.id.clone(), number => i.number.clone(),
                due_date => date(&i.due_date, lang) }).collect::<Vec<_>>(),
        },
    )
    .await
}

/// The tenant policy's steps laid on a sample due date: each step's day, before the service's
/// own adjustments (business days, quiet hours, the contact's timezone) that the preview of a
/// real invoice shows.
fn sample_schedule(policy: &ntf::Policy, due: &str, lang: Language) -> (Vec<Value>, String) {
    if due.is_empty() {
        return (Vec::new(), String::new());
    }
    let Ok(due) = chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d") else {
        return (Vec::new(), "sample_due: must be a date like 2026-12-31".to_owned());
    };
    let rows = policy
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let day = due + chrono::Duration::days(i64::from(step.offset_days));
            context! {
                step => i + 1, offset_days => step.offset_days, date => date(&day.to_string(), lang),
                channels => step.channels.join(", "), tone => step.tone.clone(), template => step.template.clone(),
            }
        })
        .collect();
    (rows, String::new())
}

async fn save_policy(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut policy = match default_policy(&p, &visit).await {
        Ok(policy) => policy,
        Err(status) => return fail(&p, visit, &status).await,
    };
    let mut steps = Vec::new();
    for i in 0..STEP_ROWS {
        let field = |name: &str| form.trimmed(&format!("{name}_{i}"));
        let (offset, template) = (field("offset_days"), field("template"));
        if offset.is_empty() && template.is_empty() {
            continue;
        }
        let Ok(offset_days) = offset.parse::<i32>() else {
            let error = format!("steps[{i}].offset_days: must be a whole number of days");
            return policies_page(
                &p,
                visit,
                &ListQuery::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
                &error,
                Some(form.value()),
            )
            .await;
        };
        // Steps keep their own wording when only the schedule changed.
        let templates = policy
            .steps
            .iter()
            .find(|s| s.template == template && !template.is_empty())
            .map(|s| s.templates.clone())
            .unwrap_or_default();
        steps.push(ntf::Step {
            offset_days,
            channels: vec![field("channel")],
            tone: field("tone"),
            template,
            templates,
        });
    }
    policy.customer_id = String::new();
    policy.steps = steps;
    policy.send_at = form.trimmed("send_at");
    policy.business_days = !form.get("business_days").is_empty();
    match p
        .services
        .notifications
        .clone()
        .upsert_policy(visit.call(ntf::UpsertPolicyRequest { policy: Some(policy) }))
        .await
    {
        Ok(_) => redirect(&p, visit, "/console/policies").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                policies_page(
                    &p,
                    visit,
                    &ListQuery::default(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &error,
                    Some(form.value()),
                )
                .await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

// --- reconciliation ---

async fn reconciliation(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    reconciliation_page(&p, visit, StatusCode::OK, Outcome::default()).await
}

/// What the last action on the reconciliation page did, to show above it.
#[derive(Default)]
struct Outcome {
    failed: &'static str,
    error: String,
    form: Option<Value>,
    imported: Option<Value>,
    matched: Option<Value>,
}

async fn reconciliation_page(p: &Pages, visit: Visit, code: StatusCode, outcome: Outcome) -> Response {
    let lang = visit.lang();
    let mut client = p.services.reconciliation.clone();
    let accounts =
        match client.list_bank_accounts(visit.call(rec::ListBankAccountsRequest { page: page_of(100, "") })).await {
            Ok(r) => r.into_inner().accounts,
            Err(status) => return fail(p, visit, &status).await,
        };
    let suggestions = match client
        .list_matches(visit.call(rec::ListMatchesRequest {
            status: "suggested".into(),
            page: page_of(100, ""),
            ..Default::default()
        }))
        .await
    {
        Ok(r) => r.into_inner().matches,
        Err(status) => return fail(p, visit, &status).await,
    };
    let discrepancies = client
        .list_discrepancies(visit.call(rec::ListDiscrepanciesRequest {
            status: "open".into(),
            page: page_of(100, ""),
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().discrepancies)
        .unwrap_or_default();
    let lines = client
        .list_bank_lines(visit.call(rec::ListBankLinesRequest { page: page_of(100, ""), ..Default::default() }))
        .await
        .map(|r| r.into_inner().lines)
        .unwrap_or_default();
    let names: std::collections::HashMap<String, String> =
        accounts.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
    show(
        p,
        visit,
        code,
        "console_reconciliation.html",
        "reconciliation",
        context! {
            accounts => accounts.iter().map(|a| context! { id => a.id.clone(), name => a.name.clone(),
                number => a.number.clone(), currency => a.currency.clone() }).collect::<Vec<_>>(),
            suggestions => suggestions.iter().map(|m| context! {
                id => m.id.clone(), rule => m.rule.clone(), confidence => number(&m.confidence, lang),
                customer_id => m.customer_id.clone(), bank_line_id => m.bank_line_id.clone(),
                items => m.items.iter().map(|i| format!("{} {}",
                    if i.invoice_number.is_empty() { i.invoice_id.clone() } else { i.invoice_number.clone() },
                    money(i.amount.as_ref(), lang))).collect::<Vec<_>>().join(", "),
            }).collect::<Vec<_>>(),
            discrepancies => discrepancies.iter().map(|d| context! {
                id => d.id.clone(), kind => d.kind.clone(), amount => money(d.amount.as_ref(), lang),
                expected => money(d.expected.as_ref(), lang), detail => d.detail.clone(), status => d.status.clone(),
            }).collect::<Vec<_>>(),
            lines => lines.iter().map(|l| context! {
                id => l.id.clone(), account => names.get(&l.bank_account_id).cloned().unwrap_or_default(),
                booking_date => date(&l.booking_date, lang), amount => money(l.amount.as_ref(), lang),
                direction => l.direction.clone(), counterparty => l.counterparty_name.clone(),
                reference => if l.reference.is_empty() { l.remittance.clone() } else { l.reference.clone() },
                status => l.status.clone(),
            }).collect::<Vec<_>>(),
            failed => outcome.failed, error => outcome.error, form => outcome.form.unwrap_or_else(|| Value::from(())),
            imported => outcome.imported.unwrap_or_else(|| Value::from(())),
            matched => outcome.matched.unwrap_or_else(|| Value::from(())),
        },
    )
    .await
}

async fn create_bank_account(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = rec::CreateBankAccountRequest {
        name: form.trimmed("name"),
        number: form.trimmed("number"),
        currency: form.trimmed("currency").to_uppercase(),
    };
    match p.services.reconciliation.clone().create_bank_account(visit.call(request)).await {
        Ok(_) => redirect(&p, visit, "/console/reconciliation").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = Outcome { failed: "account", error, form: Some(form.value()), ..Default::default() };
                reconciliation_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

fn matching_value(m: &rec::RunMatchingResponse) -> Value {
    context! { considered => m.lines_considered, confirmed => m.confirmed, suggested => m.suggested,
    discrepancies => m.discrepancies }
}

/// Pieces of an uploaded statement sent to reconciliation, one message each.
const CHUNK: usize = 64 * 1024;

/// A statement uploaded as a multipart form (`csrf_token` and `bank_account_id` fields, then
/// the `file`), streamed to reconciliation in chunks.
async fn import_statement(State(p): State<Arc<Pages>>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    let mut fields = Vec::new();
    let mut file: Vec<u8> = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                if name == "file" {
                    match field.bytes().await {
                        Ok(bytes) => file = bytes.to_vec(),
                        Err(e) => return (e.status(), e.body_text()).into_response(),
                    }
                } else {
                    match field.text().await {
                        Ok(text) => fields.push((name, text)),
                        Err(e) => return (e.status(), e.body_text()).into_response(),
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return (e.status(), e.body_text()).into_response(),
        }
    }
    let form = Fields(fields);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if file.is_empty() {
        let outcome = Outcome {
            failed: "import",
            error: "file: choose a statement file to upload".into(),
            form: Some(form.value()),
            ..Default::default()
        };
        return reconciliation_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await;
    }
    let mut chunks: Vec<rec::ImportStatementChunk> =
        file.chunks(CHUNK).map(|c| rec::ImportStatementChunk { data: c.to_vec(), ..Default::default() }).collect();
    if let Some(first) = chunks.first_mut() {
        first.bank_account_id = form.trimmed("bank_account_id");
        first.csv_mapping = form.trimmed("csv_mapping");
    }
    let stream = tonic::codegen::tokio_stream::iter(chunks);
    match p.services.reconciliation.clone().import_statement(visit.call(stream)).await {
        Ok(r) => {
            let r = r.into_inner();
            let outcome = Outcome {
                imported: Some(context! { format => r.format.clone(), statements => r.statements,
                lines_read => r.lines_read, lines_new => r.lines_new }),
                matched: r.matching.as_ref().map(matching_value),
                ..Default::default()
            };
            reconciliation_page(&p, visit, StatusCode::OK, outcome).await
        }
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = Outcome { failed: "import", error, form: Some(form.value()), ..Default::default() };
                reconciliation_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn run_matching(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match p.services.reconciliation.clone().run_matching(visit.call(rec::RunMatchingRequest {})).await {
        Ok(r) => {
            let outcome = Outcome { matched: Some(matching_value(&r.into_inner())), ..Default::default() };
            reconciliation_page(&p, visit, StatusCode::OK, outcome).await
        }
        Err(status) => fail(&p, visit, &status).await,
    }
}

async fn decide_match(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = rec::DecideMatchRequest { match_id: id, reason: form.trimmed("reason") };
    let mut client = p.services.reconciliation.clone();
    let done = match decision.as_str() {
        "confirm" => client.confirm_match(visit.call(request)).await,
        "reject" => client.reject_match(visit.call(request)).await,
        _ => return hidden(&p, visit).await,
    };
    match done {
        Ok(_) => redirect(&p, visit, "/console/reconciliation").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = Outcome { failed: "match", error, ..Default::default() };
                reconciliation_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

// --- hardship and dispute inbox ---

async fn inbox(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    inbox_page(&p, visit, &q.state, &q.page, StatusCode::OK, "", "").await
}

async fn inbox_page(
    p: &Pages,
    visit: Visit,
    state: &str,
    token: &str,
    code: StatusCode,
    failed: &str,
    error: &str,
) -> Response {
    let lang = visit.lang();
    let state = if state == "resolved" { "resolved" } else { "open" };
    let request = inv::ListRequestsRequest { kind: String::new(), state: state.to_owned(), page: page_of(50, token) };
    let answer = match p.services.invoicing.clone().list_requests(visit.call(request)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return fail(p, visit, &status).await,
    };
    let listed = answer.requests.iter().any(|r| r.id == failed);
    let customers = p
        .services
        .invoicing
        .clone()
        .list_customers(visit.call(inv::ListCustomersRequest { page: page_of(200, "") }))
        .await
        .map(|r| r.into_inner().customers)
        .unwrap_or_default();
    let name = |id: &str| customers.iter().find(|c| c.id == id).map_or_else(|| id.to_owned(), |c| c.legal_name.clone());
    let rows: Vec<Value> = answer
        .requests
        .iter()
        .map(|r| context! {
            id => r.id.clone(), kind => r.kind.clone(), invoice_id => r.invoice_id.clone(),
            invoice_number => r.invoice_number.clone(), customer_id => r.customer_id.clone(), customer => name(&r.customer_id), state => r.state.clone(),
            reason => r.reason.clone(), installments => r.installments, first_date => date(&r.first_date, lang),
            note => r.note.clone(), resolution_note => r.resolution_note.clone(),
            balance => money(r.balance.as_ref(), lang), created => date(&day(r.created_at.as_ref()), lang),
            resolved => date(&day(r.resolved_at.as_ref()), lang),
        })
        .collect();
    show(
        p,
        visit,
        code,
        "console_inbox.html",
        "inbox",
        context! {
            requests => rows, state => state,
            next => answer.page.map(|p| p.next_page_token).unwrap_or_default(),
            failed => failed, error => error,
        // A request decided meanwhile is no longer listed: its error goes above the list.
        top_error => if listed { "" } else { error },
        },
    )
    .await
}

async fn resolve_hardship(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = inv::ResolveHardshipRequest {
        request_id: id.clone(),
        accept: form.get("decision") == "accept",
        note: form.trimmed("note"),
    };
    match p.services.invoicing.clone().resolve_hardship(visit.call(request)).await {
        Ok(_) => redirect(&p, visit, "/console/inbox").await,
        Err(status) => match refusal(&status) {
            Some(error) => inbox_page(&p, visit, "open", "", StatusCode::UNPROCESSABLE_ENTITY, &id, &error).await,
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn resolve_dispute(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = inv::ResolveDisputeRequest {
        dispute_id: id.clone(),
        credit_amount: form.trimmed("credit_amount"),
        note: form.trimmed("note"),
    };
    match p.services.invoicing.clone().resolve_dispute(visit.call(request)).await {
        Ok(_) => redirect(&p, visit, "/console/inbox").await,
        Err(status) => match refusal(&status) {
            Some(error) => inbox_page(&p, visit, "open", "", StatusCode::UNPROCESSABLE_ENTITY, &id, &error).await,
            None => fail(&p, visit, &status).await,
        },
    }
}

// --- users, roles, two-step verification and API keys ---

async fn users(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let visit = match staff(&p, &headers, &q.lang()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    users_page(&p, visit, StatusCode::OK, UsersOutcome::default()).await
}

#[derive(Default)]
struct UsersOutcome {
    failed: &'static str,
    error: String,
    form: Option<Value>,
    secret: String,
}

async fn users_page(p: &Pages, visit: Visit, code: StatusCode, outcome: UsersOutcome) -> Response {
    let lang = visit.lang();
    let mut identity = p.identity.clone();
    let users = match identity.list_users(visit.call(idp::ListUsersRequest { page: page_of(200, "") })).await {
        Ok(r) => r.into_inner().users,
        Err(status) => return fail(p, visit, &status).await,
    };
    let roles = match identity.list_roles(visit.call(idp::ListRolesRequest {})).await {
        Ok(r) => r.into_inner(),
        Err(status) => return fail(p, visit, &status).await,
    };
    let keys = identity
        .list_api_keys(visit.call(idp::ListApiKeysRequest { page: page_of(200, "") }))
        .await
        .map(|r| r.into_inner().api_keys)
        .unwrap_or_default();
    show(p, visit, code, "console_users.html", "users", context! {
        users => users.iter().filter(|u| u.kind == "user").map(|u| context! {
            id => u.id.clone(), email => u.email.clone(), display_name => u.display_name.clone(), role => u.role.clone(),
            mfa => u.mfa_enrolled, disabled => u.disabled, last_login => date(&day(u.last_login_at.as_ref()), lang),
        }).collect::<Vec<_>>(),
        roles => roles.roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        permissions => roles.permissions,
        keys => keys.iter().map(|k| context! {
            id => k.id.clone(), name => k.name.clone(), prefix => k.display_prefix.clone(), scopes => k.scopes.join(", "),
            created => date(&day(k.created_at.as_ref()), lang), expires => date(&day(k.expires_at.as_ref()), lang),
            last_used => date(&day(k.last_used_at.as_ref()), lang), revoked => k.revoked_at.is_some(),
        }).collect::<Vec<_>>(),
        failed => outcome.failed, error => outcome.error, form => outcome.form.unwrap_or_else(|| Value::from(())),
        secret => outcome.secret,
    })
    .await
}

async fn create_user(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let request = idp::CreateUserRequest {
        email: form.trimmed("email"),
        display_name: form.trimmed("display_name"),
        role: form.trimmed("role"),
        password: form.get("password").to_owned(),
    };
    match p.identity.clone().create_user(visit.call(request)).await {
        Ok(_) => redirect(&p, visit, "/console/users").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = UsersOutcome { failed: "user", error, form: Some(form.value()), ..Default::default() };
                users_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn user_action(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut identity = p.identity.clone();
    let done = match action.as_str() {
        "disable" => identity.disable_user(visit.call(idp::DisableUserRequest { id })).await.map(|_| ()),
        "unlock" => identity.unlock_user(visit.call(idp::UnlockUserRequest { id })).await.map(|_| ()),
        "reset-mfa" => identity.reset_user_mfa(visit.call(idp::ResetUserMfaRequest { id })).await.map(|_| ()),
        _ => return hidden(&p, visit).await,
    };
    match done {
        Ok(()) => redirect(&p, visit, "/console/users").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = UsersOutcome { failed: "action", error, ..Default::default() };
                users_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn create_api_key(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let expires = form.trimmed("expires");
    let expires_at = if expires.is_empty() {
        None
    } else {
        match chrono::NaiveDate::parse_from_str(&expires, "%Y-%m-%d") {
            Ok(d) => {
                d.and_hms_opt(0, 0, 0).map(|t| prost_types::Timestamp { seconds: t.and_utc().timestamp(), nanos: 0 })
            }
            Err(_) => {
                let outcome = UsersOutcome {
                    failed: "key",
                    error: "expires_at: must be a date like 2027-01-31".into(),
                    form: Some(form.value()),
                    ..Default::default()
                };
                return users_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await;
            }
        }
    };
    let request = idp::CreateApiKeyRequest { name: form.trimmed("key_name"), scopes: form.all("scopes"), expires_at };
    match p.identity.clone().create_api_key(visit.call(request)).await {
        // The secret is shown on this one answer and never again.
        Ok(r) => {
            let outcome = UsersOutcome { secret: r.into_inner().secret, ..Default::default() };
            users_page(&p, visit, StatusCode::OK, outcome).await
        }
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = UsersOutcome { failed: "key", error, form: Some(form.value()), ..Default::default() };
                users_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

async fn revoke_api_key(
    State(p): State<Arc<Pages>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let visit = match staff_form(&p, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match p.identity.clone().revoke_api_key(visit.call(idp::RevokeApiKeyRequest { id })).await {
        Ok(_) => redirect(&p, visit, "/console/users").await,
        Err(status) => match refusal(&status) {
            Some(error) => {
                let outcome = UsersOutcome { failed: "action", error, ..Default::default() };
                users_page(&p, visit, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
            }
            None => fail(&p, visit, &status).await,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn heights(svg: &str) -> Vec<i128> {
        svg.split("<rect class=\"bar\"")
            .skip(1)
            .map(|rect| {
                let h = rect.split("height=\"").nth(1).unwrap().split('"').next().unwrap();
                h.parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn the_aging_chart_draws_each_bucket_in_proportion() {
        let m = |a: &str| Some(Money { currency: "MXN".into(), amount: a.into() });
        let buckets = inv::AgingBuckets {
            current: m("1000.00"),
            days_1_30: m("500.00"),
            days_31_60: m("250.50"),
            days_61_90: m("0.00"),
            over_90: m("2000.00"),
            total: m("3750.50"),
        };
        let bars = aging_bars(&buckets, Language::En);
        let svg = bar_chart("Receivables aging", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\"") && svg.contains("aria-label=\"Receivables aging\""));
        // The largest bucket fills the plot; the others in proportion, rounded down.
        assert_eq!(heights(&svg), vec![80, 40, 20, 0, CHART_HEIGHT]);
        assert!(svg.contains("<title>Current: 1,000.00 MXN</title>"), "{svg}");
        assert!(svg.contains(">Over 90 days</text>"));
        // Bars stand on the axis: y + height is the same for all.
        let bottoms: Vec<i128> = svg
            .split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| {
                let attr = |name: &str| -> i128 {
                    r.split(&format!(" {name}=\"")).nth(1).unwrap().split('"').next().unwrap().parse().unwrap()
                };
                attr("y") + attr("height")
            })
            .collect();
        assert!(bottoms.windows(2).all(|w| w[0] == w[1]), "{bottoms:?}");
        let es = bar_chart("Antigüedad", &aging_bars(&buckets, Language::Es));
        assert!(es.contains("<title>Al corriente: 1.000,00 MXN</title>"));
    }

    #[test]
    fn an_empty_chart_has_no_height_and_labels_are_escaped() {
        let bars = vec![Bar { label: "<a&b>".into(), value: 0, text: "0".into() }];
        let svg = bar_chart("x\"y", &bars);
        assert_eq!(heights(&svg), vec![0]);
        assert!(svg.contains("&lt;a&amp;b&gt;") && svg.contains("aria-label=\"x&quot;y\""));
        assert_eq!(heights(&bar_chart("none", &[])), Vec::<i128>::new());
    }

    #[test]
    fn matches_give_the_automatic_share_and_the_transfers_collected() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let item = |amount: &str, currency: &str, payout: &str| rec::MatchedItem {
            amount: Some(Money { currency: currency.into(), amount: amount.into() }),
            payout_id: payout.into(),
            ..Default::default()
        };
        let matches = vec![
            rec::Match {
                decided_by: "auto".into(),
                decided_at: at(100),
                items: vec![item("10.50", "MXN", ""), item("5", "MXN", "")],
                ..Default::default()
            },
            rec::Match {
                decided_by: "usr_1".into(),
                decided_at: at(200),
                items: vec![item("1.25", "MXN", "")],
                ..Default::default()
            },
            rec::Match {
                decided_by: "auto".into(),
                decided_at: at(300),
                items: vec![item("99", "MXN", "po_1"), item("7", "USD", "")],
                ..Default::default()
            },
            rec::Match {
                decided_by: "usr_1".into(),
                decided_at: at(10),
                items: vec![item("1000", "MXN", "")],
                ..Default::default()
            },
        ];
        assert_eq!(auto_match_rate(&matches, Language::En), "50.0% (2 of 4)");
        assert_eq!(auto_match_rate(&matches[..1], Language::Es), "100.0% (1 de 1)");
        assert_eq!(auto_match_rate(&[], Language::En), "");
        // Before `since`, payouts and other currencies do not count.
        assert_eq!(decimal(transfers_since(&matches, 100, "MXN"), 2), "16.75");
    }

    #[test]
    fn decimals_add_up_exactly() {
        assert_eq!(units("1234.5"), Some(12_345_000));
        assert_eq!(units("-0.0001"), Some(-1));
        assert_eq!(units("1e5"), None);
        assert_eq!(units("1.23456"), None);
        let sum = units("0.10").unwrap() + units("0.20").unwrap();
        assert_eq!(decimal(sum, 2), "0.30");
        assert_eq!(decimal(-12_345_000, 2), "-1234.50");
        assert_eq!(decimal(12_345_000, 0), "1234");
        assert_eq!(percent(2, 3), "66.6%");
        assert_eq!(percent(0, 0), "");
    }

    #[test]
    fn every_console_page_renders_in_both_languages() {
        let env = crate::pages::templates();
        for &(name, source) in TEMPLATES {
            let mut check = minijinja::Environment::new();
            check.add_template(name, source).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        let m = Some(Money { currency: "MXN".into(), amount: "100.00".into() });
        let buckets = inv::AgingBuckets { current: m.clone(), total: m, ..Default::default() };
        let row = |extra: Value| context! { id => "x_1", ..extra };
        for lang in [Language::Es, Language::En] {
            let bars = aging_bars(&buckets, lang);
            let form = context! { legal_name => "ACME <b>", description_0 => "Renta" };
            let ctx = context! {
                lang => lang.code(), t => Value::from(()), w => words(lang), csrf => "tok", title => "Cobro",
                staff => true, person => "usr_1", error => "a field: is wrong", failed => "x_1", form => form,
                currency => "MXN",
                kpis => context! { dso => "12.5", cei => "", overdue => "1 MXN", collected => "", reminders => "3", auto_rate => "" },
                aging_svg => bar_chart("aging", &bars), aging_rows => bars_value(&bars), aging_total => "100",
                forecast_svg => bar_chart("forecast", &[]), forecast_rows => Vec::<Value>::new(),
                customers => vec![row(context! { legal_name => "ACME", terms => 30 })],
                customer => row(context! { legal_name => "ACME" }), next => "tok2",
                invoices => vec![row(context! { number => "A-1", status => "open", overdue => true })],
                invoice => row(context! { number => "A-1", status => "open", customer => "ACME", customer_id => "cus_1" }),
                statuses => INVOICE_STATUSES, status => "open", customer_id => "", lines => (0..LINE_ROWS).collect::<Vec<_>>(),
                installments => vec![context! { seq => 1, due_date => "2026-12-01", amount => "1", balance => "1" }],
                can_issue => true, can_void => true, can_credit => true, can_plan => true, plan_rows => vec![0, 1, 2],
                rows => (0..STEP_ROWS).collect::<Vec<_>>(), channels => CHANNELS, tones => TONES, invoice_id => "inv_1",
                preview => context! { status => "open", paused => false, messages => vec![context! { step => 1 }] },
                sample => vec![context! { step => 1, date => "2026-12-31" }], custom => true,
                sample_due => "2026-12-31", sample_error => "sample_due: wrong",
                open_invoices => vec![row(context! { number => "A-1" })],
                accounts => vec![row(context! { name => "BBVA" })], suggestions => vec![row(context! { rule => "reference" })],
                discrepancies => vec![row(context! { kind => "short" })], imported => context! { lines_read => 2 },
                matched => context! { confirmed => 1 },
                requests => vec![row(context! { kind => "hardship", state => "open" }), row(context! { kind => "dispute", state => "open" })],
                state => "open", top_error => "x",
                users => vec![row(context! { email => "a@b.c", mfa => true, disabled => false })], roles => vec!["owner"],
                permissions => vec!["invoices:read"], keys => vec![row(context! { name => "erp", revoked => false })],
                secret => "ck_live_secret",
            };
            for &(name, _) in TEMPLATES {
                if name == "console_nav.html" || name == "console_customer_fields.html" {
                    continue;
                }
                let html = env
                    .get_template(name)
                    .and_then(|t| t.render(ctx.clone()))
                    .unwrap_or_else(|e| panic!("{name} ({lang:?}): {e:#}"));
                assert!(html.contains(&format!("<html lang=\"{}\">", lang.code())), "{name}");
                assert!(html.contains("href=\"/console/customers\""), "{name}: the console's sections");
                if html.contains("method=\"post\"") {
                    assert_eq!(
                        html.matches("method=\"post\"").count(),
                        html.matches("name=\"csrf_token\" value=\"tok\"").count(),
                        "{name}: every form carries the CSRF token"
                    );
                }
                assert!(!html.contains("ACME <b>"), "{name}: typed values are escaped");
                assert!(!html.contains("style="), "{name}: no inline styles");
            }
        }
    }
}
