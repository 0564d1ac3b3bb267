//! Complete answers: an upstream's Response object → canonical, and canonical → a client's.

use serde_json::Value;

use super::{
    Head, item_parts, output_item, parse_usage, response_id, response_object, status_of,
    stop_reason, upstream_error,
};
use crate::canonical::{Part, Response};
use crate::error::{ErrorBody, ErrorKind};

/// Upstream side: a Response object → canonical. A `failed` response (or a bare `error`
/// object) is returned as the error it reports.
pub fn decode_response(body: &[u8]) -> Result<Response, ErrorBody> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::Upstream,
            format!("The upstream's response is not valid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(ErrorBody::new(
            ErrorKind::Upstream,
            "The upstream's response is not a JSON object.",
        ));
    }
    let failed = v.get("status").and_then(Value::as_str) == Some("failed");
    if let Some(err) = v.get("error").filter(|e| e.is_object())
        && (failed || v.get("output").is_none())
    {
        return Err(upstream_error(err));
    }
    if failed {
        return Err(ErrorBody::new(
            ErrorKind::Upstream,
            "The upstream failed to generate a response.",
        ));
    }
    let mut saw_refusal = false;
    let parts: Vec<Part> = v
        .get("output")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .flat_map(|item| item_parts(item, &mut saw_refusal))
                .collect()
        })
        .unwrap_or_default();
    let created = match v.get("created_at") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .unwrap_or(0),
        _ => 0,
    };
    Ok(Response {
        id: str_field(&v, "id"),
        model: str_field(&v, "model"),
        parts,
        stop_reason: Some(stop_reason(&v, false, false)),
        usage: v.get("usage").and_then(parse_usage).unwrap_or_default(),
        created,
    })
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Client side: canonical → the Response object (`object: "response"`), one output item per
/// answer part.
pub fn encode_response(resp: &Response) -> Value {
    let id = response_id(&resp.id, resp.created);
    let head = Head {
        id: &id,
        created: resp.created,
        model: &resp.model,
    };
    render(&head, resp)
}

/// The final Response object (shared with the stream encoder's `response.completed`).
pub(super) fn render(head: &Head<'_>, resp: &Response) -> Value {
    let output = output_items(head.id, &resp.parts);
    let (status, reason) = status_of(resp.stop_reason.as_ref());
    response_object(head, status, output, Some(&resp.usage), reason, None)
}

/// The output items of an answer's parts, positions counted over the items made.
pub(super) fn output_items(resp_id: &str, parts: &[Part]) -> Vec<Value> {
    parts
        .iter()
        .filter(|p| !matches!(p, Part::Image { .. } | Part::ToolResult { .. }))
        .enumerate()
        .filter_map(|(position, part)| output_item(part, resp_id, position))
        .collect()
}
