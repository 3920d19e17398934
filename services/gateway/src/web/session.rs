//! Server-side sessions in Redis. The browser holds only a random id in an HttpOnly cookie;
//! Redis holds the session under the id's SHA-256, so a copy of Redis gives no usable cookie.
//! Sessions end after `idle` without a request and at the latest `absolute` after they began;
//! signing in replaces the id (no fixation), signing out deletes the session.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::csrf;
use super::i18n::Language;

/// The session cookie.
pub const COOKIE: &str = "cobro_session";

/// Who signed in, and the tokens the gateway calls the services with on their behalf.
#[derive(Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub tenant_id: Uuid,
    pub subject: String,
    /// `user` (staff) or `customer` (a portal contact).
    pub kind: String,
    pub customer_id: Option<Uuid>,
    #[serde(with = "secret")]
    pub access_token: SecretString,
    #[serde(with = "secret")]
    pub refresh_token: SecretString,
    pub access_expires_at: DateTime<Utc>,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("tenant_id", &self.tenant_id)
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .field("customer_id", &self.customer_id)
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("access_expires_at", &self.access_expires_at)
            .finish()
    }
}

/// Tokens are stored in Redis (the server side of the session), never sent to the browser.
mod secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.expose_secret())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub csrf: String,
    pub language: Language,
    /// The person picked the language with the switch: it wins over their stored preference.
    #[serde(default)]
    pub language_chosen: bool,
    pub signed_in: Option<SignedIn>,
    /// A sign-in waiting for its second factor: identity's challenge, never the password.
    #[serde(with = "optional_secret", default)]
    pub mfa_challenge: Option<SecretString>,
    /// A second factor being enrolled during sign-in: its key and QR code, shown again until
    /// the first code confirms it (a new key each time would void what was scanned).
    #[serde(default)]
    pub enrolment: Option<PendingEnrolment>,
    pub started_at: DateTime<Utc>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct PendingEnrolment {
    #[serde(with = "secret")]
    pub secret: SecretString,
    pub qr_svg: String,
}

mod optional_secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(v.expose_secret()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Option::<String>::deserialize(d).map(|v| v.map(SecretString::from))
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionData")
            .field("csrf", &"[redacted]")
            .field("language", &self.language)
            .field("signed_in", &self.signed_in)
            .field("mfa_challenge", &self.mfa_challenge.as_ref().map(|_| "[redacted]"))
            .field("enrolment", &self.enrolment.as_ref().map(|_| "[redacted]"))
            .field("started_at", &self.started_at)
            .finish()
    }
}

impl SessionData {
    pub fn new(language: Language) -> Self {
        Self {
            csrf: csrf::new_token(),
            language,
            language_chosen: false,
            signed_in: None,
            mfa_challenge: None,
            enrolment: None,
            started_at: Utc::now(),
        }
    }
}

/// A session id as the cookie carries it: 256 random bits, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    fn generate() -> Self {
        let mut bytes = [0_u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The id from a cookie value; `None` for anything that is not one of ours.
    pub fn from_cookie(value: &str) -> Option<Self> {
        (value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| Self(value.to_owned()))
    }

    pub fn cookie_value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("session store: unreadable session")]
    Corrupt,
}

#[derive(Clone)]
pub struct SessionStore {
    conn: ConnectionManager,
    prefix: String,
    idle: Duration,
    absolute: Duration,
}

impl SessionStore {
    /// `prefix` namespaces the keys (tests use a fresh one each).
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>, idle: Duration, absolute: Duration) -> Self {
        Self { conn, prefix: prefix.into(), idle, absolute }
    }

    fn key(&self, id: &SessionId) -> String {
        let digest = Sha256::digest(id.0.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:session:{hex}", self.prefix)
    }

    fn ttl_ms(&self, data: &SessionData) -> u64 {
        let age = (Utc::now() - data.started_at).to_std().unwrap_or_default();
        let left = self.absolute.saturating_sub(age);
        u64::try_from(self.idle.min(left).as_millis()).unwrap_or(u64::MAX)
    }

    /// Store `data` under a new id.
    pub async fn create(&self, data: &SessionData) -> Result<SessionId, SessionError> {
        let id = SessionId::generate();
        self.save(&id, data).await?;
        Ok(id)
    }

    /// The session, with its idle time restarted; `None` when it ended or never was.
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, SessionError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.key(id)).await?;
        let Some(raw) = raw else { return Ok(None) };
        let data: SessionData = serde_json::from_str(&raw).map_err(|_| SessionError::Corrupt)?;
        let ttl = self.ttl_ms(&data);
        if ttl == 0 {
            self.destroy(id).await?;
            return Ok(None);
        }
        let _: bool = conn.pexpire(self.key(id), i64::try_from(ttl).unwrap_or(i64::MAX)).await?;
        Ok(Some(data))
    }

    pub async fn save(&self, id: &SessionId, data: &SessionData) -> Result<(), SessionError> {
        let ttl = self.ttl_ms(data);
        if ttl == 0 {
            return self.destroy(id).await;
        }
        let raw = serde_json::to_string(data).map_err(|_| SessionError::Corrupt)?;
        let mut conn = self.conn.clone();
        let _: () = conn.pset_ex(self.key(id), raw, ttl).await?;
        Ok(())
    }

    /// Move the session to a new id (on sign-in), so an id set before sign-in is worthless.
    pub async fn rotate(&self, old: &SessionId, data: &SessionData) -> Result<SessionId, SessionError> {
        let new = self.create(data).await?;
        self.destroy(old).await?;
        Ok(new)
    }

    pub async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.del(self.key(id)).await?;
        Ok(())
    }

    /// The tokens of a signed-in session, for calls on the person's behalf.
    pub fn bearer(signed_in: &SignedIn) -> String {
        format!("Bearer {}", signed_in.access_token.expose_secret())
    }
}

/// The `Set-Cookie` value of a session: HttpOnly, SameSite=Lax (links from emails still arrive
/// signed in; cross-site posts do not carry it), `Secure` when served over TLS.
pub fn set_cookie(id: &SessionId, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{secure}", id.cookie_value())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}
