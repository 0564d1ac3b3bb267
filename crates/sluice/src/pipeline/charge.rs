//! The bill, part of phase 7: when a request's record closes, its tokens are priced (counted
//! locally first when the upstream reported none) and its key's quota reservation is settled
//! with the real cost.

use std::sync::Arc;

use bytes::Bytes;
use sluice_dialect::Dialect;

use super::account::{CloseHook, UsageRecord};
use crate::limits::{Limiter, Reservation};
use crate::pricing::PriceTable;
use crate::pricing::estimate::{count_tokens, local_usage};

/// What closing a record needs to price it and settle its reservation.
pub struct Charge {
    pub prices: Arc<PriceTable>,
    /// The key's reservation, for stored keys.
    pub reservation: Option<(Arc<dyn Limiter>, Reservation)>,
    /// The client's dialect and request body, for counting tokens locally.
    pub client: Dialect,
    pub body: Bytes,
    /// Token counts (count_tokens endpoints) are free.
    pub billable: bool,
}

impl Charge {
    pub fn into_hook(self) -> CloseHook {
        CloseHook(Box::new(move |record| self.apply(record)))
    }

    fn apply(self, r: &mut UsageRecord) {
        let reply = r.reply_text.take();
        if self.billable {
            let model = r
                .model_served
                .clone()
                .or_else(|| r.model_requested.clone())
                .unwrap_or_default();
            let reached_upstream = r.provider.is_some() && r.model_served.is_some();
            let answered = r.status == 200 || reply.as_deref().is_some_and(|t| !t.is_empty());
            // Requests billed by unit (seconds, characters, images) have no tokens to make up.
            if reached_upstream && answered && r.usage.total() == 0 && r.units.is_empty() {
                r.usage = local_usage(
                    &model,
                    self.client,
                    &self.body,
                    reply.as_deref().unwrap_or(""),
                );
                r.estimated = true;
            } else if reached_upstream && r.usage_incomplete {
                // The upstream's final count never came: bill what the client received.
                let received = count_tokens(&model, reply.as_deref().unwrap_or(""));
                if received > r.usage.output_tokens {
                    r.usage.output_tokens = received;
                    r.estimated = true;
                }
            }
            r.cost_nanos = self.prices.cost(&model, &r.usage)
                + self
                    .prices
                    .units_cost(&model, &r.units, r.image_tier.as_deref());
        }
        if let Some((limiter, reservation)) = self.reservation {
            limiter.settle(reservation, r.cost_nanos);
        }
    }
}
