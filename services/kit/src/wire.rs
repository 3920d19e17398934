//! What every API encodes the same way: timestamps and keyset paging.
//!
//! Lists page by id (UUIDv7, so creation order): the page token is the last id of the page, and
//! the next page starts after it. A short page has no token after it.

use chrono::{DateTime, Utc};
use cobro_proto::common::v1::{PageRequest, PageResponse};
use prost_types::Timestamp;
use uuid::Uuid;

use crate::error::InvalidField;

/// Page size when a request asks for none, and the most any request gets.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

pub fn timestamp(at: DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) })
}

/// A timestamp from a request; `None` when unset.
pub fn from_timestamp(field: &str, t: Option<Timestamp>) -> Result<Option<DateTime<Utc>>, InvalidField> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
            .ok_or_else(|| InvalidField::new(field, "is not a valid time"))
    })
    .transpose()
}

/// The page size (as a SQL limit) and the id to continue after.
pub fn page(request: Option<PageRequest>) -> Result<(i64, Option<Uuid>), InvalidField> {
    let request = request.unwrap_or_default();
    let size = if request.page_size == 0 { DEFAULT_PAGE } else { request.page_size.min(MAX_PAGE) };
    let after = if request.page_token.is_empty() {
        None
    } else {
        Some(
            Uuid::try_parse(&request.page_token)
                .map_err(|_| InvalidField::new("page.page_token", "is not a token from a previous page"))?,
        )
    };
    Ok((i64::from(size), after))
}

/// The paging of a response whose rows have `ids`: a token when the page was full.
pub fn next_page(ids: impl Iterator<Item = Uuid>, len: usize, limit: i64) -> Option<PageResponse> {
    let full = i64::try_from(len).unwrap_or(i64::MAX) >= limit;
    let token = if full { ids.last().map(|id| id.simple().to_string()).unwrap_or_default() } else { String::new() };
    Some(PageResponse { next_page_token: token })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paging_round_trip_and_bounds() {
        let (limit, after) = page(None).unwrap();
        assert_eq!((limit, after), (i64::from(DEFAULT_PAGE), None));
        let (limit, _) = page(Some(PageRequest { page_size: 10_000, page_token: String::new() })).unwrap();
        assert_eq!(limit, i64::from(MAX_PAGE));
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let token = next_page(ids.iter().copied(), 3, 3).unwrap().next_page_token;
        let (_, after) = page(Some(PageRequest { page_size: 3, page_token: token })).unwrap();
        assert_eq!(after, ids.last().copied());
        assert!(next_page(ids.iter().copied(), 3, 4).unwrap().next_page_token.is_empty(), "a short page ends the list");
        let bad = page(Some(PageRequest { page_size: 1, page_token: "x".into() })).unwrap_err();
        assert_eq!(bad.field, "page.page_token");
    }

    #[test]
    fn timestamps_round_trip() {
        let now = Utc::now();
        assert_eq!(from_timestamp("at", timestamp(now)).unwrap(), Some(now));
        assert_eq!(from_timestamp("at", None).unwrap(), None);
        let bad = Timestamp { seconds: i64::MAX, nanos: 0 };
        assert_eq!(from_timestamp("at", Some(bad)).unwrap_err().field, "at");
    }
}
