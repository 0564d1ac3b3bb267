//! A client request in this dialect (probe, decoders, passthrough edit, translation): see `sluice_fuzz::request_target`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dialect::Dialect;

fuzz_target!(|data: &[u8]| sluice_fuzz::request_target(Dialect::Gemini, data));
