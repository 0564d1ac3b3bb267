//! A complete upstream answer in this dialect (decoder, error bodies, rendering to every client): see `sluice_fuzz::response_target`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dialect::Dialect;

fuzz_target!(|data: &[u8]| sluice_fuzz::response_target(Dialect::OpenAiChat, data));
