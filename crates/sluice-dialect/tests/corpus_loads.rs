//! The shared canonical corpus parses: every adapter's golden tests start from these files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_dialect::canonical::Request;

#[test]
fn every_corpus_request_is_canonical() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/requests");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let req: Request =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!req.messages.is_empty(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 9);
}
