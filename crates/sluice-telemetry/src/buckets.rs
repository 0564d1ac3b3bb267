//! Histogram buckets: the OpenTelemetry GenAI conventions' advice, extended where LLM traffic
//! outgrows it (long reasoning streams, fast decoders), and microseconds for the gateway's own
//! phases.

use prometheus_client::metrics::histogram::Histogram;

/// 0.01 s … 81.92 s (×2, the conventions' advice), then 163.84, 327.68, 655.36 s: long reasoning
/// streams run past 82 s.
pub const SERVER_DURATION: [f64; 17] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84,
    327.68, 655.36,
];

/// The conventions' time-to-first-token list, extended to a minute.
pub const TTFT: [f64; 21] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The conventions' time-per-output-token list with 1 ms in front (fast decoders).
pub const TPOT: [f64; 14] = [
    0.001, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// The gateway's own phases: 5 µs … 250 ms.
pub const OVERHEAD: [f64; 13] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.05, 0.25,
];

/// Tokens: 1, 4, 16, … 67108864 (×4, the conventions' advice).
pub fn token_buckets() -> impl Iterator<Item = f64> {
    (0..14).map(|i| 4f64.powi(i))
}

pub const WRITE_LAG: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

pub const BATCH_SIZE: [f64; 9] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

pub const STORE_QUERY: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub fn server_duration() -> Histogram {
    Histogram::new(SERVER_DURATION)
}

pub fn ttft() -> Histogram {
    Histogram::new(TTFT)
}

pub fn tpot() -> Histogram {
    Histogram::new(TPOT)
}

pub fn overhead() -> Histogram {
    Histogram::new(OVERHEAD)
}

pub fn tokens() -> Histogram {
    Histogram::new(token_buckets())
}

pub fn write_lag() -> Histogram {
    Histogram::new(WRITE_LAG)
}

pub fn batch_size() -> Histogram {
    Histogram::new(BATCH_SIZE)
}

pub fn store_query() -> Histogram {
    Histogram::new(STORE_QUERY)
}
