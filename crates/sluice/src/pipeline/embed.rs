//! Embeddings: `POST /v1/embeddings` and Gemini's `:embedContent` / `:batchEmbedContents`.
//!
//! The same phases as chat — the key authenticated by [`super::proxy`], then
//! [`super::admit_and_route`], failover, one usage record — with the body translated through
//! the canonical embedding request of `sluice_dialect::embedding`: the client's shape is
//! decoded, each attempt's upstream shape encoded, and the answer written back in the
//! client's shape (base64 by the gateway when asked: upstreams are always asked for floats).

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use sluice_dialect::Dialect;
use sluice_dialect::embedding::{EmbeddingRequest, EmbeddingWire};

use super::{Endpoint, Handled, Routing, admit_and_route, respond};
use crate::error::GatewayError;
use crate::gateway::{AppState, Runtime};
use crate::pipeline::account::Ledger;
use crate::pipeline::authenticate::Caller;
use crate::providers::Operation;
use crate::routing::{self, failover::Answer};

/// The shape a client endpoint speaks.
fn client_wire(dialect: Dialect, batch: bool) -> EmbeddingWire {
    match (dialect, batch) {
        (Dialect::Gemini, true) => EmbeddingWire::GeminiBatch,
        (Dialect::Gemini, false) => EmbeddingWire::GeminiSingle,
        _ => EmbeddingWire::OpenAi,
    }
}

/// What [`handle`] takes over from the shared start of the request.
pub(super) struct Start<'a> {
    pub caller: &'a Caller,
    pub own_token: Option<String>,
    pub body: Bytes,
    pub path_model: Option<String>,
}

/// Serves one embedding request after authentication.
pub(super) async fn handle(
    app: &AppState,
    runtime: &Runtime,
    endpoint: Endpoint,
    start: Start<'_>,
    ledger: &mut Ledger,
) -> Result<Handled, GatewayError> {
    let Operation::Embed { batch } = endpoint.operation else {
        return Err(GatewayError::internal("not an embedding endpoint"));
    };
    let wire = client_wire(endpoint.dialect, batch);
    let phase = Instant::now();
    let request = wire
        .decode_request(&start.body, start.path_model.as_deref())
        .map_err(GatewayError::bad_request)?;
    let mut translating = phase.elapsed();
    ledger.with(|r| {
        r.model_requested = Some(request.model.clone());
        r.stream = false;
    });

    let routed = admit_and_route(
        app,
        runtime,
        endpoint,
        Routing {
            caller: start.caller,
            own_token: start.own_token,
            body: &start.body,
            model: &request.model,
            session: None,
        },
        ledger,
        // Embeddings have no output to reserve for: the input is the whole cost.
        |_| Some(0),
    )
    .await?;
    let (router, mut plan, admitted) = (&runtime.router, routed.plan, routed.admitted);

    let request_id = ledger.request_id().to_string();
    let served = routing::failover::run(router, &mut plan, ledger, false, |pick| {
        let provider = &pick.target.provider;
        let model = &pick.target.upstream_model;
        let phase = Instant::now();
        let upstream = upstream_body(provider, model, batch, &request);
        translating += phase.elapsed();
        super::prepare_plain(endpoint, pick, upstream?, &request_id)
    })
    .await;
    ledger.with(|r| r.overhead.translate_request = Some(translating));
    let served = served?;
    drop(admitted);
    let provider = served.pick.target.provider.clone();
    let model = served.pick.target.upstream_model.clone();
    let Answer::Complete(body) = served.answer else {
        return Err(GatewayError::upstream_failed(
            provider.name(),
            "it answered an embedding request with a stream",
        ));
    };
    let phase = Instant::now();
    let upstream_wire = provider
        .embedding_wire(&model, batch)
        .unwrap_or(EmbeddingWire::OpenAi);
    let mut response = upstream_wire
        .decode_response(&body, request.inputs.len())
        .map_err(|e| {
            GatewayError::upstream_failed(
                provider.name(),
                &format!("its answer could not be read: {}", e.message),
            )
        })?;
    // Gemini (and Cohere on Bedrock) report no tokens: counted here, marked estimated.
    let estimated = response.input_tokens.is_none();
    let tokens = response
        .input_tokens
        .unwrap_or_else(|| local_tokens(&model, &request));
    response.input_tokens = Some(tokens);
    let reply = Bytes::from(wire.encode_response(&response, &request).to_string());
    let spent = phase.elapsed();
    ledger.with(|r| {
        r.usage.input_tokens = tokens;
        r.estimated = estimated;
        r.overhead.translate_response = Some(spent);
        r.capture_response(&reply);
    });
    Ok(Handled::Complete(respond::json_response(
        StatusCode::OK,
        reply,
        provider.name(),
    )))
}

/// The body one provider receives for `request`, in its own embedding shape.
fn upstream_body(
    provider: &crate::providers::Provider,
    model: &str,
    batch: bool,
    request: &EmbeddingRequest,
) -> Result<Bytes, GatewayError> {
    let wire = provider.embedding_wire(model, batch).ok_or_else(|| {
        GatewayError::upstream_failed(provider.name(), "it has no embeddings API")
    })?;
    let upstream = EmbeddingRequest {
        model: model.to_string(),
        ..request.clone()
    };
    let body = wire
        .encode_request(&upstream)
        .map_err(GatewayError::bad_request)?;
    Ok(Bytes::from(body.to_string()))
}

/// The input tokens of a request, counted locally (at least one per input).
fn local_tokens(model: &str, request: &EmbeddingRequest) -> u64 {
    let texts: u64 = request
        .texts()
        .map(|t| crate::pricing::estimate::count_tokens(model, t).max(1))
        .sum();
    texts + request.token_inputs()
}
