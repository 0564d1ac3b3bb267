//! OAuth for subscription accounts: Claude (Pro/Max), Codex (ChatGPT), Gemini Code Assist and
//! (uploaded, historical) Qwen tokens.
//!
//! This crate knows the providers' token endpoints, client ids and wire formats
//! (`../shared/research/oauth.md`), the token files that hold an account ([`TokenDoc`]), how to
//! refresh them ([`refresh::refresh`]) and how to tell a permanent refusal ("needs re-login")
//! from a transient one, and how to write a file so that a crash never loses the rotated token
//! ([`store::write_private`]). It holds no gateway state: the gateway's refresher decides when to
//! call it and under which locks.
#![forbid(unsafe_code)]

pub mod file;
pub mod flow;
pub mod jwt;
pub mod login;
pub mod provider;
pub mod refresh;
pub mod store;

pub use file::TokenDoc;
pub use provider::{Endpoints, Kind};
pub use refresh::{Granted, RefreshError};
