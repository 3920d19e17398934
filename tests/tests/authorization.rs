//! Who may call what. Every RPC of every Cobro gRPC service is called by every kind of caller:
//! each staff role, a portal contact, an API key, a service (payments' own credential), the
//! gateway's edge credential (no tenant, no permission) and nobody at all. Each answer must be
//! what the permission table below says: allowed (anything but PermissionDenied or a refused
//! token), PermissionDenied, or Unauthenticated for a call without a token. The table is the
//! documented contract (`docs/*.md`, the protos' comments and identity's role table), written
//! here as data; every method the services' descriptors declare must have a row, so a method
//! added without deciding who may call it fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Instant;

use cobro_e2e::platform::{PASSWORD, Platform, Tenant, code_at};
use cobro_identity::domain::totp;
use cobro_proto::identity::v1 as idpb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

// --- the permission table ---

/// One way to be let in.
#[derive(Debug, Clone, Copy)]
enum Grant {
    /// Any caller holding the permission (a staff role's, an API key's scope, a service's, a
    /// portal contact's `portal:*`).
    Perm(&'static str),
    /// A staff user (not an API key or a service) holding the permission.
    Staff(&'static str),
    /// A staff user or an API key holding the permission.
    StaffOrKey(&'static str),
    /// That Cobro service, by its own credential (`svc`); the platform operator is `operator`.
    Service(&'static str),
}

/// Who may call a method.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// No token needed: the credential, if any, is in the request.
    Public,
    /// Any valid token.
    Authenticated,
    /// A person's own session: a staff user or a portal contact, never a key or a service.
    Own,
    /// Any one of these.
    AnyOf(&'static [Grant]),
}

use Grant::{Perm, Service, Staff, StaffOrKey};
use Rule::{AnyOf, Authenticated, Own, Public};

const OPERATOR: &[Grant] = &[Service("operator")];

/// Every method of every service, and who may call it.
const TABLE: &[(&str, &[(&str, Rule)])] = &[
    (
        // docs/identity.md and identity.proto.
        "cobro.identity.v1.IdentityService",
        &[
            ("GetJwks", Public),
            ("Login", Public),
            ("CompleteMfa", Public),
            ("RefreshSession", Public),
            ("Logout", Public),
            ("ExchangeApiKey", Public),
            ("ExchangeClientCredentials", Public),
            // Public only with an enrolment challenge in the request; without one (as here) they
            // act for the caller's own session.
            ("BeginTotpEnrolment", Own),
            ("ConfirmTotpEnrolment", Own),
            ("LogoutEverywhere", Own),
            ("RemoveTotp", Own),
            ("RegenerateRecoveryCodes", Own),
            ("ChangePassword", Own),
            ("BootstrapTenant", AnyOf(OPERATOR)),
            ("GetTenant", Authenticated),
            ("UpdateTenant", AnyOf(&[Perm("tenant:manage")])),
            ("ListRoles", Authenticated),
            ("CreateUser", AnyOf(&[Perm("users:manage")])),
            ("CreateContact", AnyOf(&[Perm("users:manage")])),
            ("GetUser", AnyOf(&[Perm("users:read"), Perm("users:manage")])),
            ("ListUsers", AnyOf(&[Perm("users:read"), Perm("users:manage")])),
            ("SetUserRole", AnyOf(&[Perm("users:manage")])),
            ("DisableUser", AnyOf(&[Perm("users:manage")])),
            ("UnlockUser", AnyOf(&[Perm("users:manage")])),
            ("ResetUserMfa", AnyOf(&[Perm("users:manage")])),
            // "Only staff users create them."
            ("CreateApiKey", AnyOf(&[Staff("api_keys:manage")])),
            ("ListApiKeys", AnyOf(&[Perm("api_keys:manage")])),
            ("RevokeApiKey", AnyOf(&[Perm("api_keys:manage")])),
            ("ListAuditEvents", AnyOf(&[Perm("audit:read")])),
        ],
    ),
    (
        // docs/vault.md, "Calls and who may make them".
        "cobro.vault.v1.VaultService",
        &[
            ("Tokenize", AnyOf(&[Service("payments"), Staff("payments:write"), Perm("portal:pay")])),
            ("Detokenize", AnyOf(&[Service("payments")])),
            ("GetTokenMetadata", AnyOf(&[Service("payments"), StaffOrKey("payments:read"), Perm("portal:read")])),
            ("DeleteToken", AnyOf(&[Service("payments"), Staff("payments:write"), Perm("portal:pay")])),
            ("RotateKek", AnyOf(OPERATOR)),
            ("GetKeyStatus", AnyOf(OPERATOR)),
        ],
    ),
    (
        // docs/invoicing.md "Access", "Collections", and invoicing.proto.
        "cobro.invoicing.v1.InvoicingService",
        &[
            ("UpsertCustomer", AnyOf(&[Perm("customers:write")])),
            ("GetCustomer", AnyOf(&[Perm("customers:read"), Perm("portal:read")])),
            ("ListCustomers", AnyOf(&[Perm("customers:read")])),
            ("CreateInvoice", AnyOf(&[Perm("invoices:write")])),
            ("GetInvoice", AnyOf(&[Perm("invoices:read"), Perm("portal:read")])),
            ("ListInvoices", AnyOf(&[Perm("invoices:read"), Perm("portal:read")])),
            ("IssueInvoice", AnyOf(&[Perm("invoices:write")])),
            ("VoidInvoice", AnyOf(&[Perm("invoices:write")])),
            ("MarkUncollectible", AnyOf(&[Perm("invoices:write")])),
            ("SetInstallmentPlan", AnyOf(&[Perm("invoices:write")])),
            ("IssueCreditNote", AnyOf(&[Perm("invoices:write")])),
            ("ApplyPayment", AnyOf(&[Perm("payments:write"), Perm("invoices:write")])),
            ("ApplyCustomerCredit", AnyOf(&[Perm("payments:write"), Perm("invoices:write")])),
            ("CreateRecurringInvoice", AnyOf(&[Perm("invoices:write")])),
            // "A portal contact (for their own customer) or staff proposes."
            ("RequestHardship", AnyOf(&[Perm("invoices:write"), Perm("portal:pay")])),
            ("ResolveHardship", AnyOf(&[Perm("invoices:write")])),
            ("OpenDispute", AnyOf(&[Perm("invoices:write"), Perm("portal:pay")])),
            ("ResolveDispute", AnyOf(&[Perm("invoices:write")])),
            // "Needs invoices:read, contacts get PERMISSION_DENIED."
            ("ListRequests", AnyOf(&[Perm("invoices:read")])),
            // The docs name no permission for statements; they are the customer's account.
            ("GetStatement", AnyOf(&[Perm("customers:read"), Perm("portal:read")])),
            ("GetStatementPdf", AnyOf(&[Perm("customers:read"), Perm("portal:read")])),
            ("GetInvoicePdf", AnyOf(&[Perm("invoices:read"), Perm("portal:read")])),
            ("ImportInvoices", AnyOf(&[Perm("invoices:write")])),
            ("ListChanges", AnyOf(&[Perm("invoices:read")])),
            ("GetAgingReport", AnyOf(&[Perm("reports:read")])),
            ("GetCollectionForecast", AnyOf(&[Perm("reports:read")])),
            ("GetDso", AnyOf(&[Perm("reports:read")])),
            ("GetPaymentBehaviour", AnyOf(&[Perm("reports:read")])),
        ],
    ),
    (
        // docs/payments.md "Access": contacts may do for their own customer what payments:read
        // (portal:read) and payments:write (portal:pay) allow.
        "cobro.payments.v1.PaymentsService",
        &[
            ("CreatePaymentIntent", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("GetPaymentIntent", AnyOf(&[Perm("payments:read"), Perm("portal:read")])),
            ("ListPaymentIntents", AnyOf(&[Perm("payments:read"), Perm("portal:read")])),
            ("ConfirmPaymentIntent", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("CompletePaymentAction", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("CancelPaymentIntent", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("RefundPayment", AnyOf(&[Perm("payments:refund")])),
            ("HandleWebhook", Public),
            ("ConfirmBankTransfer", AnyOf(&[Service("reconciliation")])),
            ("SavePaymentMethod", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("ListPaymentMethods", AnyOf(&[Perm("payments:read"), Perm("portal:read")])),
            ("SetDefaultPaymentMethod", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("RemovePaymentMethod", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("EnableAutopay", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("DisableAutopay", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("CreateDirectDebitMandate", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            ("CreatePaymentLink", AnyOf(&[Perm("payments:write"), Perm("portal:pay")])),
            // A contact makes links for their customer but does not revoke them (the docs do not
            // say either way).
            ("RevokePaymentLink", AnyOf(&[Perm("payments:write")])),
            ("ResolvePaymentLink", Public),
            ("PayPaymentLink", Public),
            ("CompleteSandboxChallenge", Public),
            ("GetTransferInstructions", AnyOf(&[Perm("payments:read"), Perm("portal:read")])),
            // Which customer or invoice a reference belongs to: the tenant's books, not the
            // contact's own (the docs do not say).
            ("LookupReference", AnyOf(&[Perm("payments:read")])),
            // Settings and payouts are the tenant's, not a customer's: staff only.
            ("GetPaymentSettings", AnyOf(&[Perm("payments:read"), Perm("portal:read")])),
            ("UpdatePaymentSettings", AnyOf(&[Perm("payments:write")])),
            ("ImportSettlement", AnyOf(&[Perm("payments:write")])),
            ("ListPayouts", AnyOf(&[Perm("payments:read")])),
        ],
    ),
    (
        // docs/notifications.md "Access".
        "cobro.notifications.v1.NotificationsService",
        &[
            ("UpsertPolicy", AnyOf(&[Perm("notifications:manage")])),
            ("ListPolicies", AnyOf(&[Perm("notifications:read")])),
            ("PreviewSchedule", AnyOf(&[Perm("notifications:read")])),
            ("ListMessages", AnyOf(&[Perm("notifications:read")])),
            ("PauseReminders", AnyOf(&[Perm("notifications:manage")])),
            ("ResumeReminders", AnyOf(&[Perm("notifications:manage")])),
            ("SetOptOut", AnyOf(&[Perm("notifications:manage"), Perm("portal:read")])),
            ("SendTest", AnyOf(&[Perm("notifications:manage")])),
        ],
    ),
    (
        // docs/reconciliation.md: recon:read to look, recon:write to add bank accounts, CSV
        // mappings, settings and statements, recon:confirm to decide matches and resolve
        // discrepancies; portal contacts get nothing.
        "cobro.reconciliation.v1.ReconciliationService",
        &[
            ("CreateBankAccount", AnyOf(&[Perm("recon:write")])),
            ("ListBankAccounts", AnyOf(&[Perm("recon:read")])),
            ("SaveCsvMapping", AnyOf(&[Perm("recon:write")])),
            ("ImportStatement", AnyOf(&[Perm("recon:write")])),
            ("ListBankLines", AnyOf(&[Perm("recon:read")])),
            ("RunMatching", AnyOf(&[Perm("recon:write")])),
            ("ListMatches", AnyOf(&[Perm("recon:read")])),
            ("ConfirmMatch", AnyOf(&[Perm("recon:confirm")])),
            ("RejectMatch", AnyOf(&[Perm("recon:confirm")])),
            ("Unmatch", AnyOf(&[Perm("recon:confirm")])),
            ("ManualMatch", AnyOf(&[Perm("recon:confirm")])),
            ("ListDiscrepancies", AnyOf(&[Perm("recon:read")])),
            ("ResolveDiscrepancy", AnyOf(&[Perm("recon:confirm")])),
            ("GetSettings", AnyOf(&[Perm("recon:read")])),
            ("UpdateSettings", AnyOf(&[Perm("recon:write")])),
            ("ExportReport", AnyOf(&[Perm("recon:read")])),
        ],
    ),
];

/// Packages in the descriptor set that no service serves.
const NOT_SERVED: &[&str] = &["cobro.testing.v1."];

// --- who calls ---

/// Identity's role table (`services/identity/src/domain/roles.rs`, `docs/identity.md`), pinned
/// here so a role that quietly gains a permission fails the test instead of changing what it
/// expects; checked against `ListRoles`.
const OWNER: &[&str] = &[
    "api_keys:manage",
    "audit:read",
    "customers:read",
    "customers:write",
    "invoices:read",
    "invoices:write",
    "notifications:manage",
    "notifications:read",
    "payments:read",
    "payments:refund",
    "payments:write",
    "recon:confirm",
    "recon:read",
    "recon:write",
    "reports:read",
    "tenant:manage",
    "users:manage",
    "users:read",
];
const AR_CLERK: &[&str] = &[
    "customers:read",
    "customers:write",
    "invoices:read",
    "invoices:write",
    "notifications:manage",
    "notifications:read",
    "payments:read",
    "payments:write",
    "reports:read",
];
const TREASURER: &[&str] = &[
    "customers:read",
    "invoices:read",
    "payments:read",
    "payments:refund",
    "recon:confirm",
    "recon:read",
    "recon:write",
    "reports:read",
];
const VIEWER: &[&str] = &[
    "audit:read",
    "customers:read",
    "invoices:read",
    "notifications:read",
    "payments:read",
    "recon:read",
    "reports:read",
    "users:read",
];
const CONTACT: &[&str] = &["portal:pay", "portal:read"];
/// An integration's key: reads customers and payments, writes invoices but may not read them
/// (scopes are matched by exact name), and reads reminders.
const API_KEY_SCOPES: &[&str] = &["customers:read", "invoices:write", "notifications:read", "payments:read"];
/// Payments' service token (`roles.rs` `service_permissions`).
const PAYMENTS_SERVICE: &[&str] = &["customers:read", "invoices:read", "invoices:write"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Customer,
    ApiKey,
    /// A Cobro service's token for one tenant.
    Service(&'static str),
    /// The gateway's token for no tenant and with no permission: it says only that the edge is
    /// calling (docs/gateway.md), so it is none of the services the vault admits.
    Edge,
}

struct Caller {
    name: &'static str,
    /// None: no token at all.
    kind: Option<Kind>,
    permissions: &'static [&'static str],
    token: Option<String>,
}

impl Grant {
    fn admits(self, kind: Kind, permissions: &[&str]) -> bool {
        match self {
            Perm(p) => permissions.contains(&p),
            Staff(p) => kind == Kind::User && permissions.contains(&p),
            StaffOrKey(p) => matches!(kind, Kind::User | Kind::ApiKey) && permissions.contains(&p),
            Service(name) => kind == Kind::Service(name),
        }
    }
}

/// What a call should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Past authorization: a result, or a refusal of the request itself.
    Allowed,
    PermissionDenied,
    /// The bearer token was missing or refused.
    Unauthenticated,
}

impl Caller {
    fn expects(&self, rule: Rule) -> Outcome {
        let Some(kind) = self.kind else {
            return if matches!(rule, Public) { Outcome::Allowed } else { Outcome::Unauthenticated };
        };
        let allowed = match rule {
            Public | Authenticated => true,
            Own => matches!(kind, Kind::User | Kind::Customer),
            AnyOf(grants) => grants.iter().any(|g| g.admits(kind, self.permissions)),
        };
        if allowed { Outcome::Allowed } else { Outcome::PermissionDenied }
    }
}

/// What a call answered. Unauthenticated counts as a refused token only with the auth layer's
/// own code: a public method refusing the credential in its request (a wrong password, an
/// unknown API key) got past authorization.
fn outcome(answer: &Result<(), tonic::Status>) -> Outcome {
    match answer {
        Err(s) if s.code() == Code::PermissionDenied => Outcome::PermissionDenied,
        Err(s) if s.code() == Code::Unauthenticated && cobro_kit::error::error_code(s) == Some("unauthenticated") => {
            Outcome::Unauthenticated
        }
        _ => Outcome::Allowed,
    }
}

// --- calling any method by name ---

/// Passes encoded messages through unchanged, so one client calls every method: requests are
/// encoded with their generated types, answers are only inspected for their status.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len).to_vec()))
    }
}

#[derive(Debug, Clone)]
struct Method {
    service: String,
    name: String,
    client_streaming: bool,
    server_streaming: bool,
}

fn with_token<T>(request: &mut tonic::Request<T>, token: Option<&str>) {
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("an ascii token"));
    }
}

async fn call(channel: &Channel, method: &Method, body: Vec<u8>, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_str(&format!("/{}/{}", method.service, method.name)).expect("a method path");
    match (method.client_streaming, method.server_streaming) {
        (false, false) => {
            let mut request = tonic::Request::new(body);
            with_token(&mut request, token);
            grpc.unary::<_, Vec<u8>, _>(request, path, Raw).await.map(drop)
        }
        (true, false) => {
            let mut request = tonic::Request::new(tokio_stream::iter(vec![body]));
            with_token(&mut request, token);
            grpc.client_streaming::<_, Vec<u8>, Vec<u8>, _>(request, path, Raw).await.map(drop)
        }
        (false, true) => {
            let mut request = tonic::Request::new(body);
            with_token(&mut request, token);
            // A refusal may come as the stream's first item rather than with the headers.
            let mut stream = grpc.server_streaming::<_, Vec<u8>, _>(request, path, Raw).await?.into_inner();
            stream.message().await.map(drop)
        }
        (true, true) => {
            let mut request = tonic::Request::new(tokio_stream::iter(vec![body]));
            with_token(&mut request, token);
            let mut stream = grpc.streaming::<_, Vec<u8>, Vec<u8>, _>(request, path, Raw).await?.into_inner();
            stream.message().await.map(drop)
        }
    }
}

// --- the services' own descriptors ---

/// The few fields of `google.protobuf.FileDescriptorSet` this test reads.
#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorProto {
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceDescriptorProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MethodDescriptorProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bool, tag = "5")]
    client_streaming: bool,
    #[prost(bool, tag = "6")]
    server_streaming: bool,
}

/// Every method of every served service, as compiled into `cobro-proto`.
fn declared_methods() -> Vec<Method> {
    let set = FileDescriptorSet::decode(cobro_proto::FILE_DESCRIPTOR_SET).expect("cobro's descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        for service in file.service {
            let service_name = format!("{}.{}", file.package, service.name);
            if NOT_SERVED.iter().any(|prefix| service_name.starts_with(prefix)) {
                continue;
            }
            for m in service.method {
                methods.push(Method {
                    service: service_name.clone(),
                    name: m.name,
                    client_streaming: m.client_streaming,
                    server_streaming: m.server_streaming,
                });
            }
        }
    }
    methods
}

fn rule_of(service: &str, method: &str) -> Option<Rule> {
    TABLE
        .iter()
        .find(|(s, _)| *s == service)
        .and_then(|(_, methods)| methods.iter().find(|(m, _)| *m == method))
        .map(|(_, rule)| *rule)
}

#[test]
fn every_declared_method_has_a_row_in_the_permission_table() {
    let declared = declared_methods();
    let missing: Vec<String> = declared
        .iter()
        .filter(|m| rule_of(&m.service, &m.name).is_none())
        .map(|m| format!("{}/{}", m.service, m.name))
        .collect();
    assert!(missing.is_empty(), "methods without a row in the permission table: {missing:#?}");
    // And no row for a method that does not exist (a rename would leave one behind).
    let known: BTreeSet<(String, String)> = declared.iter().map(|m| (m.service.clone(), m.name.clone())).collect();
    let stale: Vec<String> = TABLE
        .iter()
        .flat_map(|(s, methods)| methods.iter().map(move |(m, _)| (s.to_string(), m.to_string())))
        .filter(|key| !known.contains(key))
        .map(|(s, m)| format!("{s}/{m}"))
        .collect();
    assert!(stale.is_empty(), "rows for methods no service declares: {stale:#?}");
    // Every row's permissions exist.
    let permissions: BTreeSet<&str> = OWNER.iter().chain(CONTACT).copied().collect();
    for (service, methods) in TABLE {
        for (method, rule) in *methods {
            if let AnyOf(grants) = rule {
                for grant in *grants {
                    if let Perm(p) | Staff(p) | StaffOrKey(p) = grant {
                        assert!(permissions.contains(p), "{service}/{method}: unknown permission {p}");
                    }
                }
            }
        }
    }
}

// --- signing everyone in ---

fn now_step() -> u64 {
    totp::time_step(u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970"))
}

fn access(session: Option<idpb::Session>) -> String {
    session.and_then(|s| s.access).expect("an access token").access_token
}

/// A staff user with `role`, signed in: the tenant requires a second factor, so the first
/// sign-in enrols an authenticator.
async fn staff(platform: &Platform, t: &Tenant, role: &str) -> String {
    let mut identity = platform.identity_client();
    let email = format!("{}@{}.example.com", role.replace('_', "-"), t.slug);
    identity
        .create_user(t.staff(idpb::CreateUserRequest {
            email: email.clone(),
            display_name: format!("Staff {role}"),
            role: role.into(),
            password: PASSWORD.into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("create the {role}: {e}"));
    let login = identity
        .login(idpb::LoginRequest {
            tenant: t.slug.clone(),
            email,
            password: PASSWORD.into(),
            client_ip: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("the {role} signs in: {e}"))
        .into_inner();
    let Some(idpb::login_response::Result::MfaChallenge(challenge)) = login.result else {
        panic!("the tenant requires a second factor of the {role}: {login:?}")
    };
    let begun = identity
        .begin_totp_enrolment(idpb::BeginTotpEnrolmentRequest {
            challenge_token: challenge.challenge_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("the {role} begins enrolment: {e}"))
        .into_inner();
    let confirmed = identity
        .confirm_totp_enrolment(idpb::ConfirmTotpEnrolmentRequest {
            challenge_token: challenge.challenge_token,
            code: code_at(&begun.secret, now_step()),
            client_ip: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("the {role} confirms enrolment: {e}"))
        .into_inner();
    access(confirmed.session)
}

async fn contact(platform: &Platform, t: &Tenant, email: &str) -> String {
    let login = platform
        .identity_client()
        .login(idpb::LoginRequest {
            tenant: t.slug.clone(),
            email: email.into(),
            password: PASSWORD.into(),
            client_ip: String::new(),
        })
        .await
        .expect("the contact signs in")
        .into_inner();
    match login.result {
        Some(idpb::login_response::Result::Session(session)) => access(Some(session)),
        other => panic!("a contact signs in with a password: {other:?}"),
    }
}

async fn api_key(platform: &Platform, t: &Tenant) -> String {
    let mut identity = platform.identity_client();
    let key = identity
        .create_api_key(t.staff(idpb::CreateApiKeyRequest {
            name: "Tienda en línea".into(),
            scopes: API_KEY_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
        }))
        .await
        .expect("an API key")
        .into_inner();
    identity
        .exchange_api_key(idpb::ExchangeApiKeyRequest { api_key: key.secret })
        .await
        .expect("the key's token")
        .into_inner()
        .access_token
}

/// A service's token from its client credentials; `tenant` empty for the gateway's edge token.
async fn service(platform: &Platform, client_id: &str, secret: &str, tenant: &str) -> String {
    platform
        .identity_client()
        .exchange_client_credentials(idpb::ExchangeClientCredentialsRequest {
            client_id: client_id.into(),
            client_secret: secret.into(),
            tenant_id: tenant.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{client_id}'s token: {e}"))
        .into_inner()
        .access_token
}

fn secret(s: Option<secrecy::SecretString>, whose: &str) -> String {
    secrecy::ExposeSecret::expose_secret(&s.unwrap_or_else(|| panic!("{whose}'s client secret"))).to_owned()
}

// --- requests ---

/// Real records of the tenant, so calls that look their record up reach the permission check.
struct Fixtures {
    customer: String,
    invoice: String,
    intent: String,
}

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

/// An id of the right shape that names nothing.
fn nothing(prefix: &str) -> String {
    cobro_kit::ids::format(prefix, uuid::Uuid::now_v7())
}

/// The request each method gets: empty (every field at its default) unless the method reads
/// its input, or looks its record up, before checking the caller's permission; those get a
/// valid request about a real record, so every caller reaches the check (checking that late
/// is a flaw of its own: a caller without the permission learns what is wrong with a request,
/// or whether a record exists). A caller who got
/// past the check is refused an empty request (InvalidArgument, NotFound, FailedPrecondition),
/// never PermissionDenied. Idempotency keys are one per caller and method: the stored answer
/// of one caller is never another's.
fn request(method: &Method, caller: &str, fx: &Fixtures) -> Vec<u8> {
    use cobro_e2e::platform::money;
    use cobro_proto::invoicing::v1 as invpb;
    use cobro_proto::payments::v1 as paypb;
    let key = format!("authz-{caller}-{}", method.name);
    match (method.service.as_str(), method.name.as_str()) {
        ("cobro.identity.v1.IdentityService", "ConfirmTotpEnrolment") => {
            idpb::ConfirmTotpEnrolmentRequest { code: "123456".into(), ..Default::default() }.encode_to_vec()
        }
        // Not the caller's own id: reading oneself needs no permission.
        ("cobro.identity.v1.IdentityService", "GetUser") => idpb::GetUserRequest { id: nothing("usr") }.encode_to_vec(),
        ("cobro.invoicing.v1.InvoicingService", "SetInstallmentPlan") => invpb::SetInstallmentPlanRequest {
            invoice_id: String::new(),
            plan: Some(invpb::set_installment_plan_request::Plan::Equal(invpb::EqualPlan::default())),
        }
        .encode_to_vec(),
        ("cobro.invoicing.v1.InvoicingService", "RequestHardship") => invpb::RequestHardshipRequest {
            invoice_id: fx.invoice.clone(),
            reason: "Flujo de caja".into(),
            installments: 3,
            first_date: day(30),
            note: String::new(),
        }
        .encode_to_vec(),
        ("cobro.invoicing.v1.InvoicingService", "OpenDispute") => {
            invpb::OpenDisputeRequest { invoice_id: fx.invoice.clone(), reason: "Material dañado".into() }
                .encode_to_vec()
        }
        ("cobro.payments.v1.PaymentsService", name) => match name {
            "CreatePaymentIntent" => paypb::CreatePaymentIntentRequest {
                idempotency_key: key,
                customer_id: fx.customer.clone(),
                amount: money("1.00", "MXN"),
                ..Default::default()
            }
            .encode_to_vec(),
            "GetPaymentIntent" => paypb::GetPaymentIntentRequest { id: fx.intent.clone() }.encode_to_vec(),
            "ConfirmPaymentIntent" => paypb::ConfirmPaymentIntentRequest {
                idempotency_key: key,
                id: fx.intent.clone(),
                method: Some(paypb::confirm_payment_intent_request::Method::BankTransfer(true)),
                ..Default::default()
            }
            .encode_to_vec(),
            "CompletePaymentAction" => paypb::CompletePaymentActionRequest { id: fx.intent.clone() }.encode_to_vec(),
            "CancelPaymentIntent" => {
                paypb::CancelPaymentIntentRequest { idempotency_key: key, id: fx.intent.clone() }.encode_to_vec()
            }
            "RefundPayment" => paypb::RefundPaymentRequest {
                idempotency_key: key,
                payment_id: fx.intent.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "ConfirmBankTransfer" => {
                paypb::ConfirmBankTransferRequest { idempotency_key: key, ..Default::default() }.encode_to_vec()
            }
            "SavePaymentMethod" => paypb::SavePaymentMethodRequest {
                idempotency_key: key,
                customer_id: fx.customer.clone(),
                source: Some(paypb::save_payment_method_request::Source::Card(paypb::NewCard {
                    pan: "4242424242424242".into(),
                    exp_month: 12,
                    exp_year: 2031,
                    holder_name: "Marta Ruiz".into(),
                })),
                make_default: false,
            }
            .encode_to_vec(),
            "ListPaymentMethods" => {
                paypb::ListPaymentMethodsRequest { customer_id: fx.customer.clone() }.encode_to_vec()
            }
            "SetDefaultPaymentMethod" => paypb::SetDefaultPaymentMethodRequest {
                customer_id: fx.customer.clone(),
                payment_method_id: nothing("pm"),
            }
            .encode_to_vec(),
            "RemovePaymentMethod" => {
                paypb::RemovePaymentMethodRequest { customer_id: fx.customer.clone(), payment_method_id: nothing("pm") }
                    .encode_to_vec()
            }
            "EnableAutopay" => paypb::EnableAutopayRequest {
                customer_id: fx.customer.clone(),
                payment_method_id: nothing("pm"),
                consent_text: "Autorizo el cargo automático".into(),
                consent_ip: "203.0.113.7".into(),
            }
            .encode_to_vec(),
            "DisableAutopay" => paypb::DisableAutopayRequest { customer_id: fx.customer.clone() }.encode_to_vec(),
            "CreateDirectDebitMandate" => {
                paypb::CreateDirectDebitMandateRequest { customer_id: fx.customer.clone(), ..Default::default() }
                    .encode_to_vec()
            }
            "CreatePaymentLink" => paypb::CreatePaymentLinkRequest {
                idempotency_key: key,
                customer_id: fx.customer.clone(),
                amount: money("1.00", "MXN"),
                ..Default::default()
            }
            .encode_to_vec(),
            "RevokePaymentLink" => paypb::RevokePaymentLinkRequest { id: nothing("plk") }.encode_to_vec(),
            "GetTransferInstructions" => {
                paypb::GetTransferInstructionsRequest { customer_id: fx.customer.clone(), invoice_id: String::new() }
                    .encode_to_vec()
            }
            "PayPaymentLink" => {
                paypb::PayPaymentLinkRequest { idempotency_key: key, ..Default::default() }.encode_to_vec()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Answers that differ from the table today, each a finding: the method, the caller, and the
/// code it answers (`Ok` for a success). The test holds them exactly: a new difference fails
/// it, and so does one that went away (remove it here).
const KNOWN: &[(&str, &str, Code)] = &[
    // The record is looked up in the caller's tenant before the permission is checked, and the
    // edge token has no tenant: NotFound instead of PermissionDenied.
    ("cobro.invoicing.v1.InvoicingService/RequestHardship", "gateway_edge", Code::NotFound),
    ("cobro.invoicing.v1.InvoicingService/OpenDispute", "gateway_edge", Code::NotFound),
    ("cobro.payments.v1.PaymentsService/GetPaymentIntent", "gateway_edge", Code::NotFound),
    ("cobro.payments.v1.PaymentsService/CompletePaymentAction", "gateway_edge", Code::NotFound),
];

// --- the matrix ---

/// The tenant's records the requests name: the contact's customer, an open invoice of it and a
/// payment of it.
async fn fixtures(platform: &Platform, t: &Tenant, customer: &cobro_e2e::platform::Customer) -> Fixtures {
    use cobro_proto::payments::v1 as paypb;
    let invoice = platform.open_invoice(t, customer, "1000.00").await;
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    // Payments learns of the customer from invoicing's events.
    let mut intent = None;
    for attempt in 0..120 {
        let answer = payments
            .clone()
            .create_payment_intent(t.staff(paypb::CreatePaymentIntentRequest {
                idempotency_key: format!("authz-fixture-{attempt}"),
                customer_id: customer.id.clone(),
                amount: cobro_e2e::platform::money("10.00", "MXN"),
                ..Default::default()
            }))
            .await;
        match answer {
            Ok(made) => {
                intent = Some(made.into_inner().id);
                break;
            }
            Err(e) if attempt == 119 => panic!("a payment of the customer: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    Fixtures { customer: customer.id.clone(), invoice, intent: intent.expect("a payment") }
}

#[tokio::test]
async fn every_method_answers_each_caller_as_the_permission_table_says() {
    let started = Instant::now();
    let platform = Platform::start().await;
    let t = platform.tenant().await;
    let customer = platform.customer(&t, "Ferretería La Paz S.A. de C.V.", "es").await;

    let payments_secret = secret(
        platform
            .settings
            .section::<cobro_payments::config::PaymentsConfig>("payments")
            .expect("payments")
            .client_secret,
        "payments",
    );
    let gateway_config =
        platform.settings.section::<cobro_gateway::GatewayConfig>("gateway").expect("gateway settings");
    let gateway_secret = secret(gateway_config.client_secret, "the gateway");
    let vault_url =
        platform.settings.section::<cobro_payments::config::PaymentsConfig>("payments").expect("payments").vault_url;
    let vault = cobro_kit::grpc::connect(&vault_url, std::time::Duration::from_secs(30)).await.expect("the vault");
    let tenant_id = cobro_kit::ids::format("ten", t.id);
    let fx = fixtures(&platform, &t, &customer).await;

    let callers = vec![
        Caller { name: "owner", kind: Some(Kind::User), permissions: OWNER, token: Some(t.token.clone()) },
        Caller {
            name: "admin",
            kind: Some(Kind::User),
            permissions: OWNER,
            token: Some(staff(&platform, &t, "admin").await),
        },
        Caller {
            name: "ar_clerk",
            kind: Some(Kind::User),
            permissions: AR_CLERK,
            token: Some(staff(&platform, &t, "ar_clerk").await),
        },
        Caller {
            name: "treasurer",
            kind: Some(Kind::User),
            permissions: TREASURER,
            token: Some(staff(&platform, &t, "treasurer").await),
        },
        Caller {
            name: "viewer",
            kind: Some(Kind::User),
            permissions: VIEWER,
            token: Some(staff(&platform, &t, "viewer").await),
        },
        Caller {
            name: "contact",
            kind: Some(Kind::Customer),
            permissions: CONTACT,
            token: Some(contact(&platform, &t, &customer.email).await),
        },
        Caller {
            name: "api_key",
            kind: Some(Kind::ApiKey),
            permissions: API_KEY_SCOPES,
            token: Some(api_key(&platform, &t).await),
        },
        Caller {
            name: "payments",
            kind: Some(Kind::Service("payments")),
            permissions: PAYMENTS_SERVICE,
            token: Some(service(&platform, "payments", &payments_secret, &tenant_id).await),
        },
        Caller {
            name: "gateway_edge",
            kind: Some(Kind::Edge),
            permissions: &[],
            token: Some(service(&platform, "gateway", &gateway_secret, "").await),
        },
        Caller { name: "nobody", kind: None, permissions: &[], token: None },
    ];

    // The roles this test expects are the ones identity hands out.
    let roles = platform
        .identity_client()
        .list_roles(t.staff(idpb::ListRolesRequest {}))
        .await
        .expect("the role table")
        .into_inner()
        .roles;
    let served: BTreeMap<String, Vec<String>> = roles.into_iter().map(|r| (r.name, r.permissions)).collect();
    for (role, expected) in
        [("owner", OWNER), ("admin", OWNER), ("ar_clerk", AR_CLERK), ("treasurer", TREASURER), ("viewer", VIEWER)]
    {
        let mut got = served.get(role).cloned().unwrap_or_default();
        got.sort();
        assert_eq!(got, expected, "identity's {role} role");
    }
    let signed_in = started.elapsed();

    let channel_of = |service: &str| -> &Channel {
        match service.split('.').nth(1) {
            Some("identity") => &platform.identity,
            Some("vault") => &vault,
            Some("invoicing") => &platform.invoicing,
            Some("payments") => &platform.payments,
            Some("notifications") => &platform.notifications,
            Some("reconciliation") => &platform.reconciliation,
            other => panic!("no channel for {service} ({other:?})"),
        }
    };

    let methods = declared_methods();
    let mut calls = 0;
    let mut wrong = Vec::new();
    let mut seen: BTreeSet<(String, &str)> = BTreeSet::new();
    for method in &methods {
        let Some(rule) = rule_of(&method.service, &method.name) else { continue };
        let path = format!("{}/{}", method.service, method.name);
        for caller in &callers {
            let body = request(method, caller.name, &fx);
            let answer = call(channel_of(&method.service), method, body, caller.token.as_deref()).await;
            calls += 1;
            let expected = caller.expects(rule);
            let got = outcome(&answer);
            if got == expected {
                continue;
            }
            let code = answer.as_ref().err().map_or(Code::Ok, tonic::Status::code);
            if KNOWN.contains(&(path.as_str(), caller.name, code)) {
                seen.insert((path.clone(), caller.name));
                continue;
            }
            let shown = match &answer {
                Ok(()) => "OK".to_owned(),
                Err(s) => format!("{:?} {}", s.code(), s.message()),
            };
            wrong.push(format!("{path} as {}: expected {expected:?}, got {shown}", caller.name));
        }
    }
    // Health checks need no token on any service.
    let health = Method {
        service: "grpc.health.v1.Health".into(),
        name: "Check".into(),
        client_streaming: false,
        server_streaming: false,
    };
    for channel in [
        &platform.identity,
        &vault,
        &platform.invoicing,
        &platform.payments,
        &platform.notifications,
        &platform.reconciliation,
    ] {
        let answer = call(channel, &health, Vec::new(), None).await;
        calls += 1;
        assert!(answer.is_ok(), "a health check without a token: {answer:?}");
    }

    let mut report = String::new();
    for line in &wrong {
        let _ = writeln!(report, "  {line}");
    }
    for (path, caller, code) in KNOWN {
        if seen.contains(&((*path).to_owned(), *caller)) {
            eprintln!("known finding: {path} as {caller} answers {code:?}");
        } else {
            let _ = writeln!(report, "  {path} as {caller} is listed in KNOWN as answering {code:?}, and did not");
        }
    }
    assert!(
        report.is_empty(),
        "{} of {calls} calls answered otherwise than the permission table says:\n{report}",
        wrong.len()
    );
    eprintln!(
        "{calls} calls ({} methods x {} callers) as the table says, {} of them known findings; signing in took \
         {signed_in:?}, all {:?}",
        methods.len(),
        callers.len(),
        seen.len(),
        started.elapsed()
    );
    platform.stop().await;
}
