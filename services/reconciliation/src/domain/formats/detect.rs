//! Which format a file is, from its content (never its name): the XML root for camt, the first
//! record for BAI2, the tags for MT940.

use crate::domain::statement::{ParseError, Statement};

/// Largest statement file read: bigger uploads are refused before parsing.
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Camt,
    Mt940,
    Bai2,
}

/// The format of `input`, or an error saying what was seen.
pub fn detect(input: &[u8]) -> Result<Format, ParseError> {
    let head: Vec<u8> = input
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace() || *b == 0xEF || *b == 0xBB || *b == 0xBF)
        .take(4096)
        .collect();
    let text = String::from_utf8_lossy(&head);
    if text.starts_with('<') && (text.contains("BkToCstmr") || text.contains("camt.05")) {
        return Ok(Format::Camt);
    }
    if text.starts_with("01,") {
        return Ok(Format::Bai2);
    }
    if text.starts_with("{1:") || text.starts_with(":20:") || text.contains("\n:20:") || text.contains(":25:") {
        return Ok(Format::Mt940);
    }
    Err(ParseError::new("file", "is not a camt.052/053/054, MT940 or BAI2 statement"))
}

/// Parse a statement file of any supported format.
pub fn parse_any(input: &[u8]) -> Result<Vec<Statement>, ParseError> {
    if input.len() > MAX_FILE_BYTES {
        return Err(ParseError::new("file", "is larger than 100 MB"));
    }
    match detect(input)? {
        Format::Camt => super::camt::parse(input),
        Format::Mt940 => super::mt940::parse(input),
        Format::Bai2 => super::bai2::parse(input),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content() {
        assert_eq!(detect(b"<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\"><BkToCstmrStmt>").unwrap(), Format::Camt);
        assert_eq!(detect(b"01,BANKID,CUST,260101,0800,1,80,,2/").unwrap(), Format::Bai2);
        assert_eq!(detect(b":20:STARTUMS\r\n:25:123/456\r\n").unwrap(), Format::Mt940);
        assert_eq!(detect(b"{1:F01ABNANL2AXXX}{4:\r\n:20:ABN").unwrap(), Format::Mt940);
        let err = detect(b"date,amount\n2026-01-01,5").unwrap_err();
        assert_eq!(err.location, "file");
        assert!(detect(b"").is_err());
    }
}
