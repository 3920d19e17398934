//! gRPC handlers: decode, authorize, call the use case, encode. No rules here.

use std::sync::Arc;

use cobro_kit::auth::{Principal, Verifier, bearer_token, principal};
use cobro_kit::wire::{from_timestamp, next_page, page, timestamp};
use cobro_proto::identity::v1 as pb;
use cobro_proto::identity::v1::identity_service_server::IdentityService;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};

use crate::app::{
    self, AccessToken, Enroller, Identity, MfaFactor, NewApiKey, NewContact, NewStaffUser, SessionTokens,
    TenantBootstrap, TenantChanges, prefix,
};
use crate::domain::roles::{PERMISSIONS, ROLES};
use crate::error::IdentityError;
use crate::store::credentials::ApiKeyRow;
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;

/// Methods callable without a bearer token. The two enrolment methods verify a token
/// themselves when no challenge is given.
pub const PUBLIC_METHODS: [&str; 9] = [
    "/cobro.identity.v1.IdentityService/GetJwks",
    "/cobro.identity.v1.IdentityService/Login",
    "/cobro.identity.v1.IdentityService/CompleteMfa",
    "/cobro.identity.v1.IdentityService/RefreshSession",
    "/cobro.identity.v1.IdentityService/Logout",
    "/cobro.identity.v1.IdentityService/ExchangeApiKey",
    "/cobro.identity.v1.IdentityService/ExchangeClientCredentials",
    "/cobro.identity.v1.IdentityService/BeginTotpEnrolment",
    "/cobro.identity.v1.IdentityService/ConfirmTotpEnrolment",
];

pub struct IdentityApi {
    app: Arc<Identity>,
    verifier: Arc<Verifier>,
}

impl IdentityApi {
    pub fn new(app: Arc<Identity>, verifier: Arc<Verifier>) -> Self {
        Self { app, verifier }
    }

    /// The end user's address: what the request states when the gateway (the edge that saw the
    /// user) makes the call with its service token, else the peer address of this call. Anyone
    /// else could state a new address per guess and never reach the per-address limit.
    async fn client_ip<T>(&self, req: &Request<T>, stated: &str) -> String {
        let peer = req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let stated = stated.trim();
        if stated.is_empty() || stated.parse::<std::net::IpAddr>().is_err() {
            return peer;
        }
        match self.optional_principal(req).await {
            Ok(caller) if caller.require_service("gateway").is_ok() => stated.to_owned(),
            _ => peer,
        }
    }

    /// The caller of a public method that may also be called signed in.
    async fn optional_principal<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let headers = req.metadata().clone().into_headers();
        let token = bearer_token(&headers).map_err(|e| cobro_kit::error::to_status(&e))?;
        self.verifier.verify(token).await.map_err(|e| cobro_kit::error::to_status(&e))
    }
}

fn user(u: &UserRow) -> pb::User {
    pb::User {
        id: cobro_kit::ids::format(prefix::USER, u.id),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        kind: u.kind.clone(),
        role: u.role.clone().unwrap_or_default(),
        customer_id: u.customer_id.map(|c| cobro_kit::ids::format(prefix::CUSTOMER, c)).unwrap_or_default(),
        mfa_enrolled: u.mfa_enrolled,
        disabled: u.disabled_at.is_some(),
        created_at: timestamp(u.created_at),
        last_login_at: u.last_login_at.and_then(timestamp),
    }
}

fn tenant(t: &TenantRow) -> pb::Tenant {
    pb::Tenant {
        id: cobro_kit::ids::format(prefix::TENANT, t.id),
        slug: t.slug.clone(),
        name: t.name.clone(),
        default_locale: t.default_locale.clone(),
        default_timezone: t.default_timezone.clone(),
        security_policy: Some(pb::SecurityPolicy {
            mfa_required_for_staff: t.mfa_required_for_staff,
            mfa_required_for_contacts: t.mfa_required_for_contacts,
            lockout_threshold: u32::try_from(t.lockout_threshold).unwrap_or(0),
            lockout_duration_seconds: u32::try_from(t.lockout_duration_seconds).unwrap_or(0),
        }),
        created_at: timestamp(t.created_at),
    }
}

fn access(a: AccessToken) -> pb::AccessToken {
    pb::AccessToken { access_token: a.token, expires_at: timestamp(a.expires_at) }
}

fn session(s: SessionTokens) -> pb::Session {
    pb::Session {
        user: Some(user(&s.user)),
        access: Some(access(s.access)),
        refresh_token: s.refresh_token,
        refresh_expires_at: timestamp(s.refresh_expires_at),
    }
}

fn api_key(k: &ApiKeyRow) -> pb::ApiKey {
    pb::ApiKey {
        id: cobro_kit::ids::format(prefix::API_KEY, k.id),
        name: k.name.clone(),
        display_prefix: k.display_prefix.clone(),
        scopes: k.scopes.clone(),
        expires_at: k.expires_at.and_then(timestamp),
        last_used_at: k.last_used_at.and_then(timestamp),
        revoked_at: k.revoked_at.and_then(timestamp),
        created_at: timestamp(k.created_at),
        created_by: k.created_by.clone(),
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn get_jwks(&self, _req: Request<pb::GetJwksRequest>) -> Answer<pb::GetJwksResponse> {
        Ok(Response::new(self.app.keys().jwks().to_proto()))
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> Answer<pb::LoginResponse> {
        let ip = self.client_ip(&req, &req.get_ref().client_ip).await;
        let r = req.into_inner();
        let result = match self.app.login(&r.tenant, &r.email, &r.password, &ip).await? {
            app::LoginOutcome::Session(s) => pb::login_response::Result::Session(session(s)),
            app::LoginOutcome::Challenge(c) => pb::login_response::Result::MfaChallenge(pb::MfaChallenge {
                challenge_token: c.token,
                expires_at: timestamp(c.expires_at),
                enrolment_required: c.enrolment_required,
            }),
        };
        Ok(Response::new(pb::LoginResponse { result: Some(result) }))
    }

    async fn complete_mfa(&self, req: Request<pb::CompleteMfaRequest>) -> Answer<pb::CompleteMfaResponse> {
        let ip = self.client_ip(&req, &req.get_ref().client_ip).await;
        let r = req.into_inner();
        let factor = match r.factor {
            Some(pb::complete_mfa_request::Factor::TotpCode(code)) => MfaFactor::Totp(code),
            Some(pb::complete_mfa_request::Factor::RecoveryCode(code)) => MfaFactor::RecoveryCode(code),
            None => {
                return Err(IdentityError::from(cobro_kit::error::InvalidField::new(
                    "factor",
                    "give totp_code or recovery_code",
                ))
                .into());
            }
        };
        let done = self.app.complete_mfa(&r.challenge_token, factor, &ip).await?;
        Ok(Response::new(pb::CompleteMfaResponse {
            session: Some(session(done.session)),
            recovery_codes_remaining: done.recovery_codes_remaining,
        }))
    }

    async fn refresh_session(&self, req: Request<pb::RefreshSessionRequest>) -> Answer<pb::Session> {
        Ok(Response::new(session(self.app.refresh(&req.get_ref().refresh_token).await?)))
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Answer<pb::LogoutResponse> {
        self.app.logout(&req.get_ref().refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn exchange_api_key(&self, req: Request<pb::ExchangeApiKeyRequest>) -> Answer<pb::AccessToken> {
        Ok(Response::new(access(self.app.exchange_api_key(&req.get_ref().api_key).await?)))
    }

    async fn exchange_client_credentials(
        &self,
        req: Request<pb::ExchangeClientCredentialsRequest>,
    ) -> Answer<pb::AccessToken> {
        let r = req.get_ref();
        Ok(Response::new(access(
            self.app.exchange_client_credentials(&r.client_id, &r.client_secret, &r.tenant_id).await?,
        )))
    }

    async fn logout_everywhere(
        &self,
        req: Request<pb::LogoutEverywhereRequest>,
    ) -> Answer<pb::LogoutEverywhereResponse> {
        let ended = self.app.logout_everywhere(principal(&req)?).await?;
        Ok(Response::new(pb::LogoutEverywhereResponse { sessions_revoked: u32::try_from(ended).unwrap_or(u32::MAX) }))
    }

    async fn begin_totp_enrolment(
        &self,
        req: Request<pb::BeginTotpEnrolmentRequest>,
    ) -> Answer<pb::BeginTotpEnrolmentResponse> {
        let ip = self.client_ip(&req, "").await;
        let r = req.get_ref();
        let enrolment = if r.challenge_token.is_empty() {
            let caller = self.optional_principal(&req).await?;
            self.app.begin_totp_enrolment(Enroller::Principal(&caller), &r.current_password, &ip).await?
        } else {
            self.app.begin_totp_enrolment(Enroller::Challenge(&r.challenge_token), "", &ip).await?
        };
        Ok(Response::new(pb::BeginTotpEnrolmentResponse {
            secret: enrolment.secret_base32.expose_secret().to_owned(),
            otpauth_uri: enrolment.otpauth_uri.expose_secret().to_owned(),
            qr_svg: enrolment.qr_svg,
        }))
    }

    async fn confirm_totp_enrolment(
        &self,
        req: Request<pb::ConfirmTotpEnrolmentRequest>,
    ) -> Answer<pb::ConfirmTotpEnrolmentResponse> {
        let ip = self.client_ip(&req, &req.get_ref().client_ip).await;
        let confirmed = if req.get_ref().challenge_token.is_empty() {
            let caller = self.optional_principal(&req).await?;
            self.app.confirm_totp_enrolment(Enroller::Principal(&caller), &req.get_ref().code, &ip).await?
        } else {
            let r = req.get_ref();
            self.app.confirm_totp_enrolment(Enroller::Challenge(&r.challenge_token), &r.code, &ip).await?
        };
        Ok(Response::new(pb::ConfirmTotpEnrolmentResponse {
            recovery_codes: confirmed.recovery_codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
            session: confirmed.session.map(session),
        }))
    }

    async fn remove_totp(&self, req: Request<pb::RemoveTotpRequest>) -> Answer<pb::RemoveTotpResponse> {
        let ip = self.client_ip(&req, "").await;
        self.app.remove_totp(principal(&req)?, &req.get_ref().code, &ip).await?;
        Ok(Response::new(pb::RemoveTotpResponse {}))
    }

    async fn regenerate_recovery_codes(
        &self,
        req: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Answer<pb::RegenerateRecoveryCodesResponse> {
        let ip = self.client_ip(&req, "").await;
        let codes = self.app.regenerate_recovery_codes(principal(&req)?, &req.get_ref().code, &ip).await?;
        Ok(Response::new(pb::RegenerateRecoveryCodesResponse {
            recovery_codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
        }))
    }

    async fn change_password(&self, req: Request<pb::ChangePasswordRequest>) -> Answer<pb::ChangePasswordResponse> {
        let ip = self.client_ip(&req, "").await;
        let r = req.get_ref();
        self.app.change_password(principal(&req)?, &r.current_password, &r.new_password, &ip).await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn bootstrap_tenant(&self, req: Request<pb::BootstrapTenantRequest>) -> Answer<pb::BootstrapTenantResponse> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let (t, owner) = self
            .app
            .bootstrap_tenant(
                Some(&caller),
                TenantBootstrap {
                    slug: r.slug,
                    name: r.name,
                    default_locale: r.default_locale,
                    default_timezone: r.default_timezone,
                    owner_email: r.owner_email,
                    owner_name: r.owner_name,
                    owner_password: r.owner_password,
                },
            )
            .await?;
        Ok(Response::new(pb::BootstrapTenantResponse { tenant: Some(tenant(&t)), owner: Some(user(&owner)) }))
    }

    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Answer<pb::Tenant> {
        Ok(Response::new(tenant(&self.app.tenant(principal(&req)?).await?)))
    }

    async fn update_tenant(&self, req: Request<pb::UpdateTenantRequest>) -> Answer<pb::Tenant> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let changes = TenantChanges {
            name: r.name,
            default_locale: r.default_locale,
            default_timezone: r.default_timezone,
            mfa_required_for_staff: r.mfa_required_for_staff,
            mfa_required_for_contacts: r.mfa_required_for_contacts,
            lockout_threshold: r.lockout_threshold,
            lockout_duration_seconds: r.lockout_duration_seconds,
        };
        Ok(Response::new(tenant(&self.app.update_tenant(&caller, changes).await?)))
    }

    async fn list_roles(&self, _req: Request<pb::ListRolesRequest>) -> Answer<pb::ListRolesResponse> {
        Ok(Response::new(pb::ListRolesResponse {
            roles: ROLES
                .iter()
                .map(|r| pb::Role {
                    name: r.as_str().to_owned(),
                    permissions: r.permissions().iter().map(|p| (*p).to_owned()).collect(),
                })
                .collect(),
            permissions: PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        }))
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Answer<pb::User> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let created = self
            .app
            .create_user(
                &caller,
                NewStaffUser { email: r.email, display_name: r.display_name, role: r.role, password: r.password },
            )
            .await?;
        Ok(Response::new(user(&created)))
    }

    async fn create_contact(&self, req: Request<pb::CreateContactRequest>) -> Answer<pb::User> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let created = self
            .app
            .create_contact(
                &caller,
                NewContact {
                    email: r.email,
                    display_name: r.display_name,
                    customer_id: r.customer_id,
                    password: r.password,
                },
            )
            .await?;
        Ok(Response::new(user(&created)))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Answer<pb::User> {
        Ok(Response::new(user(&self.app.get_user(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Answer<pb::ListUsersResponse> {
        let (limit, after) = page(req.get_ref().page.clone())?;
        let users = self.app.list_users(principal(&req)?, limit, after).await?;
        Ok(Response::new(pb::ListUsersResponse {
            page: next_page(users.iter().map(|u| u.id), users.len(), limit),
            users: users.iter().map(user).collect(),
        }))
    }

    async fn set_user_role(&self, req: Request<pb::SetUserRoleRequest>) -> Answer<pb::User> {
        let r = req.get_ref();
        Ok(Response::new(user(&self.app.set_user_role(principal(&req)?, &r.id, &r.role).await?)))
    }

    async fn disable_user(&self, req: Request<pb::DisableUserRequest>) -> Answer<pb::User> {
        Ok(Response::new(user(&self.app.disable_user(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn unlock_user(&self, req: Request<pb::UnlockUserRequest>) -> Answer<pb::User> {
        Ok(Response::new(user(&self.app.unlock_user(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn reset_user_mfa(&self, req: Request<pb::ResetUserMfaRequest>) -> Answer<pb::User> {
        Ok(Response::new(user(&self.app.reset_user_mfa(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn create_api_key(&self, req: Request<pb::CreateApiKeyRequest>) -> Answer<pb::CreateApiKeyResponse> {
        let caller = principal(&req)?.clone();
        let r = req.into_inner();
        let expires_at = from_timestamp("expires_at", r.expires_at).map_err(IdentityError::from)?;
        let created =
            self.app.create_api_key(&caller, NewApiKey { name: r.name, scopes: r.scopes, expires_at }).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key(&created.key)),
            secret: created.secret.expose_secret().to_owned(),
        }))
    }

    async fn list_api_keys(&self, req: Request<pb::ListApiKeysRequest>) -> Answer<pb::ListApiKeysResponse> {
        let (limit, after) = page(req.get_ref().page.clone())?;
        let keys = self.app.list_api_keys(principal(&req)?, limit, after).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            page: next_page(keys.iter().map(|k| k.id), keys.len(), limit),
            api_keys: keys.iter().map(api_key).collect(),
        }))
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Answer<pb::ApiKey> {
        Ok(Response::new(api_key(&self.app.revoke_api_key(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn list_audit_events(&self, req: Request<pb::ListAuditEventsRequest>) -> Answer<pb::ListAuditEventsResponse> {
        let (limit, before) = page(req.get_ref().page.clone())?;
        let rows = self.app.audit_events(principal(&req)?, limit, before).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            page: next_page(rows.iter().map(|r| r.id), rows.len(), limit),
            events: rows
                .into_iter()
                .map(|r| pb::AuditEvent {
                    id: r.id.simple().to_string(),
                    occurred_at: timestamp(r.occurred_at),
                    action: r.action,
                    actor: r.actor,
                    subject: r.subject,
                    client_ip: r.client_ip,
                    detail: r.detail,
                })
                .collect(),
        }))
    }
}
