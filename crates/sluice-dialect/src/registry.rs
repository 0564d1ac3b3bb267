//! The dialect registry: every per-dialect operation the gateway needs, dispatched on
//! [`Dialect`]. Adding a dialect is a new adapter module plus its arms here; the gateway never
//! names an adapter directly.

use serde_json::Value;

use crate::canonical::{Request, Response, StreamEvent};
use crate::json_edit::{Edit, JsonEditError, ObjectSpans};
use crate::openai_chat::ChatRequest;
use crate::{
    Dialect, ErrorBody, ErrorKind, SseEvent, anthropic, gemini, openai_chat, openai_responses,
};

/// What the client-side encoders need to know besides the events.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// The model name to show the client.
    pub model: String,
    /// OpenAI Chat: the client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// Unix seconds.
    pub created: u64,
}

/// A request read just far enough to route it (one parse; byte spans kept for passthrough).
#[derive(Debug)]
pub struct Probe<'a> {
    pub model: String,
    pub stream: bool,
    /// OpenAI Chat `stream_options.include_usage`.
    pub include_usage: bool,
    kind: ProbeKind<'a>,
}

#[derive(Debug)]
enum ProbeKind<'a> {
    Chat(ChatRequest<'a>),
    Object(ObjectSpans<'a>),
    /// Gemini: the model lives in the URL, the body passes untouched.
    Untouched,
}

impl Dialect {
    /// Validates the fields the gateway relies on and reads model and stream. Gemini takes the
    /// model and stream flag from the URL (`path_model`, `path_stream`).
    pub fn probe<'a>(
        self,
        body: &'a [u8],
        path_model: Option<&str>,
        path_stream: bool,
        count_tokens: bool,
    ) -> Result<Probe<'a>, ErrorBody> {
        match self {
            Dialect::OpenAiChat => {
                let chat = ChatRequest::parse(body)?;
                Ok(Probe {
                    model: chat.model.clone(),
                    stream: chat.stream,
                    include_usage: chat.include_usage,
                    kind: ProbeKind::Chat(chat),
                })
            }
            Dialect::Anthropic | Dialect::OpenAiResponses => {
                let spans = ObjectSpans::parse_bytes(body).map_err(malformed)?;
                let model = required_string(&spans, "model")?;
                let content_field = if self == Dialect::Anthropic {
                    "messages"
                } else {
                    "input"
                };
                if spans.raw(content_field).is_none_or(|r| r == "null") {
                    return Err(missing(content_field));
                }
                if self == Dialect::Anthropic
                    && !count_tokens
                    && spans.raw("max_tokens").is_none_or(|r| r == "null")
                {
                    return Err(missing("max_tokens"));
                }
                let stream = match spans.raw("stream") {
                    None | Some("null") => false,
                    Some(raw) => serde_json::from_str::<bool>(raw)
                        .map_err(|_| invalid("stream", "a boolean"))?,
                };
                Ok(Probe {
                    model,
                    stream,
                    include_usage: false,
                    kind: ProbeKind::Object(spans),
                })
            }
            Dialect::Gemini => {
                let spans = ObjectSpans::parse_bytes(body).map_err(malformed)?;
                let has_contents = spans.raw("contents").is_some_and(|r| r != "null");
                let wrapped = spans.raw("generateContentRequest").is_some();
                if !(has_contents || (count_tokens && wrapped)) {
                    return Err(missing("contents"));
                }
                Ok(Probe {
                    model: path_model.unwrap_or_default().to_string(),
                    stream: path_stream,
                    include_usage: false,
                    kind: ProbeKind::Untouched,
                })
            }
        }
    }

    /// Client side: decode a full request into canonical form.
    pub fn decode_request(self, body: &[u8]) -> Result<Request, ErrorBody> {
        match self {
            Dialect::OpenAiChat => openai_chat::decode_request(body),
            Dialect::OpenAiResponses => openai_responses::decode_request(body),
            Dialect::Anthropic => anthropic::decode_request(body),
            Dialect::Gemini => gemini::decode_request(body),
        }
    }

    /// Upstream side: the most output tokens an upstream of this dialect will generate for
    /// `body` (one it is about to receive), or `None` when the body sets no limit. OpenAI
    /// Chat counts the larger of `max_tokens` and `max_completion_tokens`: compatible servers
    /// honour one or the other.
    pub fn output_cap(self, body: &[u8]) -> Option<u64> {
        match self {
            Dialect::OpenAiChat => {
                #[derive(serde::Deserialize)]
                struct Caps {
                    max_tokens: Option<u64>,
                    max_completion_tokens: Option<u64>,
                }
                let caps = serde_json::from_slice::<Caps>(body).ok()?;
                caps.max_tokens.max(caps.max_completion_tokens)
            }
            other => other.decode_request(body).ok()?.max_tokens,
        }
    }

    /// Client side: decode a token-counting request (`count_tokens` / `:countTokens`).
    pub fn decode_count_tokens(self, body: &[u8]) -> Result<Request, ErrorBody> {
        match self {
            Dialect::Anthropic => anthropic::count_tokens_request(body),
            Dialect::Gemini => gemini::count_tokens_request(body),
            other => other.decode_request(body),
        }
    }

    /// Client side: a token count in this dialect's shape.
    pub fn count_tokens_response(self, tokens: u64) -> Value {
        match self {
            Dialect::Gemini => gemini::count_tokens_response(tokens),
            _ => anthropic::count_tokens_response(tokens),
        }
    }

    /// Upstream side: the body to send.
    pub fn encode_request(self, request: &Request) -> Value {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_request(request),
            Dialect::OpenAiResponses => openai_responses::encode_request(request),
            Dialect::Anthropic => anthropic::encode_request(request),
            Dialect::Gemini => gemini::encode_request(request),
        }
    }

    /// Upstream side: decode a complete response.
    pub fn decode_response(self, body: &[u8]) -> Result<Response, ErrorBody> {
        match self {
            Dialect::OpenAiChat => openai_chat::decode_response(body),
            Dialect::OpenAiResponses => openai_responses::decode_response(body),
            Dialect::Anthropic => anthropic::decode_response(body),
            Dialect::Gemini => gemini::decode_response(body),
        }
    }

    /// Upstream side: a whole stream (its SSE bytes, read to the end) folded into the complete
    /// answer it amounts to, usage included — for upstreams that only stream (the ChatGPT
    /// Codex backend) serving a client that asked for one answer. An error event in the
    /// stream, or a stream that ends before its answer does, is an error.
    pub fn fold_stream(self, body: &[u8], created: u64) -> Result<Response, ErrorBody> {
        let mut parser = crate::SseParser::default();
        parser.push(body);
        let mut decoder = self.stream_decoder();
        let mut acc = crate::canonical::Accumulator::default();
        let mut ended = false;
        let mut fold = |events: Vec<StreamEvent>| -> Result<(), ErrorBody> {
            for event in events {
                match &event {
                    StreamEvent::Error { error } => return Err(error.clone()),
                    StreamEvent::MessageStop => ended = true,
                    _ => {}
                }
                acc.push(&event);
            }
            Ok(())
        };
        while let Some(event) = parser.next_event() {
            fold(decoder.push(&event))?;
        }
        if let Some(event) = parser.finish() {
            fold(decoder.push(&event))?;
        }
        fold(decoder.finish())?;
        if !ended && acc.stop_reason.is_none() {
            return Err(ErrorBody::new(
                ErrorKind::Upstream,
                "the upstream's stream ended before its answer was complete",
            ));
        }
        Ok(acc.response(created))
    }

    /// Client side: render a complete response.
    pub fn encode_response(self, response: &Response) -> Value {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_response(response),
            Dialect::OpenAiResponses => openai_responses::encode_response(response),
            Dialect::Anthropic => anthropic::encode_response(response),
            Dialect::Gemini => gemini::encode_response(response),
        }
    }

    /// An error body in this dialect's shape.
    pub fn error_json(self, error: &ErrorBody, http_status: u16) -> String {
        match self {
            Dialect::OpenAiChat | Dialect::OpenAiResponses => error.to_openai_json(),
            Dialect::Anthropic => error.to_anthropic_json(),
            Dialect::Gemini => error.to_gemini_json(http_status),
        }
    }

    /// Upstream side: a stream decoder.
    pub fn stream_decoder(self) -> StreamDecoder {
        match self {
            Dialect::OpenAiChat => StreamDecoder::OpenAiChat(Default::default()),
            Dialect::OpenAiResponses => StreamDecoder::OpenAiResponses(Default::default()),
            Dialect::Anthropic => StreamDecoder::Anthropic(Default::default()),
            Dialect::Gemini => StreamDecoder::Gemini(Default::default()),
        }
    }

    /// Client side: a stream encoder.
    pub fn stream_encoder(self, options: &EncodeOptions) -> StreamEncoder {
        match self {
            Dialect::OpenAiChat => {
                let o = openai_chat::EncodeOptions {
                    model: options.model.clone(),
                    include_usage: options.include_usage,
                    created: options.created,
                };
                StreamEncoder::OpenAiChat(openai_chat::StreamEncoder::new(o))
            }
            Dialect::OpenAiResponses => {
                let o = openai_responses::EncodeOptions {
                    model: options.model.clone(),
                    created: options.created,
                };
                StreamEncoder::OpenAiResponses(openai_responses::StreamEncoder::new(o))
            }
            Dialect::Anthropic => {
                let o = anthropic::EncodeOptions {
                    model: options.model.clone(),
                    created: options.created,
                };
                StreamEncoder::Anthropic(anthropic::StreamEncoder::new(o))
            }
            Dialect::Gemini => {
                let o = gemini::EncodeOptions {
                    model: options.model.clone(),
                };
                StreamEncoder::Gemini(gemini::StreamEncoder::new(o))
            }
        }
    }
}

impl Probe<'_> {
    /// The body for an upstream of the same dialect: the client's bytes with only the model
    /// renamed (and, for OpenAI Chat streams, usage requested). `None` = send unchanged.
    pub fn passthrough_body(&self, upstream_model: &str) -> Option<String> {
        match &self.kind {
            ProbeKind::Chat(chat) => chat.upstream_body(upstream_model),
            ProbeKind::Object(spans) if upstream_model != self.model => {
                Some(spans.apply(&[Edit::set_string("model", upstream_model)]))
            }
            ProbeKind::Object(_) | ProbeKind::Untouched => None,
        }
    }
}

/// Upstream stream decoders, one per dialect.
#[derive(Debug)]
pub enum StreamDecoder {
    OpenAiChat(openai_chat::StreamDecoder),
    OpenAiResponses(openai_responses::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl StreamDecoder {
    pub fn push(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        match self {
            StreamDecoder::OpenAiChat(d) => d.push(event),
            StreamDecoder::OpenAiResponses(d) => d.push(event),
            StreamDecoder::Anthropic(d) => d.push(event),
            StreamDecoder::Gemini(d) => d.push(event),
        }
    }

    pub fn finish(&mut self) -> Vec<StreamEvent> {
        match self {
            StreamDecoder::OpenAiChat(d) => d.finish(),
            StreamDecoder::OpenAiResponses(d) => d.finish(),
            StreamDecoder::Anthropic(d) => d.finish(),
            StreamDecoder::Gemini(d) => d.finish(),
        }
    }

    /// The encoder for events Sluice appends to a stream this decoder read and `client` (of
    /// the same dialect) received unchanged: for Responses, one that continues the upstream's
    /// response; otherwise a fresh encoder (the other dialects' error events stand alone).
    pub fn appending_encoder(&self, client: Dialect, options: &EncodeOptions) -> StreamEncoder {
        if let (StreamDecoder::OpenAiResponses(d), Dialect::OpenAiResponses) = (self, client) {
            let o = openai_responses::EncodeOptions {
                model: options.model.clone(),
                created: options.created,
            };
            if let Some(encoder) = d.continuation(o) {
                return StreamEncoder::OpenAiResponses(encoder);
            }
        }
        client.stream_encoder(options)
    }
}

/// Client stream encoders, one per dialect.
#[derive(Debug)]
pub enum StreamEncoder {
    OpenAiChat(openai_chat::StreamEncoder),
    OpenAiResponses(openai_responses::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Gemini(gemini::StreamEncoder),
}

impl StreamEncoder {
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAiChat(e) => e.push(event, out),
            StreamEncoder::OpenAiResponses(e) => e.push(event, out),
            StreamEncoder::Anthropic(e) => e.push(event, out),
            StreamEncoder::Gemini(e) => e.push(event, out),
        }
    }
}

fn malformed(e: JsonEditError) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("Could not parse the request body: {e}"),
    )
}

fn missing(field: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("{field}: Field required"),
    )
    .with_param(field)
    .with_code("missing_required_parameter")
}

fn invalid(field: &str, expected: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("{field}: expected {expected}"),
    )
    .with_param(field)
    .with_code("invalid_type")
}

fn required_string(spans: &ObjectSpans<'_>, field: &str) -> Result<String, ErrorBody> {
    match spans.raw(field) {
        None | Some("null") => Err(missing(field)),
        Some(raw) => match serde_json::from_str::<String>(raw) {
            Ok(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(invalid(field, "a non-empty string")),
        },
    }
}

/// A local estimate of a request's input tokens (about four characters a token), for
/// token-counting endpoints whose upstream cannot count: text, tool arguments and schemas.
pub fn estimate_input_tokens(request: &Request) -> u64 {
    use crate::canonical::Part;
    fn part_chars(part: &Part) -> usize {
        match part {
            Part::Text { text, .. } | Part::Thinking { text, .. } => text.len(),
            Part::ToolCall {
                name, arguments, ..
            } => name.len() + arguments.len(),
            Part::ToolResult { content, .. } => content.iter().map(part_chars).sum(),
            Part::Image { .. } => 1000, // a typical image costs hundreds to a few thousand tokens
            Part::RedactedThinking { data } => data.len() / 4,
        }
    }
    let chars: usize = request.system.iter().map(|s| s.text.len()).sum::<usize>()
        + request
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .map(part_chars)
            .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.description.as_ref().map_or(0, String::len)
                    + t.parameters.to_string().len()
            })
            .sum::<usize>();
    (chars as u64).div_ceil(4).max(1)
}
