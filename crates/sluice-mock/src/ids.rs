//! Random identifiers in the shapes OpenAI uses, and the clock.
//!
//! Not cryptographic: a per-thread splitmix64 seeded from std's randomly keyed hasher, so minting
//! an id costs a few nanoseconds and needs no dependency.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

fn next_u64() -> u64 {
    STATE.with(|state| {
        let x = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(x);
        let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let (mut bits, mut left) = (0u64, 0u32);
    for _ in 0..len {
        if left == 0 {
            // 62^10 < 2^64: ten digits per draw.
            (bits, left) = (next_u64(), 10);
        }
        out.push(char::from(ALPHANUMERIC[(bits % 62) as usize]));
        bits /= 62;
        left -= 1;
    }
    out
}

/// `chatcmpl-` + 29 alphanumerics.
pub(crate) fn completion_id() -> String {
    format!("chatcmpl-{}", alphanumeric(29))
}

/// `call_` + 24 alphanumerics.
pub(crate) fn tool_call_id() -> String {
    format!("call_{}", alphanumeric(24))
}

/// `req_` + 32 hex digits.
pub(crate) fn request_id() -> String {
    format!("req_{:016x}{:016x}", next_u64(), next_u64())
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_openai_shapes_and_differ() {
        let (a, b) = (completion_id(), completion_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), "chatcmpl-".len() + 29);
        let call = tool_call_id();
        let suffix = call.strip_prefix("call_").unwrap_or_default();
        assert_eq!(suffix.len(), 24);
        assert!(suffix.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(request_id().len(), 4 + 32);
    }
}
