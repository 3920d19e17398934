//! Per-address rate limits in Redis, fixed windows: the first request of a window starts it.
//! Callers fail closed where a flood would do harm (sign-in): a limiter that cannot count lets
//! nothing through.

use std::time::Duration;

use redis::aio::ConnectionManager;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    Allowed,
    Limited { retry_after: Duration },
}

#[derive(Clone)]
pub struct RateLimiter {
    conn: ConnectionManager,
    prefix: String,
}

impl RateLimiter {
    /// `prefix` namespaces the keys (tests use a fresh one each).
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self { conn, prefix: prefix.into() }
    }

    /// Count one request of `client` (an IP address) against `limit` per `window` for
    /// `action` (`signin`, `pay`, ...).
    pub async fn hit(
        &self,
        action: &str,
        client: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Allowance, redis::RedisError> {
        let key = format!("{}:{action}:{client}", self.prefix);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut conn = self.conn.clone();
        // One round trip: count, start the window on the first hit, read what is left of it.
        let (count, _, ttl): (u32, i64, i64) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(window_ms)
            .arg("NX")
            .pttl(&key)
            .query_async(&mut conn)
            .await?;
        if count <= limit {
            return Ok(Allowance::Allowed);
        }
        let retry_after = Duration::from_millis(u64::try_from(ttl).unwrap_or(0).max(1));
        Ok(Allowance::Limited { retry_after })
    }
}
