//! Token files: the gateway's `auth_files::parse` and sluice-oauth's `TokenDoc` (read, then a
//! refresh merged in). Input: the file, optionally followed by `\n\0\n` and a token endpoint's
//! JSON answer (`Granted`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::auth_files;
use sluice_oauth::{Granted, TokenDoc};

fuzz_target!(|data: &[u8]| {
    let (file, grant) = match data.windows(3).position(|w| w == b"\n\0\n") {
        Some(i) => (&data[..i], Some(&data[i + 3..])),
        None => (data, None),
    };
    let checked = auth_files::parse(file);
    let doc = TokenDoc::parse(file);
    if let Ok(token) = &checked {
        let _ = token.provider("fuzz.json");
        let doc = doc
            .as_ref()
            .expect("a file the gateway accepts, the refresher reads");
        assert_eq!(
            serde_json::to_value(token.kind).expect("kind"),
            doc.kind().as_str(),
            "both read the same account kind"
        );
        assert!(doc.access_token().is_some(), "and its access token");
    }
    let Ok(mut doc) = doc else {
        return;
    };
    let _ = (doc.refresh_token(), doc.email(), doc.account_id());
    let _ = (
        doc.expires_at_ms(),
        doc.last_refresh_ms(),
        doc.needs_relogin(),
    );
    let granted: Granted = grant
        .and_then(|g| serde_json::from_slice(g).ok())
        .unwrap_or_else(|| {
            serde_json::from_str(r#"{"access_token":"fuzz-access","expires_in":3600}"#)
                .expect("grant")
        });
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time");
    doc.apply(&granted, now);
    let _ = doc.expires_at_ms();
    let bytes = doc.to_bytes();
    let again = TokenDoc::parse(&bytes).expect("a refreshed file parses");
    assert_eq!(again.kind(), doc.kind());
    let access = granted.access_token.trim();
    if !access.is_empty() {
        assert_eq!(
            again.access_token(),
            Some(access),
            "the refreshed token is read back"
        );
        if checked.is_ok() && http::HeaderValue::from_str(&granted.access_token).is_ok() {
            if let Err(e) = auth_files::parse(&bytes) {
                panic!("a refresh made the gateway refuse the file: {e}");
            }
        }
    }
});
