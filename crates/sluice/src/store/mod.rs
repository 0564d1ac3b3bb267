//! The store as the gateway sees it: the traits and rows of `sluice-store`, and [`sink`], the
//! background writer that turns the request path's usage records into store rows.

pub use sluice_store::*;

pub mod sink;
