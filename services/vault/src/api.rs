//! gRPC handlers: decode, call the use case, encode.

use std::sync::Arc;

use cobro_kit::auth::principal;
use cobro_kit::wire::timestamp;
use cobro_proto::vault::v1 as pb;
use cobro_proto::vault::v1::vault_service_server::VaultService;
use tonic::{Request, Response, Status};

use crate::app::{CardInput, Vault};
use crate::keys::KeyProvider;
use crate::store::CardMeta;

pub struct VaultApi<P: KeyProvider> {
    vault: Arc<Vault<P>>,
}

impl<P: KeyProvider> VaultApi<P> {
    pub fn new(vault: Arc<Vault<P>>) -> Self {
        Self { vault }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn card(meta: &CardMeta) -> pb::CardMetadata {
    pb::CardMetadata {
        token: meta.token.clone(),
        brand: meta.brand.clone(),
        last4: meta.last4.clone(),
        exp_month: u32::try_from(meta.exp_month).unwrap_or(0),
        exp_year: u32::try_from(meta.exp_year).unwrap_or(0),
        fingerprint: hex(&meta.fingerprint),
        created_at: timestamp(meta.created_at),
        expires_at: meta.expires_at.and_then(timestamp),
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<P: KeyProvider> VaultService for VaultApi<P> {
    async fn tokenize(&self, req: Request<pb::TokenizeRequest>) -> Answer<pb::TokenizeResponse> {
        let caller = principal(&req)?;
        let r = req.get_ref();
        let (meta, created) = self
            .vault
            .tokenize(
                caller,
                CardInput {
                    pan: &r.pan,
                    exp_month: r.exp_month,
                    exp_year: r.exp_year,
                    holder_name: &r.holder_name,
                    dedupe: r.dedupe,
                    ttl_seconds: r.ttl_seconds,
                },
            )
            .await?;
        Ok(Response::new(pb::TokenizeResponse { card: Some(card(&meta)), created }))
    }

    async fn detokenize(&self, req: Request<pb::DetokenizeRequest>) -> Answer<pb::DetokenizeResponse> {
        let r = req.get_ref();
        let found = self.vault.detokenize(principal(&req)?, &r.token, &r.purpose).await?;
        Ok(Response::new(pb::DetokenizeResponse {
            pan: found.pan.expose().to_owned(),
            exp_month: found.exp_month,
            exp_year: found.exp_year,
            holder_name: found.holder_name,
        }))
    }

    async fn get_token_metadata(&self, req: Request<pb::GetTokenMetadataRequest>) -> Answer<pb::CardMetadata> {
        Ok(Response::new(card(&self.vault.metadata(principal(&req)?, &req.get_ref().token).await?)))
    }

    async fn delete_token(&self, req: Request<pb::DeleteTokenRequest>) -> Answer<pb::DeleteTokenResponse> {
        self.vault.delete(principal(&req)?, &req.get_ref().token).await?;
        Ok(Response::new(pb::DeleteTokenResponse {}))
    }

    async fn rotate_kek(&self, req: Request<pb::RotateKekRequest>) -> Answer<pb::RotateKekResponse> {
        let new_version = self.vault.rotate_kek(Some(principal(&req)?)).await?;
        Ok(Response::new(pb::RotateKekResponse { new_version }))
    }

    async fn get_key_status(&self, req: Request<pb::GetKeyStatusRequest>) -> Answer<pb::GetKeyStatusResponse> {
        let versions = self.vault.key_status(Some(principal(&req)?)).await?;
        Ok(Response::new(pb::GetKeyStatusResponse {
            versions: versions
                .into_iter()
                .map(|v| pb::KekVersion {
                    version: u32::try_from(v.version).unwrap_or(0),
                    state: v.state,
                    records: u64::try_from(v.records).unwrap_or(0),
                    created_at: timestamp(v.created_at),
                    retired_at: v.retired_at.and_then(timestamp),
                })
                .collect(),
        }))
    }
}
