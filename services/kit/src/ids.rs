//! Ids at the API edge: a UUID printed with a type prefix (`inv_0192…`), so an id pasted into
//! the wrong field is rejected by name instead of silently matching nothing.

use uuid::Uuid;

use crate::error::InvalidField;

/// `prefix_` followed by the UUID's 32 lowercase hex digits.
pub fn format(prefix: &str, id: Uuid) -> String {
    format!("{prefix}_{}", id.simple())
}

/// Parse a prefixed id from `field`; the message says which prefix was expected.
pub fn parse(field: &str, prefix: &str, value: &str) -> Result<Uuid, InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    let hex = value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| InvalidField::new(field, format!("must be an id of the form {prefix}_<32 hex digits>")))?;
    Uuid::try_parse(hex)
        .map_err(|_| InvalidField::new(field, format!("must be an id of the form {prefix}_<32 hex digits>")))
}

/// Like [`parse`], but an empty value is `None`.
pub fn parse_optional(field: &str, prefix: &str, value: &str) -> Result<Option<Uuid>, InvalidField> {
    if value.is_empty() { Ok(None) } else { parse(field, prefix, value).map(Some) }
}

/// A new time-ordered id (UUIDv7), so ids sort by creation and index well.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = new_id();
        let printed = format("inv", id);
        assert!(printed.starts_with("inv_"));
        assert_eq!(parse("invoice_id", "inv", &printed).unwrap(), id);
    }

    #[test]
    fn wrong_prefix_or_shape_names_the_field() {
        let id = format("cus", new_id());
        for bad in [id.as_str(), "inv_", "inv_xyz", "inv_0192", "0192abcd", "inv-0192", "inv_é"] {
            let err = parse("invoice_id", "inv", bad).unwrap_err();
            assert_eq!(err.field, "invoice_id", "{bad}");
        }
        assert_eq!(parse("invoice_id", "inv", "").unwrap_err().reason, "is required");
        assert_eq!(parse_optional("invoice_id", "inv", "").unwrap(), None);
    }
}
