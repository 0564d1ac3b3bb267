//! Content parts: Gemini `Part` objects ↔ canonical [`Part`]s, shared by requests and responses.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{field, field_str, invalid};
use crate::canonical::{
    ImageSource, Part, arguments_object, extract_thought_signature, mint_tool_id, standard_base64,
    tool_result_text,
};
use crate::error::ErrorBody;

/// Ids for function calls that arrive without one, and the pairing of function responses with
/// the calls they answer (by id, else by name and order).
#[derive(Debug)]
pub(super) struct CallLedger {
    /// What makes minted ids unique: the response id, or a fixed word for request history.
    context: String,
    /// Function calls seen so far.
    position: usize,
    /// Function responses that answered no known call.
    orphans: usize,
    calls: Vec<LedgerCall>,
}

#[derive(Debug)]
struct LedgerCall {
    id: String,
    name: String,
    answered: bool,
}

impl CallLedger {
    pub(super) fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            position: 0,
            orphans: 0,
            calls: Vec::new(),
        }
    }

    /// The id of the next function call: its own, or a minted one.
    pub(super) fn call(&mut self, id: Option<&str>, name: &str) -> String {
        let id = match id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_string(),
            None => mint_tool_id(&self.context, self.position),
        };
        self.position += 1;
        self.calls.push(LedgerCall {
            id: id.clone(),
            name: name.to_string(),
            answered: false,
        });
        id
    }

    /// The call id a function response answers.
    fn result(&mut self, id: Option<&str>, name: &str) -> String {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            if let Some(call) = self.calls.iter_mut().find(|c| !c.answered && c.id == id) {
                call.answered = true;
            }
            return id.to_string();
        }
        if let Some(call) = self
            .calls
            .iter_mut()
            .find(|c| !c.answered && c.name == name)
        {
            call.answered = true;
            return call.id.clone();
        }
        self.orphans += 1;
        mint_tool_id(&format!("{}/results", self.context), self.orphans - 1)
    }
}

/// Decodes `parts` (found at `path`, for error messages). Consecutive thought parts become one
/// thinking part until one carries a signature; with `merge_text`, the same holds for text parts
/// (as the stream decoder builds blocks).
pub(super) fn decode_parts(
    parts: &[Value],
    path: &str,
    ledger: &mut CallLedger,
    merge_text: bool,
) -> Result<Vec<Part>, ErrorBody> {
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for (j, raw) in parts.iter().enumerate() {
        if let Some(part) = decode_part(raw, &format!("{path}[{j}]"), ledger)? {
            push_merged(&mut out, part, merge_text);
        }
    }
    Ok(out)
}

fn push_merged(out: &mut Vec<Part>, part: Part, merge_text: bool) {
    match (out.last_mut(), part) {
        (
            Some(Part::Thinking {
                text,
                signature: signature @ None,
            }),
            Part::Thinking {
                text: more,
                signature: more_signature,
            },
        ) => {
            text.push_str(&more);
            *signature = more_signature;
        }
        (
            Some(Part::Text {
                text,
                cache_control: None,
                thought_signature: signature @ None,
            }),
            Part::Text {
                text: more,
                cache_control: None,
                thought_signature: more_signature,
            },
        ) if merge_text => {
            text.push_str(&more);
            *signature = more_signature;
        }
        (_, part) => out.push(part),
    }
}

/// One part; `None` for kinds the canonical form has no place for.
fn decode_part(
    raw: &Value,
    path: &str,
    ledger: &mut CallLedger,
) -> Result<Option<Part>, ErrorBody> {
    let Some(obj) = raw.as_object() else {
        return Err(invalid(path, format!("`{path}` must be an object.")));
    };
    let signature = field_str(obj, "thoughtSignature")
        .filter(|s| !s.is_empty())
        .map(String::from);
    if let Some(call) = field(obj, "functionCall") {
        let path = format!("{path}.functionCall");
        let call = object_at(call, &path)?;
        let name = required_str(call, "name", &path)?;
        let arguments = field(call, "args").map_or_else(|| "{}".to_string(), Value::to_string);
        let id = ledger.call(field_str(call, "id"), name);
        // Some clients nest the signature inside the call.
        let thought_signature =
            signature.or_else(|| field_str(call, "thoughtSignature").map(String::from));
        return Ok(Some(Part::ToolCall {
            id,
            name: name.to_string(),
            arguments,
            thought_signature,
        }));
    }
    if let Some(response) = field(obj, "functionResponse") {
        let path = format!("{path}.functionResponse");
        let response = object_at(response, &path)?;
        let name = required_str(response, "name", &path)?;
        let (text, is_error) = result_text(field(response, "response"));
        let mut content = vec![Part::text(text)];
        // Multimodal function responses (Gemini 3) carry images in `parts`.
        let media = field(response, "parts").and_then(Value::as_array);
        for (k, p) in media.into_iter().flatten().enumerate() {
            let Some(p) = p.as_object() else { continue };
            if let Some(source) = image_source(p, &format!("{path}.parts[{k}]"))? {
                content.push(Part::Image {
                    source,
                    detail: None,
                });
            }
        }
        let call_id = ledger.result(field_str(response, "id"), name);
        return Ok(Some(Part::ToolResult {
            call_id,
            name: Some(name.to_string()),
            content,
            is_error,
        }));
    }
    if let Some(source) = image_source(obj, path)? {
        return Ok(Some(Part::Image {
            source,
            detail: None,
        }));
    }
    let text = match field(obj, "text") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(invalid(
                &format!("{path}.text"),
                format!("`{path}.text` must be a string."),
            ));
        }
    };
    let text = text.unwrap_or_default();
    if text.is_empty() && signature.is_none() {
        // Empty text parts (streams end with one) carry nothing.
        return Ok(None);
    }
    let thought = field(obj, "thought").and_then(Value::as_bool) == Some(true);
    Ok(Some(if thought {
        Part::Thinking { text, signature }
    } else {
        Part::Text {
            text,
            cache_control: None,
            thought_signature: signature,
        }
    }))
}

/// `inlineData` or `fileData` of a part, if it has either.
fn image_source(obj: &Map<String, Value>, path: &str) -> Result<Option<ImageSource>, ErrorBody> {
    if let Some(inline) = field(obj, "inlineData") {
        let path = format!("{path}.inlineData");
        let inline = object_at(inline, &path)?;
        let media_type = required_str(inline, "mimeType", &path)?.to_string();
        let data = required_str(inline, "data", &path)?;
        let Some(data) = standard_base64(data) else {
            return Err(invalid(
                &format!("{path}.data"),
                format!("`{path}.data` is not valid base64."),
            ));
        };
        return Ok(Some(ImageSource::Base64 {
            media_type,
            data: data.into_owned(),
        }));
    }
    if let Some(file) = field(obj, "fileData") {
        let path = format!("{path}.fileData");
        let file = object_at(file, &path)?;
        return Ok(Some(ImageSource::Url {
            url: required_str(file, "fileUri", &path)?.to_string(),
        }));
    }
    Ok(None)
}

/// A function response's `response` object as text: the value of its only key when that is
/// `result`, `output` or `error` (strings as they are), else the object's JSON. Any non-null
/// `error` key marks the result as an error.
fn result_text(response: Option<&Value>) -> (String, bool) {
    let Some(response) = response else {
        return (String::new(), false);
    };
    let Some(obj) = response.as_object() else {
        return (text_of(response), false);
    };
    let is_error = field(obj, "error").is_some();
    let mut present = obj.iter().filter(|(_, v)| !v.is_null());
    let text = match (present.next(), present.next()) {
        (Some((key, value)), None) if matches!(key.as_str(), "result" | "output" | "error") => {
            text_of(value)
        }
        _ => response.to_string(),
    };
    (text, is_error)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn object_at<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ErrorBody> {
    value
        .as_object()
        .ok_or_else(|| invalid(path, format!("`{path}` must be an object.")))
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, ErrorBody> {
    match field(obj, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(invalid(
            &format!("{path}.{key}"),
            format!("`{path}.{key}` is required."),
        )),
        Some(_) => Err(invalid(
            &format!("{path}.{key}"),
            format!("`{path}.{key}` must be a string."),
        )),
    }
}

/// How canonical parts are written for one direction.
pub(super) struct PartEncoding<'a> {
    /// Write `functionCall.id` / `functionResponse.id` (to clients; not to Gemini upstreams).
    pub ids: bool,
    /// Write thinking parts as `thought: true` parts (to clients; dropped toward Gemini).
    pub thinking: bool,
    /// Function names by call id, for results that do not carry their name.
    pub names: &'a HashMap<String, String>,
}

/// Appends the Gemini parts for one canonical part (none, one, or a function response followed
/// by its images).
pub(super) fn encode_part(part: &Part, how: &PartEncoding<'_>, out: &mut Vec<Value>) {
    match part {
        Part::Text {
            text,
            thought_signature,
            ..
        } => {
            let mut p = json!({ "text": text });
            if let Some(sig) = thought_signature {
                p["thoughtSignature"] = json!(sig);
            }
            out.push(p);
        }
        Part::Image { source, .. } => out.push(image_part(source)),
        Part::ToolCall {
            id,
            name,
            arguments,
            thought_signature,
        } => {
            let (base, embedded) = extract_thought_signature(id);
            let mut call = json!({ "name": name, "args": arguments_object(arguments) });
            if how.ids {
                call["id"] = json!(base);
            }
            let mut p = json!({ "functionCall": call });
            if let Some(sig) = thought_signature.clone().or(embedded) {
                p["thoughtSignature"] = json!(sig);
            }
            out.push(p);
        }
        Part::ToolResult {
            call_id,
            name,
            content,
            is_error,
        } => {
            let (base, _) = extract_thought_signature(call_id);
            let name = name
                .clone()
                .or_else(|| how.names.get(call_id).cloned())
                .or_else(|| how.names.get(&base).cloned())
                // Gemini requires a name; the id is the best guess left.
                .unwrap_or_else(|| base.clone());
            let text = tool_result_text(content);
            let key = if *is_error { "error" } else { "result" };
            let mut response = json!({ "name": name, "response": { key: text } });
            if how.ids {
                response["id"] = json!(base);
            }
            out.push(json!({ "functionResponse": response }));
            for p in content {
                if let Part::Image { source, .. } = p {
                    out.push(image_part(source));
                }
            }
        }
        Part::Thinking { text, signature } => {
            if how.thinking {
                let mut p = json!({ "text": text, "thought": true });
                if let Some(sig) = signature {
                    p["thoughtSignature"] = json!(sig);
                }
                out.push(p);
            }
        }
        Part::RedactedThinking { .. } => {}
    }
}

fn image_part(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            json!({ "inlineData": { "mimeType": media_type, "data": data } })
        }
        ImageSource::Url { url } => match ImageSource::from_url(url) {
            ImageSource::Base64 { media_type, data } => {
                json!({ "inlineData": { "mimeType": media_type, "data": data } })
            }
            ImageSource::Url { url } => {
                json!({ "fileData": { "mimeType": mime_from_url(&url), "fileUri": url } })
            }
        },
    }
}

/// The MIME type a URL's file extension suggests; `image/jpeg` when it suggests none.
fn mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mime_types_follow_the_extension() {
        assert_eq!(mime_from_url("https://x/a/cat.PNG?size=2#f"), "image/png");
        assert_eq!(mime_from_url("https://x/a/cat.webp"), "image/webp");
        assert_eq!(mime_from_url("https://x.example/a/cat"), "image/jpeg");
        assert_eq!(mime_from_url("gs://bucket/doc.pdf"), "application/pdf");
    }

    #[test]
    fn results_pair_by_id_then_name_and_order() {
        let mut ledger = CallLedger::new("r");
        let a = ledger.call(None, "f");
        let b = ledger.call(None, "f");
        let c = ledger.call(Some("own"), "g");
        assert_ne!(a, b);
        assert_eq!(c, "own");
        assert_eq!(ledger.result(None, "f"), a);
        assert_eq!(ledger.result(Some("own"), "g"), "own");
        assert_eq!(ledger.result(None, "f"), b);
        // A result for a call nobody made still gets an id of its own.
        let orphan = ledger.result(None, "f");
        assert!(orphan.starts_with("call_") && orphan != a && orphan != b);
    }

    #[test]
    fn result_text_unwraps_single_known_keys() {
        assert_eq!(
            result_text(Some(&json!({"result": "ok"}))),
            ("ok".into(), false)
        );
        assert_eq!(
            result_text(Some(&json!({"output": {"t": 1}}))),
            ("{\"t\":1}".into(), false)
        );
        assert_eq!(
            result_text(Some(&json!({"error": "boom"}))),
            ("boom".into(), true)
        );
        assert_eq!(
            result_text(Some(&json!({"error": "boom", "code": 3}))),
            ("{\"code\":3,\"error\":\"boom\"}".into(), true)
        );
        assert_eq!(
            result_text(Some(&json!({"temp": 18}))),
            ("{\"temp\":18}".into(), false)
        );
        assert_eq!(result_text(None), (String::new(), false));
    }
}
