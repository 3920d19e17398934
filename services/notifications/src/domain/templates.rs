//! What messages say: the text of payment reminders and transactional messages.
//!
//! A template is four small Jinja sources (subject, text, HTML and SMS/WhatsApp body) rendered with
//! minijinja. Tenants may override any template key per language, so a template is untrusted input:
//! [`validate`] refuses anything that does not parse, is too long, or uses variables outside
//! [`VARIABLES`], and rendering runs in a deliberately small environment (no loops, no assignments,
//! no repetition operator, a handful of harmless filters) so that one tenant's template cannot stall
//! or exhaust the service that sends everyone's messages.

use std::collections::BTreeSet;
use std::fmt;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// Every variable a template may use. Anything else is refused at save time, so a typo such as
/// `amount_dew` is caught when a tenant edits a policy rather than when a reminder goes out.
pub const VARIABLES: &[&str] = &[
    "customer_name",
    "contact_name",
    "invoice_number",
    "amount_due",
    "currency",
    "due_date",
    "days_overdue",
    "installment_number",
    "pay_link",
    "bank_reference",
    "tenant_name",
    "tenant_email",
    "tenant_phone",
    "amount_paid",
    "payment_date",
    "failure_reason",
];

/// Longest accepted subject, text or HTML part, in characters.
pub const MAX_PART_CHARS: usize = 20_000;

/// Longest accepted SMS/WhatsApp part, in characters.
pub const MAX_SMS_CHARS: usize = 1_000;

/// The only block statements templates may use. Loops, `set` and `with` would let a template of a
/// few kilobytes produce gigabytes (nested loops, doubling assignments); `autoescape` would let an
/// HTML body print customer-supplied values unescaped; macros and includes have no use here.
const ALLOWED_STATEMENTS: &[&str] = &["if", "elif", "else", "endif", "raw", "endraw"];

/// The language a message is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Es,
    #[default]
    En,
    Pt,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Es, Language::En, Language::Pt];

    /// Parses a language code or a BCP 47 tag by its primary subtag: `es`, `es-MX`, `pt_BR`, `EN-us`.
    pub fn parse(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("es") {
            Some(Language::Es)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Language::En)
        } else if primary.eq_ignore_ascii_case("pt") {
            Some(Language::Pt)
        } else {
            None
        }
    }

    /// Like [`Language::parse`], but falls back to English for anything unknown, because a message
    /// in the wrong language is better than no message.
    pub fn or_default(tag: &str) -> Language {
        Language::parse(tag).unwrap_or_default()
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
            Language::Pt => "pt",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The built-in template keys. Tenants address templates by key string, so [`MessageKind::key`] is
/// the stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    ReminderFriendly,
    ReminderFirm,
    ReminderFinalNotice,
    ReminderCollections,
    InvoiceIssued,
    PaymentReceipt,
    PaymentFailed,
    AutopayUpcoming,
    PaymentActionRequired,
    /// Sent to the tenant's own staff, not to the customer.
    HardshipReceived,
    DisputeOpened,
    /// Sent to the tenant's own staff: a message to a customer could not be delivered.
    DeliveryFailed,
}

impl MessageKind {
    pub const ALL: [MessageKind; 12] = [
        MessageKind::ReminderFriendly,
        MessageKind::ReminderFirm,
        MessageKind::ReminderFinalNotice,
        MessageKind::ReminderCollections,
        MessageKind::InvoiceIssued,
        MessageKind::PaymentReceipt,
        MessageKind::PaymentFailed,
        MessageKind::AutopayUpcoming,
        MessageKind::PaymentActionRequired,
        MessageKind::HardshipReceived,
        MessageKind::DisputeOpened,
        MessageKind::DeliveryFailed,
    ];

    pub fn key(self) -> &'static str {
        match self {
            MessageKind::ReminderFriendly => "reminder_friendly",
            MessageKind::ReminderFirm => "reminder_firm",
            MessageKind::ReminderFinalNotice => "reminder_final_notice",
            MessageKind::ReminderCollections => "reminder_collections",
            MessageKind::InvoiceIssued => "invoice_issued",
            MessageKind::PaymentReceipt => "payment_receipt",
            MessageKind::PaymentFailed => "payment_failed",
            MessageKind::AutopayUpcoming => "autopay_upcoming",
            MessageKind::PaymentActionRequired => "payment_action_required",
            MessageKind::HardshipReceived => "hardship_received",
            MessageKind::DisputeOpened => "dispute_opened",
            MessageKind::DeliveryFailed => "delivery_failed",
        }
    }

    pub fn from_key(key: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|kind| kind.key() == key)
    }

    /// Whether this is a step of a reminder policy (as opposed to a transactional message).
    pub fn is_reminder(self) -> bool {
        matches!(
            self,
            MessageKind::ReminderFriendly
                | MessageKind::ReminderFirm
                | MessageKind::ReminderFinalNotice
                | MessageKind::ReminderCollections
        )
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The sources of one message, as stored for a tenant override or taken from the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The short body used for SMS and WhatsApp.
    pub sms: String,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// Always a single line: control characters and runs of whitespace become one space, because
    /// the subject ends up in an email header.
    pub subject: String,
    pub text: String,
    pub html: String,
    pub sms: String,
}

/// The values a template can print. Money and dates arrive already formatted for the message's
/// language (the caller owns locale formatting); `None` values are falsy in `{% if %}` and refuse to
/// print, so a template that prints an absent value fails instead of sending a blank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Vars {
    pub customer_name: String,
    pub contact_name: Option<String>,
    pub invoice_number: String,
    /// The number only, e.g. `1,234.50`; templates print `{{ amount_due }} {{ currency }}`.
    pub amount_due: String,
    /// ISO 4217 code, e.g. `MXN`.
    pub currency: String,
    pub due_date: String,
    /// Days past the due date; zero or negative before it.
    pub days_overdue: i64,
    pub installment_number: Option<u32>,
    pub pay_link: Option<String>,
    pub bank_reference: Option<String>,
    pub tenant_name: String,
    pub tenant_email: Option<String>,
    pub tenant_phone: Option<String>,
    pub amount_paid: Option<String>,
    pub payment_date: Option<String>,
    pub failure_reason: Option<String>,
}

impl Vars {
    /// A complete set of plausible values, for previews and for test-rendering templates at save
    /// time.
    pub fn example() -> Vars {
        Vars {
            customer_name: "Acme Distribuciones".to_owned(),
            contact_name: Some("Ana López".to_owned()),
            invoice_number: "F-1001".to_owned(),
            amount_due: "1,234.50".to_owned(),
            currency: "MXN".to_owned(),
            due_date: "2025-03-31".to_owned(),
            days_overdue: 7,
            installment_number: Some(2),
            pay_link: Some("https://pay.example.com/i/F-1001".to_owned()),
            bank_reference: Some("REF-0042".to_owned()),
            tenant_name: "Proveedora Norte".to_owned(),
            tenant_email: Some("cobranza@example.com".to_owned()),
            tenant_phone: Some("+52 55 1234 5678".to_owned()),
            amount_paid: Some("500.00".to_owned()),
            payment_date: Some("2025-04-02".to_owned()),
            failure_reason: Some("card declined".to_owned()),
        }
    }
}

/// Why a template was refused or could not be rendered, naming the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct TemplateError {
    field: &'static str,
    reason: String,
}

impl TemplateError {
    fn new(part: Part, reason: impl Into<String>) -> TemplateError {
        TemplateError { field: part.name(), reason: reason.into() }
    }

    /// A failure not attributable to one part.
    fn internal(reason: impl Into<String>) -> TemplateError {
        TemplateError { field: "template", reason: reason.into() }
    }

    /// The part at fault: `subject`, `text`, `html` or `sms` (`template` when no single part is).
    pub fn field(&self) -> &str {
        self.field
    }

    /// What is wrong, phrased to follow the part name, e.g. "uses unknown variable `amount_dew`".
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Checks a template before it is saved: every part must parse, fit its length limit, stay within
/// the supported syntax, use only [`VARIABLES`], and render with a complete set of example values.
pub fn validate(template: &Template) -> Result<(), TemplateError> {
    on_large_stack(|| {
        let env = environment();
        let example = Value::from_serialize(Vars::example());
        for part in Part::ALL {
            let compiled = compile(&env, part, part.source(template))?;
            // Catches what parsing cannot, such as an unknown filter, before any customer is affected.
            compiled.render(&example).map_err(|err| TemplateError::new(part, render_reason(&err)))?;
        }
        Ok(())
    })
}

/// The built-in template for a key in a language, or `None` for an unknown key.
pub fn default_template(kind: &str, lang: Language) -> Option<Template> {
    let builtin = builtin(MessageKind::from_key(kind)?, lang);
    Some(Template {
        subject: builtin.subject.to_owned(),
        text: builtin.text.to_owned(),
        html: builtin.html.to_owned(),
        sms: builtin.sms.to_owned(),
    })
}

/// Renders every part. The HTML part escapes printed values; the others print them as they are.
pub fn render(template: &Template, vars: &Vars) -> Result<Rendered, TemplateError> {
    on_large_stack(|| {
        let env = environment();
        let ctx = Value::from_serialize(vars);
        let part = |part: Part| -> Result<String, TemplateError> {
            // Checked again here, not only at save time, so templates stored before a rule existed
            // cannot bypass it.
            let compiled = compile(&env, part, part.source(template))?;
            compiled.render(&ctx).map_err(|err| TemplateError::new(part, render_reason(&err)))
        };
        Ok(Rendered {
            subject: single_line(&part(Part::Subject)?),
            text: part(Part::Text)?,
            html: part(Part::Html)?,
            sms: part(Part::Sms)?,
        })
    })
}

/// Stack for parsing and rendering. minijinja walks expressions recursively, and a template within
/// the length limits can nest about as deep as it is long (`{{ ------1 }}`, a long `~` or `|`
/// chain): measured at up to 32 MiB in debug builds and 8 MiB in release, against the 2 MiB of an
/// ordinary thread. Overflowing aborts the whole process, taking every tenant's messages with it.
/// Only the pages actually touched are committed.
const TEMPLATE_STACK_BYTES: usize = 64 << 20;

/// Runs template work on a scoped thread with [`TEMPLATE_STACK_BYTES`] of stack. A panic inside
/// minijinja also ends up here as an error instead of unwinding into the caller.
fn on_large_stack<T: Send>(work: impl FnOnce() -> Result<T, TemplateError> + Send) -> Result<T, TemplateError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("template".to_owned())
            .stack_size(TEMPLATE_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|err| TemplateError::internal(format!("could not be processed: {err}")))?;
        handle.join().unwrap_or_else(|_| Err(TemplateError::internal("could not be processed: the engine failed")))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
    Sms,
}

impl Part {
    const ALL: [Part; 4] = [Part::Subject, Part::Text, Part::Html, Part::Sms];

    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
            Part::Sms => "sms",
        }
    }

    fn max_chars(self) -> usize {
        match self {
            Part::Sms => MAX_SMS_CHARS,
            Part::Subject | Part::Text | Part::Html => MAX_PART_CHARS,
        }
    }

    fn source(self, template: &Template) -> &str {
        match self {
            Part::Subject => &template.subject,
            Part::Text => &template.text,
            Part::Html => &template.html,
            Part::Sms => &template.sms,
        }
    }
}

/// A fresh environment per call, because minijinja ties an environment to the lifetime of the
/// sources it compiles; building one is a few map inserts.
fn environment<'source>() -> Environment<'source> {
    // `empty` rather than `new`: no globals (`range`, `namespace`, ...), and only the filters and
    // tests below, none of which can multiply output or mark a value as safe HTML.
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Templates are compiled under their part's name, so this is what makes only the HTML part
    // escape values.
    env.set_auto_escape_callback(|name| if name == Part::Html.name() { AutoEscape::Html } else { AutoEscape::None });
    env.set_formatter(|out, state, value| {
        // Strict mode only covers variables that do not exist; an optional value the caller left
        // empty would otherwise print as "none".
        if value.is_none() {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "a value printed here is not set; print it inside {% if ... %}",
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("title", minijinja::filters::title);
    env.add_filter("capitalize", minijinja::filters::capitalize);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("d", minijinja::filters::default);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env.add_test("none", minijinja::tests::is_none);
    env
}

/// Parses one part and applies every static rule.
fn compile<'env, 'source>(
    env: &'env Environment<'source>,
    part: Part,
    source: &'source str,
) -> Result<minijinja::Template<'env, 'source>, TemplateError> {
    let chars = source.chars().count();
    if chars > part.max_chars() {
        return Err(TemplateError::new(
            part,
            format!("is too long: {chars} characters, the limit is {}", part.max_chars()),
        ));
    }

    let compiled = env
        .template_from_named_str(part.name(), source)
        .map_err(|err| TemplateError::new(part, syntax_reason(&err)))?;

    match disallowed_statement(source) {
        None => {}
        Some("") => return Err(TemplateError::new(part, "has a `{%` that does not start a statement")),
        Some(statement) => {
            return Err(TemplateError::new(
                part,
                format!("uses `{{% {statement} %}}`, which is not supported (only if, elif, else and raw)"),
            ));
        }
    }

    // `*` repeats strings up to 100 MB per use. Turning every `*` into a character the lexer rejects
    // leaves text, comments and string literals valid, so the template still parses exactly when no
    // `*` was an operator; this reuses minijinja's own lexer instead of imitating it.
    if source.contains('*') {
        let probe_source = source.replace('*', "@");
        let probe = Environment::empty();
        if probe.template_from_named_str(part.name(), &probe_source).is_err() {
            return Err(TemplateError::new(part, "uses the `*` operator, which is not supported"));
        }
    }

    let unknown: BTreeSet<String> =
        compiled.undeclared_variables(false).into_iter().filter(|name| !VARIABLES.contains(&name.as_str())).collect();
    if !unknown.is_empty() {
        let names = unknown.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
        let noun = if unknown.len() == 1 { "variable" } else { "variables" };
        return Err(TemplateError::new(part, format!("uses unknown {noun} {names}")));
    }

    Ok(compiled)
}

/// The first block statement outside [`ALLOWED_STATEMENTS`]. Every `{%` is inspected, even inside
/// comments, raw blocks or string literals, so real statements can never slip past; the price is
/// refusing such text, which message templates have no reason to contain.
fn disallowed_statement(source: &str) -> Option<&str> {
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        rest = &rest[start + 2..];
        // Mirrors the lexer: optional whitespace control, ASCII whitespace, then an identifier.
        let tag = rest.strip_prefix(['-', '+']).unwrap_or(rest).trim_start_matches(|c: char| c.is_ascii_whitespace());
        let len = tag.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        let keyword = &tag[..len];
        if !ALLOWED_STATEMENTS.contains(&keyword) {
            return Some(keyword);
        }
    }
    None
}

fn syntax_reason(err: &minijinja::Error) -> String {
    let what = err.detail().map_or_else(|| err.kind().to_string(), str::to_owned);
    format!("has a syntax error: {}", at_line(what, err))
}

fn render_reason(err: &minijinja::Error) -> String {
    let what = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    format!("cannot be rendered: {}", at_line(what, err))
}

fn at_line(what: String, err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

fn single_line(subject: &str) -> String {
    let cleaned: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Builtin {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
    sms: &'static str,
}

// Fragments shared by the built-in templates. They are macros so that `concat!` can assemble each
// template as one static string.

macro_rules! name {
    () => {
        "{{ contact_name or customer_name }}"
    };
}

macro_rules! amount {
    () => {
        "{{ amount_due }} {{ currency }}"
    };
}

macro_rules! amount_html {
    () => {
        "<strong>{{ amount_due }} {{ currency }}</strong>"
    };
}

macro_rules! sign_text {
    ($closing:literal) => {
        concat!(
            $closing,
            "\n{{ tenant_name }}{% if tenant_email %}\n{{ tenant_email }}{% endif %}",
            "{% if tenant_phone %}\n{{ tenant_phone }}{% endif %}"
        )
    };
}

macro_rules! sign_html {
    ($closing:literal) => {
        concat!(
            "<p>",
            $closing,
            "<br>\n{{ tenant_name }}{% if tenant_email %}<br>\n{{ tenant_email }}{% endif %}",
            "{% if tenant_phone %}<br>\n{{ tenant_phone }}{% endif %}</p>"
        )
    };
}

macro_rules! en_invoice {
    () => {
        "invoice {{ invoice_number }}{% if installment_number %} (installment {{ installment_number }}){% endif %}"
    };
}

macro_rules! en_invoice_html {
    () => {
        concat!(
            "invoice <strong>{{ invoice_number }}</strong>",
            "{% if installment_number %} (installment {{ installment_number }}){% endif %}"
        )
    };
}

macro_rules! en_pay_text {
    () => {
        concat!(
            "{% if pay_link %}You can pay online here: {{ pay_link }}\n\n{% endif %}",
            "{% if bank_reference %}For a bank transfer, please use the reference {{ bank_reference }}.\n\n{% endif %}"
        )
    };
}

macro_rules! en_pay_html {
    () => {
        concat!(
            "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Pay online</a></p>\n{% endif %}",
            "{% if bank_reference %}<p>For a bank transfer, please use the reference ",
            "<strong>{{ bank_reference }}</strong>.</p>\n{% endif %}"
        )
    };
}

macro_rules! es_invoice {
    () => {
        "factura {{ invoice_number }}{% if installment_number %} (cuota {{ installment_number }}){% endif %}"
    };
}

macro_rules! es_invoice_html {
    () => {
        concat!(
            "factura <strong>{{ invoice_number }}</strong>",
            "{% if installment_number %} (cuota {{ installment_number }}){% endif %}"
        )
    };
}

macro_rules! es_pay_text {
    () => {
        concat!(
            "{% if pay_link %}Puede pagar en línea aquí: {{ pay_link }}\n\n{% endif %}",
            "{% if bank_reference %}Si paga por transferencia bancaria, use la referencia {{ bank_reference }}.\n\n{% endif %}"
        )
    };
}

macro_rules! es_pay_html {
    () => {
        concat!(
            "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Pagar en línea</a></p>\n{% endif %}",
            "{% if bank_reference %}<p>Si paga por transferencia bancaria, use la referencia ",
            "<strong>{{ bank_reference }}</strong>.</p>\n{% endif %}"
        )
    };
}

macro_rules! pt_invoice {
    () => {
        "fatura {{ invoice_number }}{% if installment_number %} (parcela {{ installment_number }}){% endif %}"
    };
}

macro_rules! pt_invoice_html {
    () => {
        concat!(
            "fatura <strong>{{ invoice_number }}</strong>",
            "{% if installment_number %} (parcela {{ installment_number }}){% endif %}"
        )
    };
}

macro_rules! pt_pay_text {
    () => {
        concat!(
            "{% if pay_link %}Você pode pagar on-line aqui: {{ pay_link }}\n\n{% endif %}",
            "{% if bank_reference %}Para pagamento por transferência bancária, use a referência {{ bank_reference }}.\n\n{% endif %}"
        )
    };
}

macro_rules! pt_pay_html {
    () => {
        concat!(
            "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Pagar on-line</a></p>\n{% endif %}",
            "{% if bank_reference %}<p>Para pagamento por transferência bancária, use a referência ",
            "<strong>{{ bank_reference }}</strong>.</p>\n{% endif %}"
        )
    };
}

fn builtin(kind: MessageKind, lang: Language) -> Builtin {
    use Language::{En, Es, Pt};
    use MessageKind as K;
    match (kind, lang) {
        // ---------------------------------------------------------------- English
        (K::ReminderFriendly, En) => Builtin {
            subject: "Reminder: invoice {{ invoice_number }} from {{ tenant_name }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "This is a friendly reminder that ",
                en_invoice!(),
                " for ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}was due on {{ due_date }}{% else %}is due on {{ due_date }}{% endif %}.\n\n",
                en_pay_text!(),
                "If you have already made this payment, please disregard this message.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>This is a friendly reminder that ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                " ",
                "{% if days_overdue > 0 %}was due on {{ due_date }}{% else %}is due on {{ due_date }}{% endif %}.</p>\n",
                en_pay_html!(),
                "<p>If you have already made this payment, please disregard this message.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: reminder, invoice {{ invoice_number }} for ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}was{% else %}is{% endif %} due on {{ due_date }}.",
                "{% if pay_link %} Pay: {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFirm, En) => Builtin {
            subject: concat!("Overdue: invoice {{ invoice_number }} (", amount!(), ")"),
            text: concat!(
                "Dear ",
                name!(),
                ",\n\n",
                "Our records show that ",
                en_invoice!(),
                " for ",
                amount!(),
                ", due on {{ due_date }}, is ",
                "{{ days_overdue }} day{% if days_overdue != 1 %}s{% endif %} past due.\n\n",
                "Please arrange payment as soon as possible.\n\n",
                en_pay_text!(),
                "If you have already paid or there is an issue with this invoice, please contact us so we can ",
                "update our records.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Dear ",
                name!(),
                ",</p>\n",
                "<p>Our records show that ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ", due on {{ due_date }}, ",
                "is {{ days_overdue }} day{% if days_overdue != 1 %}s{% endif %} past due.</p>\n",
                "<p>Please arrange payment as soon as possible.</p>\n",
                en_pay_html!(),
                "<p>If you have already paid or there is an issue with this invoice, please contact us so we can ",
                "update our records.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: invoice {{ invoice_number }} (",
                amount!(),
                ") is {{ days_overdue }} ",
                "day{% if days_overdue != 1 %}s{% endif %} past due. Please pay as soon as possible.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFinalNotice, En) => Builtin {
            subject: "Final notice: invoice {{ invoice_number }} is overdue",
            text: concat!(
                "Dear ",
                name!(),
                ",\n\n",
                "Despite our previous reminders, ",
                en_invoice!(),
                " for ",
                amount!(),
                ", due on {{ due_date }}, ",
                "remains unpaid.\n\n",
                "Please settle the balance as soon as possible. If we do not receive payment or hear from you, we ",
                "may need to take further steps, which can include suspending credit terms or referring the ",
                "account to collections.\n\n",
                en_pay_text!(),
                "If you are unable to pay the full amount, please contact us to discuss options.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Dear ",
                name!(),
                ",</p>\n",
                "<p>Despite our previous reminders, ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ", due on ",
                "{{ due_date }}, remains unpaid.</p>\n",
                "<p>Please settle the balance as soon as possible. If we do not receive payment or hear from you, we ",
                "may need to take further steps, which can include suspending credit terms or referring the ",
                "account to collections.</p>\n",
                en_pay_html!(),
                "<p>If you are unable to pay the full amount, please contact us to discuss options.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: final notice. Invoice {{ invoice_number }} (",
                amount!(),
                ") remains unpaid. ",
                "Please pay or contact us to avoid further action.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderCollections, En) => Builtin {
            subject: "Invoice {{ invoice_number }} referred to collections",
            text: concat!(
                "Dear ",
                name!(),
                ",\n\n",
                "As ",
                en_invoice!(),
                " for ",
                amount!(),
                ", due on {{ due_date }}, remains unpaid despite our ",
                "reminders, the account is being handed over to collections.\n\n",
                "You can still resolve this by settling the balance directly with us.\n\n",
                en_pay_text!(),
                "If you believe this is an error, please contact us promptly.\n\n",
                sign_text!("Regards,"),
            ),
            html: concat!(
                "<p>Dear ",
                name!(),
                ",</p>\n",
                "<p>As ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ", due on {{ due_date }}, remains unpaid ",
                "despite our reminders, the account is being handed over to collections.</p>\n",
                "<p>You can still resolve this by settling the balance directly with us.</p>\n",
                en_pay_html!(),
                "<p>If you believe this is an error, please contact us promptly.</p>\n",
                sign_html!("Regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: invoice {{ invoice_number }} (",
                amount!(),
                ") is being handed over to ",
                "collections. To resolve it, pay now or contact us.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::InvoiceIssued, En) => Builtin {
            subject: "New invoice {{ invoice_number }} from {{ tenant_name }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "{{ tenant_name }} has issued ",
                en_invoice!(),
                " for ",
                amount!(),
                ", due on {{ due_date }}.\n\n",
                en_pay_text!(),
                "Thank you for your business.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>{{ tenant_name }} has issued ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ", due on ",
                "{{ due_date }}.</p>\n",
                en_pay_html!(),
                "<p>Thank you for your business.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: new invoice {{ invoice_number }} for ",
                amount!(),
                ", due on {{ due_date }}.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::PaymentReceipt, En) => Builtin {
            subject: "Payment received for invoice {{ invoice_number }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "We have received your payment of {{ amount_paid }} {{ currency }} on {{ payment_date }} for ",
                en_invoice!(),
                ". Thank you.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>We have received your payment of <strong>{{ amount_paid }} {{ currency }}</strong> on ",
                "{{ payment_date }} for ",
                en_invoice_html!(),
                ". Thank you.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: we received your payment of {{ amount_paid }} {{ currency }} for invoice ",
                "{{ invoice_number }}. Thank you.",
            ),
        },
        (K::PaymentFailed, En) => Builtin {
            subject: "Payment for invoice {{ invoice_number }} could not be processed",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "We could not process your payment of ",
                amount!(),
                " for ",
                en_invoice!(),
                ".\n\n",
                "{% if failure_reason %}Reason: {{ failure_reason }}\n\n{% endif %}",
                "Please try again or use another payment method.\n\n",
                en_pay_text!(),
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>We could not process your payment of ",
                amount_html!(),
                " for ",
                en_invoice_html!(),
                ".</p>\n",
                "{% if failure_reason %}<p>Reason: {{ failure_reason }}</p>\n{% endif %}",
                "<p>Please try again or use another payment method.</p>\n",
                en_pay_html!(),
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: your payment for invoice {{ invoice_number }} (",
                amount!(),
                ") could not be ",
                "processed. Please try again.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::AutopayUpcoming, En) => Builtin {
            subject: "Upcoming automatic payment for invoice {{ invoice_number }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "This is a reminder that ",
                amount!(),
                " will be charged automatically on ",
                "{{ payment_date or due_date }} for ",
                en_invoice!(),
                ".\n\n",
                "No action is needed. If your payment details have changed, please update them before that date",
                "{% if pay_link %}: {{ pay_link }}{% else %}.{% endif %}\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>This is a reminder that ",
                amount_html!(),
                " will be charged automatically on ",
                "{{ payment_date or due_date }} for ",
                en_invoice_html!(),
                ".</p>\n",
                "<p>No action is needed. If your payment details have changed, please ",
                "{% if pay_link %}<a href=\"{{ pay_link }}\">update them</a>{% else %}update them{% endif %} ",
                "before that date.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: ",
                amount!(),
                " for invoice {{ invoice_number }} will be charged automatically ",
                "on {{ payment_date or due_date }}.",
            ),
        },
        (K::PaymentActionRequired, En) => Builtin {
            subject: "Action required: confirm your payment for invoice {{ invoice_number }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "Your payment of ",
                amount!(),
                " for ",
                en_invoice!(),
                " needs your confirmation before it can ",
                "be completed.\n\n",
                "{% if pay_link %}Please confirm it here: {{ pay_link }}\n\n",
                "{% else %}Please contact us to complete the payment.\n\n{% endif %}",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>Your payment of ",
                amount_html!(),
                " for ",
                en_invoice_html!(),
                " needs your confirmation ",
                "before it can be completed.</p>\n",
                "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Confirm your payment</a></p>\n",
                "{% else %}<p>Please contact us to complete the payment.</p>\n{% endif %}",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: your payment for invoice {{ invoice_number }} needs your confirmation.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::HardshipReceived, En) => Builtin {
            subject: "Hardship request from {{ customer_name }} (invoice {{ invoice_number }})",
            text: concat!(
                "{{ customer_name }}{% if contact_name %} ({{ contact_name }}){% endif %} has reported financial ",
                "difficulty with ",
                en_invoice!(),
                " for ",
                amount!(),
                ", due on {{ due_date }}.\n\n",
                "Please review the request and contact the customer.\n\n",
                "This notice was sent to the {{ tenant_name }} team.",
            ),
            html: concat!(
                "<p><strong>{{ customer_name }}</strong>{% if contact_name %} ({{ contact_name }}){% endif %} has ",
                "reported financial difficulty with ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ", due on ",
                "{{ due_date }}.</p>\n",
                "<p>Please review the request and contact the customer.</p>\n",
                "<p>This notice was sent to the {{ tenant_name }} team.</p>",
            ),
            sms: concat!(
                "Hardship request from {{ customer_name }} for invoice {{ invoice_number }} (",
                amount!(),
                "). ",
                "Please review it.",
            ),
        },
        (K::DisputeOpened, En) => Builtin {
            subject: "We received your dispute for invoice {{ invoice_number }}",
            text: concat!(
                "Hello ",
                name!(),
                ",\n\n",
                "We have received your dispute regarding ",
                en_invoice!(),
                " for ",
                amount!(),
                ". Our team will ",
                "review it and get back to you.\n\n",
                sign_text!("Kind regards,"),
            ),
            html: concat!(
                "<p>Hello ",
                name!(),
                ",</p>\n",
                "<p>We have received your dispute regarding ",
                en_invoice_html!(),
                " for ",
                amount_html!(),
                ". ",
                "Our team will review it and get back to you.</p>\n",
                sign_html!("Kind regards,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: we received your dispute for invoice {{ invoice_number }} and will get back to ",
                "you after reviewing it.",
            ),
        },

        (K::DeliveryFailed, En) => Builtin {
            subject: "Undelivered message to {{ customer_name }} (invoice {{ invoice_number }})",
            text: concat!(
                "A message to {{ customer_name }} about invoice {{ invoice_number }} could not be delivered after every attempt. Please check the contact's details.\n\n",
                "{% if failure_reason %}The last answer was: {{ failure_reason }}\n\n{% endif %}",
                "{{ tenant_name }}",
            ),
            html: concat!(
                "<p>A message to <strong>{{ customer_name }}</strong> about invoice <strong>{{ invoice_number }}</strong> could not be delivered after every attempt. Please check the contact's details.</p>\n",
                "{% if failure_reason %}<p>The last answer was: {{ failure_reason }}</p>\n{% endif %}",
                "<p>{{ tenant_name }}</p>",
            ),
            sms: "{{ tenant_name }}: a message to {{ customer_name }} about invoice {{ invoice_number }} could not be delivered.",
        },
        (K::DeliveryFailed, Es) => Builtin {
            subject: "Mensaje no entregado a {{ customer_name }} (factura {{ invoice_number }})",
            text: concat!(
                "No se pudo entregar un mensaje a {{ customer_name }} sobre la factura {{ invoice_number }} tras todos los intentos. Revise los datos de contacto.\n\n",
                "{% if failure_reason %}La última respuesta fue: {{ failure_reason }}\n\n{% endif %}",
                "{{ tenant_name }}",
            ),
            html: concat!(
                "<p>No se pudo entregar un mensaje a <strong>{{ customer_name }}</strong> sobre la factura <strong>{{ invoice_number }}</strong> tras todos los intentos. Revise los datos de contacto.</p>\n",
                "{% if failure_reason %}<p>La última respuesta fue: {{ failure_reason }}</p>\n{% endif %}",
                "<p>{{ tenant_name }}</p>",
            ),
            sms: "{{ tenant_name }}: no se pudo entregar un mensaje a {{ customer_name }} sobre la factura {{ invoice_number }}.",
        },
        (K::DeliveryFailed, Pt) => Builtin {
            subject: "Mensagem não entregue a {{ customer_name }} (fatura {{ invoice_number }})",
            text: concat!(
                "Não foi possível entregar uma mensagem a {{ customer_name }} sobre a fatura {{ invoice_number }} após todas as tentativas. Verifique os dados de contato.\n\n",
                "{% if failure_reason %}A última resposta foi: {{ failure_reason }}\n\n{% endif %}",
                "{{ tenant_name }}",
            ),
            html: concat!(
                "<p>Não foi possível entregar uma mensagem a <strong>{{ customer_name }}</strong> sobre a fatura <strong>{{ invoice_number }}</strong> após todas as tentativas. Verifique os dados de contato.</p>\n",
                "{% if failure_reason %}<p>A última resposta foi: {{ failure_reason }}</p>\n{% endif %}",
                "<p>{{ tenant_name }}</p>",
            ),
            sms: "{{ tenant_name }}: não foi possível entregar uma mensagem a {{ customer_name }} sobre a fatura {{ invoice_number }}.",
        },

        // ---------------------------------------------------------------- Spanish (formal "usted")
        (K::ReminderFriendly, Es) => Builtin {
            subject: "Recordatorio: factura {{ invoice_number }} de {{ tenant_name }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "Le recordamos amablemente que la ",
                es_invoice!(),
                " por ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}venció el {{ due_date }}{% else %}vence el {{ due_date }}{% endif %}.\n\n",
                es_pay_text!(),
                "Si ya realizó este pago, por favor ignore este mensaje.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>Le recordamos amablemente que la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                " ",
                "{% if days_overdue > 0 %}venció el {{ due_date }}{% else %}vence el {{ due_date }}{% endif %}.</p>\n",
                es_pay_html!(),
                "<p>Si ya realizó este pago, por favor ignore este mensaje.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: recordatorio, la factura {{ invoice_number }} por ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}venció{% else %}vence{% endif %} el {{ due_date }}.",
                "{% if pay_link %} Pague aquí: {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFirm, Es) => Builtin {
            subject: concat!("Factura vencida: {{ invoice_number }} (", amount!(), ")"),
            text: concat!(
                "Estimado(a) ",
                name!(),
                ":\n\n",
                "Nuestros registros indican que la ",
                es_invoice!(),
                " por ",
                amount!(),
                ", con vencimiento el ",
                "{{ due_date }}, tiene {{ days_overdue }} {% if days_overdue == 1 %}día{% else %}días{% endif %} ",
                "de atraso.\n\n",
                "Le solicitamos realizar el pago a la brevedad.\n\n",
                es_pay_text!(),
                "Si ya pagó o hay algún problema con esta factura, por favor contáctenos para actualizar nuestros ",
                "registros.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Estimado(a) ",
                name!(),
                ":</p>\n",
                "<p>Nuestros registros indican que la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ", con ",
                "vencimiento el {{ due_date }}, tiene {{ days_overdue }} ",
                "{% if days_overdue == 1 %}día{% else %}días{% endif %} de atraso.</p>\n",
                "<p>Le solicitamos realizar el pago a la brevedad.</p>\n",
                es_pay_html!(),
                "<p>Si ya pagó o hay algún problema con esta factura, por favor contáctenos para actualizar ",
                "nuestros registros.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: la factura {{ invoice_number }} (",
                amount!(),
                ") tiene {{ days_overdue }} ",
                "{% if days_overdue == 1 %}día{% else %}días{% endif %} de atraso. Le pedimos pagar a la brevedad.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFinalNotice, Es) => Builtin {
            subject: "Último aviso: factura {{ invoice_number }} vencida",
            text: concat!(
                "Estimado(a) ",
                name!(),
                ":\n\n",
                "A pesar de nuestros recordatorios anteriores, la ",
                es_invoice!(),
                " por ",
                amount!(),
                ", con ",
                "vencimiento el {{ due_date }}, sigue pendiente de pago.\n\n",
                "Le pedimos liquidar el saldo a la brevedad. Si no recibimos el pago o noticias suyas, es posible ",
                "que debamos tomar otras medidas, como suspender las condiciones de crédito o turnar la cuenta a ",
                "cobranza.\n\n",
                es_pay_text!(),
                "Si no puede pagar el monto total, contáctenos para revisar alternativas.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Estimado(a) ",
                name!(),
                ":</p>\n",
                "<p>A pesar de nuestros recordatorios anteriores, la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ", con vencimiento el {{ due_date }}, sigue pendiente de pago.</p>\n",
                "<p>Le pedimos liquidar el saldo a la brevedad. Si no recibimos el pago o noticias suyas, es ",
                "posible que debamos tomar otras medidas, como suspender las condiciones de crédito o turnar la ",
                "cuenta a cobranza.</p>\n",
                es_pay_html!(),
                "<p>Si no puede pagar el monto total, contáctenos para revisar alternativas.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: último aviso. La factura {{ invoice_number }} (",
                amount!(),
                ") sigue ",
                "pendiente. Pague o contáctenos para evitar otras medidas.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderCollections, Es) => Builtin {
            subject: "Factura {{ invoice_number }} turnada a cobranza",
            text: concat!(
                "Estimado(a) ",
                name!(),
                ":\n\n",
                "Dado que la ",
                es_invoice!(),
                " por ",
                amount!(),
                ", con vencimiento el {{ due_date }}, sigue sin ",
                "pagarse pese a nuestros recordatorios, la cuenta se está turnando a cobranza.\n\n",
                "Aún puede resolver esta situación liquidando el saldo directamente con nosotros.\n\n",
                es_pay_text!(),
                "Si considera que se trata de un error, por favor contáctenos de inmediato.\n\n",
                sign_text!("Atentamente,"),
            ),
            html: concat!(
                "<p>Estimado(a) ",
                name!(),
                ":</p>\n",
                "<p>Dado que la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ", con vencimiento el ",
                "{{ due_date }}, sigue sin pagarse pese a nuestros recordatorios, la cuenta se está turnando a ",
                "cobranza.</p>\n",
                "<p>Aún puede resolver esta situación liquidando el saldo directamente con nosotros.</p>\n",
                es_pay_html!(),
                "<p>Si considera que se trata de un error, por favor contáctenos de inmediato.</p>\n",
                sign_html!("Atentamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: la factura {{ invoice_number }} (",
                amount!(),
                ") se está turnando a cobranza. ",
                "Para resolverlo, pague ahora o contáctenos.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::InvoiceIssued, Es) => Builtin {
            subject: "Nueva factura {{ invoice_number }} de {{ tenant_name }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "{{ tenant_name }} emitió la ",
                es_invoice!(),
                " por ",
                amount!(),
                ", con vencimiento el ",
                "{{ due_date }}.\n\n",
                es_pay_text!(),
                "Gracias por su preferencia.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>{{ tenant_name }} emitió la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ", con ",
                "vencimiento el {{ due_date }}.</p>\n",
                es_pay_html!(),
                "<p>Gracias por su preferencia.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: nueva factura {{ invoice_number }} por ",
                amount!(),
                ", vence el {{ due_date }}.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::PaymentReceipt, Es) => Builtin {
            subject: "Pago recibido: factura {{ invoice_number }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "Recibimos su pago de {{ amount_paid }} {{ currency }} el {{ payment_date }} para la ",
                es_invoice!(),
                ". Gracias.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>Recibimos su pago de <strong>{{ amount_paid }} {{ currency }}</strong> el {{ payment_date }} ",
                "para la ",
                es_invoice_html!(),
                ". Gracias.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: recibimos su pago de {{ amount_paid }} {{ currency }} para la factura ",
                "{{ invoice_number }}. Gracias.",
            ),
        },
        (K::PaymentFailed, Es) => Builtin {
            subject: "No pudimos procesar el pago de la factura {{ invoice_number }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "No pudimos procesar su pago de ",
                amount!(),
                " para la ",
                es_invoice!(),
                ".\n\n",
                "{% if failure_reason %}Motivo: {{ failure_reason }}\n\n{% endif %}",
                "Por favor intente de nuevo o utilice otro método de pago.\n\n",
                es_pay_text!(),
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>No pudimos procesar su pago de ",
                amount_html!(),
                " para la ",
                es_invoice_html!(),
                ".</p>\n",
                "{% if failure_reason %}<p>Motivo: {{ failure_reason }}</p>\n{% endif %}",
                "<p>Por favor intente de nuevo o utilice otro método de pago.</p>\n",
                es_pay_html!(),
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: no pudimos procesar su pago de la factura {{ invoice_number }} (",
                amount!(),
                "). Por favor intente de nuevo.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::AutopayUpcoming, Es) => Builtin {
            subject: "Próximo cargo automático: factura {{ invoice_number }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "Le recordamos que el {{ payment_date or due_date }} se cargarán automáticamente ",
                amount!(),
                " por la ",
                es_invoice!(),
                ".\n\n",
                "No necesita hacer nada. Si sus datos de pago cambiaron, actualícelos antes de esa fecha",
                "{% if pay_link %}: {{ pay_link }}{% else %}.{% endif %}\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>Le recordamos que el {{ payment_date or due_date }} se cargarán automáticamente ",
                amount_html!(),
                " por la ",
                es_invoice_html!(),
                ".</p>\n",
                "<p>No necesita hacer nada. Si sus datos de pago cambiaron, ",
                "{% if pay_link %}<a href=\"{{ pay_link }}\">actualícelos</a>{% else %}actualícelos{% endif %} ",
                "antes de esa fecha.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: el {{ payment_date or due_date }} se cargarán automáticamente ",
                amount!(),
                " por la factura {{ invoice_number }}.",
            ),
        },
        (K::PaymentActionRequired, Es) => Builtin {
            subject: "Acción requerida: confirme su pago de la factura {{ invoice_number }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "Su pago de ",
                amount!(),
                " para la ",
                es_invoice!(),
                " requiere su confirmación para ",
                "completarse.\n\n",
                "{% if pay_link %}Por favor confírmelo aquí: {{ pay_link }}\n\n",
                "{% else %}Por favor contáctenos para completar el pago.\n\n{% endif %}",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>Su pago de ",
                amount_html!(),
                " para la ",
                es_invoice_html!(),
                " requiere su confirmación para ",
                "completarse.</p>\n",
                "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Confirmar el pago</a></p>\n",
                "{% else %}<p>Por favor contáctenos para completar el pago.</p>\n{% endif %}",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: su pago de la factura {{ invoice_number }} requiere su confirmación.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::HardshipReceived, Es) => Builtin {
            subject: "Solicitud por dificultades de pago de {{ customer_name }} (factura {{ invoice_number }})",
            text: concat!(
                "{{ customer_name }}{% if contact_name %} ({{ contact_name }}){% endif %} informó dificultades ",
                "económicas para pagar la ",
                es_invoice!(),
                " por ",
                amount!(),
                ", con vencimiento el ",
                "{{ due_date }}.\n\n",
                "Por favor revise la solicitud y contacte al cliente.\n\n",
                "Este aviso se envió al equipo de {{ tenant_name }}.",
            ),
            html: concat!(
                "<p><strong>{{ customer_name }}</strong>{% if contact_name %} ({{ contact_name }}){% endif %} ",
                "informó dificultades económicas para pagar la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ", con vencimiento el {{ due_date }}.</p>\n",
                "<p>Por favor revise la solicitud y contacte al cliente.</p>\n",
                "<p>Este aviso se envió al equipo de {{ tenant_name }}.</p>",
            ),
            sms: concat!(
                "Solicitud por dificultades de pago de {{ customer_name }} para la factura {{ invoice_number }} (",
                amount!(),
                "). Por favor revísela.",
            ),
        },
        (K::DisputeOpened, Es) => Builtin {
            subject: "Recibimos su disputa de la factura {{ invoice_number }}",
            text: concat!(
                "Hola, ",
                name!(),
                ":\n\n",
                "Recibimos su disputa sobre la ",
                es_invoice!(),
                " por ",
                amount!(),
                ". Nuestro equipo la ",
                "revisará y se pondrá en contacto con usted.\n\n",
                sign_text!("Saludos cordiales,"),
            ),
            html: concat!(
                "<p>Hola, ",
                name!(),
                ":</p>\n",
                "<p>Recibimos su disputa sobre la ",
                es_invoice_html!(),
                " por ",
                amount_html!(),
                ". Nuestro ",
                "equipo la revisará y se pondrá en contacto con usted.</p>\n",
                sign_html!("Saludos cordiales,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: recibimos su disputa de la factura {{ invoice_number }}. Nos pondremos en ",
                "contacto con usted tras revisarla.",
            ),
        },

        // ---------------------------------------------------------------- Portuguese (Brazil)
        (K::ReminderFriendly, Pt) => Builtin {
            subject: "Lembrete: fatura {{ invoice_number }} de {{ tenant_name }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "Este é um lembrete amigável de que a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}venceu em {{ due_date }}{% else %}vence em {{ due_date }}{% endif %}.\n\n",
                pt_pay_text!(),
                "Se você já efetuou este pagamento, por favor desconsidere esta mensagem.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>Este é um lembrete amigável de que a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                " ",
                "{% if days_overdue > 0 %}venceu em {{ due_date }}{% else %}vence em {{ due_date }}{% endif %}.</p>\n",
                pt_pay_html!(),
                "<p>Se você já efetuou este pagamento, por favor desconsidere esta mensagem.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: lembrete, a fatura {{ invoice_number }} de ",
                amount!(),
                " ",
                "{% if days_overdue > 0 %}venceu{% else %}vence{% endif %} em {{ due_date }}.",
                "{% if pay_link %} Pague aqui: {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFirm, Pt) => Builtin {
            subject: concat!("Fatura vencida: {{ invoice_number }} (", amount!(), ")"),
            text: concat!(
                "Prezado(a) ",
                name!(),
                ",\n\n",
                "Nossos registros indicam que a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ", com vencimento em ",
                "{{ due_date }}, está em atraso há {{ days_overdue }} ",
                "{% if days_overdue == 1 %}dia{% else %}dias{% endif %}.\n\n",
                "Pedimos que efetue o pagamento o quanto antes.\n\n",
                pt_pay_text!(),
                "Se você já pagou ou há algum problema com esta fatura, entre em contato conosco para que possamos ",
                "atualizar nossos registros.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Prezado(a) ",
                name!(),
                ",</p>\n",
                "<p>Nossos registros indicam que a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ", com ",
                "vencimento em {{ due_date }}, está em atraso há {{ days_overdue }} ",
                "{% if days_overdue == 1 %}dia{% else %}dias{% endif %}.</p>\n",
                "<p>Pedimos que efetue o pagamento o quanto antes.</p>\n",
                pt_pay_html!(),
                "<p>Se você já pagou ou há algum problema com esta fatura, entre em contato conosco para que ",
                "possamos atualizar nossos registros.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: a fatura {{ invoice_number }} (",
                amount!(),
                ") está em atraso há ",
                "{{ days_overdue }} {% if days_overdue == 1 %}dia{% else %}dias{% endif %}. Pedimos que pague o ",
                "quanto antes.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderFinalNotice, Pt) => Builtin {
            subject: "Último aviso: fatura {{ invoice_number }} em atraso",
            text: concat!(
                "Prezado(a) ",
                name!(),
                ",\n\n",
                "Apesar dos nossos lembretes anteriores, a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ", com ",
                "vencimento em {{ due_date }}, continua em aberto.\n\n",
                "Pedimos que quite o saldo o quanto antes. Caso não recebamos o pagamento ou um retorno seu, ",
                "poderemos ter de tomar outras medidas, como suspender as condições de crédito ou encaminhar a ",
                "conta para cobrança.\n\n",
                pt_pay_text!(),
                "Se não for possível pagar o valor total, entre em contato conosco para avaliarmos alternativas.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Prezado(a) ",
                name!(),
                ",</p>\n",
                "<p>Apesar dos nossos lembretes anteriores, a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ", com vencimento em {{ due_date }}, continua em aberto.</p>\n",
                "<p>Pedimos que quite o saldo o quanto antes. Caso não recebamos o pagamento ou um retorno seu, ",
                "poderemos ter de tomar outras medidas, como suspender as condições de crédito ou encaminhar a ",
                "conta para cobrança.</p>\n",
                pt_pay_html!(),
                "<p>Se não for possível pagar o valor total, entre em contato conosco para avaliarmos ",
                "alternativas.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: último aviso. A fatura {{ invoice_number }} (",
                amount!(),
                ") continua em ",
                "aberto. Pague ou entre em contato para evitar outras medidas.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::ReminderCollections, Pt) => Builtin {
            subject: "Fatura {{ invoice_number }} encaminhada para cobrança",
            text: concat!(
                "Prezado(a) ",
                name!(),
                ",\n\n",
                "Como a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ", com vencimento em {{ due_date }}, continua ",
                "sem pagamento apesar dos nossos lembretes, a conta está sendo encaminhada para cobrança.\n\n",
                "Você ainda pode resolver esta situação quitando o saldo diretamente conosco.\n\n",
                pt_pay_text!(),
                "Se acredita que se trata de um erro, entre em contato conosco imediatamente.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Prezado(a) ",
                name!(),
                ",</p>\n",
                "<p>Como a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ", com vencimento em ",
                "{{ due_date }}, continua sem pagamento apesar dos nossos lembretes, a conta está sendo ",
                "encaminhada para cobrança.</p>\n",
                "<p>Você ainda pode resolver esta situação quitando o saldo diretamente conosco.</p>\n",
                pt_pay_html!(),
                "<p>Se acredita que se trata de um erro, entre em contato conosco imediatamente.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: a fatura {{ invoice_number }} (",
                amount!(),
                ") está sendo encaminhada para ",
                "cobrança. Para resolver, pague agora ou entre em contato.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::InvoiceIssued, Pt) => Builtin {
            subject: "Nova fatura {{ invoice_number }} de {{ tenant_name }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "{{ tenant_name }} emitiu a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ", com vencimento em ",
                "{{ due_date }}.\n\n",
                pt_pay_text!(),
                "Agradecemos a preferência.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>{{ tenant_name }} emitiu a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ", com ",
                "vencimento em {{ due_date }}.</p>\n",
                pt_pay_html!(),
                "<p>Agradecemos a preferência.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: nova fatura {{ invoice_number }} de ",
                amount!(),
                ", vence em {{ due_date }}.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::PaymentReceipt, Pt) => Builtin {
            subject: "Pagamento recebido: fatura {{ invoice_number }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "Recebemos o seu pagamento de {{ amount_paid }} {{ currency }} em {{ payment_date }} referente à ",
                pt_invoice!(),
                ". Obrigado.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>Recebemos o seu pagamento de <strong>{{ amount_paid }} {{ currency }}</strong> em ",
                "{{ payment_date }} referente à ",
                pt_invoice_html!(),
                ". Obrigado.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: recebemos seu pagamento de {{ amount_paid }} {{ currency }} referente à fatura ",
                "{{ invoice_number }}. Obrigado.",
            ),
        },
        (K::PaymentFailed, Pt) => Builtin {
            subject: "Não foi possível processar o pagamento da fatura {{ invoice_number }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "Não foi possível processar o seu pagamento de ",
                amount!(),
                " referente à ",
                pt_invoice!(),
                ".\n\n",
                "{% if failure_reason %}Motivo: {{ failure_reason }}\n\n{% endif %}",
                "Por favor, tente novamente ou use outra forma de pagamento.\n\n",
                pt_pay_text!(),
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>Não foi possível processar o seu pagamento de ",
                amount_html!(),
                " referente à ",
                pt_invoice_html!(),
                ".</p>\n",
                "{% if failure_reason %}<p>Motivo: {{ failure_reason }}</p>\n{% endif %}",
                "<p>Por favor, tente novamente ou use outra forma de pagamento.</p>\n",
                pt_pay_html!(),
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: não foi possível processar seu pagamento da fatura {{ invoice_number }} (",
                amount!(),
                "). Por favor, tente novamente.{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::AutopayUpcoming, Pt) => Builtin {
            subject: "Próxima cobrança automática: fatura {{ invoice_number }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "Lembramos que em {{ payment_date or due_date }} serão cobrados automaticamente ",
                amount!(),
                " referentes à ",
                pt_invoice!(),
                ".\n\n",
                "Nenhuma ação é necessária. Se os seus dados de pagamento mudaram, atualize-os antes dessa data",
                "{% if pay_link %}: {{ pay_link }}{% else %}.{% endif %}\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>Lembramos que em {{ payment_date or due_date }} serão cobrados automaticamente ",
                amount_html!(),
                " referentes à ",
                pt_invoice_html!(),
                ".</p>\n",
                "<p>Nenhuma ação é necessária. Se os seus dados de pagamento mudaram, ",
                "{% if pay_link %}<a href=\"{{ pay_link }}\">atualize-os</a>{% else %}atualize-os{% endif %} ",
                "antes dessa data.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: em {{ payment_date or due_date }} serão cobrados automaticamente ",
                amount!(),
                " referentes à fatura {{ invoice_number }}.",
            ),
        },
        (K::PaymentActionRequired, Pt) => Builtin {
            subject: "Ação necessária: confirme o pagamento da fatura {{ invoice_number }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "O seu pagamento de ",
                amount!(),
                " referente à ",
                pt_invoice!(),
                " precisa da sua confirmação para ",
                "ser concluído.\n\n",
                "{% if pay_link %}Confirme aqui: {{ pay_link }}\n\n",
                "{% else %}Entre em contato conosco para concluir o pagamento.\n\n{% endif %}",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>O seu pagamento de ",
                amount_html!(),
                " referente à ",
                pt_invoice_html!(),
                " precisa da sua ",
                "confirmação para ser concluído.</p>\n",
                "{% if pay_link %}<p><a href=\"{{ pay_link }}\">Confirmar o pagamento</a></p>\n",
                "{% else %}<p>Entre em contato conosco para concluir o pagamento.</p>\n{% endif %}",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: o pagamento da fatura {{ invoice_number }} precisa da sua confirmação.",
                "{% if pay_link %} {{ pay_link }}{% endif %}",
            ),
        },
        (K::HardshipReceived, Pt) => Builtin {
            subject: "Pedido por dificuldade financeira de {{ customer_name }} (fatura {{ invoice_number }})",
            text: concat!(
                "{{ customer_name }}{% if contact_name %} ({{ contact_name }}){% endif %} informou dificuldade ",
                "financeira para pagar a ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ", com vencimento em ",
                "{{ due_date }}.\n\n",
                "Por favor, analise o pedido e entre em contato com o cliente.\n\n",
                "Este aviso foi enviado à equipe de {{ tenant_name }}.",
            ),
            html: concat!(
                "<p><strong>{{ customer_name }}</strong>{% if contact_name %} ({{ contact_name }}){% endif %} ",
                "informou dificuldade financeira para pagar a ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ", com vencimento em {{ due_date }}.</p>\n",
                "<p>Por favor, analise o pedido e entre em contato com o cliente.</p>\n",
                "<p>Este aviso foi enviado à equipe de {{ tenant_name }}.</p>",
            ),
            sms: concat!(
                "Pedido por dificuldade financeira de {{ customer_name }} referente à fatura {{ invoice_number }} (",
                amount!(),
                "). Por favor, analise.",
            ),
        },
        (K::DisputeOpened, Pt) => Builtin {
            subject: "Recebemos a sua contestação da fatura {{ invoice_number }}",
            text: concat!(
                "Olá, ",
                name!(),
                ",\n\n",
                "Recebemos a sua contestação referente à ",
                pt_invoice!(),
                " no valor de ",
                amount!(),
                ". Nossa ",
                "equipe irá analisá-la e entrará em contato com você.\n\n",
                sign_text!("Atenciosamente,"),
            ),
            html: concat!(
                "<p>Olá, ",
                name!(),
                ",</p>\n",
                "<p>Recebemos a sua contestação referente à ",
                pt_invoice_html!(),
                " no valor de ",
                amount_html!(),
                ". Nossa equipe irá analisá-la e entrará em contato com você.</p>\n",
                sign_html!("Atenciosamente,"),
            ),
            sms: concat!(
                "{{ tenant_name }}: recebemos sua contestação da fatura {{ invoice_number }}. Entraremos em contato ",
                "após a análise.",
            ),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A valid template whose `field` part is replaced by `source`.
    fn with_part(field: &str, source: &str) -> Template {
        let mut template = Template {
            subject: "Invoice {{ invoice_number }}".to_owned(),
            text: "Amount: {{ amount_due }} {{ currency }}".to_owned(),
            html: "<p>{{ customer_name }}</p>".to_owned(),
            sms: "{{ tenant_name }}: {{ invoice_number }}".to_owned(),
        };
        let slot = match field {
            "subject" => &mut template.subject,
            "text" => &mut template.text,
            "html" => &mut template.html,
            "sms" => &mut template.sms,
            other => panic!("no part {other}"),
        };
        *slot = source.to_owned();
        template
    }

    /// Only the values every message has; every optional one is absent.
    fn minimal_vars() -> Vars {
        Vars {
            customer_name: "Acme Distribuciones".to_owned(),
            invoice_number: "F-1001".to_owned(),
            amount_due: "1,234.50".to_owned(),
            currency: "MXN".to_owned(),
            due_date: "2025-03-31".to_owned(),
            days_overdue: 7,
            tenant_name: "Proveedora Norte".to_owned(),
            ..Vars::default()
        }
    }

    fn render_default(kind: MessageKind, lang: Language, vars: &Vars) -> Rendered {
        let template = default_template(kind.key(), lang).unwrap();
        render(&template, vars).unwrap_or_else(|err| panic!("{kind} in {lang}: {err}"))
    }

    #[test]
    fn every_default_validates_and_renders_in_every_language() {
        let vars = Vars::example();
        for kind in MessageKind::ALL {
            for lang in Language::ALL {
                let template = default_template(kind.key(), lang).unwrap();
                validate(&template).unwrap_or_else(|err| panic!("{kind} in {lang}: {err}"));
                let rendered = render(&template, &vars).unwrap_or_else(|err| panic!("{kind} in {lang}: {err}"));
                for (part, out) in [
                    ("subject", &rendered.subject),
                    ("text", &rendered.text),
                    ("html", &rendered.html),
                    ("sms", &rendered.sms),
                ] {
                    assert!(out.contains("F-1001"), "{kind} {lang} {part} lacks the invoice number: {out}");
                    assert!(!out.contains("{{") && !out.contains("{%"), "{kind} {lang} {part}: {out}");
                }
                assert!(rendered.sms.chars().count() <= 320, "{kind} {lang} sms is long: {}", rendered.sms);
                assert!(rendered.html.starts_with("<p>"), "{kind} {lang} html: {}", rendered.html);
            }
        }
    }

    #[test]
    fn defaults_render_without_optional_values_except_where_they_are_the_point() {
        let vars = minimal_vars();
        for kind in MessageKind::ALL {
            for lang in Language::ALL {
                let template = default_template(kind.key(), lang).unwrap();
                let result = render(&template, &vars);
                if kind == MessageKind::PaymentReceipt {
                    // A receipt without the amount paid must not go out with a blank.
                    let err = result.unwrap_err();
                    assert_eq!(err.field(), "text");
                    assert!(err.reason().contains("not set"), "{err}");
                } else {
                    let rendered = result.unwrap_or_else(|err| panic!("{kind} in {lang}: {err}"));
                    assert!(rendered.text.contains("F-1001"));
                    assert!(!rendered.text.contains("https://"), "{kind} {lang}: {}", rendered.text);
                    assert!(!rendered.text.contains("none"), "{kind} {lang}: {}", rendered.text);
                    assert!(!rendered.html.contains("<a "), "{kind} {lang}: {}", rendered.html);
                }
            }
        }
    }

    #[test]
    fn unknown_key_has_no_default() {
        assert_eq!(default_template("reminder_gentle", Language::En), None);
        assert_eq!(default_template("", Language::Es), None);
    }

    #[test]
    fn message_kind_keys_round_trip() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::from_key(kind.key()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.key()));
        }
        assert_eq!(MessageKind::from_key("Reminder_Friendly"), None);
        assert!(MessageKind::ReminderCollections.is_reminder());
        assert!(!MessageKind::DisputeOpened.is_reminder());
    }

    #[test]
    fn unknown_variable_is_refused_naming_part_and_variable() {
        let err = validate(&with_part("text", "Please pay {{ amount_dew }} {{ currency }}.")).unwrap_err();
        assert_eq!(err.field(), "text");
        assert_eq!(err.reason(), "uses unknown variable `amount_dew`");
        assert_eq!(err.to_string(), "text uses unknown variable `amount_dew`");

        for field in ["subject", "html", "sms"] {
            let err = validate(&with_part(field, "{% if overdue %}{{ amount_dew }}{% endif %}")).unwrap_err();
            assert_eq!(err.field(), field);
            assert_eq!(err.reason(), "uses unknown variables `amount_dew`, `overdue`");
        }
    }

    #[test]
    fn globals_are_unknown_variables_and_unknown_filters_are_refused() {
        let err = validate(&with_part("text", "{{ range(3) }}")).unwrap_err();
        assert_eq!(err.reason(), "uses unknown variable `range`");

        // `safe` would let a customer-supplied value through unescaped.
        let err = validate(&with_part("html", "<p>{{ customer_name | safe }}</p>")).unwrap_err();
        assert_eq!(err.field(), "html");
        assert!(err.reason().starts_with("cannot be rendered"), "{err}");
        assert!(err.reason().contains("safe"), "{err}");

        validate(&with_part("text", "{{ customer_name | upper }} {{ contact_name | default('x') }}")).unwrap();
        validate(&with_part("text", "{% if contact_name is none %}{{ customer_name | trim | title }}{% endif %}"))
            .unwrap();
    }

    #[test]
    fn syntax_error_is_refused() {
        let err = validate(&with_part("html", "<p>{{ invoice_number </p>")).unwrap_err();
        assert_eq!(err.field(), "html");
        assert!(err.reason().starts_with("has a syntax error: unexpected "), "{err}");
        assert!(err.reason().ends_with("(line 1)"), "{err}");

        let err = validate(&with_part("sms", "{% if pay_link %}{{ pay_link }}")).unwrap_err();
        assert_eq!(err.field(), "sms");
        assert!(err.reason().starts_with("has a syntax error"), "{err}");
    }

    #[test]
    fn loops_assignments_and_autoescape_are_refused() {
        for (source, statement) in [
            ("{% for c in customer_name %}{{ c }}{% endfor %}", "for"),
            ("{%- for c in customer_name -%}{{ c }}{% endfor %}", "for"),
            ("{%+for c in customer_name %}{{ c }}{% endfor %}", "for"),
            ("{% set x = customer_name ~ customer_name %}{{ x }}", "set"),
            ("{% with x = customer_name %}{{ x }}{% endwith %}", "with"),
            ("{% autoescape false %}{{ customer_name }}{% endautoescape %}", "autoescape"),
            ("{% filter upper %}{{ customer_name }}{% endfilter %}", "filter"),
        ] {
            let err = validate(&with_part("html", source)).unwrap_err();
            assert_eq!(err.field(), "html");
            assert_eq!(
                err.reason(),
                format!("uses `{{% {statement} %}}`, which is not supported (only if, elif, else and raw)"),
                "{source}"
            );
        }
        validate(&with_part("text", "{% raw %}{{ literally }}{% endraw %} {{ customer_name }}")).unwrap();
    }

    #[test]
    fn repetition_operator_is_refused_but_asterisks_in_text_are_fine() {
        for source in
            ["{{ customer_name * 99999 }}", "{{ 'ab' * 3 }}", "{{ 2 ** 8 }}", "{% if days_overdue*2 %}x{% endif %}"]
        {
            let err = validate(&with_part("sms", source)).unwrap_err();
            assert_eq!(err.field(), "sms");
            assert_eq!(err.reason(), "uses the `*` operator, which is not supported", "{source}");
        }
        // WhatsApp marks bold with asterisks.
        let template = with_part("sms", "*Reminder* {{ invoice_number }} {{ '*' }} {# * #}");
        validate(&template).unwrap();
        assert_eq!(render(&template, &Vars::example()).unwrap().sms, "*Reminder* F-1001 * ");
    }

    #[test]
    fn parts_over_the_length_limit_are_refused() {
        // Counted in characters, not bytes.
        validate(&with_part("text", &"é".repeat(MAX_PART_CHARS))).unwrap();
        let err = validate(&with_part("text", &"a".repeat(MAX_PART_CHARS + 1))).unwrap_err();
        assert_eq!(err.field(), "text");
        assert_eq!(err.reason(), "is too long: 20001 characters, the limit is 20000");

        validate(&with_part("sms", &"ñ".repeat(MAX_SMS_CHARS))).unwrap();
        let err = validate(&with_part("sms", &"a".repeat(MAX_SMS_CHARS + 1))).unwrap_err();
        assert_eq!(err.field(), "sms");
        assert_eq!(err.reason(), "is too long: 1001 characters, the limit is 1000");
    }

    #[test]
    fn html_escapes_values_but_text_does_not() {
        let vars = Vars {
            customer_name: "<script>alert('x')</script> & Co".to_owned(),
            contact_name: None,
            ..Vars::example()
        };
        let template = Template {
            subject: "{{ customer_name }}".to_owned(),
            text: "{{ customer_name }}".to_owned(),
            html: "<p>{{ customer_name }}</p>".to_owned(),
            sms: "{{ customer_name }}".to_owned(),
        };
        let rendered = render(&template, &vars).unwrap();
        assert_eq!(rendered.html, "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; Co</p>");
        assert_eq!(rendered.text, "<script>alert('x')</script> & Co");
        assert_eq!(rendered.sms, "<script>alert('x')</script> & Co");
        assert_eq!(rendered.subject, "<script>alert('x')</script> & Co");

        let rendered = render_default(MessageKind::InvoiceIssued, Language::En, &vars);
        assert!(rendered.html.contains("<p>Hello &lt;script&gt;"), "{}", rendered.html);
        assert!(!rendered.html.contains("<script>"));
        assert!(rendered.text.starts_with("Hello <script>alert('x')</script> & Co,"), "{}", rendered.text);
    }

    #[test]
    fn subject_is_a_single_line() {
        let vars = Vars { customer_name: "Acme\r\nBcc: someone@example.com\t\u{7}".to_owned(), ..Vars::example() };
        let template = with_part("subject", "  Invoice {{ invoice_number }}\n for {{ customer_name }}  ");
        let rendered = render(&template, &vars).unwrap();
        assert_eq!(rendered.subject, "Invoice F-1001 for Acme Bcc: someone@example.com");
    }

    #[test]
    fn language_parsing() {
        assert_eq!(Language::parse("es"), Some(Language::Es));
        assert_eq!(Language::parse("en"), Some(Language::En));
        assert_eq!(Language::parse("pt"), Some(Language::Pt));
        assert_eq!(Language::parse("es-MX"), Some(Language::Es));
        assert_eq!(Language::parse("pt-BR"), Some(Language::Pt));
        assert_eq!(Language::parse("en-US"), Some(Language::En));
        assert_eq!(Language::parse("pt_br"), Some(Language::Pt));
        assert_eq!(Language::parse(" ES-419 "), Some(Language::Es));
        assert_eq!(Language::parse("fr"), None);
        assert_eq!(Language::parse("esp"), None);
        assert_eq!(Language::parse("english"), None);
        assert_eq!(Language::parse(""), None);

        assert_eq!(Language::or_default("pt-BR"), Language::Pt);
        assert_eq!(Language::or_default("de-DE"), Language::En);
        assert_eq!(Language::or_default(""), Language::En);
        assert_eq!(Language::default(), Language::En);
        assert_eq!(Language::Es.to_string(), "es");
        assert_eq!(serde_json::to_value(Language::Pt).unwrap(), serde_json::json!("pt"));
    }

    #[test]
    fn english_sample_renders_invoice_and_amount() {
        let rendered = render_default(MessageKind::ReminderFriendly, Language::En, &Vars::example());
        assert_eq!(rendered.subject, "Reminder: invoice F-1001 from Proveedora Norte");
        assert_eq!(
            rendered.text,
            "Hello Ana López,\n\n\
             This is a friendly reminder that invoice F-1001 (installment 2) for 1,234.50 MXN was due on 2025-03-31.\n\n\
             You can pay online here: https://pay.example.com/i/F-1001\n\n\
             For a bank transfer, please use the reference REF-0042.\n\n\
             If you have already made this payment, please disregard this message.\n\n\
             Kind regards,\nProveedora Norte\ncobranza@example.com\n+52 55 1234 5678"
        );
        assert_eq!(
            rendered.sms,
            "Proveedora Norte: reminder, invoice F-1001 for 1,234.50 MXN was due on 2025-03-31. \
             Pay: https://pay.example.com/i/F-1001"
        );

        // Before the due date the same reminder speaks in the future tense.
        let upcoming = Vars { days_overdue: -3, ..minimal_vars() };
        let rendered = render_default(MessageKind::ReminderFriendly, Language::En, &upcoming);
        assert!(rendered.text.contains("invoice F-1001 for 1,234.50 MXN is due on 2025-03-31."), "{}", rendered.text);
    }

    #[test]
    fn spanish_sample_renders_invoice_and_amount() {
        let rendered = render_default(MessageKind::ReminderFirm, Language::Es, &Vars::example());
        assert_eq!(rendered.subject, "Factura vencida: F-1001 (1,234.50 MXN)");
        assert!(rendered.text.starts_with("Estimado(a) Ana López:\n\n"), "{}", rendered.text);
        assert!(
            rendered.text.contains(
                "Nuestros registros indican que la factura F-1001 (cuota 2) por 1,234.50 MXN, con vencimiento el \
                 2025-03-31, tiene 7 días de atraso."
            ),
            "{}",
            rendered.text
        );
        assert!(rendered.text.contains("use la referencia REF-0042."), "{}", rendered.text);

        let one_day = Vars { days_overdue: 1, ..minimal_vars() };
        let rendered = render_default(MessageKind::ReminderFirm, Language::Es, &one_day);
        assert_eq!(
            rendered.sms,
            "Proveedora Norte: la factura F-1001 (1,234.50 MXN) tiene 1 día de atraso. Le pedimos pagar a la brevedad."
        );
    }

    #[test]
    fn portuguese_sample_renders_invoice_and_amount() {
        let rendered = render_default(MessageKind::ReminderCollections, Language::Pt, &Vars::example());
        assert_eq!(rendered.subject, "Fatura F-1001 encaminhada para cobrança");
        assert!(
            rendered.text.contains(
                "Como a fatura F-1001 (parcela 2) no valor de 1,234.50 MXN, com vencimento em 2025-03-31, continua \
                 sem pagamento apesar dos nossos lembretes, a conta está sendo encaminhada para cobrança."
            ),
            "{}",
            rendered.text
        );

        let rendered = render_default(MessageKind::PaymentReceipt, Language::Pt, &Vars::example());
        assert!(
            rendered.text.contains("Recebemos o seu pagamento de 500.00 MXN em 2025-04-02 referente à fatura F-1001"),
            "{}",
            rendered.text
        );
    }

    #[test]
    fn printing_an_absent_value_is_an_error_not_a_blank() {
        let template = with_part("text", "Reason: {{ failure_reason }}");
        let err = render(&template, &minimal_vars()).unwrap_err();
        assert_eq!(err.field(), "text");
        assert!(err.reason().contains("not set"), "{err}");

        let guarded = with_part("text", "{% if failure_reason %}Reason: {{ failure_reason }}{% endif %}.");
        assert_eq!(render(&guarded, &minimal_vars()).unwrap().text, ".");
    }

    #[test]
    fn hostile_templates_never_panic() {
        // As deep as the length limit allows; each of these overflows an ordinary thread's stack.
        let budget = MAX_PART_CHARS - 10;
        let nested = format!("{{{{ {}customer_name{} }}}}", "(".repeat(400), ")".repeat(400));
        let chain = format!("{{{{ 1{} }}}}", "~1".repeat(budget / 2));
        let unary = format!("{{{{ {}1 }}}}", "-".repeat(budget));
        let filters = format!("{{{{ customer_name{} }}}}", "|d".repeat(budget / 2));
        let attrs = format!("{{{{ customer_name{} }}}}", ".a".repeat(budget / 2));
        let ifs = format!("{}x{}", "{% if true %}".repeat(1_000), "{% endif %}".repeat(1_000));
        let sources = [
            "",
            "{{",
            "}}",
            "{%",
            "{% %}",
            "{#",
            "{{ }}",
            "{{ 1/0 }}",
            "{{ 1 // 0 }}",
            "{{ days_overdue % 0 }}",
            "{{ customer_name[999] }}",
            "{{ customer_name.nope }}",
            "{{ customer_name() }}",
            "{{ customer_name.upper() }}",
            "{{ installment_number + customer_name }}",
            "{{ 99999999999999999999999999999999999999999 + 1 }}",
            "{{ -days_overdue }}",
            "{{ customer_name[::-1] }}",
            "{{ customer_name | default }}",
            "{{ none }}",
            "{% if %}",
            "{% endif %}",
            "{% raw %}",
            "{% elif x %}",
            "\u{0}{{ customer_name }}\u{fffd}",
            "{{ '\\u{d800}' }}",
            "{{ \"\\x\" }}",
            "{% if customer_name is nope %}{% endif %}",
            "{{ {'a': {'b': 1}}['a'] }}",
            &nested,
            &chain,
            &unary,
            &filters,
            &attrs,
            &ifs,
        ];
        for source in sources {
            for field in ["subject", "text", "html", "sms"] {
                let template = with_part(field, source);
                let _ = validate(&template);
                let _ = render(&template, &Vars::example());
                let _ = render(&template, &minimal_vars());
            }
        }
    }
}
