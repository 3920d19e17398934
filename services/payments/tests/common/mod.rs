//! A payments service and a vault, both served over gRPC on loopback against the real Postgres,
//! with tokens from a test issuer. Invoices reach payments the way invoicing's events do.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use cobro_kit::auth::PrincipalKind;
use cobro_kit::auth::testing::TestIssuer;
use cobro_kit::config::GrpcConfig;
use cobro_kit::events::EventHandler;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::testing::TestDb;
use cobro_payments::api::{PUBLIC_METHODS, PaymentsApi};
use cobro_payments::app::{Payments, PaymentsOptions};
use cobro_payments::clients::{TokenSource, VaultClient};
use cobro_payments::connector::Processor;
use cobro_payments::connector::sandbox::{Sandbox, SandboxConfig};
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1::{Envelope, InvoiceChanged};
use cobro_proto::payments::v1 as pb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use cobro_proto::vault::v1::vault_service_server::VaultServiceServer;
use cobro_vault::api::VaultApi;
use cobro_vault::app::Vault;
use cobro_vault::keys::LocalKeyProvider;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

pub const STAFF: [&str; 3] = ["payments:read", "payments:write", "payments:refund"];

pub struct Harness {
    pub db: TestDb,
    pub vault_db: TestDb,
    pub issuer: Arc<TestIssuer>,
    pub tenant: Uuid,
    pub app: Arc<Payments>,
    pub sandbox: Arc<Sandbox>,
    pub client: PaymentsServiceClient<Channel>,
    pub vault_channel: Channel,
    shutdown: CancellationToken,
}

pub fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money { amount: amount.into(), currency: currency.into() })
}

pub fn card(pan: &str) -> pb::NewCard {
    pb::NewCard { pan: pan.into(), exp_month: 12, exp_year: 2031, holder_name: "Ana López".into() }
}

pub fn code(status: &tonic::Status) -> &str {
    cobro_kit::error::error_code(status).unwrap_or("")
}

pub fn field(status: &tonic::Status) -> String {
    cobro_kit::error::error_detail(status).map(|d| d.field).unwrap_or_default()
}

pub fn key() -> String {
    Uuid::new_v4().to_string()
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with(SandboxConfig::default(), PaymentsOptions::default()).await
    }

    pub async fn with(sandbox_config: SandboxConfig, options: PaymentsOptions) -> Harness {
        let db = TestDb::new(&cobro_payments::migrator()).await;
        let vault_db = TestDb::new(&cobro_vault::migrator()).await;
        let issuer = Arc::new(TestIssuer::new());
        let shutdown = CancellationToken::new();

        let vault =
            Vault::start(vault_db.pool.clone(), Arc::new(LocalKeyProvider::from_root(rand::random()))).await.unwrap();
        let vault_server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
            .add_service(VaultServiceServer::new(VaultApi::new(Arc::new(vault))));
        let (vault_addr, serving) = vault_server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
        tokio::spawn(serving);
        let vault_channel =
            cobro_kit::grpc::connect(&format!("http://{vault_addr}"), Duration::from_secs(10)).await.unwrap();

        let sandbox = Arc::new(Sandbox::new(db.pool.clone(), sandbox_config));
        let app = Arc::new(Self::build_app(&db.pool, &issuer, &sandbox, vault_channel.clone(), options));
        let server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
            .public_methods(PUBLIC_METHODS)
            .add_service(PaymentsServiceServer::new(PaymentsApi::new(Arc::clone(&app))));
        let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
        tokio::spawn(serving);
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(30)).await.unwrap();
        Harness {
            db,
            vault_db,
            issuer,
            tenant: Uuid::now_v7(),
            app,
            sandbox,
            client: PaymentsServiceClient::new(channel),
            vault_channel,
            shutdown,
        }
    }

    fn build_app(
        pool: &sqlx::PgPool,
        issuer: &Arc<TestIssuer>,
        sandbox: &Arc<Sandbox>,
        vault_channel: Channel,
        options: PaymentsOptions,
    ) -> Payments {
        let minting = Arc::clone(issuer);
        let tokens = TokenSource::Fixed(Arc::new(move |tenant| minting.service_token(tenant, "payments", &[])));
        Payments::new(
            pool.clone(),
            Processor::Sandbox(Arc::clone(sandbox)),
            VaultClient::new(vault_channel, tokens),
            options,
        )
    }

    /// The same service started again on the same database: what a restart after a crash sees.
    pub async fn restarted(&self, options: PaymentsOptions) -> Payments {
        let pool = self.db.another_pool(5).await;
        let sandbox = Arc::new(Sandbox::new(pool.clone(), self.sandbox.config().clone()));
        Self::build_app(&pool, &self.issuer, &sandbox, self.vault_channel.clone(), options)
    }

    /// The same staff member every time (idempotency keys belong to whoever used them).
    pub fn staff_token(&self) -> String {
        let mut claims = self.issuer.claims(self.tenant, PrincipalKind::User, &STAFF);
        claims.sub = format!("staff-{}", self.tenant);
        self.issuer.sign(&claims)
    }

    pub fn token_of(&self, tenant: Uuid, kind: PrincipalKind, permissions: &[&str]) -> String {
        self.issuer.token(tenant, kind, permissions)
    }

    pub fn portal_token(&self, customer: Uuid) -> String {
        let mut claims = self.issuer.claims(self.tenant, PrincipalKind::Customer, &["portal:read", "portal:pay"]);
        claims.cid = Some(customer);
        self.issuer.sign(&claims)
    }

    pub fn req<T>(&self, message: T) -> Request<T> {
        bearer(message, &self.staff_token())
    }

    /// An open invoice of `customer`, as invoicing's `invoice.issued` event tells payments.
    pub async fn invoice(&self, customer: Uuid, balance: &str, currency: &str, due: NaiveDate) -> Uuid {
        let invoice = Uuid::now_v7();
        self.invoice_event(invoice, customer, "open", balance, currency, due).await;
        invoice
    }

    pub async fn invoice_event(
        &self,
        invoice: Uuid,
        customer: Uuid,
        status: &str,
        balance: &str,
        currency: &str,
        due: NaiveDate,
    ) {
        let changed = InvoiceChanged {
            invoice_id: cobro_kit::ids::format("inv", invoice),
            customer_id: cobro_kit::ids::format("cus", customer),
            number: format!("F-{}", &invoice.simple().to_string()[24..]),
            status: status.into(),
            total: money(balance, currency),
            balance: money(balance, currency),
            due_date: due.to_string(),
        };
        let kind = if status == "paid" { "invoice.paid" } else { "invoice.issued" };
        self.deliver(kind, &cobro_kit::ids::format("inv", invoice), &changed).await;
    }

    pub async fn deliver(&self, kind: &str, aggregate: &str, payload: &impl Message) {
        let envelope = Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: kind.into(),
            tenant_id: self.tenant.to_string(),
            aggregate_id: aggregate.into(),
            occurred_at: None,
            traceparent: String::new(),
            payload: payload.encode_to_vec(),
        };
        let mut conn = self.db.pool.acquire().await.unwrap();
        cobro_payments::events::InvoicesHandler.handle(&mut conn, &envelope).await.unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&self.db.pool).await.unwrap()
    }

    pub async fn events(&self, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = $1")
            .bind(kind)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// A payment of `amount` for `invoice` (or free when None), created by staff.
    pub async fn intent(
        &self,
        customer: Uuid,
        invoice: Option<Uuid>,
        amount: Option<(&str, &str)>,
    ) -> pb::PaymentIntent {
        let request = pb::CreatePaymentIntentRequest {
            idempotency_key: key(),
            customer_id: cobro_kit::ids::format("cus", customer),
            amount: amount.and_then(|(a, c)| money(a, c)),
            invoice_ids: invoice.map(|i| vec![cobro_kit::ids::format("inv", i)]).unwrap_or_default(),
            installment_id: String::new(),
            description: "test".into(),
        };
        self.client.clone().create_payment_intent(self.req(request)).await.unwrap().into_inner()
    }

    /// Confirm an intent with a new card.
    pub async fn pay(&self, intent: &pb::PaymentIntent, pan: &str) -> Result<pb::PaymentIntent, tonic::Status> {
        let request = pb::ConfirmPaymentIntentRequest {
            idempotency_key: key(),
            id: intent.id.clone(),
            method: Some(pb::confirm_payment_intent_request::Method::Card(card(pan))),
            return_url: "https://portal.example/return".into(),
            save_card: false,
        };
        self.client.clone().confirm_payment_intent(self.req(request)).await.map(|r| r.into_inner())
    }

    pub async fn finish(self) {
        self.shutdown.cancel();
        self.db.drop_schema().await;
        self.vault_db.drop_schema().await;
    }
}

pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}
