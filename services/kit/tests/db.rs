//! Pools, migrations and error mapping against the real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cobro_kit::db::{PgErrorKind, classify, migrate};
use cobro_kit::testing::{TestDb, no_migrations};

#[tokio::test]
async fn replicas_migrating_at_once_all_succeed_and_apply_once() {
    let db = TestDb::new(&no_migrations()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let pool = db.another_pool(2).await;
        let schema = db.schema.clone();
        tasks.push(tokio::spawn(async move { migrate(&pool, &schema, &no_migrations()).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let (applied, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT version) FROM _kit_migrations WHERE success")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(applied >= 2, "the kit's migrations should all be applied: {applied}");
    assert_eq!(applied, distinct, "a kit migration was applied twice");
    db.drop_schema().await;
}

#[tokio::test]
async fn a_pool_sees_only_its_own_schema() {
    let a = TestDb::new(&no_migrations()).await;
    let b = TestDb::new(&no_migrations()).await;
    sqlx::query("CREATE TABLE secrets (x int)").execute(&a.pool).await.unwrap();
    let err = sqlx::query("SELECT * FROM secrets").execute(&b.pool).await.unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("42P01"), "{err}");
    a.drop_schema().await;
    b.drop_schema().await;
}

#[tokio::test]
async fn postgres_errors_are_classified_with_their_constraint() {
    let db = TestDb::new(&no_migrations()).await;
    sqlx::query("CREATE TABLE customers (id int PRIMARY KEY, external_id text CONSTRAINT customers_external_id_key UNIQUE, credit numeric CHECK (credit >= 0))")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE invoices (id int PRIMARY KEY, customer_id int CONSTRAINT invoices_customer_fk REFERENCES customers(id))")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO customers VALUES (1, 'erp-1', 0)").execute(&db.pool).await.unwrap();

    let dup = sqlx::query("INSERT INTO customers VALUES (2, 'erp-1', 0)").execute(&db.pool).await.unwrap_err();
    assert_eq!(classify(&dup), PgErrorKind::UniqueViolation { constraint: Some("customers_external_id_key".into()) });
    let fk = sqlx::query("INSERT INTO invoices VALUES (1, 99)").execute(&db.pool).await.unwrap_err();
    assert_eq!(classify(&fk), PgErrorKind::ForeignKeyViolation { constraint: Some("invoices_customer_fk".into()) });
    let check = sqlx::query("INSERT INTO customers VALUES (3, 'erp-3', -1)").execute(&db.pool).await.unwrap_err();
    assert!(matches!(classify(&check), PgErrorKind::CheckViolation { .. }));
    db.drop_schema().await;
}

#[tokio::test]
async fn migrating_a_missing_schema_says_how_to_fix_it() {
    let db = TestDb::new(&no_migrations()).await;
    let err = migrate(&db.pool, "no_such_schema", &no_migrations()).await.unwrap_err();
    assert!(err.to_string().contains("schema `no_such_schema` does not exist"), "{err}");
    db.drop_schema().await;
}
