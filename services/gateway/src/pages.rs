//! Sign-in and sign-out for staff and portal contacts, through identity: password, then the
//! second factor when the tenant's policy asks for it. Every form carries the session's CSRF
//! token; sign-in attempts are limited per address; errors say what a person can do about them
//! and never which of email or password was wrong.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use cobro_proto::identity::v1 as pb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use minijinja::{Environment, context};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tonic::transport::Channel;

use crate::web::csrf;
use crate::web::i18n::{self, Language};
use crate::web::limits::{Allowance, RateLimiter};
use crate::web::session::{self, PendingEnrolment, SessionData, SessionId, SessionStore, SignedIn};

/// Sign-in attempts per address and window, before identity's own per-account lockout.
const SIGNIN_LIMIT: u32 = 20;
const SIGNIN_WINDOW: Duration = Duration::from_secs(300);

pub struct Pages {
    pub sessions: SessionStore,
    pub limiter: RateLimiter,
    pub identity: IdentityServiceClient<Channel>,
    /// The gateway's own token for identity's sign-in calls.
    pub edge: crate::web::edge::EdgeCredential,
    pub services: Services,
    /// Checks identity's tokens against its published keys, as every service does.
    pub verifier: Arc<cobro_kit::auth::Verifier>,
    pub templates: Environment<'static>,
    /// Served over TLS: cookies get `Secure`.
    pub secure: bool,
}

/// The services the gateway calls on a person's behalf (clients are cheap to clone).
#[derive(Clone)]
pub struct Services {
    pub invoicing: InvoicingServiceClient<Channel>,
    pub payments: PaymentsServiceClient<Channel>,
    pub notifications: NotificationsServiceClient<Channel>,
    pub reconciliation: ReconciliationServiceClient<Channel>,
}

impl Services {
    /// Clients that connect on first use, to the URLs of the gateway's configuration.
    pub fn connect_lazy(config: &crate::GatewayConfig) -> Result<Services, (String, tonic::transport::Error)> {
        let connect = |url: &str| {
            cobro_kit::grpc::connect_lazy(url, Duration::from_secs(30)).map_err(|source| (url.to_owned(), source))
        };
        Ok(Services {
            invoicing: InvoicingServiceClient::new(connect(&config.invoicing_url)?),
            payments: PaymentsServiceClient::new(connect(&config.payments_url)?),
            notifications: NotificationsServiceClient::new(connect(&config.notifications_url)?),
            reconciliation: ReconciliationServiceClient::new(connect(&config.reconciliation_url)?),
        })
    }
}

const TEMPLATES: [(&str, &str); 7] = [
    ("error.html", include_str!("../templates/error.html")),
    ("layout.html", include_str!("../templates/layout.html")),
    ("signin.html", include_str!("../templates/signin.html")),
    ("mfa.html", include_str!("../templates/mfa.html")),
    ("enrol.html", include_str!("../templates/enrol.html")),
    ("recovery.html", include_str!("../templates/recovery.html")),
    ("home.html", include_str!("../templates/home.html")),
];

pub fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    let all = TEMPLATES
        .iter()
        .chain(crate::portal::TEMPLATES)
        .chain(crate::console::TEMPLATES)
        .chain(crate::public::TEMPLATES);
    for &(name, source) in all {
        // The templates are part of the binary; one that does not parse fails the tests.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, name, "template does not parse");
        }
    }
    env
}

/// One stylesheet: the base, then the portal's and the console's own rules.
pub const STYLESHEET: &str = concat!(
    include_str!("../templates/cobro.css"),
    include_str!("../templates/portal.css"),
    include_str!("../templates/console.css")
);

/// The words of the pages, per language.
fn words(lang: Language) -> minijinja::Value {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    context! {
        language => pick("Idioma", "Language"),
        signin_title => pick("Iniciar sesión", "Sign in"),
        organisation => pick("Organización", "Organisation"),
        email => pick("Correo electrónico", "Email"),
        password => pick("Contraseña", "Password"),
        signin => pick("Entrar", "Sign in"),
        mfa_title => pick("Verificación en dos pasos", "Two-step verification"),
        mfa_help => pick(
            "Escribe el código de tu aplicación de autenticación o uno de tus códigos de recuperación.",
            "Enter the code from your authenticator app or one of your recovery codes."
        ),
        mfa_code => pick("Código", "Code"),
        continue => pick("Continuar", "Continue"),
        enrol_title => pick("Activa la verificación en dos pasos", "Turn on two-step verification"),
        enrol_help => pick(
            "Tu organización la exige. Escanea el código con tu aplicación de autenticación y escribe el código de seis dígitos que muestra.",
            "Your organisation requires it. Scan the code with your authenticator app and enter the six-digit code it shows."
        ),
        enrol_qr_alt => pick("Código QR para tu aplicación de autenticación", "QR code for your authenticator app"),
        enrol_manual => pick("¿No puedes escanearlo? Escribe esta clave:", "Cannot scan it? Type this key:"),
        recovery_title => pick("Guarda tus códigos de recuperación", "Save your recovery codes"),
        recovery_help => pick(
            "Cada código sirve una vez si pierdes tu teléfono. Guárdalos en un lugar seguro: no se volverán a mostrar.",
            "Each code works once if you lose your phone. Keep them somewhere safe: they will not be shown again."
        ),
        welcome => pick("Bienvenido", "Welcome"),
        signed_in_as => pick("Sesión iniciada como", "Signed in as"),
        signout => pick("Cerrar sesión", "Sign out"),
        skip => pick("Saltar al contenido", "Skip to content"),
        sections => pick("Secciones", "Sections"),
        account => pick("Mi cuenta", "My account"),
        back_home => pick("Volver al inicio", "Back to the start"),
        nav_dashboard => pick("Resumen", "Overview"),
        nav_console => pick("Consola", "Console"),
    }
}

/// What to tell a person when identity refuses, by its machine code.
fn refusal(lang: Language, code: &str) -> &'static str {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    match code {
        "account_locked" => pick(
            "La cuenta está bloqueada por demasiados intentos. Inténtalo más tarde o pide a un administrador que la desbloquee.",
            "The account is locked after too many attempts. Try again later or ask an administrator to unlock it.",
        ),
        "too_many_attempts" => {
            pick("Demasiados intentos. Espera unos minutos.", "Too many attempts. Wait a few minutes.")
        }
        "invalid_mfa_code" => pick("El código no es válido.", "That code is not valid."),
        "mfa_challenge_invalid" => {
            pick("La verificación caducó. Vuelve a iniciar sesión.", "The verification expired. Sign in again.")
        }
        "mfa_enrolment_required" => pick(
            "Tu organización exige verificación en dos pasos y tu cuenta aún no la tiene. Pide a un administrador que la configure.",
            "Your organisation requires two-step verification and your account has none yet. Ask an administrator to set it up.",
        ),
        "unavailable" | "internal" => pick(
            "No podemos iniciar sesión ahora. Inténtalo en un momento.",
            "Signing in is not possible right now. Try again in a moment.",
        ),
        _ => pick("Correo o contraseña incorrectos.", "Wrong email or password."),
    }
}

/// The machine code identity gave with a refusal (empty when the call never reached it).
pub(crate) fn refusal_code(status: &tonic::Status) -> String {
    cobro_kit::error::error_detail(status).map(|d| d.code).unwrap_or_default()
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The end user's address: the last entry of `X-Forwarded-For`, the one the ingress in front of
/// the gateway appended (earlier entries come from the client and could be anything), else
/// unknown (the limit then counts every such request together, which fails safe).
pub(crate) fn client_ip(headers: &HeaderMap) -> String {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or("unknown")
        .to_owned()
}

pub(crate) fn server_error() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "The service is unavailable; try again shortly.").into_response()
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct LangQuery {
    pub lang: Option<String>,
}

impl Pages {
    /// The request's session, or a new one (not yet stored).
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Result<(Option<SessionId>, SessionData), Response> {
        let language = i18n::Language::choose(
            cookie(headers, i18n::COOKIE),
            headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        );
        if let Some(id) = cookie(headers, session::COOKIE).and_then(SessionId::from_cookie) {
            match self.sessions.load(&id).await {
                Ok(Some(data)) => return Ok((Some(id), data)),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "session store unavailable");
                    return Err(server_error());
                }
            }
        }
        let mut data = SessionData::new(language);
        data.language_chosen = cookie(headers, i18n::COOKIE).and_then(Language::parse).is_some();
        Ok((None, data))
    }

    /// The session of a form post, refused (403) without a session or without the session's
    /// CSRF token.
    pub(crate) async fn form_session(
        &self,
        headers: &HeaderMap,
        csrf_token: &str,
    ) -> Result<(Option<SessionId>, SessionData), Response> {
        let (id, data) = self.session(headers).await?;
        if id.is_none() || !csrf::verify(&data.csrf, csrf_token) {
            return Err(forbidden());
        }
        Ok((id, data))
    }

    /// Store the session (under its id, or a new one) and answer with `response`, setting the
    /// cookie when the id is new.
    pub(crate) async fn respond(&self, id: Option<SessionId>, data: &SessionData, response: Response) -> Response {
        let (id, new) = match id {
            Some(id) => match self.sessions.save(&id, data).await {
                Ok(()) => (id, false),
                Err(_) => return server_error(),
            },
            None => match self.sessions.create(data).await {
                Ok(id) => (id, true),
                Err(_) => return server_error(),
            },
        };
        let mut response = response;
        if new && let Ok(value) = HeaderValue::from_str(&session::set_cookie(&id, self.secure)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    pub(crate) fn render(&self, name: &str, data: &SessionData, extra: minijinja::Value) -> Response {
        let lang = data.language;
        let page = self.templates.get_template(name).and_then(|t| {
            t.render(context! { lang => lang.code(), t => words(lang), csrf => data.csrf.clone(), ..extra })
        });
        match page {
            Ok(html) => Html(html).into_response(),
            Err(error) => {
                tracing::error!(%error, name, "page did not render");
                server_error()
            }
        }
    }

    pub(crate) fn with_language(data: &mut SessionData, query: &LangQuery) -> Option<HeaderValue> {
        let chosen = query.lang.as_deref().and_then(Language::parse)?;
        data.language = chosen;
        data.language_chosen = true;
        HeaderValue::from_str(&format!("{}={}; Path=/; SameSite=Lax; Max-Age=31536000", i18n::COOKIE, chosen.code()))
            .ok()
    }
}

/// A signed-in person's request: their session, the token the gateway calls the services with
/// on their behalf, and what the answer must carry back (a new language cookie).
pub struct Visit {
    pub id: SessionId,
    pub data: SessionData,
    pub person: SignedIn,
    token: SecretString,
    lang_cookie: Option<HeaderValue>,
}

impl Visit {
    pub fn lang(&self) -> Language {
        self.data.language
    }

    /// Staff (a tenant's user), as opposed to a portal contact.
    pub fn is_staff(&self) -> bool {
        self.person.kind == "user"
    }

    /// A request to a service, made with the person's own token: the service decides what
    /// they may see and do, exactly as for any other client.
    pub fn call<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token.expose_secret()).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Whether a submitted form carries this session's CSRF token.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        csrf::verify(&self.data.csrf, submitted)
    }
}

impl Pages {
    /// The signed-in person behind a request, or the answer to give instead: the sign-in page
    /// when nobody is signed in (or their session ended), 503 when Redis or identity is down.
    pub async fn visit(&self, headers: &HeaderMap, query: &LangQuery) -> Result<Visit, Response> {
        let (id, mut data) = self.session(headers).await?;
        let lang_cookie = Pages::with_language(&mut data, query);
        let Some(id) = id else { return Err(Redirect::to("/signin").into_response()) };
        let Some(token) = self.access_token(&id, &mut data).await? else {
            return Err(Redirect::to("/signin").into_response());
        };
        let Some(person) = data.signed_in.clone() else { return Err(Redirect::to("/signin").into_response()) };
        Ok(Visit { id, data, person, token, lang_cookie })
    }

    /// `visit` for a form post: also refuses (403) a form without this session's CSRF token.
    pub async fn visit_form(&self, headers: &HeaderMap, csrf_token: &str) -> Result<Visit, Response> {
        let visit = self.visit(headers, &LangQuery::default()).await?;
        if !visit.csrf_ok(csrf_token) {
            return Err(forbidden());
        }
        Ok(visit)
    }

    /// Render a page for a signed-in person: the template gets `lang`, `t` (the shared words),
    /// `csrf`, `staff` and `person` besides `extra`.
    pub fn page(&self, visit: &Visit, name: &str, extra: minijinja::Value) -> Response {
        self.render(
            name,
            &visit.data,
            context! { staff => visit.is_staff(), person => visit.person.subject.clone(), ..extra },
        )
    }

    /// The answer to a signed-in request: the session saved (its idle clock restarts) and the
    /// language cookie set when the person switched.
    pub async fn finish(&self, visit: Visit, response: Response) -> Response {
        let mut response = response;
        if let Some(value) = visit.lang_cookie.clone() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        if self.sessions.save(&visit.id, &visit.data).await.is_err() {
            return server_error();
        }
        response
    }

    /// What a person sees when a service refuses: not found (also for another customer's or
    /// tenant's ids), not allowed, or unavailable. Invalid input is for the form itself to show.
    pub fn failure(&self, visit: &Visit, status: &tonic::Status) -> Response {
        let lang = visit.lang();
        let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
        let (code, message) = match status.code() {
            tonic::Code::NotFound => {
                (StatusCode::NOT_FOUND, pick("No encontramos lo que buscas.", "We could not find that."))
            }
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                (StatusCode::FORBIDDEN, pick("No tienes permiso para esto.", "You are not allowed to do that."))
            }
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => {
                (StatusCode::UNPROCESSABLE_ENTITY, pick("No se pudo hacer:", "That could not be done:"))
            }
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                pick(
                    "El servicio no está disponible. Inténtalo en un momento.",
                    "The service is unavailable. Try again in a moment.",
                ),
            ),
        };
        // A refusal's message names the field and the rule; it never carries internals.
        let detail = if code == StatusCode::UNPROCESSABLE_ENTITY { status.message().to_owned() } else { String::new() };
        let page = self.page(visit, "error.html", context! { title => "Cobro", message => message, detail => detail });
        (code, page).into_response()
    }
}

/// The message to show beside a form when a service refused its input: the service's own
/// words, which name the field (`amount: must be positive`).
pub fn refusal_message(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => {
            status.message().to_owned()
        }
        _ => String::new(),
    }
}

/// How long before its expiry an access token is renewed.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::seconds(60);

impl Pages {
    /// The signed-in person's access token, renewed with the refresh token when it is about to
    /// expire. `None` when nobody is signed in or identity no longer honours the session (signed
    /// out elsewhere, refresh token revoked or reused): the session then ends here too.
    pub async fn access_token(&self, id: &SessionId, data: &mut SessionData) -> Result<Option<SecretString>, Response> {
        let Some(person) = data.signed_in.clone() else { return Ok(None) };
        if person.access_expires_at > Utc::now() + RENEW_BEFORE {
            return Ok(Some(person.access_token));
        }
        let request = pb::RefreshSessionRequest { refresh_token: person.refresh_token.expose_secret().to_owned() };
        let renewed = match self.identity.clone().refresh_session(request).await {
            Ok(session) => self.signed_in(session.into_inner()).await,
            Err(status) => {
                let code = refusal_code(&status);
                if code == "unavailable" || code == "internal" || code.is_empty() {
                    return Err(server_error());
                }
                None
            }
        };
        let Some(renewed) = renewed else {
            data.signed_in = None;
            self.sessions.destroy(id).await.map_err(|_| server_error())?;
            return Ok(None);
        };
        let token = renewed.access_token.clone();
        data.signed_in = Some(renewed);
        self.sessions.save(id, data).await.map_err(|_| server_error())?;
        Ok(Some(token))
    }
}

/// Who is signed in, the language switch and sign-out.
pub async fn account(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let visit = match p.visit(&headers, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let page = p.page(&visit, "home.html", context! { title => "Cobro", subject => visit.person.subject.clone() });
    p.finish(visit, page).await
}

/// The landing page: staff go to the console, portal contacts to the portal.
pub async fn home(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let visit = match p.visit(&headers, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let to = if visit.is_staff() { "/console" } else { "/portal" };
    p.finish(visit, Redirect::to(to).into_response()).await
}

pub async fn signin_form(State(p): State<Arc<Pages>>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let (id, mut data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lang_cookie = Pages::with_language(&mut data, &q);
    let title = words(data.language).get_attr("signin_title").unwrap_or_default();
    let mut response =
        p.render("signin.html", &data, context! { title => title, tenant => "", email => "", error => "" });
    if let Some(value) = lang_cookie {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    p.respond(id, &data, response).await
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(crate) fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "The form expired or did not come from this site; reload the page and try again.")
        .into_response()
}

fn timestamp(t: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, 0)).unwrap_or_else(Utc::now)
}

impl Pages {
    /// The session as identity gave it, its token checked, for the gateway's calls on the
    /// person's behalf.
    async fn signed_in(&self, session: pb::Session) -> Option<SignedIn> {
        let access = session.access?;
        let principal = self.verifier.verify(&access.access_token).await.ok()?;
        Some(SignedIn {
            tenant_id: principal.tenant_id,
            subject: principal.subject.clone(),
            kind: principal.kind.as_str().to_owned(),
            customer_id: principal.customer_id,
            access_token: SecretString::from(access.access_token),
            refresh_token: SecretString::from(session.refresh_token),
            access_expires_at: timestamp(access.expires_at),
        })
    }
}

impl Pages {
    /// The language a portal contact asked to be written to in (their contact record at
    /// invoicing), for people who have not picked one with the switch.
    async fn contact_language(&self, person: &SignedIn, email: &str) -> Option<Language> {
        let customer_id = person.customer_id?;
        let mut request = tonic::Request::new(cobro_proto::invoicing::v1::GetCustomerRequest {
            id: cobro_kit::ids::format("cus", customer_id),
        });
        let bearer = format!("Bearer {}", person.access_token.expose_secret()).parse().ok()?;
        request.metadata_mut().insert("authorization", bearer);
        let customer = self.services.invoicing.clone().get_customer(request).await.ok()?.into_inner();
        let contact = customer.contacts.iter().find(|c| c.email.eq_ignore_ascii_case(email))?;
        Language::parse(&contact.language)
    }

    async fn start(&self, id: Option<SessionId>, data: SessionData, session: pb::Session) -> Response {
        self.start_with(id, data, session, None).await
    }

    /// Sign in with `session`; answer with `page` (rendered with the new session's CSRF token)
    /// or a redirect to the landing page.
    async fn start_with(
        &self,
        id: Option<SessionId>,
        mut data: SessionData,
        session: pb::Session,
        page: Option<(&str, minijinja::Value)>,
    ) -> Response {
        let email = session.user.as_ref().map(|u| u.email.clone()).unwrap_or_default();
        let Some(person) = self.signed_in(session).await else { return server_error() };
        if !data.language_chosen
            && let Some(language) = self.contact_language(&person, &email).await
        {
            data.language = language;
        }
        data.signed_in = Some(person);
        data.mfa_challenge = None;
        data.enrolment = None;
        data.csrf = csrf::new_token();
        // A new id on sign-in: an id planted before it is worth nothing.
        let rotated = match id {
            Some(old) => self.sessions.rotate(&old, &data).await,
            None => self.sessions.create(&data).await,
        };
        let Ok(new) = rotated else { return server_error() };
        let mut response = match page {
            Some((name, extra)) => self.render(name, &data, extra),
            None => Redirect::to("/").into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&new, self.secure)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }
}

pub async fn signin(State(p): State<Arc<Pages>>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let (id, mut data) = match p.form_session(&headers, &form.csrf_token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ip = client_ip(&headers);
    match p.limiter.hit("signin", &ip, SIGNIN_LIMIT, SIGNIN_WINDOW).await {
        Ok(Allowance::Allowed) => {}
        Ok(Allowance::Limited { .. }) => {
            let page = p.render(
                "signin.html",
                &data,
                context! { title => "Cobro", tenant => form.tenant, email => form.email,
                error => refusal(data.language, "too_many_attempts") },
            );
            return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
        }
        // A limiter that cannot count lets no guess through.
        Err(_) => return server_error(),
    }
    let request = pb::LoginRequest {
        tenant: form.tenant.trim().to_owned(),
        email: form.email.trim().to_owned(),
        password: form.password,
        client_ip: ip,
    };
    let request = p.edge.request(&p.identity, request).await;
    let answer = p.identity.clone().login(request).await;
    match answer.map(|r| r.into_inner().result) {
        Ok(Some(pb::login_response::Result::Session(session))) => p.start(id, data, session).await,
        Ok(Some(pb::login_response::Result::MfaChallenge(challenge))) => {
            data.mfa_challenge = Some(SecretString::from(challenge.challenge_token));
            let next = if challenge.enrolment_required { "/signin/enrol" } else { "/signin/mfa" };
            p.respond(id, &data, Redirect::to(next).into_response()).await
        }
        Ok(None) => server_error(),
        Err(status) => {
            let code = refusal_code(&status);
            let page = p.render(
                "signin.html",
                &data,
                context! { title => "Cobro", tenant => form.tenant, email => form.email,
                error => refusal(data.language, &code) },
            );
            let status_code = if code == "unavailable" || code == "internal" || code.is_empty() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            p.respond(id, &data, (status_code, page).into_response()).await
        }
    }
}

pub async fn mfa_form(State(p): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    let (id, data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if data.mfa_challenge.is_none() {
        return Redirect::to("/signin").into_response();
    }
    let page = p.render("mfa.html", &data, context! { title => "Cobro", error => "" });
    p.respond(id, &data, page).await
}

#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

pub async fn mfa(State(p): State<Arc<Pages>>, headers: HeaderMap, Form(form): Form<MfaForm>) -> Response {
    let (id, data) = match p.form_session(&headers, &form.csrf_token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(challenge) = data.mfa_challenge.clone() else { return Redirect::to("/signin").into_response() };
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    // Six digits are a TOTP code; anything else is tried as a recovery code.
    let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        pb::complete_mfa_request::Factor::TotpCode(code)
    } else {
        pb::complete_mfa_request::Factor::RecoveryCode(code)
    };
    let request = pb::CompleteMfaRequest {
        challenge_token: challenge.expose_secret().to_owned(),
        factor: Some(factor),
        client_ip: client_ip(&headers),
    };
    let request = p.edge.request(&p.identity, request).await;
    match p.identity.clone().complete_mfa(request).await {
        Ok(answer) => match answer.into_inner().session {
            Some(session) => p.start(id, data, session).await,
            None => server_error(),
        },
        Err(status) => {
            let code = refusal_code(&status);
            let page =
                p.render("mfa.html", &data, context! { title => "Cobro", error => refusal(data.language, &code) });
            p.respond(id, &data, (StatusCode::UNAUTHORIZED, page).into_response()).await
        }
    }
}

/// The second factor's enrolment during sign-in, when the tenant requires one and the account
/// has none: identity's QR code and key, then the first code, then the recovery codes, once.
pub async fn enrol_form(State(p): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    let (id, data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    p.enrol_page(id, data, "").await
}

impl Pages {
    async fn enrol_page(&self, id: Option<SessionId>, mut data: SessionData, error: &str) -> Response {
        let Some(challenge) = data.mfa_challenge.clone() else { return Redirect::to("/signin").into_response() };
        let request = pb::BeginTotpEnrolmentRequest {
            challenge_token: challenge.expose_secret().to_owned(),
            current_password: String::new(),
        };
        let enrolment = match data.enrolment.clone() {
            Some(pending) => pending,
            None => match self.identity.clone().begin_totp_enrolment(request).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    PendingEnrolment { secret: SecretString::from(answer.secret), qr_svg: answer.qr_svg }
                }
                Err(status) => {
                    let code = refusal_code(&status);
                    let page = self.render(
                    "signin.html",
                    &data,
                    context! { title => "Cobro", tenant => "", email => "", error => refusal(data.language, &code) },
                );
                    return self.respond(id, &data, (StatusCode::UNAUTHORIZED, page).into_response()).await;
                }
            },
        };
        data.enrolment = Some(enrolment.clone());
        use base64::Engine;
        let qr = format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(enrolment.qr_svg.as_bytes())
        );
        let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        let page = self.render(
            "enrol.html",
            &data,
            context! { title => "Cobro", qr => qr, secret => enrolment.secret.expose_secret(), error => error },
        );
        self.respond(id, &data, (status, page).into_response()).await
    }
}

pub async fn enrol(State(p): State<Arc<Pages>>, headers: HeaderMap, Form(form): Form<MfaForm>) -> Response {
    let (id, data) = match p.form_session(&headers, &form.csrf_token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(challenge) = data.mfa_challenge.clone() else { return Redirect::to("/signin").into_response() };
    let request = pb::ConfirmTotpEnrolmentRequest {
        challenge_token: challenge.expose_secret().to_owned(),
        code: form.code.chars().filter(|c| !c.is_whitespace()).collect(),
        client_ip: client_ip(&headers),
    };
    let request = p.edge.request(&p.identity, request).await;
    match p.identity.clone().confirm_totp_enrolment(request).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            let Some(session) = answer.session else { return server_error() };
            let codes = answer.recovery_codes;
            p.start_with(id, data, session, Some(("recovery.html", context! { title => "Cobro", codes => codes })))
                .await
        }
        Err(status) => {
            let code = refusal_code(&status);
            let message = refusal(data.language, &code);
            p.enrol_page(id, data, message).await
        }
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn signout(State(p): State<Arc<Pages>>, headers: HeaderMap, Form(form): Form<SignOutForm>) -> Response {
    let (id, data) = match p.session(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = id else { return Redirect::to("/signin").into_response() };
    if !csrf::verify(&data.csrf, &form.csrf_token) {
        return forbidden();
    }
    if let Some(person) = &data.signed_in {
        let request = pb::LogoutRequest { refresh_token: person.refresh_token.expose_secret().to_owned() };
        if let Err(status) = p.identity.clone().logout(request).await {
            tracing::warn!(code = ?status.code(), "identity did not end the session; it ends with its refresh token");
        }
    }
    if p.sessions.destroy(&id).await.is_err() {
        return server_error();
    }
    let mut response = Redirect::to("/signin").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(p.secure)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_the_one_the_ingress_appended() {
        let mut headers = HeaderMap::new();
        assert_eq!(client_ip(&headers), "unknown");
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9, 198.51.100.7"));
        assert_eq!(client_ip(&headers), "198.51.100.7", "a client cannot pick its own address");
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7, not-an-ip"));
        assert_eq!(client_ip(&headers), "unknown");
    }

    #[test]
    fn every_page_renders_in_both_languages() {
        let mut check = Environment::new();
        for (name, source) in TEMPLATES {
            check.add_template(name, source).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        let env = templates();
        for lang in [Language::Es, Language::En] {
            for name in ["signin.html", "mfa.html", "enrol.html", "recovery.html", "home.html", "error.html"] {
                let html = env
                    .get_template(name)
                    .and_then(|t| {
                        t.render(context! { lang => lang.code(), t => words(lang), csrf => "tok", title => "Cobro",
                        tenant => "", email => "", error => "", subject => "usr_1",
                        qr => "data:image/svg+xml;base64,", secret => "ABC", codes => vec!["abcd-efgh"] })
                    })
                    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                // Every page with a form carries the CSRF token; the recovery codes page has none.
                let has_form = !matches!(name, "recovery.html" | "error.html");
                assert_eq!(html.contains("name=\"csrf_token\" value=\"tok\""), has_form, "{name}");
                assert!(name != "recovery.html" || html.contains("abcd-efgh"));
            }
        }
    }
}
