//! Phase 2: may this request run now. The gateway-wide concurrency limit
//! (`max-concurrent-requests`), then, once the request is routed, its stored key's limits
//! ([`admit_key`]: requests per minute and per day, the monthly cost quota).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::accounts::Accounts;
use crate::error::GatewayError;
use crate::keys::CachedKey;
use crate::limits::{Refusal, Reservation};
use crate::pricing::PriceTable;
use crate::pricing::estimate::reservation_tokens;
use crate::store::nanos_to_usd;

/// Counts a request against its key's limits, atomically, and reserves its estimated cost
/// against the key's monthly quota (the reservation is settled when its record closes, see
/// `pipeline::charge`). `body` is the client's request, `model` the model served;
/// `output_cap` is asked for only under a quota: the output limit the upstream will enforce.
pub async fn admit_key(
    accounts: &Accounts,
    prices: &PriceTable,
    key: &CachedKey,
    body: &[u8],
    output_cap: impl FnOnce() -> Option<u64>,
    model: &str,
) -> Result<Reservation, GatewayError> {
    let estimate = if key.limits.monthly_quota > 0 {
        let (input, output) = reservation_tokens(body, output_cap());
        prices.estimate(model, input, output)
    } else {
        0
    };
    accounts
        .limiter
        .admit(&key.limits, accounts.now_ms(), estimate)
        .await
        .map_err(|refusal| match refusal {
            Refusal::RateLimited {
                limit,
                retry_after_secs,
            } => GatewayError::rate_limited(limit, retry_after_secs),
            Refusal::DailyLimit {
                limit,
                retry_after_secs,
            } => GatewayError::daily_limit_exceeded(limit, retry_after_secs),
            Refusal::QuotaExhausted { quota } => GatewayError::quota_exceeded(nanos_to_usd(quota)),
            Refusal::Unavailable => GatewayError::limits_unavailable(),
        })
}

/// Admission control shared by all requests.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    slots: Option<Arc<Semaphore>>,
}

/// Held for the life of a request (through the end of its stream).
#[derive(Debug)]
pub struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// `limit` 0 means unlimited.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            slots: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
        }
    }

    /// Admits a request or refuses it at once; never queues.
    pub fn admit(&self) -> Result<Admitted, GatewayError> {
        match &self.slots {
            None => Ok(Admitted { _permit: None }),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .map(|p| Admitted { _permit: Some(p) })
                .map_err(|_| GatewayError::overloaded(self.limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limit_is_exact_and_released_on_drop() {
        let admission = Admission::new(2);
        let a = admission.admit().unwrap();
        let _b = admission.admit().unwrap();
        let refused = admission.admit().unwrap_err();
        assert_eq!(refused.status, http::StatusCode::TOO_MANY_REQUESTS);
        drop(a);
        assert!(admission.admit().is_ok());
        let unlimited = Admission::new(0);
        let held: Vec<_> = (0..1000).map(|_| unlimited.admit().unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
