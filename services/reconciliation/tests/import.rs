//! Importing statements into the real Postgres: once per file, once per bank entry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_kit::testing::TestDb;
use cobro_reconciliation::import::{ImportError, Imported, import_statement};
use cobro_reconciliation::store;
use uuid::Uuid;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/statements");

/// An MT940 statement of the given `:61:` lines (amount, bank reference), balanced.
fn mt940(number: &str, lines: &[(&str, &str)]) -> String {
    let mut text = format!(":20:STMT{number}\n:25:NL91ABNA0417164300\n:28C:{number}/1\n:60F:C241201EUR1000,00\n");
    let mut balance = rust_decimal::Decimal::new(100_000, 2);
    for (amount, bank_ref) in lines {
        text.push_str(&format!(":61:2412021202C{amount}NTRFNONREF//{bank_ref}\n:86:/REMI/invoice F-1001\n"));
        balance += amount.replace(',', ".").parse::<rust_decimal::Decimal>().unwrap();
    }
    text.push_str(&format!(":62F:C241202EUR{}\n-\n", balance.to_string().replace('.', ",")));
    text
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_file_imported_twice_is_stored_once() {
    let db = TestDb::new(&cobro_reconciliation::migrator()).await;
    let tenant = Uuid::now_v7();
    let file = std::fs::read(format!("{TESTDATA}/camt/camt053.v4.xml")).unwrap();
    let statements = cobro_reconciliation::domain::formats::detect::parse_any(&file).unwrap();
    let account = store::insert_bank_account(&db.pool, tenant, "Main", &statements[0].account, "EUR").await.unwrap();
    let first = import_statement(&db.pool, tenant, account.id, &file, None).await.unwrap();
    let lines = u32::try_from(statements.iter().map(|s| s.lines.len()).sum::<usize>()).unwrap();
    assert_eq!(first, Imported { format: "camt.053".into(), statements: 1, lines_read: lines, lines_new: lines });
    let again = import_statement(&db.pool, tenant, account.id, &file, None).await.unwrap();
    assert_eq!((again.statements, again.lines_new), (0, 0), "importing the same file changes nothing");
    assert_eq!(count(&db, "SELECT count(*) FROM statements").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM bank_lines").await, i64::from(lines));
    db.drop_schema().await;
}

#[tokio::test]
async fn an_entry_in_two_overlapping_statements_is_stored_once() {
    let db = TestDb::new(&cobro_reconciliation::migrator()).await;
    let tenant = Uuid::now_v7();
    let account = store::insert_bank_account(&db.pool, tenant, "Main", "NL91 ABNA 0417 1643 00", "EUR").await.unwrap();
    let monday = mt940("1", &[("100,00", "B1"), ("250,00", "B2"), ("100,00", "B3")]);
    let tuesday = mt940("2", &[("250,00", "B2"), ("100,00", "B3"), ("75,50", "B4")]);
    let a = import_statement(&db.pool, tenant, account.id, monday.as_bytes(), None).await.unwrap();
    let b = import_statement(&db.pool, tenant, account.id, tuesday.as_bytes(), None).await.unwrap();
    assert_eq!((a.lines_new, b.lines_new), (3, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM bank_lines").await, 4);

    // Without bank references, two identical payments in one statement are still two.
    let twins = mt940("3", &[("40,00", "1"), ("40,00", "2")]);
    let c = import_statement(&db.pool, tenant, account.id, twins.as_bytes(), None).await.unwrap();
    assert_eq!(c.lines_new, 2);

    // A broken file stores nothing; a file for another account is refused; another tenant's
    // account is not found.
    let broken = monday.replace(":62F:", ":62X:");
    assert!(matches!(
        import_statement(&db.pool, tenant, account.id, broken.as_bytes(), None).await,
        Err(ImportError::Parse(_))
    ));
    let elsewhere = monday.replace("NL91ABNA0417164300", "DE89370400440532013000");
    assert!(matches!(
        import_statement(&db.pool, tenant, account.id, elsewhere.as_bytes(), None).await,
        Err(ImportError::OtherAccount { .. })
    ));
    assert!(matches!(
        import_statement(&db.pool, Uuid::now_v7(), account.id, monday.as_bytes(), None).await,
        Err(ImportError::UnknownAccount)
    ));
    assert_eq!(count(&db, "SELECT count(*) FROM bank_lines").await, 6);
    db.drop_schema().await;
}
