//! Gemini Code Assist (`cloudcode-pa.googleapis.com/v1internal`, research `oauth.md` §5.2): the
//! API behind Gemini CLI's Google sign-in, reached with the OAuth accounts `sluice login gemini`
//! writes (token files of type `gemini`, whose `project_id` is the account's project).
//!
//! It speaks the Gemini dialect inside an envelope, so Sluice's Gemini adapter does the
//! translation and this module only wraps and unwraps:
//!
//! - `POST {base-url}:generateContent` and `:streamGenerateContent?alt=sse` take
//!   `{"model", "project", "request": <a Gemini generateContent body>}` and answer
//!   `{"response": <a Gemini answer>, "traceId"}` (each SSE event likewise);
//! - `POST {base-url}:countTokens` takes `{"request": {"model": "models/<m>", "contents"}}`
//!   (no project) and answers `{"totalTokens"}` as the Gemini API does.
//!
//! The base URL is the API root with its version (`…/v1internal`), as `oauth.gemini.code-assist-url`.
//! The wrapping splices the body's bytes in (a same-dialect body stays byte-faithful inside);
//! answers are unwrapped before anything else reads them ([`unwrap_answer`], [`unwrap_stream`]),
//! the trace id becoming the answer's `responseId` when it has none, as Gemini CLI does.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, header};
use serde_json::Value;
use sluice_dialect::json_edit::{Edit, ObjectSpans};
use sluice_dialect::sse::{SseEvent, SseParser};

use super::BuildContext;
use super::{Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;
use crate::pipeline::respond::UpstreamBody;

/// The Gemini CLI release whose requests Sluice's resemble.
const GEMINI_CLI_VERSION: &str = "0.34.0";
/// The `x-goog-api-client` Gemini CLI sends (its google-genai SDK and Node versions).
const GOOG_API_CLIENT: &str = "google-genai-sdk/1.41.0 gl-node/v22.19.0";

#[derive(Debug)]
pub struct CodeAssist {
    pub common: ProviderCommon,
    /// The Google Cloud project every generation names.
    project: String,
}

impl CodeAssist {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(config, ctx, header::AUTHORIZATION, |token| {
            format!("Bearer {token}")
        })?;
        let project = config
            .project
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| format!("provider `{}`: no Code Assist project", config.name))?;
        common.url("")?;
        Ok(Self { common, project })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let mut headers = self.common.base_headers(credential, call.stream);
        if !self.common.headers.contains_key(header::USER_AGENT)
            && let Ok(agent) = HeaderValue::from_str(&user_agent(call.model))
        {
            headers.insert(header::USER_AGENT, agent);
        }
        if !self.common.headers.contains_key("x-goog-api-client") {
            headers.insert(
                "x-goog-api-client",
                HeaderValue::from_static(GOOG_API_CLIENT),
            );
        }
        let (method, body) = match (call.operation, call.stream) {
            (Operation::CountTokens, _) => ("countTokens", count_body(call.model, &body)?),
            (Operation::Generate, true) => (
                "streamGenerateContent",
                wrap(call.model, &self.project, &body),
            ),
            (Operation::Generate, false) => {
                ("generateContent", wrap(call.model, &self.project, &body))
            }
            (Operation::Embed { .. }, _) => return Err("Code Assist has no embeddings API".into()),
            (Operation::Forward { path }, _) => {
                return Err(format!("Code Assist has no OpenAI `{path}` endpoint"));
            }
        };
        let mut url = self.common.credential_url(credential, "")?;
        let path = format!("{}:{method}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if call.stream && call.operation == Operation::Generate {
            url.set_query(Some("alt=sse"));
        }
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}

/// Gemini CLI's User-Agent: `GeminiCLI/<version>/<model> (<platform>; <arch>; terminal)`.
fn user_agent(model: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let model: String = model
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '(' && *c != ')')
        .collect();
    format!(
        "GeminiCLI/{GEMINI_CLI_VERSION}/{model} ({}; {arch}; terminal)",
        std::env::consts::OS
    )
}

/// `{"model", "project", "request": body}`, with `body`'s bytes as they are.
fn wrap(model: &str, project: &str, body: &[u8]) -> Bytes {
    let quoted = |s: &str| Value::String(s.to_owned()).to_string();
    let mut out = Vec::with_capacity(body.len() + model.len() + project.len() + 48);
    out.extend_from_slice(b"{\"model\":");
    out.extend_from_slice(quoted(model).as_bytes());
    out.extend_from_slice(b",\"project\":");
    out.extend_from_slice(quoted(project).as_bytes());
    out.extend_from_slice(b",\"request\":");
    out.extend_from_slice(body);
    out.push(b'}');
    Bytes::from(out)
}

/// Code Assist's count body from a Gemini one (`{contents}` or `{generateContentRequest}`):
/// `{"request": {"model": "models/<m>", "contents"}}`.
fn count_body(model: &str, body: &[u8]) -> Result<Bytes, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the count request is not JSON: {e}"))?;
    let inner = value
        .get("generateContentRequest")
        .or_else(|| value.get("generate_content_request"))
        .unwrap_or(&value);
    let contents = inner
        .get("contents")
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    let request = serde_json::json!({
        "request": {"model": format!("models/{model}"), "contents": contents}
    });
    Ok(Bytes::from(request.to_string()))
}

/// A wrapped answer's inner Gemini answer (with the trace id as its `responseId` when it has
/// none); anything else (`{"totalTokens"}`, an error object) as it is.
pub fn unwrap_answer(body: Bytes) -> Bytes {
    let Ok(outer) = ObjectSpans::parse_bytes(&body) else {
        return body;
    };
    let Some(inner) = outer.raw("response") else {
        return body;
    };
    if let Some(trace) = outer.raw("traceId")
        && let Ok(spans) = ObjectSpans::parse(inner)
        && spans.get("responseId").is_none()
    {
        return Bytes::from(spans.apply(&[Edit::Insert {
            key: "responseId".into(),
            json: trace.to_string(),
        }]));
    }
    body.slice_ref(inner.as_bytes())
}

/// A Code Assist SSE stream as the Gemini API's: each event's data unwrapped.
pub fn unwrap_stream(upstream: UpstreamBody) -> UpstreamBody {
    let state = (upstream, SseParser::default(), false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut upstream, mut parser, mut ended)| async move {
            loop {
                if ended {
                    return None;
                }
                let mut out = Vec::new();
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        parser.push(&chunk);
                        while let Some(event) = parser.next_event() {
                            push_unwrapped(event, &mut out);
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (upstream, parser, true))),
                    None => {
                        ended = true;
                        if let Some(event) = parser.finish() {
                            push_unwrapped(event, &mut out);
                        }
                    }
                }
                if !out.is_empty() {
                    return Some((Ok(Bytes::from(out)), (upstream, parser, ended)));
                }
            }
        },
    ))
}

fn push_unwrapped(event: SseEvent, out: &mut Vec<u8>) {
    if !event.has_data() {
        out.extend_from_slice(&event.raw);
        return;
    }
    let data = unwrap_answer(event.data);
    match std::str::from_utf8(&data) {
        Ok(text) => out.extend_from_slice(&SseEvent::encode(event.event.as_deref(), text)),
        Err(_) => out.extend_from_slice(&event.raw),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wraps_bytes_as_they_are() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}], "x":1.50}"#;
        let wrapped = wrap("gemini-2.5-pro", "my-proj", body);
        let text = std::str::from_utf8(&wrapped).unwrap();
        assert!(text.ends_with(
            r#""request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}], "x":1.50}}"#
        ));
        let v: Value = serde_json::from_slice(&wrapped).unwrap();
        assert_eq!(v["model"], "gemini-2.5-pro");
        assert_eq!(v["project"], "my-proj");
    }

    #[test]
    fn count_body_keeps_only_contents() {
        let b = count_body(
            "gemini-2.5-flash",
            br#"{"generateContentRequest":{"contents":[{"parts":[{"text":"a"}]}],"tools":[]}}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["request"]["model"], "models/gemini-2.5-flash");
        assert_eq!(v["request"]["contents"][0]["parts"][0]["text"], "a");
        assert!(v.get("project").is_none() && v["request"].get("tools").is_none());
    }

    #[test]
    fn unwraps_answers_and_leaves_others() {
        let a = unwrap_answer(Bytes::from_static(
            br#"{"response":{"candidates":[],"modelVersion":"m"},"traceId":"t1"}"#,
        ));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["responseId"], "t1");
        assert_eq!(v["modelVersion"], "m");
        let kept = unwrap_answer(Bytes::from_static(
            br#"{"response":{"responseId":"r","candidates":[]},"traceId":"t"}"#,
        ));
        assert_eq!(&kept[..], br#"{"responseId":"r","candidates":[]}"#);
        for other in [
            &br#"{"totalTokens":5}"#[..],
            br#"{"error":{"code":500}}"#,
            b"nope",
        ] {
            assert_eq!(&unwrap_answer(Bytes::copy_from_slice(other))[..], other);
        }
    }

    #[tokio::test]
    async fn unwraps_every_event_however_chunked() {
        let stream = "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]},\"traceId\":\"t\"}\r\n\r\n\
                      : keep-alive\n\n\
                      data: {\"error\":{\"code\":500,\"message\":\"x\"}}\n\n";
        for size in [1, 7, stream.len()] {
            let chunks: Vec<reqwest::Result<Bytes>> = stream
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let out: Vec<Bytes> = unwrap_stream(Box::pin(futures_util::stream::iter(chunks)))
                .map(|r| r.unwrap())
                .collect()
                .await;
            let text = String::from_utf8(out.concat()).unwrap();
            assert_eq!(
                text,
                "data: {\"responseId\":\"t\",\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n\
                 : keep-alive\n\n\
                 data: {\"error\":{\"code\":500,\"message\":\"x\"}}\n\n",
                "chunk size {size}"
            );
        }
    }
}
