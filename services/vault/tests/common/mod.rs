//! A real vault over a throwaway schema, with a local key provider.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::testing::TestDb;
use cobro_vault::app::{CardInput, Vault};
use cobro_vault::error::VaultError;
use cobro_vault::keys::LocalKeyProvider;
use uuid::Uuid;

pub const VISA: &str = "4111111111111111";
pub const AMEX: &str = "378282246310005";

pub struct Harness {
    pub db: TestDb,
    pub vault: Arc<Vault<LocalKeyProvider>>,
    pub root: [u8; 32],
    pub issuer: TestIssuer,
    pub tenant: Uuid,
}

impl Harness {
    pub async fn new() -> Harness {
        let db = TestDb::new(&cobro_vault::migrator()).await;
        let root: [u8; 32] = rand::random();
        let vault = Vault::start(db.pool.clone(), Arc::new(LocalKeyProvider::from_root(root))).await.unwrap();
        Harness { db, vault: Arc::new(vault), root, issuer: TestIssuer::new(), tenant: Uuid::now_v7() }
    }

    pub fn payments(&self) -> Principal {
        self.issuer.service_principal(self.tenant, "payments", &[])
    }

    pub fn payments_of(&self, tenant: Uuid) -> Principal {
        self.issuer.service_principal(tenant, "payments", &[])
    }

    pub fn staff(&self, permissions: &[&str]) -> Principal {
        self.issuer.principal(self.tenant, PrincipalKind::User, permissions)
    }

    pub fn operator(&self) -> Principal {
        self.issuer.service_principal(Uuid::nil(), "operator", &["platform:operate"])
    }

    pub async fn tokenize(&self, pan: &str) -> String {
        self.tokenize_as(&self.payments(), pan).await
    }

    pub async fn tokenize_as(&self, who: &Principal, pan: &str) -> String {
        let (meta, _) = self.vault.tokenize(who, card(pan)).await.unwrap();
        meta.token
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db.pool).await.unwrap()
    }

    pub async fn finish(self) {
        self.db.drop_schema().await;
    }
}

pub fn card(pan: &str) -> CardInput<'_> {
    CardInput { pan, exp_month: 12, exp_year: 2031, holder_name: "Ana López", dedupe: false, ttl_seconds: 0 }
}

pub fn code(err: &VaultError) -> &'static str {
    use cobro_kit::error::DomainError;
    err.code()
}

pub fn field(err: &VaultError) -> Option<String> {
    use cobro_kit::error::DomainError;
    err.field().map(str::to_owned)
}
