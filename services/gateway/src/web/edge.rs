//! The gateway's own credential at identity. Identity believes the end user's address a
//! request states only from the gateway (anyone else could state any address and dodge the
//! per-address sign-in limits), so sign-in calls carry the gateway's token: for no tenant,
//! with no permission, renewed a minute before it expires. Without a configured secret the
//! calls go without it and identity counts the gateway's own address instead.

use chrono::{DateTime, Utc};
use cobro_proto::identity::v1 as pb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tonic::transport::Channel;

pub struct EdgeCredential {
    secret: Option<SecretString>,
    cached: Mutex<Option<(String, DateTime<Utc>)>>,
}

impl EdgeCredential {
    pub fn new(secret: Option<SecretString>) -> EdgeCredential {
        EdgeCredential { secret, cached: Mutex::new(None) }
    }

    /// `message` as a request to identity, with the gateway's token when it has one. A token
    /// identity will not give (wrong secret, identity down) is logged and the call goes
    /// without it: signing in still works, only with the coarser per-address limit.
    pub async fn request<T>(&self, identity: &IdentityServiceClient<Channel>, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = self.token(identity).await
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    async fn token(&self, identity: &IdentityServiceClient<Channel>) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let mut cached = self.cached.lock().await;
        if let Some((token, expires_at)) = cached.as_ref()
            && *expires_at > Utc::now() + chrono::Duration::seconds(60)
        {
            return Some(token.clone());
        }
        let exchange = pb::ExchangeClientCredentialsRequest {
            client_id: "gateway".to_owned(),
            client_secret: secret.expose_secret().to_owned(),
            tenant_id: String::new(),
        };
        match identity.clone().exchange_client_credentials(exchange).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                let expires_at =
                    answer.expires_at.and_then(|t| DateTime::from_timestamp(t.seconds, 0)).unwrap_or_else(Utc::now);
                *cached = Some((answer.access_token.clone(), expires_at));
                Some(answer.access_token)
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "identity refused the gateway's credential; sign-in limits count the gateway's address");
                None
            }
        }
    }
}
