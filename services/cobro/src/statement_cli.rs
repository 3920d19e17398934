//! `cobro statement parse FILE`: a bank statement's lines, normalized, as JSON Lines.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use cobro_reconciliation::domain::formats::detect::{MAX_FILE_BYTES, parse_any};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one JSON object per bank transaction (camt.052/053/054, MT940 or BAI2, told apart
    /// by content); exits non-zero with the parse error on invalid input.
    Parse { file: PathBuf },
}

pub fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Parse { file } => {
            let size = std::fs::metadata(&file).map_err(|e| format!("{}: {e}", file.display()))?.len();
            if usize::try_from(size).map_or(true, |s| s > MAX_FILE_BYTES) {
                return Err(format!("{}: larger than 100 MB", file.display()).into());
            }
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let statements = parse_any(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for statement in &statements {
                for line in &statement.lines {
                    serde_json::to_writer(&mut out, line)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            Ok(())
        }
    }
}
