//! Who is calling: the verified identity a handler authorizes against.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use uuid::Uuid;

use super::AuthError;
use super::jwt::Claims;
use crate::error::status_with_code;

/// Machine code of an authorization failure.
pub const PERMISSION_DENIED: &str = "permission_denied";

/// What kind of caller a token stands for (the `knd` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A staff user of the tenant.
    User,
    /// A customer-portal contact; carries the customer id.
    Customer,
    /// An API key; its scopes are the permissions.
    ApiKey,
    /// Another Cobro service; carries the service name.
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Customer => "customer",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Service => "service",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified caller. Built only from signature-checked claims; every query it makes is scoped
/// to `tenant_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub subject: String,
    pub kind: PrincipalKind,
    pub roles: Vec<String>,
    /// Effective permissions; matched exactly, no wildcards.
    pub permissions: BTreeSet<String>,
    /// Set for customer-portal contacts.
    pub customer_id: Option<Uuid>,
    /// Set for service principals.
    pub service: Option<String>,
}

fn denied(message: &str) -> Status {
    status_with_code(Code::PermissionDenied, PERMISSION_DENIED, None, message)
}

impl Principal {
    /// The principal of verified claims, rejecting combinations identity never issues.
    pub fn from_claims(claims: Claims) -> Result<Self, AuthError> {
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidClaims("empty sub"));
        }
        match claims.knd {
            PrincipalKind::Customer if claims.cid.is_none() => {
                return Err(AuthError::InvalidClaims("customer token without cid"));
            }
            PrincipalKind::Service if claims.svc.as_deref().is_none_or(str::is_empty) => {
                return Err(AuthError::InvalidClaims("service token without svc"));
            }
            // Only service principals may name a service, so require_service cannot be
            // satisfied by a user token that happens to carry `svc`.
            PrincipalKind::User | PrincipalKind::Customer | PrincipalKind::ApiKey if claims.svc.is_some() => {
                return Err(AuthError::InvalidClaims("svc on a non-service token"));
            }
            _ => {}
        }
        Ok(Self {
            tenant_id: claims.tid,
            subject: claims.sub,
            kind: claims.knd,
            roles: claims.roles,
            permissions: claims.perms.into_iter().collect(),
            customer_id: claims.cid,
            service: claims.svc,
        })
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// `Ok` when the caller holds `permission`; otherwise PermissionDenied naming it.
    pub fn require(&self, permission: &str) -> Result<(), Status> {
        if self.has(permission) { Ok(()) } else { Err(denied(&format!("missing permission {permission}"))) }
    }

    /// `Ok` only for the service principal `name`, for calls a single service may make (only
    /// payments may detokenize at the vault).
    pub fn require_service(&self, name: &str) -> Result<(), Status> {
        if self.kind == PrincipalKind::Service && self.service.as_deref() == Some(name) {
            Ok(())
        } else {
            Err(denied(&format!("only the {name} service may call this method")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::{error_code, error_detail};

    fn claims(knd: PrincipalKind) -> Claims {
        Claims {
            iss: "cobro-identity".into(),
            sub: "sub-1".into(),
            aud: "cobro".into(),
            exp: 2,
            iat: 1,
            nbf: None,
            jti: "j".into(),
            tid: Uuid::now_v7(),
            knd,
            roles: vec!["clerk".into()],
            perms: vec!["invoices.read".into(), "invoices.read".into(), "payments.read".into()],
            cid: None,
            svc: None,
        }
    }

    #[test]
    fn principal_from_claims() {
        let c = claims(PrincipalKind::User);
        let tid = c.tid;
        let p = Principal::from_claims(c).unwrap();
        assert_eq!(p.tenant_id(), tid);
        assert_eq!(p.subject, "sub-1");
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.roles, ["clerk"]);
        assert_eq!(p.permissions.iter().collect::<Vec<_>>(), ["invoices.read", "payments.read"]);
        assert_eq!((p.customer_id, p.service), (None, None));
    }

    #[test]
    fn kind_specific_claims_are_required() {
        assert!(Principal::from_claims(claims(PrincipalKind::Customer)).is_err());
        let mut c = claims(PrincipalKind::Customer);
        let cid = Uuid::now_v7();
        c.cid = Some(cid);
        assert_eq!(Principal::from_claims(c).unwrap().customer_id, Some(cid));
        assert!(Principal::from_claims(claims(PrincipalKind::Service)).is_err());
        let mut c = claims(PrincipalKind::User);
        c.svc = Some("payments".into());
        assert!(Principal::from_claims(c).is_err());
        let mut c = claims(PrincipalKind::User);
        c.sub.clear();
        assert!(Principal::from_claims(c).is_err());
    }

    #[test]
    fn require_denies_a_missing_permission() {
        let p = Principal::from_claims(claims(PrincipalKind::ApiKey)).unwrap();
        assert!(p.require("invoices.read").is_ok());
        let status = p.require("invoices.write").unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(error_code(&status), Some(PERMISSION_DENIED));
        assert!(status.message().contains("invoices.write"));
        assert_eq!(error_detail(&status).unwrap().code, PERMISSION_DENIED);
        // Exact match only: no prefix or wildcard semantics.
        assert!(p.require("invoices").is_err());
        assert!(p.require("invoices.*").is_err());
    }

    #[test]
    fn require_service_only_admits_that_service() {
        let mut c = claims(PrincipalKind::Service);
        c.svc = Some("payments".into());
        let payments = Principal::from_claims(c).unwrap();
        assert!(payments.require_service("payments").is_ok());
        assert_eq!(payments.require_service("invoicing").unwrap_err().code(), Code::PermissionDenied);
        let user = Principal::from_claims(claims(PrincipalKind::User)).unwrap();
        assert_eq!(user.require_service("payments").unwrap_err().code(), Code::PermissionDenied);
    }

    #[test]
    fn kind_serializes_as_the_knd_claim() {
        for (kind, s) in [
            (PrincipalKind::User, "user"),
            (PrincipalKind::Customer, "customer"),
            (PrincipalKind::ApiKey, "api_key"),
            (PrincipalKind::Service, "service"),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{s}\""));
            assert_eq!(kind.to_string(), s);
        }
    }
}
