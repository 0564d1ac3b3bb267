//! Phase 4: the body the upstream will receive. A client and an upstream that speak the same
//! dialect get byte passthrough: the client's bytes, with only the fields the gateway owns
//! rewritten (the model name when an alias maps it; `stream_options.include_usage` for streams).

use bytes::Bytes;
use sluice_dialect::openai_chat::ChatRequest;

use super::route::Route;

/// The upstream body for an OpenAI Chat request routed to an OpenAI-compatible provider.
pub fn chat_passthrough(original: &Bytes, request: &ChatRequest<'_>, route: &Route) -> Bytes {
    match request.upstream_body(&route.target.upstream_model) {
        None => original.clone(),
        Some(edited) => Bytes::from(edited),
    }
}
