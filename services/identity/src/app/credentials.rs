//! API keys for ERPs and shops, and client credentials for Cobro's services.

use chrono::{DateTime, Utc};
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::InvalidField;
use secrecy::SecretString;
use uuid::Uuid;

use super::{AccessToken, Identity, prefix, require};
use crate::domain::roles::{OPERATOR, Role, is_permission, service_permissions};

/// The gateway's client id.
const GATEWAY: &str = "gateway";
use crate::domain::secret::{api_key_display_prefix, generate_api_key, is_api_key_shaped, random_token};
use crate::domain::validate;
use crate::error::{IdentityError, Result};
use crate::store;
use crate::store::audit::Entry;
use crate::store::credentials::ApiKeyRow;

pub const MAX_SCOPES: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKeyRow,
    /// Shown once.
    pub secret: SecretString,
}

impl Identity {
    pub async fn create_api_key(&self, principal: &Principal, input: NewApiKey) -> Result<CreatedApiKey> {
        require(principal, "api_keys:manage")?;
        // A key answers for the person who made it (see `exchange_api_key`); keys and services
        // do not make keys.
        if principal.kind != PrincipalKind::User {
            return Err(IdentityError::PermissionDenied("only a signed-in staff user may create API keys".to_owned()));
        }
        let name = validate::text("name", &input.name, 100)?;
        if input.scopes.is_empty() {
            return Err(InvalidField::new("scopes", "must name at least one permission").into());
        }
        if input.scopes.len() > MAX_SCOPES {
            return Err(InvalidField::new("scopes", format!("must have at most {MAX_SCOPES} entries")).into());
        }
        let mut scopes = Vec::with_capacity(input.scopes.len());
        for (i, scope) in input.scopes.iter().enumerate() {
            if !is_permission(scope) {
                return Err(
                    InvalidField::new(format!("scopes[{i}]"), "is not a known permission (see ListRoles)").into()
                );
            }
            // A key can never do more than the person who made it.
            if !principal.has(scope) {
                return Err(IdentityError::PermissionDenied(format!("you cannot grant {scope}: you do not hold it")));
            }
            scopes.push(scope.clone());
        }
        scopes.sort();
        scopes.dedup();
        if let Some(expires_at) = input.expires_at
            && expires_at <= Utc::now()
        {
            return Err(InvalidField::new("expires_at", "must be in the future").into());
        }
        let secret = generate_api_key();
        let key = ApiKeyRow {
            tenant_id: principal.tenant_id,
            id: Uuid::now_v7(),
            name,
            display_prefix: api_key_display_prefix(&secret),
            scopes,
            expires_at: input.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_at: Utc::now(),
            created_by: principal.subject.clone(),
        };
        let mut tx = self.pool.begin().await?;
        store::credentials::insert_api_key(&mut tx, &key, &self.settings.pepper.keyed_hash(&secret)).await?;
        store::audit::record(
            &mut tx,
            principal.tenant_id,
            &Entry {
                action: "api_key.created",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::API_KEY, key.id),
                detail: format!("scopes {}", key.scopes.join(" ")),
                ..Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedApiKey { key, secret: SecretString::from(secret) })
    }

    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        limit: i64,
        after: Option<Uuid>,
    ) -> Result<Vec<ApiKeyRow>> {
        require(principal, "api_keys:manage")?;
        store::credentials::list_api_keys(&self.pool, principal.tenant_id, after, limit).await
    }

    pub async fn revoke_api_key(&self, principal: &Principal, id: &str) -> Result<ApiKeyRow> {
        require(principal, "api_keys:manage")?;
        let id = cobro_kit::ids::parse("id", prefix::API_KEY, id)?;
        let mut tx = self.pool.begin().await?;
        let key = store::credentials::revoke_api_key(&mut tx, principal.tenant_id, id)
            .await?
            .ok_or(IdentityError::NotFound("api key"))?;
        store::audit::record(
            &mut tx,
            principal.tenant_id,
            &Entry {
                action: "api_key.revoked",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::API_KEY, id),
                ..Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// A short-lived token carrying the key's scopes, so services verify one kind of token.
    pub async fn exchange_api_key(&self, api_key: &str) -> Result<AccessToken> {
        validate::present("api_key", api_key, 128)?;
        if !is_api_key_shaped(api_key) {
            return Err(InvalidField::new("api_key", "must be a Cobro API key (ck_live_...)").into());
        }
        let key = store::credentials::api_key_by_hash(&self.pool, &self.settings.pepper.keyed_hash(api_key))
            .await?
            .ok_or(IdentityError::InvalidApiKey)?;
        let now = Utc::now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
            return Err(IdentityError::InvalidApiKey);
        }
        store::tenants::get(&self.pool, key.tenant_id).await?.ok_or(IdentityError::InvalidApiKey)?;
        // A key never does more than its creator may do now: a disabled or demoted creator
        // takes the key's power with them.
        let creator = cobro_kit::ids::parse("created_by", prefix::USER, &key.created_by)
            .map_err(|_| IdentityError::InvalidApiKey)?;
        let mut conn = self.pool.acquire().await?;
        let creator = store::users::get(&mut conn, key.tenant_id, creator)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(IdentityError::InvalidApiKey)?;
        drop(conn);
        let allowed = creator.role.as_deref().and_then(|r| r.parse::<Role>().ok()).map_or(&[][..], Role::permissions);
        let scopes: Vec<String> = key.scopes.iter().filter(|s| allowed.contains(&s.as_str())).cloned().collect();
        if scopes.is_empty() {
            return Err(IdentityError::InvalidApiKey);
        }
        let (mut claims, mut expires_at) = self.claims(
            key.tenant_id,
            cobro_kit::ids::format(prefix::API_KEY, key.id),
            PrincipalKind::ApiKey,
            self.settings.access_token_ttl,
        );
        // Never outlive the key itself.
        if let Some(key_expiry) = key.expires_at
            && key_expiry < expires_at
        {
            expires_at = key_expiry;
            claims.exp = key_expiry.timestamp();
        }
        claims.perms = scopes;
        store::credentials::touch_api_key(&self.pool, key.tenant_id, key.id).await?;
        self.sign(&claims, expires_at)
    }

    /// Create a service client, or give it a new secret (the old one stops working). Returns
    /// the secret, shown once. Admin command only.
    pub async fn put_service_client(&self, name: &str) -> Result<SecretString> {
        if service_permissions(name).is_none() {
            return Err(InvalidField::new("name", "is not a Cobro service (identity, invoicing, payments, vault, notifications, reconciliation, gateway) or operator").into());
        }
        let secret = random_token("css_", 43);
        store::credentials::put_service_client(&self.pool, name, &self.settings.pepper.keyed_hash(&secret)).await?;
        Ok(SecretString::from(secret))
    }

    /// Client credentials -> a service token for one tenant (or none, for the operator).
    /// A service's token: for one tenant with the service's permissions, or for the platform
    /// operator (no tenant), or for the gateway as the edge (no tenant, no permission).
    pub async fn exchange_client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        tenant_id: &str,
    ) -> Result<AccessToken> {
        validate::present("client_id", client_id, 64)?;
        validate::present("client_secret", secret, 128)?;
        let stored = store::credentials::service_client_hash(&self.pool, client_id).await?;
        // Compare against something even for unknown clients so timing tells nothing.
        let expected = stored.clone().unwrap_or_else(|| vec![0; 32]);
        let matches = self.settings.pepper.verify(secret, &expected);
        let permissions = service_permissions(client_id);
        let (true, Some(_), Some(permissions)) = (matches, stored, permissions) else {
            return Err(IdentityError::InvalidClient);
        };
        // The gateway's token for its own calls (stating end users' addresses at sign-in) is
        // for no tenant and carries no permission: it only says the edge is calling.
        let edge = client_id == GATEWAY && tenant_id.is_empty();
        let permissions: &[&str] = if edge { &[] } else { permissions };
        let tenant = if client_id == OPERATOR || edge {
            if !tenant_id.is_empty() {
                return Err(InvalidField::new("tenant_id", "must be empty for the platform operator").into());
            }
            Uuid::nil()
        } else {
            let id = cobro_kit::ids::parse("tenant_id", prefix::TENANT, tenant_id)?;
            store::tenants::get(&self.pool, id).await?.ok_or(IdentityError::NotFound("tenant"))?.id
        };
        let (mut claims, expires_at) =
            self.claims(tenant, client_id.to_owned(), PrincipalKind::Service, self.settings.access_token_ttl);
        claims.svc = Some(client_id.to_owned());
        claims.perms = permissions.iter().map(|p| (*p).to_owned()).collect();
        self.sign(&claims, expires_at)
    }
}
