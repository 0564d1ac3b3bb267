//! Sluice: a self-hosted AI API gateway.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of this crate.
#![forbid(unsafe_code)]

pub mod auth_files;
pub mod config;
pub mod error;
pub mod gateway;
pub mod management;
pub mod peer;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod server;
pub mod settings;
pub mod token_pool;
pub mod transport;
