//! Tenants and their users.

use chrono::Utc;
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::InvalidField;
use cobro_proto::events::v1::TenantCreated;
use uuid::Uuid;

use super::{Identity, prefix, require};
use crate::domain::roles::{OPERATOR, PLATFORM_OPERATE, Role};
use crate::domain::{password, validate};
use crate::error::{IdentityError, Result};
use crate::store;
use crate::store::audit::{Entry, TOPIC};
use crate::store::tenants::TenantRow;
use crate::store::users::{NewUser, UserRow};

/// PCI DSS 8.3.4: lock after not more than 10 failures, for at least 30 minutes.
pub const MAX_LOCKOUT_THRESHOLD: u32 = 10;
pub const MIN_LOCKOUT_SECONDS: u32 = 1800;
pub const MAX_LOCKOUT_SECONDS: u32 = 86_400;

#[derive(Clone, Default)]
pub struct TenantBootstrap {
    pub slug: String,
    pub name: String,
    pub default_locale: String,
    pub default_timezone: String,
    pub owner_email: String,
    pub owner_name: String,
    pub owner_password: String,
}

#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub default_locale: Option<String>,
    pub default_timezone: Option<String>,
    pub mfa_required_for_staff: Option<bool>,
    pub mfa_required_for_contacts: Option<bool>,
    pub lockout_threshold: Option<u32>,
    pub lockout_duration_seconds: Option<u32>,
}

#[derive(Clone, Default)]
pub struct NewStaffUser {
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub password: String,
}

#[derive(Clone, Default)]
pub struct NewContact {
    pub email: String,
    pub display_name: String,
    pub customer_id: String,
    pub password: String,
}

/// `Debug` for inputs that carry a password: everything but the password.
macro_rules! debug_without_password {
    ($ty:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
debug_without_password!(TenantBootstrap { slug, name, owner_email });
debug_without_password!(NewStaffUser { email, role });
debug_without_password!(NewContact { email, customer_id });

fn actor_role(principal: &Principal) -> Option<Role> {
    if principal.kind != PrincipalKind::User {
        return None;
    }
    principal.roles.iter().find_map(|r| r.parse().ok())
}

impl Identity {
    /// Create a tenant and its owner. Called by the admin command (no principal) or by the
    /// platform operator's service token.
    pub async fn bootstrap_tenant(
        &self,
        caller: Option<&Principal>,
        input: TenantBootstrap,
    ) -> Result<(TenantRow, UserRow)> {
        if let Some(principal) = caller
            && (principal.kind != PrincipalKind::Service
                || principal.service.as_deref() != Some(OPERATOR)
                || !principal.has(PLATFORM_OPERATE))
        {
            return Err(IdentityError::PermissionDenied("only the platform operator may create tenants".to_owned()));
        }
        let slug = validate::slug("slug", &input.slug)?;
        let name = validate::text("name", &input.name, validate::MAX_NAME_LEN)?;
        let default_locale = validate::locale("default_locale", &input.default_locale)?;
        let default_timezone = validate::timezone("default_timezone", &input.default_timezone)?;
        let owner_email = validate::email("owner_email", &input.owner_email)?;
        let owner_name = validate::text("owner_name", &input.owner_name, validate::MAX_NAME_LEN)?;
        password::check_policy("owner_password", &input.owner_password, &owner_email)?;
        let hash = self.hash_secret(input.owner_password).await?;

        let tenant = TenantRow {
            id: Uuid::now_v7(),
            slug,
            name,
            default_locale,
            default_timezone,
            mfa_required_for_staff: false,
            mfa_required_for_contacts: false,
            lockout_threshold: 10,
            lockout_duration_seconds: 1800,
            created_at: Utc::now(),
        };
        let owner_id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        store::tenants::insert(&mut tx, &tenant).await?;
        store::users::insert(
            &mut tx,
            &NewUser {
                tenant_id: tenant.id,
                id: owner_id,
                email: &owner_email,
                display_name: &owner_name,
                kind: "user",
                role: Some(Role::Owner.as_str()),
                customer_id: None,
                password_hash: &hash,
            },
        )
        .await?;
        let actor = caller.map_or_else(|| "admin-command".to_owned(), |p| p.subject.clone());
        store::audit::record(
            &mut tx,
            tenant.id,
            &Entry {
                action: "tenant.created",
                actor: actor.clone(),
                subject: cobro_kit::ids::format(prefix::TENANT, tenant.id),
                ..Entry::default()
            },
        )
        .await?;
        store::audit::record(
            &mut tx,
            tenant.id,
            &Entry {
                action: "user.created",
                actor,
                subject: cobro_kit::ids::format(prefix::USER, owner_id),
                detail: "role owner".to_owned(),
                ..Entry::default()
            },
        )
        .await?;
        let created = TenantCreated {
            tenant_id: tenant.id.to_string(),
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            default_locale: tenant.default_locale.clone(),
            default_timezone: tenant.default_timezone.clone(),
        };
        cobro_kit::events::enqueue(
            &mut tx,
            TOPIC,
            cobro_kit::events::NewEvent::new("identity.tenant_created", tenant.id, tenant.id.to_string(), &created),
        )
        .await?;
        let owner = store::users::get(&mut tx, tenant.id, owner_id).await?.ok_or(IdentityError::NotFound("user"))?;
        tx.commit().await?;
        Ok((tenant, owner))
    }

    pub async fn tenant(&self, principal: &Principal) -> Result<TenantRow> {
        store::tenants::get(&self.pool, principal.tenant_id).await?.ok_or(IdentityError::NotFound("tenant"))
    }

    pub async fn update_tenant(&self, principal: &Principal, changes: TenantChanges) -> Result<TenantRow> {
        require(principal, "tenant:manage")?;
        let mut tx = self.pool.begin().await?;
        // Locked, so two concurrent changes apply one after the other instead of one undoing
        // the other.
        let mut tenant = store::tenants::get_for_update(&mut tx, principal.tenant_id)
            .await?
            .ok_or(IdentityError::NotFound("tenant"))?;
        if let Some(name) = changes.name {
            tenant.name = validate::text("name", &name, validate::MAX_NAME_LEN)?;
        }
        if let Some(locale) = changes.default_locale {
            tenant.default_locale = validate::locale("default_locale", &locale)?;
        }
        if let Some(tz) = changes.default_timezone {
            tenant.default_timezone = validate::timezone("default_timezone", &tz)?;
        }
        if let Some(v) = changes.mfa_required_for_staff {
            tenant.mfa_required_for_staff = v;
        }
        if let Some(v) = changes.mfa_required_for_contacts {
            tenant.mfa_required_for_contacts = v;
        }
        if let Some(threshold) = changes.lockout_threshold {
            if !(3..=MAX_LOCKOUT_THRESHOLD).contains(&threshold) {
                return Err(InvalidField::new(
                    "security_policy.lockout_threshold",
                    format!("must be between 3 and {MAX_LOCKOUT_THRESHOLD} (PCI DSS 8.3.4)"),
                )
                .into());
            }
            tenant.lockout_threshold = i32::try_from(threshold).unwrap_or(10);
        }
        if let Some(seconds) = changes.lockout_duration_seconds {
            if !(MIN_LOCKOUT_SECONDS..=MAX_LOCKOUT_SECONDS).contains(&seconds) {
                return Err(InvalidField::new(
                    "security_policy.lockout_duration_seconds",
                    format!("must be between {MIN_LOCKOUT_SECONDS} and {MAX_LOCKOUT_SECONDS} seconds"),
                )
                .into());
            }
            tenant.lockout_duration_seconds = i32::try_from(seconds).unwrap_or(1800);
        }
        store::tenants::update(&mut tx, &tenant).await?;
        store::audit::record(
            &mut tx,
            tenant.id,
            &Entry {
                action: "tenant.updated",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::TENANT, tenant.id),
                ..Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(tenant)
    }

    pub async fn create_user(&self, principal: &Principal, input: NewStaffUser) -> Result<UserRow> {
        require(principal, "users:manage")?;
        let email = validate::email("email", &input.email)?;
        let display_name = validate::text("display_name", &input.display_name, validate::MAX_NAME_LEN)?;
        let role: Role = input
            .role
            .parse()
            .map_err(|()| InvalidField::new("role", "must be one of owner, admin, ar_clerk, treasurer, viewer"))?;
        if !actor_role(principal).is_some_and(|actor| actor.may_assign(role)) {
            return Err(IdentityError::PermissionDenied(format!("you may not create users with the role {role}")));
        }
        password::check_policy("password", &input.password, &email)?;
        let hash = self.hash_secret(input.password).await?;
        self.insert_user(principal, &email, &display_name, Some(role), None, &hash).await
    }

    /// A portal contact: sees only `customer_id`'s invoices and payments.
    pub async fn create_contact(&self, principal: &Principal, input: NewContact) -> Result<UserRow> {
        require(principal, "users:manage")?;
        let email = validate::email("email", &input.email)?;
        let display_name = validate::text("display_name", &input.display_name, validate::MAX_NAME_LEN)?;
        let customer_id = cobro_kit::ids::parse("customer_id", prefix::CUSTOMER, &input.customer_id)?;
        password::check_policy("password", &input.password, &email)?;
        let hash = self.hash_secret(input.password).await?;
        self.insert_user(principal, &email, &display_name, None, Some(customer_id), &hash).await
    }

    async fn insert_user(
        &self,
        principal: &Principal,
        email: &str,
        display_name: &str,
        role: Option<Role>,
        customer_id: Option<Uuid>,
        hash: &str,
    ) -> Result<UserRow> {
        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        store::users::insert(
            &mut tx,
            &NewUser {
                tenant_id: principal.tenant_id,
                id,
                email,
                display_name,
                kind: if role.is_some() { "user" } else { "customer" },
                role: role.map(Role::as_str),
                customer_id,
                password_hash: hash,
            },
        )
        .await?;
        store::audit::record(
            &mut tx,
            principal.tenant_id,
            &Entry {
                action: "user.created",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::USER, id),
                detail: role.map_or_else(|| "portal contact".to_owned(), |r| format!("role {r}")),
                ..Entry::default()
            },
        )
        .await?;
        let user = store::users::get(&mut tx, principal.tenant_id, id).await?.ok_or(IdentityError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// A user of the caller's tenant. Anyone may read themselves; others need users:read.
    pub async fn get_user(&self, principal: &Principal, id: &str) -> Result<UserRow> {
        let id = cobro_kit::ids::parse("id", prefix::USER, id)?;
        let is_self = cobro_kit::ids::format(prefix::USER, id) == principal.subject;
        if !is_self && !principal.has("users:read") && !principal.has("users:manage") {
            return Err(IdentityError::PermissionDenied("missing permission users:read".to_owned()));
        }
        let mut conn = self.pool.acquire().await?;
        store::users::get(&mut conn, principal.tenant_id, id).await?.ok_or(IdentityError::NotFound("user"))
    }

    pub async fn list_users(&self, principal: &Principal, limit: i64, after: Option<Uuid>) -> Result<Vec<UserRow>> {
        if !principal.has("users:read") && !principal.has("users:manage") {
            return Err(IdentityError::PermissionDenied("missing permission users:read".to_owned()));
        }
        store::users::list(&self.pool, principal.tenant_id, after, limit).await
    }

    /// A user of the caller's tenant, for a change by a manager who may manage their role
    /// (only owners manage owners).
    async fn managed_user(&self, principal: &Principal, id: &str) -> Result<UserRow> {
        require(principal, "users:manage")?;
        let id = cobro_kit::ids::parse("id", prefix::USER, id)?;
        let mut conn = self.pool.acquire().await?;
        let user =
            store::users::get(&mut conn, principal.tenant_id, id).await?.ok_or(IdentityError::NotFound("user"))?;
        if let Some(role) = user.role.as_deref().and_then(|r| r.parse::<Role>().ok())
            && !actor_role(principal).is_some_and(|actor| actor.may_assign(role))
        {
            return Err(IdentityError::PermissionDenied(format!("you may not manage a user with the role {role}")));
        }
        Ok(user)
    }

    pub async fn set_user_role(&self, principal: &Principal, id: &str, role: &str) -> Result<UserRow> {
        let user = self.managed_user(principal, id).await?;
        let role: Role = role
            .parse()
            .map_err(|()| InvalidField::new("role", "must be one of owner, admin, ar_clerk, treasurer, viewer"))?;
        let current: Option<Role> = user.role.as_deref().and_then(|r| r.parse().ok());
        let Some(current) = current else {
            return Err(IdentityError::FailedPrecondition("portal contacts have no role"));
        };
        let actor = actor_role(principal);
        if !actor.is_some_and(|a| a.may_assign(role) && a.may_assign(current)) {
            return Err(IdentityError::PermissionDenied(format!("you may not change a {current} into a {role}")));
        }
        let mut tx = self.pool.begin().await?;
        if current == Role::Owner && role != Role::Owner {
            let owners = store::users::active_owners_for_update(&mut tx, user.tenant_id).await?;
            if owners.iter().all(|o| *o == user.id) {
                return Err(IdentityError::FailedPrecondition("a tenant must keep at least one owner"));
            }
        }
        store::users::set_role(&mut tx, user.tenant_id, user.id, role.as_str()).await?;
        // Refresh tokens would mint access tokens with the old permissions.
        store::sessions::revoke_user(&mut tx, user.tenant_id, user.id, "role_changed").await?;
        store::audit::record(
            &mut tx,
            user.tenant_id,
            &Entry {
                action: "user.role_changed",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::USER, user.id),
                detail: format!("{current} -> {role}"),
                ..Entry::default()
            },
        )
        .await?;
        let user = store::users::get(&mut tx, user.tenant_id, user.id).await?.ok_or(IdentityError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Disable a user and end their sessions.
    pub async fn disable_user(&self, principal: &Principal, id: &str) -> Result<UserRow> {
        let user = self.managed_user(principal, id).await?;
        if cobro_kit::ids::format(prefix::USER, user.id) == principal.subject {
            return Err(IdentityError::FailedPrecondition("you cannot disable yourself"));
        }
        let role: Option<Role> = user.role.as_deref().and_then(|r| r.parse().ok());
        if let Some(role) = role
            && !actor_role(principal).is_some_and(|a| a.may_assign(role))
        {
            return Err(IdentityError::PermissionDenied(format!("you may not disable a {role}")));
        }
        let mut tx = self.pool.begin().await?;
        if role == Some(Role::Owner) {
            let owners = store::users::active_owners_for_update(&mut tx, user.tenant_id).await?;
            if owners.iter().all(|o| *o == user.id) {
                return Err(IdentityError::FailedPrecondition("a tenant must keep at least one owner"));
            }
        }
        store::users::disable(&mut tx, user.tenant_id, user.id).await?;
        store::sessions::revoke_user(&mut tx, user.tenant_id, user.id, "user_disabled").await?;
        store::audit::record(
            &mut tx,
            user.tenant_id,
            &Entry {
                action: "user.disabled",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::USER, user.id),
                ..Entry::default()
            },
        )
        .await?;
        let user = store::users::get(&mut tx, user.tenant_id, user.id).await?.ok_or(IdentityError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Lift a lockout early, after confirming the person out of band.
    pub async fn unlock_user(&self, principal: &Principal, id: &str) -> Result<UserRow> {
        let user = self.managed_user(principal, id).await?;
        let tenant = self.tenant(principal).await?;
        // Every address's lock is keyed by account, so any ip gives the same account key.
        let subject = Self::subject(&tenant.slug, &user.email, "");
        self.limiter.unlock(&subject).await.map_err(super::limiter_down)?;
        self.audit(
            tenant.id,
            Entry {
                action: "account.unlocked",
                actor: principal.subject.clone(),
                subject: cobro_kit::ids::format(prefix::USER, user.id),
                ..Entry::default()
            },
        )
        .await?;
        Ok(user)
    }

    /// Remove a user's authenticator (lost phone) and end their sessions.
    pub async fn reset_user_mfa(&self, principal: &Principal, id: &str) -> Result<UserRow> {
        let user = self.managed_user(principal, id).await?;
        let mut tx = self.pool.begin().await?;
        let removed = store::mfa::delete_totp(&mut tx, user.tenant_id, user.id).await?;
        store::sessions::revoke_user(&mut tx, user.tenant_id, user.id, "mfa_reset").await?;
        if removed {
            store::audit::record(
                &mut tx,
                user.tenant_id,
                &Entry {
                    action: "mfa.removed",
                    actor: principal.subject.clone(),
                    subject: cobro_kit::ids::format(prefix::USER, user.id),
                    detail: "reset by an administrator".to_owned(),
                    ..Entry::default()
                },
            )
            .await?;
        }
        let user = store::users::get(&mut tx, user.tenant_id, user.id).await?.ok_or(IdentityError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Change the caller's password (after confirming the current one, counted like a sign-in
    /// attempt); every session ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        client_ip: &str,
    ) -> Result<()> {
        let (user, tenant) = self.own_user(principal).await?;
        password::check_policy("new_password", new, &user.email)?;
        if new == current {
            return Err(InvalidField::new("new_password", "must differ from the current password").into());
        }
        self.confirm_password(&user, &tenant, current, "current_password", client_ip).await?;
        let hash = self.hash_secret(new.to_owned()).await?;
        let mut tx = self.pool.begin().await?;
        store::users::set_password(&mut tx, user.tenant_id, user.id, &hash).await?;
        store::sessions::revoke_user(&mut tx, user.tenant_id, user.id, "password_changed").await?;
        store::audit::record(
            &mut tx,
            user.tenant_id,
            &Entry::own("password.changed", &principal.subject, client_ip, ""),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn audit_events(
        &self,
        principal: &Principal,
        limit: i64,
        before: Option<Uuid>,
    ) -> Result<Vec<store::audit::AuditRow>> {
        require(principal, "audit:read")?;
        store::audit::list(&self.pool, principal.tenant_id, before, limit).await
    }
}
