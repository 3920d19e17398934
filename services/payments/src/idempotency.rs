//! Idempotency keys: the first request with a key runs and its answer is stored; the same key
//! and request later (or concurrently) get that stored answer; the same key with another
//! request is refused. A claim whose holder died expires and is taken over.

use std::future::Future;
use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{PaymentsError, Result};
use crate::store::{self, Claim};

/// How long a claim holds before another request may take it over: longer than any request.
const LEASE_SECONDS: i64 = 120;
/// How long a duplicate waits for the first request's answer before asking the caller to retry.
const WAIT: Duration = Duration::from_secs(60);
/// How often a failed run tries to free its key before leaving it to the lease.
const FREE_TRIES: u32 = 20;
const FREE_PAUSE: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_millis(20);

pub fn check_key(key: &str) -> Result<&str> {
    if key.is_empty() {
        return Err(cobro_kit::error::InvalidField::new("idempotency_key", "is required").into());
    }
    if key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(cobro_kit::error::InvalidField::new(
            "idempotency_key",
            "must be 1 to 255 printable ASCII characters without spaces",
        )
        .into());
    }
    Ok(key)
}

/// What makes two requests "the same": the operation, who asks, and the request with its key
/// cleared. Who asks is part of it so that a stored answer only ever goes back to the principal
/// it was made for; card numbers must be masked by the caller before they reach here, since a
/// plain hash of a card number is as good as the number.
pub fn request_hash(operation: &str, asker: &str, request: &impl Message) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(asker.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    hasher.finalize().to_vec()
}

/// Errors raised before anything was written: the key is freed, so the caller may fix the
/// request and retry with it. Anything else may have left a record behind; the key keeps its
/// resource id and a retry of the same request continues that record.
pub(crate) fn nothing_written(err: &PaymentsError) -> bool {
    matches!(
        err,
        PaymentsError::Invalid(_)
            | PaymentsError::NotFound(_)
            | PaymentsError::PermissionDenied(_)
            | PaymentsError::State(_)
            | PaymentsError::Amount { .. }
            | PaymentsError::IdempotencyKeyReused
            | PaymentsError::LinkUnusable(_)
            | PaymentsError::Precondition(_)
    )
}

/// What a run of a keyed request is told.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The id for what it creates: the same on every run for this key, so a run that follows a
    /// crash or an unclear failure must continue an existing record with it rather than add one.
    pub id: Uuid,
    /// An earlier run with this key got somewhere and did not answer: what it did may stand.
    pub resumed: bool,
}

/// Run `run` once per (tenant, key); every caller gets the same answer.
pub async fn once<T, F, Fut>(pool: &PgPool, tenant: Uuid, key: &str, operation: &str, hash: &[u8], run: F) -> Result<T>
where
    T: Message + Default,
    F: FnOnce(Run) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let key = check_key(key)?;
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let deadline = tokio::time::Instant::now() + WAIT;
    let claimed = loop {
        match store::claim_key(pool, tenant, key, operation, hash, lease).await? {
            Claim::Claimed { resource_id } => break Run { id: resource_id, resumed: false },
            Claim::Taken { operation: op, request_hash, response, expired, resource_id } => {
                if op != operation || request_hash != hash {
                    return Err(PaymentsError::IdempotencyKeyReused);
                }
                if let Some(bytes) = response {
                    return T::decode(bytes.as_slice())
                        .map_err(|_| PaymentsError::Internal("a stored response does not decode".to_owned()));
                }
                if expired && let Some(id) = store::take_over_key(pool, tenant, key, lease, resource_id).await? {
                    break Run { id, resumed: true };
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(PaymentsError::IdempotencyInProgress);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    };
    match run(claimed).await {
        Ok(answer) => match store::store_response(pool, tenant, key, &answer.encode_to_vec()).await {
            Ok(()) => Ok(answer),
            Err(e) => {
                // Done, but not on record: the retry takes the key over and finds what was made.
                free_key(pool, tenant, key, false).await;
                Err(e.into())
            }
        },
        Err(err) => {
            free_key(pool, tenant, key, nothing_written(&err)).await;
            Err(err)
        }
    }
}

/// Let a retry have the key at once: released when the run wrote nothing, else expired so the
/// retry resumes what the run began. The database may be what failed, so this keeps trying for
/// a few seconds, and a retry after a blip (a failover, a restart) need not wait out the lease.
async fn free_key(pool: &PgPool, tenant: Uuid, key: &str, release: bool) {
    for tries in 0.. {
        let freed = if release {
            store::release_key(pool, tenant, key).await
        } else {
            store::expire_key(pool, tenant, key).await
        };
        match freed {
            Ok(()) => return,
            Err(e) if tries >= FREE_TRIES => {
                tracing::warn!(error = %e, "cannot free an idempotency key; it frees itself when its lease ends");
                return;
            }
            Err(_) => tokio::time::sleep(FREE_PAUSE).await,
        }
    }
}
