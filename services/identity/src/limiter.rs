//! Sign-in attempt counters in Redis: per account (lockout, PCI DSS 8.3.4) and per client address.
//!
//! An attempt is reserved *before* the password or code is checked: the counters are raised
//! first and the attempt refused when they are over the limit, so a burst of parallel guesses
//! gets no more checks than the threshold allows. A success gives the reservation back; a
//! failure keeps it and locks the account when the threshold is reached.
//!
//! Windows are fixed: the first attempt starts the window. Every operation reports Redis
//! errors to the caller, which refuses the sign-in: a limiter that cannot count must not let
//! guesses through.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

/// What an attempt is counted against. The account is the tenant slug plus the normalized
/// email, so unknown emails are limited exactly like known ones, and Redis keys carry a hash
/// rather than the address.
#[derive(Clone)]
pub struct Subject {
    account: String,
    ip: String,
}

impl Subject {
    pub fn new(tenant_slug: &str, email: &str, ip: &str) -> Self {
        let digest = Sha256::digest(format!("{tenant_slug}\n{email}").as_bytes());
        let account = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self { account, ip: ip.to_owned() }
    }
}

/// The thresholds of one check.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub account_threshold: u32,
    pub lockout: Duration,
    pub window: Duration,
    pub ip_threshold: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// The attempt is reserved; report its outcome with `failed` or `succeeded`.
    Open,
    AccountLocked {
        retry_after: Duration,
    },
    AddressLimited {
        retry_after: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("login limiter: {0}")]
pub struct LimiterError(#[from] redis::RedisError);

#[derive(Clone)]
pub struct Limiter {
    conn: ConnectionManager,
    prefix: String,
}

impl Limiter {
    /// `prefix` namespaces the keys (tests use a fresh one each).
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self { conn, prefix: prefix.into() }
    }

    fn lock_key(&self, s: &Subject) -> String {
        format!("{}:lock:{}", self.prefix, s.account)
    }
    fn attempts_key(&self, s: &Subject) -> String {
        format!("{}:attempts:{}", self.prefix, s.account)
    }
    fn ip_key(&self, s: &Subject) -> String {
        format!("{}:ip:{}", self.prefix, s.ip)
    }

    /// Reserve an attempt, or say why none is allowed.
    pub async fn begin(&self, subject: &Subject, limits: &Limits) -> Result<Gate, LimiterError> {
        let mut conn = self.conn.clone();
        let window_ms = duration_ms(limits.window);
        // One MULTI: a crash cannot leave a counter without its expiry, and concurrent attempts
        // each see a distinct count.
        let (lock_ttl, _, attempts, _, ip_attempts, ip_ttl): (i64, Option<String>, u32, Option<String>, u32, i64) =
            redis::pipe()
                .atomic()
                .pttl(self.lock_key(subject))
                .cmd("SET")
                .arg(self.attempts_key(subject))
                .arg(0)
                .arg("PX")
                .arg(window_ms)
                .arg("NX")
                .incr(self.attempts_key(subject), 1)
                .cmd("SET")
                .arg(self.ip_key(subject))
                .arg(0)
                .arg("PX")
                .arg(window_ms)
                .arg("NX")
                .incr(self.ip_key(subject), 1)
                .pttl(self.ip_key(subject))
                .query_async(&mut conn)
                .await?;
        if lock_ttl > 0 {
            return Ok(Gate::AccountLocked { retry_after: millis(lock_ttl) });
        }
        if attempts > limits.account_threshold {
            // More attempts in flight or failed than the threshold allows: lock now.
            let lock_ttl = self.lock(subject, limits).await?;
            return Ok(Gate::AccountLocked { retry_after: lock_ttl });
        }
        if ip_attempts > limits.ip_threshold {
            return Ok(Gate::AddressLimited { retry_after: millis(ip_ttl.max(0)) });
        }
        Ok(Gate::Open)
    }

    /// The reserved attempt failed. Returns true when this failure locked the account.
    pub async fn failed(&self, subject: &Subject, limits: &Limits) -> Result<bool, LimiterError> {
        let mut conn = self.conn.clone();
        let attempts: Option<u32> = redis::cmd("GET").arg(self.attempts_key(subject)).query_async(&mut conn).await?;
        if attempts.unwrap_or(0) >= limits.account_threshold {
            self.lock(subject, limits).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The reserved attempt succeeded: the account's count starts over, and the address gets
    /// its attempt back (only failures count against an address).
    pub async fn succeeded(&self, subject: &Subject) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        // DECR only an existing counter: DECR on an expired key would create one without expiry.
        let _: () = redis::pipe()
            .atomic()
            .del(self.attempts_key(subject))
            .ignore()
            .cmd("EVAL")
            .arg("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0")
            .arg(1)
            .arg(self.ip_key(subject))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Lift a lock early (an administrator confirmed the person).
    pub async fn unlock(&self, subject: &Subject) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("DEL")
            .arg(self.lock_key(subject))
            .arg(self.attempts_key(subject))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Lock for the lockout duration (keeping a lock already running) and forget the count.
    async fn lock(&self, subject: &Subject, limits: &Limits) -> Result<Duration, LimiterError> {
        let mut conn = self.conn.clone();
        let (_, _, ttl): (Option<String>, (), i64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.lock_key(subject))
            .arg(1)
            .arg("PX")
            .arg(duration_ms(limits.lockout))
            .arg("NX")
            .del(self.attempts_key(subject))
            .pttl(self.lock_key(subject))
            .query_async(&mut conn)
            .await?;
        Ok(millis(ttl.max(0)))
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
