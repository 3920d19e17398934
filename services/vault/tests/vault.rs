//! The vault against the real Postgres: tokenize, detokenize, isolation, integrity, shredding,
//! temporary tokens, rotation under load, key checks at start, the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cobro_kit::auth::PrincipalKind;
use cobro_vault::app::{CardInput, Vault};
use cobro_vault::keys::LocalKeyProvider;
use common::{AMEX, Harness, VISA, card, code, field};
use uuid::Uuid;

#[tokio::test]
async fn a_card_goes_in_and_only_payments_gets_it_back() {
    let h = Harness::new().await;
    let input = CardInput { pan: "4111 1111-1111 1111", holder_name: "  Ana López ", ..card(VISA) };
    let (meta, created) = h.vault.tokenize(&h.payments(), input).await.unwrap();
    assert!(created);
    assert!(meta.token.starts_with("tok_") && meta.token.len() == 36);
    assert_eq!((meta.brand.as_str(), meta.last4.as_str(), meta.exp_month, meta.exp_year), ("visa", "1111", 12, 2031));
    assert_eq!(meta.fingerprint.len(), 32);

    let back = h.vault.detokenize(&h.payments(), &meta.token, "charge").await.unwrap();
    assert_eq!(back.pan.expose(), VISA);
    assert_eq!((back.exp_month, back.exp_year, back.holder_name.as_str()), (12, 2031, "Ana López"));
    assert!(!format!("{back:?}").contains("4111111111111111"));

    // The row holds no card number in any form.
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM cards c").fetch_all(&h.db.pool).await.unwrap();
    assert!(!rows[0].contains(VISA) && !rows[0].contains("411111"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM cards").fetch_one(&h.db.pool).await.unwrap();
    assert!(!stored.windows(VISA.len()).any(|w| w == VISA.as_bytes()));

    let meta2 = h.vault.metadata(&h.staff(&["payments:read"]), &meta.token).await.unwrap();
    assert_eq!(meta2.fingerprint, meta.fingerprint);
    h.finish().await;
}

#[tokio::test]
async fn only_payments_for_a_tenant_stores_cards_as_a_service() {
    let h = Harness::new().await;
    for who in [
        // The gateway calls payments as the signed-in person; its own credential stores nothing.
        h.issuer.service_principal(h.tenant, "gateway", &["payments:write"]),
        h.issuer.service_principal(uuid::Uuid::nil(), "gateway", &[]),
        // A service token for no tenant would file the card under nobody.
        h.issuer.service_principal(uuid::Uuid::nil(), "payments", &[]),
    ] {
        let err = h.vault.tokenize(&who, common::card(VISA)).await.unwrap_err();
        assert_eq!(code(&err), "permission_denied", "{:?} {}", who.service, who.tenant_id);
    }
    assert_eq!(h.count("SELECT count(*) FROM cards").await, 0);
    h.finish().await;
}

#[tokio::test]
async fn nobody_but_payments_detokenizes_and_every_attempt_is_audited() {
    let h = Harness::new().await;
    let token = h.tokenize(VISA).await;
    let everyone_else = [
        h.issuer.service_principal(h.tenant, "gateway", &["payments:write"]),
        h.issuer.service_principal(h.tenant, "invoicing", &[]),
        h.staff(&["payments:read", "payments:write", "payments:refund", "users:manage"]),
        h.issuer.principal(h.tenant, PrincipalKind::ApiKey, &["payments:write"]),
        h.issuer.principal(h.tenant, PrincipalKind::Customer, &["portal:pay"]),
    ];
    for who in &everyone_else {
        let err = h.vault.detokenize(who, &token, "charge").await.unwrap_err();
        assert_eq!(code(&err), "permission_denied", "{:?}", who.kind);
    }
    let denied = h.count("SELECT count(*) FROM audit_log WHERE action = 'detokenize' AND outcome = 'denied'").await;
    assert_eq!(denied, 5);
    let events = h.count("SELECT count(*) FROM outbox WHERE event_type = 'vault.audit'").await;
    assert!(events >= 6, "every audit row is also an event");
    h.finish().await;
}

#[tokio::test]
async fn another_tenants_tokens_answer_not_found() {
    let h = Harness::new().await;
    let token = h.tokenize(VISA).await;
    let other = Uuid::now_v7();
    let outsider = h.payments_of(other);
    assert_eq!(code(&h.vault.detokenize(&outsider, &token, "charge").await.unwrap_err()), "token_not_found");
    let staff = h.issuer.principal(other, PrincipalKind::User, &["payments:read", "payments:write"]);
    assert_eq!(code(&h.vault.metadata(&staff, &token).await.unwrap_err()), "token_not_found");
    assert_eq!(code(&h.vault.delete(&staff, &token).await.unwrap_err()), "token_not_found");
    // Still there for its owner.
    h.vault.detokenize(&h.payments(), &token, "charge").await.unwrap();
    // Fingerprints are per tenant: the same card elsewhere gives another fingerprint.
    let (a, _) = h.vault.tokenize(&h.payments(), card(AMEX)).await.unwrap();
    let (b, _) = h.vault.tokenize(&outsider, card(AMEX)).await.unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
    let (c, _) = h.vault.tokenize(&h.payments(), card(AMEX)).await.unwrap();
    assert_eq!(a.fingerprint, c.fingerprint);
    h.finish().await;
}

#[tokio::test]
async fn dedupe_returns_the_existing_token_even_under_concurrency() {
    let h = Harness::new().await;
    let dedupe = |pan| CardInput { dedupe: true, ..card(pan) };
    let (first, created) = h.vault.tokenize(&h.payments(), dedupe(VISA)).await.unwrap();
    assert!(created);
    let (again, created) = h.vault.tokenize(&h.payments(), dedupe(VISA)).await.unwrap();
    assert!(!created);
    assert_eq!(again.token, first.token);
    // Without dedupe, a new token.
    let (other, _) = h.vault.tokenize(&h.payments(), card(VISA)).await.unwrap();
    assert_ne!(other.token, first.token);

    let racers = (0..8).map(|_| {
        let vault = Arc::clone(&h.vault);
        let who = h.payments();
        tokio::spawn(
            async move { vault.tokenize(&who, CardInput { dedupe: true, ..card(AMEX) }).await.unwrap().0.token },
        )
    });
    let mut tokens = Vec::new();
    for r in racers {
        tokens.push(r.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "eight concurrent dedupe requests, one token");
    h.finish().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let h = Harness::new().await;
    let cases: Vec<(CardInput<'_>, &str)> = vec![
        (card("4111111111111112"), "pan"),
        (card("4111-1111-1111-111a"), "pan"),
        (card("41111111111"), "pan"),
        (card(""), "pan"),
        (card("１２３４５６７８９０１２"), "pan"),
        (CardInput { exp_month: 13, ..card(VISA) }, "exp_month"),
        (CardInput { exp_month: 0, ..card(VISA) }, "exp_month"),
        (CardInput { exp_year: 2020, ..card(VISA) }, "exp_year"),
        (CardInput { holder_name: "4111111111111111", ..card(VISA) }, "holder_name"),
        (CardInput { ttl_seconds: 86_401, ..card(VISA) }, "ttl_seconds"),
    ];
    for (input, expected) in cases {
        let err = h.vault.tokenize(&h.payments(), input).await.unwrap_err();
        assert_eq!(code(&err), "invalid_argument", "{expected}");
        assert_eq!(field(&err).as_deref(), Some(expected));
        assert!(!err.to_string().contains("411111"), "errors never carry the number: {err}");
    }
    let huge = "4".repeat(100_000);
    assert_eq!(field(&h.vault.tokenize(&h.payments(), card(&huge)).await.unwrap_err()).as_deref(), Some("pan"));
    assert_eq!(h.count("SELECT count(*) FROM cards").await, 0);
    for bad in ["", "tok_short", "tok_../../etc/passwd/0000000000000", &"x".repeat(10_000)] {
        assert_eq!(
            field(&h.vault.detokenize(&h.payments(), bad, "charge").await.unwrap_err()).as_deref(),
            Some("token")
        );
    }
    let token = h.tokenize(VISA).await;
    for purpose in ["", "Charge!", &"a".repeat(65)] {
        assert_eq!(
            field(&h.vault.detokenize(&h.payments(), &token, purpose).await.unwrap_err()).as_deref(),
            Some("purpose")
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_or_altered_does_not_decrypt() {
    let h = Harness::new().await;
    let a = h.tokenize(VISA).await;
    let b = h.tokenize(AMEX).await;
    // Copy A's sealed card and wrapped key into B's row.
    sqlx::query(
        "UPDATE cards SET ciphertext = src.ciphertext, wrapped_dek = src.wrapped_dek \
         FROM (SELECT ciphertext, wrapped_dek FROM cards WHERE token = $1) src WHERE token = $2",
    )
    .bind(&a)
    .bind(&b)
    .execute(&h.db.pool)
    .await
    .unwrap();
    let err = h.vault.detokenize(&h.payments(), &b, "charge").await.unwrap_err();
    assert_eq!(code(&err), "card_record_integrity");
    assert_eq!(cobro_kit::error::to_status(&err).code(), tonic::Code::DataLoss);

    // Only the ciphertext moved (the key is B's own): the card's associated data refuses it.
    let c = h.tokenize(VISA).await;
    let d = h.tokenize(AMEX).await;
    sqlx::query("UPDATE cards SET ciphertext = (SELECT ciphertext FROM cards WHERE token = $1) WHERE token = $2")
        .bind(&c)
        .bind(&d)
        .execute(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &d, "charge").await.unwrap_err()), "card_record_integrity");

    // One flipped bit.
    sqlx::query(
        "UPDATE cards SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1) WHERE token = $1",
    )
    .bind(&c)
    .execute(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &c, "charge").await.unwrap_err()), "card_record_integrity");
    let failed = h.count("SELECT count(*) FROM audit_log WHERE action = 'detokenize' AND outcome = 'failed'").await;
    assert_eq!(failed, 3);
    h.finish().await;
}

#[tokio::test]
async fn deleting_shreds_the_key_and_temporary_tokens_expire() {
    let h = Harness::new().await;
    let token = h.tokenize(VISA).await;
    h.vault.delete(&h.staff(&["payments:write"]), &token).await.unwrap();
    let (dek, ct): (Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT wrapped_dek, ciphertext FROM cards WHERE token = $1")
            .bind(&token)
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert!(dek.is_none() && ct.is_none(), "crypto-shredded");
    let fingerprint: Vec<u8> = sqlx::query_scalar("SELECT fingerprint FROM cards WHERE token = $1")
        .bind(&token)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert!(fingerprint.is_empty(), "nothing derived from the number outlives the card");
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &token, "charge").await.unwrap_err()), "token_not_found");
    assert_eq!(code(&h.vault.delete(&h.payments(), &token).await.unwrap_err()), "token_not_found");
    assert_eq!(code(&h.vault.delete(&h.staff(&["payments:read"]), &token).await.unwrap_err()), "permission_denied");

    let (temp, _) = h.vault.tokenize(&h.payments(), CardInput { ttl_seconds: 1, ..card(AMEX) }).await.unwrap();
    assert!(temp.expires_at.is_some());
    h.vault.detokenize(&h.payments(), &temp.token, "charge").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &temp.token, "charge").await.unwrap_err()), "token_not_found");
    assert_eq!(h.vault.purge_expired(100).await.unwrap(), 1);
    assert_eq!(h.vault.purge_expired(100).await.unwrap(), 0);
    let live = h.count("SELECT count(*) FROM cards WHERE wrapped_dek IS NOT NULL").await;
    assert_eq!(live, 0);
    assert_eq!(h.count("SELECT count(*) FROM audit_log WHERE action = 'purge'").await, 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_four_tasks_detokenize_loses_nothing_and_retires_the_old_key() {
    let h = Harness::new().await;
    let mut tokens = Vec::new();
    for i in 0..200 {
        tokens.push(h.tokenize(if i % 2 == 0 { VISA } else { AMEX }).await);
    }
    let tokens = Arc::new(tokens);
    // Kept for later: a record's wrapping under version 1, as an old backup would have it.
    let (old_wrapped, old_id): (Vec<u8>, Uuid) = sqlx::query_as("SELECT wrapped_dek, id FROM cards WHERE token = $1")
        .bind(&tokens[0])
        .fetch_one(&h.db.pool)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let (vault, tokens, stop, reads, who) =
                (Arc::clone(&h.vault), Arc::clone(&tokens), Arc::clone(&stop), Arc::clone(&reads), h.payments());
            tokio::spawn(async move {
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    let token = &tokens[i % tokens.len()];
                    let card =
                        vault.detokenize(&who, token, "charge").await.unwrap_or_else(|e| panic!("reader {n}: {e}"));
                    assert!(card.pan.expose() == VISA || card.pan.expose() == AMEX);
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 4;
                }
            })
        })
        .collect();

    // And a writer tokenizing throughout: none of its records may end up under the old key.
    let writer = {
        let (vault, stop, who) = (Arc::clone(&h.vault), Arc::clone(&stop), h.payments());
        tokio::spawn(async move {
            let mut written = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                written.push(vault.tokenize(&who, card(VISA)).await.unwrap().0.token);
            }
            written
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let new_version = h.vault.rotate_kek(Some(&h.operator())).await.unwrap();
    assert_eq!(new_version, 2);
    // New records use the new version at once.
    let fresh = h.tokenize(VISA).await;
    let v: i32 = sqlx::query_scalar("SELECT kek_version FROM cards WHERE token = $1")
        .bind(&fresh)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(v, 2);
    // Rewrap in small batches while the readers and the writer go on.
    let mut moved = 0;
    let mut cursor = None;
    loop {
        let (n, next) = h.vault.rewrap_batch(25, cursor).await.unwrap();
        moved += n;
        tokio::time::sleep(Duration::from_millis(20)).await;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let written = writer.await.unwrap();
    assert!(reads.load(Ordering::Relaxed) > 100, "the readers really ran");
    assert!(!written.is_empty());
    assert!(moved >= 201, "at least the 200 cards and the tenant's fingerprint key: {moved}");
    for token in &written {
        h.vault.detokenize(&h.payments(), token, "charge").await.unwrap();
    }
    assert_eq!(h.count("SELECT count(*) FROM cards WHERE kek_version <> 2").await, 0);
    let status = h.vault.key_status(Some(&h.operator())).await.unwrap();
    assert_eq!(
        status.iter().map(|k| (k.version, k.state.as_str())).collect::<Vec<_>>(),
        vec![(1, "retired"), (2, "active")]
    );
    for token in tokens.iter() {
        h.vault.detokenize(&h.payments(), token, "charge").await.unwrap();
    }

    // A record put back under the retired version (an old backup) is refused, and a rewrap
    // pass does not bring it back to life.
    sqlx::query("UPDATE cards SET wrapped_dek = $1, kek_version = 1 WHERE id = $2")
        .bind(&old_wrapped)
        .bind(old_id)
        .execute(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &tokens[0], "charge").await.unwrap_err()), "kek_retired");
    assert_eq!(h.vault.rewrap_all(100).await.unwrap(), 0);
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &tokens[0], "charge").await.unwrap_err()), "kek_retired");
    assert_eq!(code(&h.vault.rotate_kek(Some(&h.payments())).await.unwrap_err()), "permission_denied");
    h.finish().await;
}

#[tokio::test]
async fn the_vault_refuses_to_start_with_a_key_that_does_not_open_its_records() {
    let h = Harness::new().await;
    h.tokenize(VISA).await;
    let wrong = Vault::start(h.db.pool.clone(), Arc::new(LocalKeyProvider::from_root([7; 32]))).await;
    let err = wrong.err().expect("a different KEK must be refused");
    assert_eq!(code(&err), "key_provider_unavailable");
    assert!(err.to_string().contains("does not open"), "{err}");
    // The right key starts.
    Vault::start(h.db.pool.clone(), Arc::new(LocalKeyProvider::from_root(h.root))).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_never_holds_a_card_number() {
    let h = Harness::new().await;
    let token = h.tokenize(VISA).await;
    h.vault.detokenize(&h.payments(), &token, "refund").await.unwrap();
    h.vault.delete(&h.payments(), &token).await.unwrap();
    let actions: Vec<(String, String, String)> =
        sqlx::query_as("SELECT action, outcome, purpose FROM audit_log ORDER BY id")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        vec![
            ("tokenize".into(), "ok".into(), String::new()),
            ("detokenize".into(), "ok".into(), "refund".into()),
            ("delete".into(), "ok".into(), String::new())
        ]
    );
    for sql in ["UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log"] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&h.db.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_log a").fetch_all(&h.db.pool).await.unwrap();
    let events: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM outbox").fetch_all(&h.db.pool).await.unwrap();
    for text in audit.into_iter().chain(events.iter().map(|e| String::from_utf8_lossy(e).into_owned())) {
        assert!(!text.contains(VISA) && !text.contains("41111111"), "{text}");
    }
    h.finish().await;
}

#[tokio::test]
async fn a_replica_that_missed_a_rotation_writes_under_the_new_version() {
    let h = Harness::new().await;
    let other_replica = Vault::start(h.db.pool.clone(), Arc::new(LocalKeyProvider::from_root(h.root))).await.unwrap();
    h.tokenize(VISA).await;
    other_replica.rotate_kek(Some(&h.operator())).await.unwrap();
    // This replica still believes version 1 is active; the database refuses that write and it
    // retries under version 2.
    let token = h.tokenize(AMEX).await;
    let v: i32 = sqlx::query_scalar("SELECT kek_version FROM cards WHERE token = $1")
        .bind(&token)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(v, 2);
    h.vault.detokenize(&h.payments(), &token, "charge").await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_record_that_does_not_unwrap_is_skipped_audited_and_keeps_its_version_retiring() {
    let h = Harness::new().await;
    let bad = h.tokenize(VISA).await;
    let good: Vec<String> = futures_like_tokenize(&h, 5).await;
    sqlx::query(
        "UPDATE cards SET wrapped_dek = set_byte(wrapped_dek, 20, get_byte(wrapped_dek, 20) # 1) WHERE token = $1",
    )
    .bind(&bad)
    .execute(&h.db.pool)
    .await
    .unwrap();
    h.vault.rotate_kek(None).await.unwrap();
    // Batches of 2, so the bad row is met in the first batch and the rest still move.
    let moved = h.vault.rewrap_all(2).await.unwrap();
    assert_eq!(moved, 6, "five cards and the fingerprint key");
    for token in &good {
        h.vault.detokenize(&h.payments(), token, "charge").await.unwrap();
    }
    assert_eq!(h.count("SELECT count(*) FROM audit_log WHERE action = 'rewrap' AND outcome = 'failed'").await, 1);
    let status = h.vault.key_status(None).await.unwrap();
    assert_eq!(status[0].state, "retiring", "version 1 still wraps a record, so it is not retired");
    assert_eq!(status[0].records, 1);
    h.finish().await;
}

async fn futures_like_tokenize(h: &Harness, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(h.tokenize(if i % 2 == 0 { AMEX } else { VISA }).await);
    }
    out
}

#[tokio::test]
async fn a_refused_detokenize_audits_only_well_formed_values() {
    let h = Harness::new().await;
    let gateway = h.issuer.service_principal(h.tenant, "gateway", &[]);
    for (token, purpose) in [(VISA, "charge"), ("tok_\0evil", "charge\0"), ("tok_x", "4111111111111111")] {
        let err = h.vault.detokenize(&gateway, token, purpose).await.unwrap_err();
        assert_eq!(code(&err), "permission_denied");
    }
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT token, purpose FROM audit_log WHERE outcome = 'denied'")
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "every refused attempt is on record");
    for (token, purpose) in rows {
        assert_eq!(
            (token.as_str(), purpose.as_str()),
            ("(malformed)", if purpose == "charge" { "charge" } else { "(malformed)" })
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn temporary_tokens_never_deduplicate() {
    let h = Harness::new().await;
    let (temp, _) =
        h.vault.tokenize(&h.payments(), CardInput { dedupe: true, ttl_seconds: 60, ..card(VISA) }).await.unwrap();
    let (permanent, created) = h.vault.tokenize(&h.payments(), CardInput { dedupe: true, ..card(VISA) }).await.unwrap();
    assert!(created, "a permanent card is not answered with a temporary token");
    assert_ne!(permanent.token, temp.token);
    assert!(permanent.expires_at.is_none());
    let (again, created) = h.vault.tokenize(&h.payments(), CardInput { dedupe: true, ..card(VISA) }).await.unwrap();
    assert!(!created);
    assert_eq!(again.token, permanent.token);
    h.finish().await;
}

#[tokio::test]
async fn who_may_store_read_and_delete_cards() {
    let h = Harness::new().await;
    let refused = [
        h.issuer.service_principal(h.tenant, "reconciliation", &["payments:write", "payments:read"]),
        h.issuer.principal(h.tenant, PrincipalKind::ApiKey, &["payments:write"]),
        h.staff(&["payments:read"]),
    ];
    for who in &refused {
        assert_eq!(code(&h.vault.tokenize(who, card(VISA)).await.unwrap_err()), "permission_denied", "{:?}", who.kind);
    }
    let staff_token = h.tokenize_as(&h.staff(&["payments:write"]), VISA).await;
    for who in &refused[..2] {
        assert_eq!(code(&h.vault.delete(who, &staff_token).await.unwrap_err()), "permission_denied");
    }

    // Portal contacts: their own customer's cards only, and no dedupe across customers.
    let alice = h.issuer.principal(h.tenant, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
    let bob = h.issuer.principal(h.tenant, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
    let (alices, created) = h.vault.tokenize(&alice, CardInput { dedupe: true, ..card(AMEX) }).await.unwrap();
    assert!(created);
    let (bobs, created) = h.vault.tokenize(&bob, CardInput { dedupe: true, ..card(AMEX) }).await.unwrap();
    assert!(created, "bob learns nothing about alice's cards");
    assert_ne!(alices.token, bobs.token);
    assert_eq!(code(&h.vault.metadata(&bob, &alices.token).await.unwrap_err()), "token_not_found");
    assert_eq!(code(&h.vault.delete(&bob, &alices.token).await.unwrap_err()), "token_not_found");
    assert_eq!(code(&h.vault.metadata(&alice, &staff_token).await.unwrap_err()), "token_not_found");
    h.vault.metadata(&alice, &alices.token).await.unwrap();
    h.vault.delete(&alice, &alices.token).await.unwrap();
    // Staff see every card of the tenant.
    h.vault.metadata(&h.staff(&["payments:read"]), &bobs.token).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_whole_row_moved_onto_another_token_or_an_edited_expiry_does_not_decrypt() {
    let h = Harness::new().await;
    let a = h.tokenize(VISA).await;
    let b = h.tokenize(AMEX).await;
    // Everything of A's (id, ciphertext, wrapped key, version, last4) copied onto B's token.
    sqlx::query(
        "UPDATE cards SET id = src.id, ciphertext = src.ciphertext, wrapped_dek = src.wrapped_dek, \
         kek_version = src.kek_version, last4 = src.last4, brand = src.brand \
         FROM (SELECT id, ciphertext, wrapped_dek, kek_version, last4, brand FROM cards WHERE token = $1) src WHERE token = $2",
    )
    .bind(&a)
    .bind(&b)
    .execute(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &b, "charge").await.unwrap_err()), "card_record_integrity");
    sqlx::query("UPDATE cards SET exp_year = exp_year + 1 WHERE token = $1")
        .bind(&a)
        .execute(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(code(&h.vault.detokenize(&h.payments(), &a, "charge").await.unwrap_err()), "card_record_integrity");
    h.finish().await;
}
