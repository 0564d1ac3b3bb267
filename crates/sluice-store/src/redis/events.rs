//! [`EventBus`] on Redis: pub/sub for speed, an epoch counter for certainty.
//!
//! Publishing increments `<prefix>:epoch` and publishes `<epoch> <event JSON>` on
//! `<prefix>:events`, in one script. Every instance subscribes, and also reads the epoch every
//! [`EPOCH_POLL`]: if it moved past the last epoch this instance saw (a message was lost, the
//! subscription dropped, Redis restarted), it emits [`Event::Resync`] and the gateway re-reads
//! everything shared. A change therefore reaches every instance within one poll even when
//! pub/sub is cut; the gateway's periodic store refresh stays as the last line.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::Link;
use crate::shared::{Event, EventBus};

/// How often each instance reads the epoch.
pub const EPOCH_POLL: Duration = Duration::from_millis(300);

const PUBLISH_LUA: &str = r"
local epoch = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. ARGV[2])
return epoch
";

/// Events over Redis.
#[derive(Debug)]
pub struct RedisEvents {
    link: Link,
    epoch_key: String,
    channel: String,
    tx: broadcast::Sender<Event>,
    /// The highest epoch this instance has applied (or published).
    seen: Arc<AtomicI64>,
    publish: redis::Script,
}

impl RedisEvents {
    /// Starts the epoch poll and, when `subscribe` is set, the pub/sub subscriber.
    pub fn start(link: Link, subscribe: bool) -> Arc<RedisEvents> {
        let (tx, _) = broadcast::channel(1024);
        let events = Arc::new(RedisEvents {
            epoch_key: format!("{}:epoch", link.prefix),
            channel: format!("{}:events", link.prefix),
            link,
            tx,
            seen: Arc::new(AtomicI64::new(-1)),
            publish: redis::Script::new(PUBLISH_LUA),
        });
        if subscribe {
            tokio::spawn(subscriber(Arc::downgrade(&events)));
        }
        tokio::spawn(epoch_poll(Arc::downgrade(&events)));
        events
    }

    /// Applies a received epoch: true when it is news.
    fn note_epoch(&self, epoch: i64) -> bool {
        self.seen.fetch_max(epoch, Ordering::SeqCst) < epoch
    }
}

#[async_trait]
impl EventBus for RedisEvents {
    async fn publish(&self, event: Event) {
        let Ok(payload) = serde_json::to_string(&event) else {
            return;
        };
        let mut conn = self.link.conn();
        let sent: Result<i64, _> = self
            .publish
            .key(&self.epoch_key)
            .arg(&self.channel)
            .arg(payload)
            .invoke_async(&mut conn)
            .await;
        match sent {
            Ok(epoch) => {
                // Our own change is applied by the caller; only a jump past it is news.
                self.seen.fetch_max(epoch, Ordering::SeqCst);
            }
            Err(e) => {
                self.link.failed("publish", &e);
                tracing::warn!(
                    ?event,
                    "could not publish a change to the other instances; they pick it up with their periodic refresh"
                );
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

async fn subscriber(events: std::sync::Weak<RedisEvents>) {
    loop {
        let Some(strong) = events.upgrade() else {
            return;
        };
        let client = strong.link.client.clone();
        let channel = strong.channel.clone();
        drop(strong);
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    if let Some(events) = events.upgrade() {
                        // Whatever happened while unsubscribed is re-read.
                        let _ = events.tx.send(Event::Resync);
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(events) = events.upgrade() else {
                            return;
                        };
                        let Ok(text) = message.get_payload::<String>() else {
                            continue;
                        };
                        let Some((epoch, json)) = text.split_once(' ') else {
                            continue;
                        };
                        let epoch: i64 = epoch.parse().unwrap_or(0);
                        events.note_epoch(epoch);
                        match serde_json::from_str::<Event>(json) {
                            Ok(event) => {
                                let _ = events.tx.send(event);
                            }
                            Err(_) => {
                                let _ = events.tx.send(Event::Resync);
                            }
                        }
                    }
                }
                tracing::warn!("Redis event subscription lost; resubscribing");
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to Redis events yet");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn epoch_poll(events: std::sync::Weak<RedisEvents>) {
    let mut tick = tokio::time::interval(EPOCH_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(events) = events.upgrade() else {
            return;
        };
        if !events.link.health.is_up() {
            continue;
        }
        let mut conn = events.link.conn();
        let epoch: Result<Option<i64>, _> = redis::cmd("GET")
            .arg(&events.epoch_key)
            .query_async(&mut conn)
            .await;
        match epoch {
            Ok(epoch) => {
                let epoch = epoch.unwrap_or(0);
                let seen = events.seen.load(Ordering::SeqCst);
                // Ahead: missed messages. Behind: Redis lost its data (flushed, restarted).
                if epoch != seen {
                    events.seen.store(epoch, Ordering::SeqCst);
                    if seen >= 0 {
                        tracing::debug!(
                            epoch,
                            seen,
                            "event epoch moved without a message: resyncing"
                        );
                    }
                    let _ = events.tx.send(Event::Resync);
                }
            }
            Err(e) => events.link.failed("epoch", &e),
        }
    }
}
