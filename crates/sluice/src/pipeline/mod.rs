//! A proxied request, phase by phase:
//!
//! ```text
//! authenticate → admit → route → translate → upstream → respond → account
//! ```
//!
//! Each phase is a module with a narrow input and output; [`chat_completions`] strings them
//! together so one request reads top to bottom.

pub mod account;
pub mod admit;
pub mod authenticate;
pub mod respond;
pub mod route;
pub mod translate;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use sluice_dialect::openai_chat::{self, ChatRequest};

use crate::error::GatewayError;
use crate::gateway::AppState;
use account::Ledger;
use respond::StreamRelay;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = crate::server::request_id(&parts.headers);
    let mut ledger = Ledger::open(&app.usage, request_id, "openai.chat", started);
    match chat(&app, &parts.headers, body, &mut ledger).await {
        Ok(Handled::Streaming { relay, upstream }) => {
            let provider = relay.provider.clone();
            respond::sse_response(relay.into_body(upstream, ledger), &provider)
        }
        Ok(Handled::Complete(response)) => {
            ledger.first_byte();
            let status = response.status().as_u16();
            ledger.finish(status, None);
            response
        }
        Err(error) => {
            let code = error
                .body
                .code
                .clone()
                .unwrap_or_else(|| error.body.kind.openai_type().to_string());
            ledger.finish(error.status.as_u16(), Some(code));
            error.into_response()
        }
    }
}

enum Handled {
    Complete(Response),
    /// An upstream stream to relay; the relay takes over the ledger.
    Streaming {
        relay: StreamRelay,
        upstream: reqwest::Response,
    },
}

async fn chat(
    app: &AppState,
    headers: &http::HeaderMap,
    body: Body,
    ledger: &mut Ledger,
) -> Result<Handled, GatewayError> {
    let runtime = app.runtime.load();
    let caller = runtime.keys.authenticate(headers)?;
    ledger.with(|r| r.key_id = caller.key_id.clone());

    let bytes = read_body(body, app.limits.max_body_size).await?;
    let request = ChatRequest::parse(&bytes).map_err(GatewayError::bad_request)?;
    ledger.with(|r| {
        r.model_requested = Some(request.model.clone());
        r.stream = request.stream;
    });

    let admitted = app.admission.admit()?;
    if app.is_draining() {
        return Err(GatewayError::shutting_down());
    }

    let route = runtime.catalog.resolve(&request.model)?;
    let provider = route.target.provider.clone();
    let common = provider.common();
    let credential = common.next_credential();
    ledger.with(|r| {
        r.provider = Some(common.name.to_string());
        r.platform = Some(common.platform.to_string());
        r.credential = Some(credential.id.to_string());
        r.model_served = Some(route.target.upstream_model.to_string());
    });

    let upstream_body = translate::chat_passthrough(&bytes, &request, &route);
    let mut prepared = provider.chat_request(credential, upstream_body, request.stream);
    if let Ok(id) = http::HeaderValue::from_str(ledger.request_id()) {
        prepared.headers.insert("x-request-id", id);
    }
    let response = upstream::send(
        &app.http,
        provider.name(),
        prepared,
        common.timeouts.first_byte,
    )
    .await?;
    if !response.status().is_success() {
        return Err(
            upstream::error_from_response(provider.name(), response, common.timeouts.idle).await,
        );
    }

    if request.stream {
        let relay = StreamRelay {
            provider: provider.name().to_string(),
            idle: common.timeouts.idle,
            strip_usage: !request.include_usage,
            shutdown: app.hard_stop.subscribe(),
            admitted,
        };
        return Ok(Handled::Streaming {
            relay,
            upstream: response,
        });
    }

    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::OK);
    let body = upstream::read_body(provider.name(), response, common.timeouts.idle).await?;
    if let Some(usage) = openai_chat::response_usage(&body) {
        ledger.with(|r| r.usage = usage);
    }
    drop(admitted);
    Ok(Handled::Complete(respond::json_response(
        status,
        body,
        provider.name(),
    )))
}

/// Reads the body up to the configured limit.
async fn read_body(body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(GatewayError::too_large(limit))
        }
        Err(_) => Err(GatewayError::bad_request(sluice_dialect::ErrorBody::new(
            sluice_dialect::ErrorKind::InvalidRequest,
            "The request body could not be read.",
        ))),
    }
}

/// `GET /v1/models`: every client-facing model name, OpenAI's list shape.
pub async fn list_models(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let runtime = app.runtime.load();
    if let Err(e) = runtime.keys.authenticate(request.headers()) {
        return e.into_response();
    }
    let data: Vec<serde_json::Value> = runtime
        .catalog
        .models()
        .map(|(id, owner)| serde_json::json!({"id": id, "object": "model", "created": app.started_unix, "owned_by": owner}))
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}
