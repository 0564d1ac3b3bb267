//! The token pool's upload body (`POST /api/upload-token`): every accepted token is one the
//! pool can send, and every accepted `resource_url` is on the allow-list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::token_pool::{check_resource_url, upload};

fuzz_target!(|data: &[u8]| {
    let allowed = [
        "portal.qwen.ai".to_string(),
        "*.aliyuncs.com".to_string(),
        "https://127.0.0.1:8443".to_string(),
    ];
    let Ok(uploads) = upload::parse(data, &allowed) else {
        return;
    };
    assert!((1..=upload::MAX_TOKENS_PER_UPLOAD).contains(&uploads.len()));
    for u in &uploads {
        for token in std::iter::once(&u.access_token).chain(&u.refresh_token) {
            assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
            assert!(http::HeaderValue::from_str(&format!("Bearer {token}")).is_ok());
        }
        if let Some(url) = &u.resource_url {
            assert!(check_resource_url(url, &allowed).is_ok());
        }
    }
});
