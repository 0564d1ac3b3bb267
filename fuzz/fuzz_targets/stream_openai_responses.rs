//! An upstream SSE stream in this dialect (stream decoder, relaying to every client): see `sluice_fuzz::stream_target`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dialect::Dialect;

fuzz_target!(|data: &[u8]| sluice_fuzz::stream_target(Dialect::OpenAiResponses, data));
