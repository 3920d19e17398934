//! Importing a statement file for a bank account: parsed whole, stored in one transaction, the
//! same file twice or the same entry in two overlapping statements stored once.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::formats::csv::{self, CsvMapping};
use crate::domain::formats::detect::{MAX_FILE_BYTES, detect, parse_any};
use crate::domain::statement::{ParseError, entry_keys};
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("bank account not found")]
    UnknownAccount,
    #[error("the file is for account {found}, not {expected}")]
    OtherAccount { found: String, expected: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// `camt.053`, `mt940`, `bai2`, `csv`, ...
    pub format: String,
    /// Statements in the file that were new.
    pub statements: u32,
    /// Lines in the file.
    pub lines_read: u32,
    /// Lines stored now (the rest were known from an earlier import).
    pub lines_new: u32,
}

/// Account numbers compared as banks print them differently: spaces and case do not count.
fn same_account(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_uppercase();
    norm(a) == norm(b) || norm(a).ends_with(&norm(b)) || norm(b).ends_with(&norm(a))
}

pub async fn import_statement(
    pool: &PgPool,
    tenant: Uuid,
    account: Uuid,
    file: &[u8],
    mapping: Option<&CsvMapping>,
) -> Result<Imported, ImportError> {
    let bank = store::bank_account(pool, tenant, account).await?.ok_or(ImportError::UnknownAccount)?;
    let sha: Vec<u8> = Sha256::digest(file).to_vec();
    let statements = match mapping {
        // A file the standard formats do not recognize is read as the bank's CSV export.
        Some(mapping) if detect(file).is_err() => {
            if file.len() > MAX_FILE_BYTES {
                return Err(ParseError::new("file", "is larger than 100 MB").into());
            }
            let id: String = sha.iter().take(8).map(|b| format!("{b:02x}")).collect();
            vec![csv::parse(file, mapping, &bank.number, &format!("csv-{id}"))?]
        }
        _ => parse_any(file)?,
    };
    for s in &statements {
        if !s.account.is_empty() && !same_account(&s.account, &bank.number) {
            return Err(ImportError::OtherAccount { found: s.account.clone(), expected: bank.number.clone() });
        }
    }
    let mut outcome =
        Imported { format: statements.first().map(|s| s.format.clone()).unwrap_or_default(), ..Imported::default() };
    let mut tx = pool.begin().await?;
    for s in &statements {
        let read = u32::try_from(s.lines.len()).unwrap_or(u32::MAX);
        outcome.lines_read = outcome.lines_read.saturating_add(read);
        let Some(row) = store::insert_statement(&mut tx, tenant, account, s, &sha, read).await? else {
            // This file's statement is already in: importing it again changes nothing.
            continue;
        };
        outcome.statements += 1;
        let keys = entry_keys(&s.lines);
        let mut new = 0_u32;
        for (line, key) in s.lines.iter().zip(&keys) {
            if store::insert_line(&mut tx, tenant, account, row, key, line).await? {
                new += 1;
            }
        }
        store::set_lines_new(&mut tx, tenant, row, new).await?;
        outcome.lines_new = outcome.lines_new.saturating_add(new);
    }
    tx.commit().await?;
    Ok(outcome)
}
