//! Who may do what: staff roles, the permissions each grants, portal contacts' permissions and
//! the permissions of Cobro's own services. Permission names are also the API-key scopes, and
//! every service checks them by exact name (`Principal::require`).

use std::fmt;
use std::str::FromStr;

/// Every permission the platform knows, sorted. API-key scopes must come from this list.
pub const PERMISSIONS: &[&str] = &[
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
    "portal:pay",
    "portal:read",
    "recon:confirm",
    "recon:read",
    "recon:write",
    "reports:read",
    "tenant:manage",
    "users:manage",
    "users:read",
];

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Admin,
    /// Accounts-receivable clerk: customers, invoices, collections.
    ArClerk,
    /// Reconciliation and refunds.
    Treasurer,
    Viewer,
}

pub const ROLES: [Role; 5] = [Role::Owner, Role::Admin, Role::ArClerk, Role::Treasurer, Role::Viewer];

const READ_ALL: &[&str] = &[
    "audit:read",
    "customers:read",
    "invoices:read",
    "notifications:read",
    "payments:read",
    "recon:read",
    "reports:read",
    "users:read",
];

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

/// What a portal contact may do, always limited to their own customer.
pub const CONTACT_PERMISSIONS: &[&str] = &["portal:pay", "portal:read"];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::ArClerk => "ar_clerk",
            Role::Treasurer => "treasurer",
            Role::Viewer => "viewer",
        }
    }

    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            // An admin can do everything an owner can except manage owners (see `may_assign`).
            Role::Owner | Role::Admin => OWNER,
            Role::ArClerk => AR_CLERK,
            Role::Treasurer => TREASURER,
            Role::Viewer => READ_ALL,
        }
    }

    /// Whether someone holding `self` may give `target` to a user or take it away: only owners
    /// make or unmake owners, so an admin cannot lock the owner out.
    pub fn may_assign(self, target: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => target != Role::Owner,
            _ => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ROLES.into_iter().find(|role| role.as_str() == s).ok_or(())
    }
}

pub fn is_permission(name: &str) -> bool {
    PERMISSIONS.binary_search(&name).is_ok()
}

/// The name the platform operator's client uses; its tokens may bootstrap tenants.
pub const OPERATOR: &str = "operator";
pub const PLATFORM_OPERATE: &str = "platform:operate";

/// Cobro's services and the permissions their service tokens carry. A service token is scoped
/// to one tenant like any other; the vault additionally checks the service name itself.
pub fn service_permissions(service: &str) -> Option<&'static [&'static str]> {
    Some(match service {
        OPERATOR => &[PLATFORM_OPERATE],
        "invoicing" => &["customers:read", "payments:read"],
        "payments" => &["invoices:read", "invoices:write", "customers:read"],
        "notifications" => &["customers:read", "invoices:read", "payments:read"],
        "reconciliation" => &["invoices:read", "invoices:write", "payments:read", "payments:write"],
        "gateway" => &["invoices:read", "customers:read", "payments:read", "payments:write"],
        "vault" => &[],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_lists_are_sorted_and_known() {
        assert!(PERMISSIONS.windows(2).all(|w| w[0] < w[1]), "PERMISSIONS must stay sorted for binary_search");
        for role in ROLES {
            for p in role.permissions() {
                assert!(is_permission(p), "{role}: unknown permission {p}");
            }
        }
        for p in CONTACT_PERMISSIONS {
            assert!(is_permission(p));
        }
    }

    #[test]
    fn roles_grant_what_their_job_needs() {
        assert!(Role::Treasurer.permissions().contains(&"recon:confirm"));
        assert!(Role::Treasurer.permissions().contains(&"payments:refund"));
        assert!(!Role::ArClerk.permissions().contains(&"payments:refund"));
        assert!(!Role::Viewer.permissions().iter().any(|p| p.ends_with(":write") || p.ends_with(":manage")));
        assert!(Role::Owner.permissions().contains(&"users:manage"));
        assert!(!Role::ArClerk.permissions().contains(&"users:manage"));
        // Staff never hold portal permissions; contacts hold nothing else.
        for role in ROLES {
            assert!(!role.permissions().iter().any(|p| p.starts_with("portal:")));
        }
    }

    #[test]
    fn only_owners_assign_owner() {
        assert!(Role::Owner.may_assign(Role::Owner));
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(Role::Admin.may_assign(Role::Viewer));
        assert!(!Role::ArClerk.may_assign(Role::Viewer));
    }

    #[test]
    fn role_names_round_trip() {
        for role in ROLES {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
