//! Reading the fields of a consumed event: a field that does not parse makes the event
//! permanently malformed (recorded in the inbox as rejected and skipped), never a panic.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::HandlerError;
use cobro_proto::common::v1::Money;

/// The rejection of an event whose `what` is missing or malformed.
pub fn malformed(what: &str) -> HandlerError {
    HandlerError::Permanent(format!("malformed {what}"))
}

/// A prefixed id (`inv_…`) of the event.
pub fn id(prefix: &str, value: &str, what: &str) -> Result<Uuid, HandlerError> {
    crate::ids::parse(what, prefix, value).map_err(|_| malformed(what))
}

/// Like [`id`], an empty value being `None`.
pub fn optional_id(prefix: &str, value: &str, what: &str) -> Result<Option<Uuid>, HandlerError> {
    if value.is_empty() { Ok(None) } else { id(prefix, value, what).map(Some) }
}

/// An amount and its currency code.
pub fn money(m: Option<&Money>, what: &str) -> Result<(Decimal, String), HandlerError> {
    let m = m.ok_or_else(|| malformed(what))?;
    let value = m.amount.parse::<Decimal>().map_err(|_| malformed(what))?;
    Ok((value, m.currency.clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn malformed_fields_reject_the_event_for_good() {
        let good = Money { currency: "MXN".into(), amount: "12.50".into() };
        assert_eq!(money(Some(&good), "total").unwrap(), (Decimal::new(1250, 2), "MXN".into()));
        let bad = Money { currency: "MXN".into(), amount: "12,50".into() };
        assert!(matches!(money(Some(&bad), "total"), Err(HandlerError::Permanent(m)) if m == "malformed total"));
        assert!(matches!(money(None, "total"), Err(HandlerError::Permanent(_))));
        assert!(id("inv", "cus_0192", "invoice_id").is_err());
        assert_eq!(optional_id("ins", "", "installment_id").unwrap(), None);
    }
}
