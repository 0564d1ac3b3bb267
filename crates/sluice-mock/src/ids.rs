//! Random identifiers in the shapes each provider uses, opaque signatures, and the clock.
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

/// A legacy completion's id: `cmpl-` + 29 alphanumerics.
pub(crate) fn text_completion_id() -> String {
    format!("cmpl-{}", alphanumeric(29))
}

/// `call_` + 24 alphanumerics.
pub(crate) fn tool_call_id() -> String {
    format!("call_{}", alphanumeric(24))
}

/// `req_` + 32 hex digits.
pub(crate) fn request_id() -> String {
    format!("req_{:016x}{:016x}", next_u64(), next_u64())
}

/// `hex` lowercase hexadecimal digits.
fn hex(len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        out.push_str(&format!("{:016x}", next_u64()));
    }
    out.truncate(len);
    out
}

/// OpenAI Responses' item ids: `prefix` + `_` + 50 hex digits (`resp_…`, `msg_…`, `fc_…`, `rs_…`).
pub(crate) fn responses_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex(50))
}

/// Anthropic's message id: `msg_01` + 22 alphanumerics.
pub(crate) fn anthropic_message_id() -> String {
    format!("msg_01{}", alphanumeric(22))
}

/// Anthropic's tool-use id: `toolu_01` + 22 alphanumerics.
pub(crate) fn anthropic_tool_use_id() -> String {
    format!("toolu_01{}", alphanumeric(22))
}

/// Anthropic's request id: `req_011C` + 20 alphanumerics.
pub(crate) fn anthropic_request_id() -> String {
    format!("req_011C{}", alphanumeric(20))
}

/// Gemini's `responseId`: 23 alphanumerics.
pub(crate) fn gemini_response_id() -> String {
    alphanumeric(23)
}

/// An opaque signature (Anthropic thinking, Gemini thought signatures, Responses encrypted
/// reasoning): 96 random bytes in standard base64.
pub(crate) fn signature() -> String {
    const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(128);
    // 96 bytes = 32 groups of 3 bytes = 128 characters, no padding needed.
    for _ in 0..32 {
        let bits = next_u64() & 0xFF_FFFF;
        for shift in [18, 12, 6, 0] {
            out.push(char::from(BASE64[((bits >> shift) & 0x3F) as usize]));
        }
    }
    out
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

    #[test]
    fn provider_ids_have_their_shapes() {
        let response = responses_id("resp");
        assert_eq!(response.len(), 5 + 50);
        assert!(response[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(anthropic_message_id().len(), "msg_01".len() + 22);
        assert!(anthropic_tool_use_id().starts_with("toolu_01"));
        assert!(anthropic_request_id().starts_with("req_011C"));
        assert_eq!(gemini_response_id().len(), 23);
        let signature = signature();
        assert_eq!(signature.len(), 128);
        assert!(
            signature
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        );
        assert_ne!(signature, self::signature());
    }
}
