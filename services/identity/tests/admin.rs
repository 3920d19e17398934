//! Tenants, users, API keys, service clients and signing keys against the real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cobro_identity::app::{NewApiKey, NewContact, NewStaffUser, TenantBootstrap};
use cobro_identity::config::Settings;
use cobro_kit::auth::PrincipalKind;
use common::{Harness, PASSWORD, code, field};
use secrecy::ExposeSecret;

fn staff(email: &str, role: &str) -> NewStaffUser {
    NewStaffUser {
        email: email.into(),
        display_name: "Staff Member".into(),
        role: role.into(),
        password: PASSWORD.into(),
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_not_found() {
    let h = Harness::new().await;
    let a = h.tenant("tenant-a").await;
    let b = h.tenant("tenant-b").await;
    let b_user = h.app.create_user(&b.owner, staff("clerk@b.example.com", "ar_clerk")).await.unwrap();
    let b_user_id = cobro_kit::ids::format("usr", b_user.id);
    let b_key = h
        .app
        .create_api_key(
            &b.owner,
            NewApiKey { name: "SAP".into(), scopes: vec!["invoices:read".into()], expires_at: None },
        )
        .await
        .unwrap();
    let b_key_id = cobro_kit::ids::format("key", b_key.key.id);

    // A's owner holds every permission, in A only.
    assert_eq!(code(&h.app.get_user(&a.owner, &b_user_id).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.set_user_role(&a.owner, &b_user_id, "viewer").await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.disable_user(&a.owner, &b_user_id).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.unlock_user(&a.owner, &b_user_id).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.reset_user_mfa(&a.owner, &b_user_id).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.revoke_api_key(&a.owner, &b_key_id).await.unwrap_err()), "not_found");
    let listed = h.app.list_users(&a.owner, 200, None).await.unwrap();
    assert!(listed.iter().all(|u| u.tenant_id == a.id));
    assert!(h.app.list_api_keys(&a.owner, 200, None).await.unwrap().is_empty());
    assert!(h.app.audit_events(&a.owner, 200, None).await.unwrap().iter().all(|e| !e.subject.contains(&b_user_id)));
    assert_eq!(h.app.tenant(&a.owner).await.unwrap().id, a.id);

    // B's things are untouched.
    let still = h.app.get_user(&b.owner, &b_user_id).await.unwrap();
    assert_eq!(still.role.as_deref(), Some("ar_clerk"));
    assert!(still.disabled_at.is_none());
    h.app.exchange_api_key(b_key.secret.expose_secret()).await.unwrap();
    // The same email may exist in both tenants.
    h.app.create_user(&a.owner, staff("clerk@b.example.com", "viewer")).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let h = Harness::new().await;
    let good = TenantBootstrap {
        slug: "bad-input".into(),
        name: "Bad Input".into(),
        default_locale: "es-MX".into(),
        default_timezone: "America/Mexico_City".into(),
        owner_email: "owner@example.com".into(),
        owner_name: "Owner".into(),
        owner_password: PASSWORD.into(),
    };
    let cases: Vec<(TenantBootstrap, &str)> = vec![
        (TenantBootstrap { slug: String::new(), ..good.clone() }, "slug"),
        (TenantBootstrap { slug: "Not A Slug".into(), ..good.clone() }, "slug"),
        (TenantBootstrap { name: " ".into(), ..good.clone() }, "name"),
        (TenantBootstrap { name: "x".repeat(201), ..good.clone() }, "name"),
        (TenantBootstrap { default_locale: "spanish".into(), ..good.clone() }, "default_locale"),
        (TenantBootstrap { default_timezone: "Mexico".into(), ..good.clone() }, "default_timezone"),
        (TenantBootstrap { owner_email: "owner@".into(), ..good.clone() }, "owner_email"),
        (TenantBootstrap { owner_email: "a".repeat(300) + "@x.com", ..good.clone() }, "owner_email"),
        (TenantBootstrap { owner_password: "short".into(), ..good.clone() }, "owner_password"),
        (TenantBootstrap { owner_password: "password1234".into(), ..good.clone() }, "owner_password"),
        (TenantBootstrap { owner_password: "owner@example.com".into(), ..good.clone() }, "owner_password"),
        (TenantBootstrap { owner_password: "x".repeat(129), ..good.clone() }, "owner_password"),
    ];
    for (input, expected) in cases {
        let err = h.app.bootstrap_tenant(None, input).await.unwrap_err();
        assert_eq!(code(&err), "invalid_argument", "{expected}");
        assert_eq!(field(&err).as_deref(), Some(expected));
        assert_eq!(cobro_kit::error::to_status(&err).code(), tonic::Code::InvalidArgument);
    }
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(tenants, 0, "nothing half-written");

    h.app.bootstrap_tenant(None, good.clone()).await.unwrap();
    let dup = h
        .app
        .bootstrap_tenant(None, TenantBootstrap { owner_email: "x@example.com".into(), ..good })
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "slug_taken");
    assert_eq!(field(&dup).as_deref(), Some("slug"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(users, 1, "the refused duplicate left no owner behind");

    let t = h.tenant("users").await;
    for (input, expected) in [
        (staff("x@example.com", "root"), "role"),
        (staff("not an email", "viewer"), "email"),
        (NewStaffUser { display_name: String::new(), ..staff("y@example.com", "viewer") }, "display_name"),
        (NewStaffUser { password: "qwertyuiop123".into(), ..staff("z@example.com", "viewer") }, "password"),
    ] {
        let err = h.app.create_user(&t.owner, input).await.unwrap_err();
        assert_eq!(field(&err).as_deref(), Some(expected));
    }
    let err = h
        .app
        .create_contact(
            &t.owner,
            NewContact {
                email: "ap@customer.example.com".into(),
                display_name: "Accounts Payable".into(),
                customer_id: "inv_0192".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field(&err).as_deref(), Some("customer_id"));
    h.app.create_user(&t.owner, staff("dup@example.com", "viewer")).await.unwrap();
    let dup = h.app.create_user(&t.owner, staff("DUP@example.com", "viewer")).await.unwrap_err();
    assert_eq!((code(&dup), field(&dup).as_deref()), ("email_taken", Some("email")));
    h.finish().await;
}

#[tokio::test]
async fn roles_limit_who_manages_whom() {
    let h = Harness::new().await;
    let t = h.tenant("roles").await;
    h.app.create_user(&t.owner, staff("admin@example.com", "admin")).await.unwrap();
    let admin = h.principal(&h.login_session(&t.slug, "admin@example.com", PASSWORD).await.access.token).await;
    h.app.create_user(&admin, staff("viewer@example.com", "viewer")).await.unwrap();
    let err = h.app.create_user(&admin, staff("owner2@example.com", "owner")).await.unwrap_err();
    assert_eq!(code(&err), "permission_denied", "only owners make owners");

    let viewer = h.principal(&h.login_session(&t.slug, "viewer@example.com", PASSWORD).await.access.token).await;
    let err = h.app.create_user(&viewer, staff("v2@example.com", "viewer")).await.unwrap_err();
    assert_eq!(code(&err), "permission_denied");
    assert!(h.app.list_users(&viewer, 50, None).await.is_ok(), "viewers read users");

    // An admin cannot touch the owner.
    let owner_id = t.owner.subject.clone();
    assert_eq!(code(&h.app.set_user_role(&admin, &owner_id, "viewer").await.unwrap_err()), "permission_denied");
    assert_eq!(code(&h.app.disable_user(&admin, &owner_id).await.unwrap_err()), "permission_denied");
    assert_eq!(code(&h.app.reset_user_mfa(&admin, &owner_id).await.unwrap_err()), "permission_denied");
    assert_eq!(code(&h.app.unlock_user(&admin, &owner_id).await.unwrap_err()), "permission_denied");
    // The last owner cannot be demoted or disabled, not even by themselves.
    let err = h.app.set_user_role(&t.owner, &owner_id, "admin").await.unwrap_err();
    assert_eq!(code(&err), "failed_precondition");
    assert_eq!(code(&h.app.disable_user(&t.owner, &owner_id).await.unwrap_err()), "failed_precondition");
    h.finish().await;
}

#[tokio::test]
async fn a_role_change_ends_the_users_sessions() {
    let h = Harness::new().await;
    let t = h.tenant("rolechange").await;
    let clerk = h.app.create_user(&t.owner, staff("clerk@example.com", "ar_clerk")).await.unwrap();
    let session = h.login_session(&t.slug, "clerk@example.com", PASSWORD).await;
    h.app.set_user_role(&t.owner, &cobro_kit::ids::format("usr", clerk.id), "viewer").await.unwrap();
    assert_eq!(code(&h.app.refresh(&session.refresh_token).await.unwrap_err()), "invalid_refresh_token");
    let again = h.principal(&h.login_session(&t.slug, "clerk@example.com", PASSWORD).await.access.token).await;
    assert!(!again.has("invoices:write") && again.has("invoices:read"));
    h.finish().await;
}

#[tokio::test]
async fn portal_contacts_see_only_their_customer() {
    let h = Harness::new().await;
    let t = h.tenant("portal").await;
    let customer = uuid::Uuid::now_v7();
    let contact = h
        .app
        .create_contact(
            &t.owner,
            NewContact {
                email: "ap@customer.example.com".into(),
                display_name: "Accounts Payable".into(),
                customer_id: cobro_kit::ids::format("cus", customer),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(contact.kind, "customer");
    let session = h.login_session(&t.slug, "ap@customer.example.com", PASSWORD).await;
    let who = h.principal(&session.access.token).await;
    assert_eq!(who.kind, PrincipalKind::Customer);
    assert_eq!(who.customer_id, Some(customer));
    assert!(who.has("portal:pay") && !who.has("invoices:read"));
    assert_eq!(code(&h.app.list_users(&who, 50, None).await.unwrap_err()), "permission_denied");
    h.finish().await;
}

#[tokio::test]
async fn api_keys_exchange_for_scoped_tokens_until_revoked_or_expired() {
    let h = Harness::new().await;
    let t = h.tenant("keys").await;
    let created = h
        .app
        .create_api_key(
            &t.owner,
            NewApiKey {
                name: "SAP S/4HANA".into(),
                scopes: vec!["invoices:write".into(), "invoices:read".into(), "invoices:read".into()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let secret = created.secret.expose_secret().to_owned();
    assert!(secret.starts_with("ck_live_") && secret.len() == 51);
    assert!(secret.starts_with(&created.key.display_prefix));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(stored.len(), 32, "a keyed hash, not the key");

    let token = h.app.exchange_api_key(&secret).await.unwrap();
    let who = h.principal(&token.token).await;
    assert_eq!(who.kind, PrincipalKind::ApiKey);
    assert_eq!(who.tenant_id, t.id);
    assert_eq!(who.permissions.iter().cloned().collect::<Vec<_>>(), vec!["invoices:read", "invoices:write"]);
    let listed = h.app.list_api_keys(&t.owner, 50, None).await.unwrap();
    assert!(listed[0].last_used_at.is_some());

    // One character changed (to one it is not already).
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    let err = h.app.exchange_api_key(&format!("{}{last}", &secret[..secret.len() - 1])).await.unwrap_err();
    assert_eq!(code(&err), "invalid_api_key");
    assert_eq!(field(&h.app.exchange_api_key("sk_test_123").await.unwrap_err()).as_deref(), Some("api_key"));

    h.app.revoke_api_key(&t.owner, &cobro_kit::ids::format("key", created.key.id)).await.unwrap();
    assert_eq!(code(&h.app.exchange_api_key(&secret).await.unwrap_err()), "invalid_api_key");

    // An expiring key's tokens never outlive it.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let expiring = h
        .app
        .create_api_key(
            &t.owner,
            NewApiKey { name: "shop".into(), scopes: vec!["payments:read".into()], expires_at: Some(soon) },
        )
        .await
        .unwrap();
    let token = h.app.exchange_api_key(expiring.secret.expose_secret()).await.unwrap();
    assert!(token.expires_at <= soon);
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(code(&h.app.exchange_api_key(expiring.secret.expose_secret()).await.unwrap_err()), "invalid_api_key");

    // Scopes: known names only, never more than the creator holds, expiry in the future.
    let err = h
        .app
        .create_api_key(
            &t.owner,
            NewApiKey { name: "x".into(), scopes: vec!["invoices:read".into(), "root".into()], expires_at: None },
        )
        .await
        .unwrap_err();
    assert_eq!(field(&err).as_deref(), Some("scopes[1]"));
    let err = h
        .app
        .create_api_key(&t.owner, NewApiKey { name: "x".into(), scopes: vec!["portal:pay".into()], expires_at: None })
        .await
        .unwrap_err();
    assert_eq!(code(&err), "permission_denied");
    let err = h
        .app
        .create_api_key(
            &t.owner,
            NewApiKey {
                name: "x".into(),
                scopes: vec!["invoices:read".into()],
                expires_at: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field(&err).as_deref(), Some("expires_at"));
    let actions = h.audit_actions(t.id).await;
    assert!(actions.contains(&"api_key.created".to_owned()) && actions.contains(&"api_key.revoked".to_owned()));

    // Keys do not make keys.
    let key_principal = h
        .principal(
            &h.app
                .exchange_api_key(
                    h.app
                        .create_api_key(
                            &t.owner,
                            NewApiKey {
                                name: "admin key".into(),
                                scopes: vec!["api_keys:manage".into()],
                                expires_at: None,
                            },
                        )
                        .await
                        .unwrap()
                        .secret
                        .expose_secret(),
                )
                .await
                .unwrap()
                .token,
        )
        .await;
    let err = h
        .app
        .create_api_key(
            &key_principal,
            NewApiKey { name: "child".into(), scopes: vec!["api_keys:manage".into()], expires_at: None },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), "permission_denied");
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_log a").fetch_all(&h.db.pool).await.unwrap();
    assert!(!audit.iter().any(|row| row.contains(&secret)));
    h.finish().await;
}

#[tokio::test]
async fn services_get_their_own_identity_and_only_the_operator_bootstraps_tenants() {
    let h = Harness::new().await;
    let t = h.tenant("services").await;
    let secret = h.app.put_service_client("payments").await.unwrap();
    let tenant_id = cobro_kit::ids::format("ten", t.id);
    let token = h.app.exchange_client_credentials("payments", secret.expose_secret(), &tenant_id).await.unwrap();
    let who = h.principal(&token.token).await;
    assert!(who.require_service("payments").is_ok());
    assert!(who.require_service("invoicing").is_err());
    assert_eq!(who.tenant_id, t.id);

    let wrong = h.app.exchange_client_credentials("payments", "css_wrong", &tenant_id).await.unwrap_err();
    assert_eq!(code(&wrong), "invalid_client");
    let unknown = h.app.exchange_client_credentials("mallory", secret.expose_secret(), &tenant_id).await.unwrap_err();
    assert_eq!(code(&unknown), "invalid_client");
    assert_eq!(field(&h.app.put_service_client("mallory").await.unwrap_err()).as_deref(), Some("name"));
    // Rotating the secret kills the old one.
    let rotated = h.app.put_service_client("payments").await.unwrap();
    assert_eq!(
        code(&h.app.exchange_client_credentials("payments", secret.expose_secret(), &tenant_id).await.unwrap_err()),
        "invalid_client"
    );
    h.app.exchange_client_credentials("payments", rotated.expose_secret(), &tenant_id).await.unwrap();

    // A service token cannot bootstrap tenants; the operator's can.
    let bootstrap = TenantBootstrap {
        slug: "operator-made".into(),
        name: "Made by the operator".into(),
        default_locale: "en-US".into(),
        default_timezone: "America/New_York".into(),
        owner_email: "owner@operator-made.example.com".into(),
        owner_name: "Owner".into(),
        owner_password: PASSWORD.into(),
    };
    assert_eq!(code(&h.app.bootstrap_tenant(Some(&who), bootstrap.clone()).await.unwrap_err()), "permission_denied");
    assert_eq!(
        code(&h.app.bootstrap_tenant(Some(&t.owner), bootstrap.clone()).await.unwrap_err()),
        "permission_denied"
    );
    let operator_secret = h.app.put_service_client("operator").await.unwrap();
    let op = h.app.exchange_client_credentials("operator", operator_secret.expose_secret(), "").await.unwrap();
    let operator = h.principal(&op.token).await;
    let (tenant, owner) = h.app.bootstrap_tenant(Some(&operator), bootstrap).await.unwrap();
    assert_eq!(owner.role.as_deref(), Some("owner"));
    h.login_session(&tenant.slug, "owner@operator-made.example.com", PASSWORD).await;
    h.finish().await;
}

#[tokio::test]
async fn rotation_publishes_the_next_key_first_and_keeps_the_old_one_until_its_tokens_expire() {
    let settings = Settings { key_publish_delay: std::time::Duration::from_secs(1), ..Settings::generated() };
    let h = Harness::with(settings, &cobro_kit::testing::redis_url()).await;
    let t = h.tenant("rotate").await;
    let before = h.login_session(&t.slug, &t.owner_email, PASSWORD).await;
    let old_kid = cobro_kit::auth::jwt::decode(&before.access.token).unwrap().kid().to_owned();

    let new_kid = h.app.keys().rotate().await.unwrap();
    let published: Vec<String> = h.app.keys().jwks().kids().map(str::to_owned).collect();
    assert!(published.contains(&old_kid) && published.contains(&new_kid), "both keys are published");
    // Until the publish delay passes, tokens are still signed with the old key.
    let during = h.login_session(&t.slug, &t.owner_email, PASSWORD).await;
    assert_eq!(cobro_kit::auth::jwt::decode(&during.access.token).unwrap().kid(), old_kid);

    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let after = h.login_session(&t.slug, &t.owner_email, PASSWORD).await;
    assert_eq!(cobro_kit::auth::jwt::decode(&after.access.token).unwrap().kid(), new_kid);
    // A verifier that knows only what identity publishes accepts tokens of both keys.
    let fresh = cobro_identity::verifier(&h.app, &h.auth);
    fresh.verify(&before.access.token).await.unwrap();
    fresh.verify(&after.access.token).await.unwrap();
    // Sealed at rest.
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT private_key_sealed FROM signing_keys").fetch_all(&h.db.pool).await.unwrap();
    assert!(sealed.iter().all(|s| s.len() == 1 + 12 + 32 + 16));
    h.finish().await;
}

#[tokio::test]
async fn an_api_key_never_does_more_than_its_creator_may_do_now() {
    let h = Harness::new().await;
    let t = h.tenant("creator").await;
    let treasurer = h.app.create_user(&t.owner, staff("treasurer@example.com", "treasurer")).await.unwrap();
    let treasurer_id = cobro_kit::ids::format("usr", treasurer.id);
    h.app.set_user_role(&t.owner, &treasurer_id, "admin").await.unwrap();
    let admin = h.principal(&h.login_session(&t.slug, "treasurer@example.com", PASSWORD).await.access.token).await;
    let key = h
        .app
        .create_api_key(
            &admin,
            NewApiKey {
                name: "bank sync".into(),
                scopes: vec!["recon:confirm".into(), "users:manage".into()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let secret = key.secret.expose_secret().to_owned();
    let full = h.principal(&h.app.exchange_api_key(&secret).await.unwrap().token).await;
    assert!(full.has("users:manage") && full.has("recon:confirm"));

    // Demoted to treasurer: the key keeps only what a treasurer may do.
    h.app.set_user_role(&t.owner, &treasurer_id, "treasurer").await.unwrap();
    let reduced = h.principal(&h.app.exchange_api_key(&secret).await.unwrap().token).await;
    assert!(reduced.has("recon:confirm") && !reduced.has("users:manage"));

    // Disabled: the key stops working.
    h.app.disable_user(&t.owner, &treasurer_id).await.unwrap();
    assert_eq!(code(&h.app.exchange_api_key(&secret).await.unwrap_err()), "invalid_api_key");
    h.finish().await;
}
