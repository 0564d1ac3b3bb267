//! Phase 2: may this request run now. Today: the gateway-wide concurrency limit
//! (`max-concurrent-requests`); per-key limits and quotas join here.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;

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
