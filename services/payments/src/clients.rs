//! What payments asks of other Cobro services: the vault (card numbers in and out) and
//! identity (the service token the vault checks).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cobro_proto::identity::v1::ExchangeClientCredentialsRequest;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::vault::v1 as vault;
use cobro_proto::vault::v1::vault_service_client::VaultServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::connector::CardData;
use crate::error::PaymentsError;

/// A bearer token for calls made as the payments service on behalf of one tenant.
#[derive(Clone)]
pub enum TokenSource {
    /// identity's client-credentials exchange, cached per tenant until shortly before expiry.
    Identity(Arc<IdentityTokens>),
    /// A token minted by the caller (tests sign with their own issuer).
    Fixed(Arc<dyn Fn(Uuid) -> String + Send + Sync>),
}

impl TokenSource {
    pub async fn token(&self, tenant: Uuid) -> Result<String, PaymentsError> {
        match self {
            TokenSource::Identity(tokens) => tokens.token(tenant).await,
            TokenSource::Fixed(mint) => Ok(mint(tenant)),
        }
    }
}

pub struct IdentityTokens {
    client: IdentityServiceClient<Channel>,
    client_secret: SecretString,
    cache: Mutex<HashMap<Uuid, (String, DateTime<Utc>)>>,
}

impl IdentityTokens {
    pub fn new(channel: Channel, client_secret: SecretString) -> Self {
        Self { client: IdentityServiceClient::new(channel), client_secret, cache: Mutex::new(HashMap::new()) }
    }

    async fn token(&self, tenant: Uuid) -> Result<String, PaymentsError> {
        let now = Utc::now();
        if let Some((token, expires)) = self.cache.lock().await.get(&tenant)
            && *expires > now + chrono::Duration::seconds(60)
        {
            return Ok(token.clone());
        }
        let answer = self
            .client
            .clone()
            .exchange_client_credentials(ExchangeClientCredentialsRequest {
                client_id: crate::NAME.to_owned(),
                client_secret: self.client_secret.expose_secret().to_owned(),
                tenant_id: cobro_kit::ids::format("ten", tenant),
            })
            .await
            .map_err(|s| PaymentsError::Unavailable(format!("identity: {}", s.code())))?
            .into_inner();
        let expires = answer
            .expires_at
            .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
            .unwrap_or(now + chrono::Duration::seconds(120));
        self.cache.lock().await.insert(tenant, (answer.access_token.clone(), expires));
        Ok(answer.access_token)
    }
}

/// A card as the vault describes it (no number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCard {
    pub token: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

/// The vault over gRPC.
#[derive(Clone)]
pub struct VaultClient {
    client: VaultServiceClient<Channel>,
    tokens: TokenSource,
}

fn bearer<T>(message: T, token: &str) -> Result<tonic::Request<T>, PaymentsError> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| PaymentsError::Internal("service token is not a header value".to_owned()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The vault's answer mapped to ours: its field errors stay field errors (the payer typed a bad
/// card), a missing token is NotFound, anything else means the vault is not usable now.
fn vault_error(status: &tonic::Status, field: &str) -> PaymentsError {
    match status.code() {
        tonic::Code::InvalidArgument => {
            let detail = cobro_kit::error::error_detail(status);
            let inner = detail.as_ref().map(|d| d.field.as_str()).unwrap_or("");
            let name = if inner.is_empty() { field.to_owned() } else { format!("{field}.{inner}") };
            PaymentsError::Invalid(cobro_kit::error::InvalidField::new(name, status.message().to_owned()))
        }
        tonic::Code::NotFound => PaymentsError::NotFound("card"),
        code => PaymentsError::Unavailable(format!("vault: {code}")),
    }
}

impl VaultClient {
    pub fn new(channel: Channel, tokens: TokenSource) -> Self {
        Self { client: VaultServiceClient::new(channel), tokens }
    }

    pub async fn tokenize(
        &self,
        tenant: Uuid,
        card: &cobro_proto::payments::v1::NewCard,
        field: &str,
    ) -> Result<StoredCard, PaymentsError> {
        let token = self.tokens.token(tenant).await?;
        let request = vault::TokenizeRequest {
            pan: card.pan.clone(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            holder_name: card.holder_name.clone(),
            dedupe: true,
            ttl_seconds: 0,
        };
        let answer =
            self.client.clone().tokenize(bearer(request, &token)?).await.map_err(|s| vault_error(&s, field))?;
        let meta = answer.into_inner().card.unwrap_or_default();
        Ok(StoredCard {
            token: meta.token,
            brand: meta.brand,
            last4: meta.last4,
            exp_month: meta.exp_month,
            exp_year: meta.exp_year,
        })
    }

    pub async fn metadata(&self, tenant: Uuid, card_token: &str, field: &str) -> Result<StoredCard, PaymentsError> {
        let token = self.tokens.token(tenant).await?;
        let request = vault::GetTokenMetadataRequest { token: card_token.to_owned() };
        let meta = self
            .client
            .clone()
            .get_token_metadata(bearer(request, &token)?)
            .await
            .map_err(|s| vault_error(&s, field))?
            .into_inner();
        Ok(StoredCard {
            token: meta.token,
            brand: meta.brand,
            last4: meta.last4,
            exp_month: meta.exp_month,
            exp_year: meta.exp_year,
        })
    }

    pub async fn detokenize(&self, tenant: Uuid, card_token: &str) -> Result<CardData, PaymentsError> {
        let token = self.tokens.token(tenant).await?;
        let request = vault::DetokenizeRequest { token: card_token.to_owned(), purpose: "charge".to_owned() };
        let card = self
            .client
            .clone()
            .detokenize(bearer(request, &token)?)
            .await
            .map_err(|s| vault_error(&s, "card_token"))?
            .into_inner();
        Ok(CardData {
            pan: SecretString::from(card.pan),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            holder_name: card.holder_name,
        })
    }
}

/// How long a call to another service may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
