//! Sluice: a self-hosted AI API gateway.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of this crate.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod limits;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod server;
pub mod store;
