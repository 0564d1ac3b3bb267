//! [`SharedLock`] on Redis: `SET <name> <random> NX PX <lease>`, released by a script that
//! deletes the key only while it still holds this holder's value.

use async_trait::async_trait;

use super::Link;
use crate::shared::{LockToken, SharedLock};

const UNLOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Single-flight locks across instances.
#[derive(Debug)]
pub struct RedisLock {
    link: Link,
    unlock: redis::Script,
}

impl RedisLock {
    pub fn new(link: Link) -> RedisLock {
        RedisLock {
            link,
            unlock: redis::Script::new(UNLOCK_LUA),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.link.tag("lock"))
    }
}

#[async_trait]
impl SharedLock for RedisLock {
    async fn try_lock(&self, name: &str, lease_ms: u64) -> Option<LockToken> {
        let token = LockToken {
            name: name.to_string(),
            value: format!("{:016x}", rand::random::<u64>()),
        };
        if !self.link.health.is_up() {
            return Some(token);
        }
        let mut conn = self.link.conn();
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(self.key(name))
            .arg(&token.value)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms.max(1))
            .query_async(&mut conn)
            .await;
        match taken {
            Ok(Some(_)) => Some(token),
            Ok(None) => None,
            Err(e) => {
                self.link.failed("lock", &e);
                Some(token)
            }
        }
    }

    async fn unlock(&self, token: LockToken) {
        let mut conn = self.link.conn();
        let released: Result<i64, _> = self
            .unlock
            .key(self.key(&token.name))
            .arg(&token.value)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            self.link.failed("unlock", &e);
        }
    }
}
