//! Forward with accounting: OpenAI endpoints whose answers Sluice does not translate
//! (`/v1/moderations`, `/v1/audio/speech`, `/v1/rerank`). The key is checked, limits and
//! quotas apply, the route picks a provider whose model has the endpoint's capability and that
//! has the API (OpenAI-compatible, Azure deployments), failover runs before the first byte,
//! and the upstream's answer is streamed back unchanged — status, content type and bytes. The
//! usage record takes what the upstream reports (`usage` in a JSON answer), else input tokens
//! counted locally from the request's text and marked estimated.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderMap, header};
use serde_json::Value;
use sluice_dialect::{ErrorBody, ErrorKind, TokenUsage};

use super::account::Ledger;
use super::authenticate::Caller;
use super::{Endpoint, Handled, Routing, admit, admit_and_route, respond};
use crate::error::GatewayError;
use crate::gateway::{AppState, Runtime};
use crate::providers::{Operation, UpstreamCall};
use crate::routing::{self, failover::Answer};

/// The most of a JSON answer kept to read its `usage`.
const USAGE_WINDOW: usize = 1 << 20;

/// An upstream answer to relay as it is.
pub(super) struct Forwarded {
    response: reqwest::Response,
    provider: String,
    /// The model the record is priced at, for counting tokens locally.
    model: String,
    /// The request's text, counted when the upstream reports no usage.
    text: String,
    admitted: admit::Admitted,
}

/// Serves one forwarded request after authentication.
pub(super) async fn handle(
    app: &AppState,
    runtime: &Runtime,
    endpoint: Endpoint,
    caller: &Caller,
    own_token: Option<String>,
    body: Bytes,
    ledger: &mut Ledger,
) -> Result<Handled, GatewayError> {
    let request: Value = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::bad_request(ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {e}"),
        ))
    })?;
    let model = match request.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        // OpenAI's moderations default.
        None if endpoint.label == super::OPENAI_MODERATIONS.label => {
            "omni-moderation-latest".to_string()
        }
        _ => {
            return Err(GatewayError::bad_request(
                ErrorBody::new(ErrorKind::InvalidRequest, "`model` is required.")
                    .with_param("model"),
            ));
        }
    };
    ledger.with(|r| {
        r.model_requested = Some(model.clone());
        r.stream = false;
    });
    let routed = admit_and_route(
        app,
        runtime,
        endpoint,
        Routing {
            caller,
            own_token,
            body: &body,
            model: &model,
            session: None,
        },
        ledger,
        |_| Some(0),
    )
    .await?;
    let (router, mut plan, admitted) = (&runtime.router, routed.plan, routed.admitted);
    let request_id = ledger.request_id().to_string();
    let forwarded_headers = HeaderMap::new();
    let served = routing::failover::run(router, &mut plan, ledger, true, |pick| {
        let provider = &pick.target.provider;
        let upstream_model = &pick.target.upstream_model;
        let upstream_body = if **upstream_model == *model {
            body.clone()
        } else {
            let mut renamed = request.clone();
            renamed["model"] = Value::String(upstream_model.to_string());
            Bytes::from(renamed.to_string())
        };
        let call = UpstreamCall {
            operation: endpoint.operation,
            model: upstream_model,
            stream: false,
            forwarded: &forwarded_headers,
        };
        let mut prepared = super::prepare(
            provider,
            &call,
            &pick.credential,
            upstream_body,
            &request_id,
        )?;
        prepared.headers.remove(header::ACCEPT);
        Ok(prepared)
    })
    .await?;
    let provider = served.pick.target.provider.name().to_string();
    let priced = served.pick.target.upstream_model.to_string();
    match served.answer {
        Answer::Stream(response) => Ok(Handled::Forwarded(Box::new(Forwarded {
            response,
            provider,
            model: priced,
            text: request_text(&request),
            admitted,
        }))),
        Answer::Complete(bytes) => Ok(Handled::Complete(respond::json_response(
            http::StatusCode::OK,
            bytes,
            &provider,
        ))),
    }
}

/// The upstream's answer, relayed unchanged; the record closes when the body ends (or is
/// dropped by a client that went away).
pub(super) fn respond(forwarded: Forwarded, mut ledger: Ledger) -> Response {
    ledger.first_byte();
    let Forwarded {
        response,
        provider,
        model,
        text,
        admitted,
    } = forwarded;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(v) = response.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let body = Relay {
        upstream: Box::pin(response.bytes_stream()),
        window: json.then(BytesMut::new),
        close: Some(Close {
            ledger,
            status: status.as_u16(),
            model,
            text,
            _admitted: admitted,
        }),
    };
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    respond::insert_provider(&mut out, &provider);
    out
}

struct Close {
    ledger: Ledger,
    status: u16,
    model: String,
    text: String,
    _admitted: admit::Admitted,
}

impl Close {
    fn finish(self, answer: Option<&[u8]>, cut: bool) {
        let Close {
            mut ledger,
            status,
            model,
            text,
            ..
        } = self;
        let reported = answer.and_then(reported_usage);
        ledger.with(|r| match reported {
            Some(usage) => r.usage = usage,
            None => {
                r.usage.input_tokens = crate::pricing::estimate::count_tokens(&model, &text);
                r.estimated = true;
            }
        });
        if cut {
            ledger.finish(502, Some("upstream_stream_broken".into()));
        } else {
            ledger.finish(status, None);
        }
    }
}

/// The upstream body, passed through as it arrives, keeping the start of a JSON answer.
struct Relay {
    upstream: respond::UpstreamBody,
    window: Option<BytesMut>,
    close: Option<Close>,
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.upstream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(window) = this.window.as_mut()
                    && window.len() + chunk.len() <= USAGE_WINDOW
                {
                    window.extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(close) = this.close.take() {
                    close.finish(None, true);
                }
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                if let Some(close) = this.close.take() {
                    close.finish(this.window.as_deref(), false);
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The server stops polling once a sized body is out (or the client went away): the
        // answer read so far still says what the upstream reported.
        if let Some(close) = self.close.take() {
            close.finish(self.window.as_deref(), false);
        }
    }
}

/// `usage` as OpenAI-style answers report it (`prompt_tokens`/`input_tokens`,
/// `completion_tokens`/`output_tokens`, or rerank's `total_tokens`).
fn reported_usage(answer: &[u8]) -> Option<TokenUsage> {
    let value: Value = serde_json::from_slice(answer).ok()?;
    let usage = value.get("usage")?;
    let n = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| usage.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    };
    let input = n(&["prompt_tokens", "input_tokens", "total_tokens"]);
    let output = n(&["completion_tokens", "output_tokens"]);
    (input + output > 0).then(|| TokenUsage {
        input_tokens: input,
        output_tokens: output,
        ..Default::default()
    })
}

/// The text a request asks about (`input`, `prompt`, `query` and `documents`), for counting.
fn request_text(request: &Value) -> String {
    let mut text = String::new();
    let mut push = |v: &Value| match v {
        Value::String(s) => {
            text.push_str(s);
            text.push('\n');
        }
        Value::Array(items) => {
            for item in items {
                if let Some(s) = item.as_str().or_else(|| item.get("text")?.as_str()) {
                    text.push_str(s);
                    text.push('\n');
                }
            }
        }
        _ => {}
    };
    for key in ["input", "prompt", "query", "documents"] {
        if let Some(v) = request.get(key) {
            push(v);
        }
    }
    text
}

/// Whether an operation is forwarded.
pub(super) fn is_forward(operation: Operation) -> bool {
    matches!(operation, Operation::Forward { .. })
}
