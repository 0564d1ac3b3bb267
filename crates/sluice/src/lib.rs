//! Sluice: a self-hosted AI API gateway.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of this crate.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod auth_files;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod listener;
pub use sluice_store::limits;
pub mod management;
pub mod oauth;
pub mod otel;
pub mod peer;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod request_log;
pub mod routing;
pub mod server;
pub mod settings;
pub mod shared;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod token_pool;
pub mod transport;
