//! The Anthropic Messages adapter: golden files, Anthropic's request rules, round trips, and
//! the stream shape the official SDK consumes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{corpus_text, corpus_texts, sse_events};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_dialect::anthropic::{self, EncodeOptions, StreamEncoder};
use sluice_dialect::canonical::{
    Accumulator, BlockStart, Delta, Effort, ImageSource, Message, Part, Reasoning, Request,
    Response, Role, StopReason, StreamEvent, SystemBlock, Tool, ToolChoice,
};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind, TokenUsage, registry};

// ---------------------------------------------------------------------------------------------
// Helpers

fn decode_sse(bytes: &[u8]) -> Vec<StreamEvent> {
    common::decode_stream(Dialect::Anthropic, bytes)
}

fn encode_stream(events: &[StreamEvent], options: EncodeOptions) -> Vec<u8> {
    let encoder = registry::StreamEncoder::Anthropic(StreamEncoder::new(options));
    common::encode_stream(encoder, events)
}

/// The complete answer a stream amounts to. `Accumulator` drops deltas of blocks that never
/// started, so blocks the source left implicit (OpenAI-style text) are started first.
fn accumulate(events: &[StreamEvent]) -> Response {
    let mut acc = Accumulator::default();
    let mut started = Vec::new();
    for e in events {
        match e {
            StreamEvent::BlockStart { index, .. } => started.push(*index),
            StreamEvent::Delta { index, delta } if !started.contains(index) => {
                let block = match delta {
                    Delta::Text(_) => BlockStart::Text,
                    Delta::Thinking(_) => BlockStart::Thinking,
                    _ => continue,
                };
                started.push(*index);
                acc.push(&StreamEvent::BlockStart {
                    index: *index,
                    block,
                });
            }
            _ => {}
        }
        acc.push(e);
    }
    acc.response(0)
}

fn decode_err(body: &str) -> ErrorBody {
    anthropic::decode_request(body.as_bytes()).unwrap_err()
}

fn user(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        parts,
    }
}

fn assistant(parts: Vec<Part>) -> Message {
    Message {
        role: Role::Assistant,
        parts,
    }
}

fn tool_call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
        thought_signature: None,
    }
}

fn tool_result(call_id: &str, text: &str) -> Part {
    Part::ToolResult {
        call_id: call_id.into(),
        name: None,
        content: vec![Part::text(text)],
        is_error: false,
    }
}

fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {"location": {"type": "string"}}}),
        strict: None,
    }
}

fn request(messages: Vec<Message>) -> Request {
    Request {
        model: "claude-sonnet-4-5".into(),
        messages,
        ..Request::default()
    }
}

fn is_anthropic_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The rules Anthropic enforces on a request body that the adapter is responsible for.
fn assert_anthropic_accepts(body: &Value) {
    let max_tokens = body["max_tokens"].as_u64().expect("max_tokens is required");
    let messages = body["messages"].as_array().expect("messages");
    let mut previous_role = "";
    for m in messages {
        let role = m["role"].as_str().unwrap();
        assert_ne!(role, previous_role, "turns alternate: {body:#}");
        previous_role = role;
        let content = m["content"].as_array().unwrap();
        assert!(!content.is_empty(), "no empty turns: {body:#}");
        let first_other = content
            .iter()
            .position(|b| b["type"] != "tool_result")
            .unwrap_or(content.len());
        assert!(
            content[first_other..]
                .iter()
                .all(|b| b["type"] != "tool_result"),
            "tool results come first: {body:#}"
        );
        for b in content {
            match b["type"].as_str().unwrap() {
                "text" => assert!(!b["text"].as_str().unwrap().trim().is_empty()),
                "tool_use" => {
                    assert!(is_anthropic_id(b["id"].as_str().unwrap()));
                    assert!(b["input"].is_object());
                }
                "tool_result" => {
                    assert_eq!(role, "user");
                    assert!(is_anthropic_id(b["tool_use_id"].as_str().unwrap()));
                }
                "thinking" => assert!(!b["signature"].as_str().unwrap().is_empty()),
                "image" | "redacted_thinking" => {}
                other => panic!("unexpected block {other}"),
            }
        }
    }
    if let Some(thinking) = body.get("thinking")
        && thinking["type"] == "enabled"
    {
        let budget = thinking["budget_tokens"].as_u64().unwrap();
        assert!(budget >= 1024 && budget < max_tokens, "{body:#}");
        assert!(body.get("temperature").is_none() && body.get("top_k").is_none());
        let choice = body["tool_choice"]["type"].as_str().unwrap_or("auto");
        assert!(choice == "auto" || choice == "none", "{body:#}");
    }
    if body.get("tool_choice").is_some() {
        assert!(body["tools"].as_array().is_some_and(|t| !t.is_empty()));
    }
    assert!(
        body.get("temperature").is_none() || body.get("top_p").is_none(),
        "newer models refuse both: {body:#}"
    );
    if let Some(t) = body.get("temperature") {
        assert!((0.0..=1.0).contains(&t.as_f64().unwrap()));
    }
}

/// Reads an encoded stream as the Anthropic SDK does and checks it obeys the protocol the SDK
/// relies on; returns `(event name, data)` pairs.
fn check_sdk_stream(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "events end with a blank line"
    );
    let events = sse_events(bytes);
    let mut out = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    let (mut started, mut delta_seen, mut finished) = (false, false, false);
    for e in &events {
        assert!(!finished, "nothing follows message_stop or error:\n{text}");
        let name = e.event.clone().expect("every event is named");
        let data: Value = serde_json::from_slice(&e.data).unwrap();
        assert_eq!(data["type"], name.as_str(), "data.type matches the event");
        match name.as_str() {
            "ping" => {}
            "error" => {
                assert!(data["error"]["type"].is_string() && data["error"]["message"].is_string());
                finished = true;
            }
            "message_start" => {
                assert!(!started, "one message_start");
                started = true;
                let m = &data["message"];
                assert!(m["id"].as_str().unwrap().starts_with("msg_"));
                assert_eq!(
                    (&m["type"], &m["role"], &m["content"]),
                    (&json!("message"), &json!("assistant"), &json!([]))
                );
                assert!(m["stop_reason"].is_null() && m["stop_sequence"].is_null());
                assert!(
                    m["usage"]["input_tokens"].is_u64() && m["usage"]["output_tokens"].is_u64()
                );
            }
            other => {
                assert!(started, "{other} before message_start:\n{text}");
                match other {
                    "content_block_start" => {
                        assert!(!delta_seen, "no block after message_delta");
                        assert_eq!(open, None, "one block open at a time:\n{text}");
                        let index = data["index"].as_u64().unwrap() as usize;
                        assert_eq!(index, blocks.len(), "indices count up from 0:\n{text}");
                        let block = &data["content_block"];
                        let ty = block["type"].as_str().unwrap().to_string();
                        match ty.as_str() {
                            "text" => assert_eq!(block["text"], ""),
                            "thinking" => {
                                assert_eq!(
                                    (&block["thinking"], &block["signature"]),
                                    (&json!(""), &json!(""))
                                )
                            }
                            "redacted_thinking" => assert!(block["data"].is_string()),
                            "tool_use" => {
                                assert!(is_anthropic_id(block["id"].as_str().unwrap()));
                                assert!(block["name"].is_string());
                                assert_eq!(block["input"], json!({}));
                            }
                            other => panic!("unknown block type {other}"),
                        }
                        blocks.push(ty);
                        open = Some(index);
                    }
                    "content_block_delta" => {
                        let index = data["index"].as_u64().unwrap() as usize;
                        let block = blocks.get(index).expect("delta for a started block");
                        let delta = &data["delta"];
                        let fits = match delta["type"].as_str().unwrap() {
                            "text_delta" => block == "text" && delta["text"].is_string(),
                            "input_json_delta" => {
                                block == "tool_use" && delta["partial_json"].is_string()
                            }
                            "thinking_delta" => {
                                block == "thinking" && delta["thinking"].is_string()
                            }
                            "signature_delta" => {
                                block == "thinking" && delta["signature"].is_string()
                            }
                            _ => false,
                        };
                        assert!(fits, "{delta} does not fit a {block} block");
                        // Text and thinking only flow into the open block; late tool
                        // arguments and signatures may reach their (closed) block.
                        if matches!(block.as_str(), "text") || delta["type"] == "thinking_delta" {
                            assert_eq!(open, Some(index), "text goes to the open block:\n{text}");
                        }
                    }
                    "content_block_stop" => {
                        let index = data["index"].as_u64().unwrap() as usize;
                        assert_eq!(open, Some(index), "stop closes the open block:\n{text}");
                        open = None;
                    }
                    "message_delta" => {
                        assert_eq!(open, None, "blocks close before message_delta:\n{text}");
                        assert!(!delta_seen, "one message_delta");
                        delta_seen = true;
                        let reason = data["delta"]["stop_reason"].as_str().unwrap();
                        assert!(
                            [
                                "end_turn",
                                "max_tokens",
                                "stop_sequence",
                                "tool_use",
                                "pause_turn",
                                "refusal",
                                "model_context_window_exceeded"
                            ]
                            .contains(&reason)
                        );
                        assert!(data["delta"]["stop_sequence"].is_null());
                        assert!(data["usage"]["output_tokens"].is_u64());
                    }
                    "message_stop" => {
                        assert!(delta_seen, "message_delta precedes message_stop");
                        finished = true;
                    }
                    other => panic!("unknown event {other}"),
                }
            }
        }
        out.push((name, data));
    }
    out
}

/// The message the Anthropic SDK's `MessageStream` accumulates from these events (its
/// `accumulate_event`), with tool inputs parsed at the end.
fn sdk_final_message(events: &[(String, Value)]) -> Value {
    let mut message = Value::Null;
    let mut json_bufs: BTreeMap<usize, String> = BTreeMap::new();
    for (name, data) in events {
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => message["content"]
                .as_array_mut()
                .unwrap()
                .push(data["content_block"].clone()),
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let block = &mut message["content"][index];
                let delta = &data["delta"];
                let append = |block: &mut Value, key: &str, more: &Value| {
                    let s = format!("{}{}", block[key].as_str().unwrap(), more.as_str().unwrap());
                    block[key] = Value::String(s);
                };
                match delta["type"].as_str().unwrap() {
                    "text_delta" => append(block, "text", &delta["text"]),
                    "thinking_delta" => append(block, "thinking", &delta["thinking"]),
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => json_bufs
                        .entry(index)
                        .or_default()
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for key in [
                    "output_tokens",
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ] {
                    if let Some(v) = data["usage"].get(key) {
                        message["usage"][key] = v.clone();
                    }
                }
            }
            _ => {}
        }
    }
    for (index, buf) in json_bufs {
        message["content"][index]["input"] = serde_json::from_str(&buf).unwrap_or(json!({}));
    }
    message
}

// ---------------------------------------------------------------------------------------------
// Golden files

#[test]
fn golden_encode_canonical_requests() {
    for (stem, req) in common::canonical_requests() {
        let body = anthropic::encode_request(&req);
        assert_anthropic_accepts(&body);
        insta::assert_json_snapshot!(format!("encode_request__{stem}"), body);
    }
}

#[test]
fn golden_decode_native_requests() {
    for (stem, text) in corpus_texts("anthropic/requests", "json") {
        let req =
            anthropic::decode_request(text.as_bytes()).unwrap_or_else(|e| panic!("{stem}: {e:?}"));
        insta::assert_json_snapshot!(format!("decode_request__{stem}"), req);
    }
}

#[test]
fn golden_decode_native_responses() {
    for (stem, text) in corpus_texts("anthropic/responses", "json") {
        let resp =
            anthropic::decode_response(text.as_bytes()).unwrap_or_else(|e| panic!("{stem}: {e:?}"));
        insta::assert_json_snapshot!(format!("decode_response__{stem}"), resp);
    }
}

#[test]
fn golden_encode_canonical_responses() {
    for (stem, text) in corpus_texts("anthropic/canonical/responses", "json") {
        let resp: Response = serde_json::from_str(&text).unwrap();
        insta::assert_json_snapshot!(
            format!("encode_response__{stem}"),
            anthropic::encode_response(&resp)
        );
    }
}

#[test]
fn golden_decode_sse_transcripts() {
    for (stem, text) in corpus_texts("anthropic", "sse") {
        insta::assert_json_snapshot!(
            format!("decode_stream__{stem}"),
            decode_sse(text.as_bytes())
        );
    }
}

#[test]
fn golden_encode_canonical_streams() {
    for (stem, text) in corpus_texts("anthropic/canonical/streams", "json") {
        let events: Vec<StreamEvent> = serde_json::from_str(&text).unwrap();
        let options = EncodeOptions {
            model: "client-model".into(),
            created: 1_735_689_600,
        };
        let bytes = encode_stream(&events, options);
        check_sdk_stream(&bytes);
        insta::assert_snapshot!(
            format!("encode_stream__{stem}"),
            String::from_utf8(bytes).unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: what the SDK sees, and round trips

/// A client reading a stream gets the same message as a client asking without streaming.
#[test]
fn streamed_and_complete_answers_agree_for_the_sdk() {
    for stem in ["well_formed", "openai_chat_style", "gemini_style"] {
        let text = corpus_text(&format!("anthropic/canonical/streams/{stem}.json"));
        let events: Vec<StreamEvent> = serde_json::from_str(&text).unwrap();
        let streamed = sdk_final_message(&check_sdk_stream(&encode_stream(
            &events,
            EncodeOptions::default(),
        )));
        let mut complete = anthropic::encode_response(&accumulate(&events));
        complete["usage"]
            .as_object_mut()
            .unwrap()
            .remove("output_tokens_details");
        assert_eq!(streamed, complete, "{stem}");
    }
}

#[test]
fn upstream_stream_and_complete_answer_decode_alike() {
    let sse = corpus_text("anthropic/tool_use.sse");
    let json = corpus_text("anthropic/responses/tool_use.json");
    let mut streamed = accumulate(&decode_sse(sse.as_bytes()));
    let complete = anthropic::decode_response(json.as_bytes()).unwrap();
    // The stream's arguments are the model's text; the complete answer's are re-serialised.
    let Part::ToolCall { arguments, .. } = &mut streamed.parts[2] else {
        panic!("{:?}", streamed.parts)
    };
    *arguments = serde_json::from_str::<Value>(arguments)
        .unwrap()
        .to_string();
    assert_eq!(streamed, complete);
}

#[test]
fn encoded_stream_decodes_back_to_the_same_answer() {
    let text = corpus_text("anthropic/canonical/streams/gemini_style.json");
    let events: Vec<StreamEvent> = serde_json::from_str(&text).unwrap();
    let bytes = encode_stream(&events, EncodeOptions::default());
    let back = accumulate(&decode_sse(&bytes));
    let want = accumulate(&events);
    assert_eq!(back.id, "msg_resp-abc");
    assert_eq!(back.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(back.usage, want.usage);
    // The Gemini signature travels inside the tool id and comes back out; the text part's
    // signature has no Anthropic spelling.
    let mut want_parts = want.parts.clone();
    if let Part::Text {
        thought_signature, ..
    } = &mut want_parts[1]
    {
        *thought_signature = None;
    }
    assert_eq!(back.parts, want_parts);
}

#[test]
fn message_delta_waits_for_trailing_usage() {
    let usage = TokenUsage {
        input_tokens: 100,
        output_tokens: 7,
        cache_read_tokens: 60,
        ..TokenUsage::default()
    };
    let events = [
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("hi".into()),
        },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::EndTurn),
            usage: None,
        },
        StreamEvent::Usage { usage },
        StreamEvent::MessageStop,
    ];
    let mut encoder = StreamEncoder::new(EncodeOptions::default());
    let mut out = Vec::new();
    encoder.push(&events[0], &mut out);
    encoder.push(&events[1], &mut out);
    let so_far = String::from_utf8(out.clone()).unwrap();
    assert!(so_far.contains("content_block_stop") && !so_far.contains("message_delta"));
    encoder.push(&events[2], &mut out);
    encoder.push(&events[3], &mut out);
    let parsed = check_sdk_stream(&out);
    let (_, delta) = parsed.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 7})
    );
    let message = sdk_final_message(&parsed);
    assert_eq!(message["usage"]["input_tokens"], 40);
}

#[test]
fn stream_without_message_delta_still_ends_properly() {
    let events = [
        StreamEvent::MessageStart {
            id: "x".into(),
            model: "m".into(),
            usage: None,
        },
        StreamEvent::BlockStart {
            index: 3,
            block: BlockStart::ToolCall {
                id: "call 1".into(),
                name: "f".into(),
                thought_signature: None,
            },
        },
        StreamEvent::Delta {
            index: 3,
            delta: Delta::ToolArguments("{}".into()),
        },
        StreamEvent::MessageStop,
    ];
    let parsed = check_sdk_stream(&encode_stream(&events, EncodeOptions::default()));
    let message = sdk_final_message(&parsed);
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["id"], "call_1");
}

#[test]
fn upstream_stream_cut_short_ends_in_an_error() {
    let whole = corpus_text("anthropic/text.sse");
    let cut = &whole[..whole.find("event: message_delta").unwrap()];
    let events = decode_sse(cut.as_bytes());
    let Some(StreamEvent::Error { error }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind, ErrorKind::Upstream);

    let without_stop = &whole[..whole.find("event: message_stop").unwrap()];
    assert_eq!(
        decode_sse(without_stop.as_bytes()).last(),
        Some(&StreamEvent::MessageStop)
    );
    assert_eq!(
        decode_sse(whole.as_bytes())
            .iter()
            .filter(|e| **e == StreamEvent::MessageStop)
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Requests from clients

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (
            r#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
            "model",
        ),
        (
            r#"{"model":"","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
            "model",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            "max_tokens",
        ),
        (
            r#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#,
            "max_tokens",
        ),
        (r#"{"model":"m","max_tokens":1}"#, "messages"),
        (r#"{"model":"m","max_tokens":1,"messages":[]}"#, "messages"),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#,
            "messages.0.role",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#,
            "messages.0.content",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
            "messages.0.content.0.text",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#,
            "messages.0.content.0.tool_use_id",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"tool"}}"#,
            "tool_choice.name",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled"}}"#,
            "thinking.budget_tokens",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"input_schema":{}}]}"#,
            "tools.0.name",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":5}}"#,
            "metadata.user_id",
        ),
    ];
    for (body, param) in cases {
        let err = decode_err(body);
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
        assert_eq!(err.param.as_deref(), Some(param), "{body}");
        assert!(err.message.starts_with(param), "{}", err.message);
    }
    assert!(decode_err("{not json").message.contains("not valid JSON"));
    assert!(decode_err("[1]").message.contains("JSON object"));
}

#[test]
fn count_tokens_needs_no_max_tokens() {
    let body = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}],"system":"Be brief."}"#;
    let req = anthropic::count_tokens_request(body).unwrap();
    assert_eq!(req.max_tokens, None);
    assert_eq!(req.system[0].text, "Be brief.");
    assert!(anthropic::decode_request(body).is_err());
    assert_eq!(
        anthropic::count_tokens_response(42),
        json!({"input_tokens": 42})
    );
}

#[test]
fn tool_results_name_their_function_and_lose_no_cache_marker() {
    let text = corpus_text("anthropic/requests/agent_loop.json");
    let req = anthropic::decode_request(text.as_bytes()).unwrap();
    let Part::ToolResult {
        name,
        content,
        call_id,
        ..
    } = &req.messages[2].parts[0]
    else {
        panic!("{:?}", req.messages[2])
    };
    assert_eq!(call_id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(name.as_deref(), Some("read_file"));
    assert_eq!(
        content,
        &vec![Part::Text {
            text: "fn main() {}".into(),
            cache_control: Some(json!({"type": "ephemeral"})),
            thought_signature: None
        }]
    );
    // Sent on to an Anthropic upstream, the marker sits at the end of the same tool result.
    let body = anthropic::encode_request(&req);
    assert_eq!(
        body["messages"][2]["content"][0]["content"],
        json!([{"type": "text", "text": "fn main() {}", "cache_control": {"type": "ephemeral"}}])
    );
    // The server tool, its blocks and the PDF are not carried; the text document is.
    assert_eq!(req.tools.len(), 2);
    assert!(
        req.messages[1]
            .parts
            .iter()
            .all(|p| !matches!(p, Part::ToolCall { name, .. } if name == "web_search"))
    );
    assert_eq!(req.messages[0].parts.len(), 3);
}

/// A Gemini tool call's signature reaches an Anthropic client inside the id, and comes back
/// out when the client sends the history.
#[test]
fn thought_signatures_survive_a_client_round_trip() {
    let signature = "CiQBVKhc7gsig+/wAA==";
    let answer = Response {
        id: "resp-1".into(),
        model: "gemini-3-pro-preview".into(),
        parts: vec![Part::ToolCall {
            id: "call_0123".into(),
            name: "calc".into(),
            arguments: r#"{"expr":"1+1"}"#.into(),
            thought_signature: Some(signature.into()),
        }],
        stop_reason: Some(StopReason::EndTurn),
        usage: TokenUsage::default(),
        created: 0,
    };
    let sent = anthropic::encode_response(&answer);
    assert_eq!(sent["stop_reason"], "tool_use");
    let client_id = sent["content"][0]["id"].as_str().unwrap().to_string();
    assert!(is_anthropic_id(&client_id), "{client_id}");

    let history = json!({
        "model": "gemini-3-pro-preview",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": sent["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": client_id, "content": "2"}]}
        ]
    });
    let req = anthropic::decode_request(history.to_string().as_bytes()).unwrap();
    assert_eq!(req.messages[1].parts, answer.parts);
    assert_eq!(
        req.messages[2].parts[0],
        Part::ToolResult {
            call_id: "call_0123".into(),
            name: Some("calc".into()),
            content: vec![Part::text("2")],
            is_error: false
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Requests to Anthropic

fn with_reasoning(effort: Option<Effort>, budget: Option<i64>, max_tokens: Option<u64>) -> Value {
    let mut req = request(vec![user(vec![Part::text("Think.")])]);
    req.reasoning = Some(Reasoning {
        effort,
        budget_tokens: budget,
        include_thoughts: Some(true),
    });
    req.max_tokens = max_tokens;
    let body = anthropic::encode_request(&req);
    assert_anthropic_accepts(&body);
    body
}

#[test]
fn thinking_budget_follows_anthropic_rules() {
    // (effort, budget, client max_tokens) → (thinking, max_tokens sent)
    type Case = (Option<Effort>, Option<i64>, Option<u64>, Value, u64);
    let cases: [Case; 9] = [
        (
            Some(Effort::Low),
            None,
            None,
            json!({"type": "enabled", "budget_tokens": 1024}),
            8192,
        ),
        (
            Some(Effort::Minimal),
            None,
            None,
            json!({"type": "enabled", "budget_tokens": 1024}),
            8192,
        ),
        (
            Some(Effort::High),
            None,
            None,
            json!({"type": "enabled", "budget_tokens": 24576}),
            28672,
        ),
        (
            Some(Effort::Xhigh),
            None,
            Some(64000),
            json!({"type": "enabled", "budget_tokens": 32768}),
            64000,
        ),
        // The client's cap stands; thinking gets half of it.
        (
            Some(Effort::High),
            None,
            Some(4096),
            json!({"type": "enabled", "budget_tokens": 2048}),
            4096,
        ),
        (
            None,
            Some(3000),
            Some(2000),
            json!({"type": "enabled", "budget_tokens": 1024}),
            2000,
        ),
        // Dynamic: the medium budget.
        (
            None,
            Some(-1),
            None,
            json!({"type": "enabled", "budget_tokens": 8192}),
            12288,
        ),
        (
            Some(Effort::None),
            None,
            None,
            json!({"type": "disabled"}),
            8192,
        ),
        (None, Some(0), Some(500), json!({"type": "disabled"}), 500),
    ];
    for (effort, budget, max, thinking, max_tokens) in cases {
        let body = with_reasoning(effort, budget, max);
        assert_eq!(body["thinking"], thinking, "{effort:?} {budget:?} {max:?}");
        assert_eq!(
            body["max_tokens"], max_tokens,
            "{effort:?} {budget:?} {max:?}"
        );
    }
    // No room for the 1024 minimum: no thinking rather than a refused request.
    let body = with_reasoning(Some(Effort::Low), None, Some(1000));
    assert!(body.get("thinking").is_none());
    assert_eq!(body["max_tokens"], 1000);
    // Without reasoning, the default cap.
    let body = anthropic::encode_request(&request(vec![user(vec![Part::text("x")])]));
    assert_eq!(body["max_tokens"], anthropic::DEFAULT_MAX_TOKENS);
    assert!(body.get("thinking").is_none());
}

#[test]
fn sampling_fits_what_anthropic_accepts() {
    let mut req = request(vec![user(vec![Part::text("x")])]);
    req.temperature = Some(1.6);
    req.top_p = Some(0.9);
    req.top_k = Some(20);
    let body = anthropic::encode_request(&req);
    assert_eq!(body["temperature"], 1.0);
    assert!(body.get("top_p").is_none());
    assert_eq!(body["top_k"], 20);

    // Thinking refuses changed temperature and top_k, and a top_p below 0.95.
    req.reasoning = Some(Reasoning {
        effort: Some(Effort::Low),
        budget_tokens: None,
        include_thoughts: None,
    });
    let body = anthropic::encode_request(&req);
    assert_eq!(body["thinking"]["type"], "enabled");
    assert!(body.get("temperature").is_none() && body.get("top_k").is_none());
    assert!(body.get("top_p").is_none());
    req.temperature = None;
    req.top_p = Some(0.97);
    assert_eq!(anthropic::encode_request(&req)["top_p"], 0.97);
}

#[test]
fn thinking_yields_to_forced_tools_and_foreign_tool_history() {
    let reasoning = Some(Reasoning {
        effort: Some(Effort::Medium),
        budget_tokens: None,
        include_thoughts: None,
    });
    let mut req = request(vec![user(vec![Part::text("Weather?")])]);
    req.tools = vec![weather_tool()];
    req.reasoning = reasoning.clone();
    req.tool_choice = Some(ToolChoice::Required);
    let body = anthropic::encode_request(&req);
    assert!(body.get("thinking").is_none());
    assert_eq!(body["tool_choice"], json!({"type": "any"}));

    // A tool loop whose call came from another provider, without thinking.
    let mut req = request(vec![
        user(vec![Part::text("Weather?")]),
        assistant(vec![tool_call("call_1", "get_weather", "{}")]),
        user(vec![tool_result("call_1", "sunny")]),
    ]);
    req.tools = vec![weather_tool()];
    req.reasoning = reasoning;
    let body = anthropic::encode_request(&req);
    assert_anthropic_accepts(&body);
    assert!(body.get("thinking").is_none());

    // The same loop opened by signed thinking keeps it on.
    req.messages[1].parts.insert(
        0,
        Part::Thinking {
            text: "Use the tool.".into(),
            signature: Some("sig".into()),
        },
    );
    assert_eq!(
        anthropic::encode_request(&req)["thinking"]["type"],
        "enabled"
    );

    // A new user question starts a new loop: older calls do not matter.
    req.messages[1].parts.remove(0);
    req.messages.push(assistant(vec![Part::text("Sunny.")]));
    req.messages
        .push(user(vec![Part::text("Thanks! And tomorrow?")]));
    assert_eq!(
        anthropic::encode_request(&req)["thinking"]["type"],
        "enabled"
    );
}

#[test]
fn turns_merge_and_tool_results_come_first() {
    let req = request(vec![
        user(vec![Part::text("Weather in Paris?")]),
        assistant(vec![
            Part::Thinking {
                text: "unsigned reasoning from another provider".into(),
                signature: None,
            },
            tool_call("call.1", "get_weather", "not json"),
        ]),
        user(vec![Part::text("  "), Part::text("Also: hurry.")]),
        user(vec![tool_result("call.1", "sunny")]),
        assistant(vec![Part::text("It is sunny.  \n")]),
    ]);
    let body = anthropic::encode_request(&req);
    assert_anthropic_accepts(&body);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "text", "text": "Also: hurry."}
            ]},
            // A final assistant turn is a prefill: no trailing whitespace.
            {"role": "assistant", "content": [{"type": "text", "text": "It is sunny."}]}
        ])
    );
}

#[test]
fn tool_choice_and_parallelism() {
    let base = {
        let mut req = request(vec![user(vec![Part::text("x")])]);
        req.tools = vec![weather_tool()];
        req
    };
    let cases = [
        (Some(ToolChoice::Auto), None, Some(json!({"type": "auto"}))),
        (
            None,
            Some(false),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        ),
        (
            Some(ToolChoice::Named("get_weather".into())),
            Some(false),
            Some(json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})),
        ),
        (
            Some(ToolChoice::None),
            Some(false),
            Some(json!({"type": "none"})),
        ),
        (None, Some(true), None),
    ];
    for (choice, parallel, want) in cases {
        let mut req = base.clone();
        req.tool_choice = choice.clone();
        req.parallel_tool_calls = parallel;
        assert_eq!(
            anthropic::encode_request(&req).get("tool_choice"),
            want.as_ref(),
            "{choice:?} {parallel:?}"
        );
    }
    // No tools: no tool_choice.
    let mut req = base.clone();
    req.tools.clear();
    req.tool_choice = Some(ToolChoice::Required);
    let body = anthropic::encode_request(&req);
    assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
}

// ---------------------------------------------------------------------------------------------
// Answers, usage, stop reasons, errors

#[test]
fn usage_maps_both_ways() {
    let native = json!({
        "input_tokens": 12,
        "cache_creation_input_tokens": 2048,
        "cache_read_input_tokens": 4096,
        "output_tokens": 17,
        "output_tokens_details": {"thinking_tokens": 5}
    });
    let canonical = anthropic::usage_from_anthropic(&native);
    assert_eq!(
        canonical,
        TokenUsage {
            input_tokens: 12 + 2048 + 4096,
            output_tokens: 17,
            cache_read_tokens: 4096,
            cache_write_tokens: 2048,
            reasoning_tokens: 5,
        }
    );
    assert_eq!(anthropic::usage_to_anthropic(&canonical), native);
    // From OpenAI: prompt 100 with 60 cached → Anthropic input 40, cache read 60.
    let openai = TokenUsage {
        input_tokens: 100,
        output_tokens: 3,
        cache_read_tokens: 60,
        ..TokenUsage::default()
    };
    assert_eq!(
        anthropic::usage_to_anthropic(&openai),
        json!({"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 3})
    );
}

#[test]
fn stop_reasons_map_both_ways() {
    let pairs = [
        ("end_turn", StopReason::EndTurn),
        ("stop_sequence", StopReason::StopSequence),
        ("max_tokens", StopReason::MaxTokens),
        ("tool_use", StopReason::ToolUse),
        ("refusal", StopReason::ContentFilter),
        ("pause_turn", StopReason::Other("pause_turn".into())),
    ];
    for (native, canonical) in pairs {
        assert_eq!(anthropic::stop_reason_from_anthropic(native), canonical);
        assert_eq!(anthropic::stop_reason_to_anthropic(&canonical), native);
    }
    assert_eq!(
        anthropic::stop_reason_from_anthropic("model_context_window_exceeded"),
        StopReason::MaxTokens
    );
    assert_eq!(
        anthropic::stop_reason_to_anthropic(&StopReason::Other("recitation".into())),
        "end_turn"
    );
}

#[test]
fn upstream_error_bodies_become_errors() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    let err = anthropic::decode_response(body).unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Overloaded, "Overloaded")
    );
    assert_eq!(
        anthropic::decode_response(b"<html>").unwrap_err().kind,
        ErrorKind::Upstream
    );
    let mut encoder = StreamEncoder::new(EncodeOptions::default());
    let mut out = Vec::new();
    encoder.push(
        &StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::RateLimited, "slow down"),
        },
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

fn words() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,8}( [a-zA-Z0-9,.]{1,8}){0,3}"
}

fn cache_control() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(json!({"type": "ephemeral"}))),
        1 => Just(Some(json!({"type": "ephemeral", "ttl": "1h"}))),
    ]
}

fn text_part() -> impl Strategy<Value = Part> {
    (words(), cache_control()).prop_map(|(text, cache_control)| Part::Text {
        text,
        cache_control,
        thought_signature: None,
    })
}

fn image_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        "https://[a-z]{1,8}\\.com/[a-z]{1,8}\\.png".prop_map(|url| ImageSource::Url { url }),
        ("image/(png|jpeg|webp)", "[A-Za-z0-9+/]{4,16}")
            .prop_map(|(media_type, data)| ImageSource::Base64 { media_type, data }),
    ]
    .prop_map(|source| Part::Image {
        source,
        detail: None,
    })
}

fn arguments() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i32>().prop_map(Value::from),
        words().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    common::json_arguments(value, 0..4)
}

/// Thinking as Anthropic sends it: signed.
fn signed_thinking() -> impl Strategy<Value = Part> {
    (words(), "([A-Za-z0-9+/]{4}){1,5}").prop_map(|(text, sig)| Part::Thinking {
        text,
        signature: Some(sig),
    })
}

fn redacted_thinking() -> impl Strategy<Value = Part> {
    "([A-Za-z0-9+/]{4}){1,5}".prop_map(|data| Part::RedactedThinking { data })
}

fn assistant_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        3 => text_part(),
        2 => ("c[a-zA-Z0-9_-]{0,10}", "[a-z_]{1,10}", arguments()).prop_map(|(id, name, arguments)| {
            Part::ToolCall { id, name, arguments, thought_signature: None }
        }),
        1 => signed_thinking(),
        1 => redacted_thinking(),
    ]
}

fn user_message() -> impl Strategy<Value = Message> {
    let result = (
        "r[a-zA-Z0-9_-]{0,10}",
        prop::collection::vec(prop_oneof![3 => text_part(), 1 => image_part()], 0..3),
        any::<bool>(),
    )
        .prop_map(|(call_id, content, is_error)| Part::ToolResult {
            call_id,
            name: None,
            content,
            is_error,
        });
    (
        prop::collection::vec(result, 0..3),
        prop::collection::vec(prop_oneof![3 => text_part(), 1 => image_part()], 0..3),
    )
        .prop_filter("a turn has content", |(r, o)| {
            !r.is_empty() || !o.is_empty()
        })
        .prop_map(|(results, others)| user(results.into_iter().chain(others).collect()))
}

fn conversation() -> impl Strategy<Value = Vec<Message>> {
    (
        user_message(),
        prop::collection::vec(
            (
                prop::collection::vec(assistant_part(), 1..4).prop_map(assistant),
                user_message(),
            ),
            0..3,
        ),
    )
        .prop_map(|(first, rest)| {
            std::iter::once(first)
                .chain(rest.into_iter().flat_map(|(a, u)| [a, u]))
                .collect()
        })
}

fn tool() -> impl Strategy<Value = Tool> {
    ("[a-z_]{1,10}", prop::option::of(words()), "[a-z]{1,6}").prop_map(
        |(name, description, prop)| Tool {
            name,
            description,
            parameters: json!({"type": "object", "properties": {prop: {"type": "string"}}}),
            strict: None,
        },
    )
}

/// Canonical requests restricted to what Anthropic carries.
fn anthropic_request() -> impl Strategy<Value = Request> {
    let tools = prop::collection::vec(tool(), 0..3).prop_flat_map(|tools| {
        let first = tools.first().map(|t| t.name.clone());
        let choice = match first {
            None => Just(None).boxed(),
            Some(name) => prop_oneof![
                Just(None),
                Just(Some(ToolChoice::Auto)),
                Just(Some(ToolChoice::Required)),
                Just(Some(ToolChoice::None)),
                Just(Some(ToolChoice::Named(name))),
            ]
            .boxed(),
        };
        (Just(tools), choice).prop_flat_map(|(tools, choice)| {
            let parallel = match choice {
                Some(ToolChoice::Auto | ToolChoice::Required | ToolChoice::Named(_)) => {
                    prop_oneof![Just(None), Just(Some(false))].boxed()
                }
                _ => Just(None).boxed(),
            };
            (Just(tools), Just(choice), parallel)
        })
    });
    let sampling = prop_oneof![
        Just((None, None)),
        // Hundredths: serde_json's default float parsing is not exact in the last bit.
        (0..=100u32).prop_map(|t| (Some(f64::from(t) / 100.0), None)),
        (0..=100u32).prop_map(|p| (None, Some(f64::from(p) / 100.0))),
    ];
    (
        "[a-z0-9.-]{1,20}",
        prop::collection::vec(
            (words(), cache_control()).prop_map(|(text, cache_control)| SystemBlock {
                text,
                cache_control,
            }),
            0..3,
        ),
        conversation(),
        tools,
        1..200_000u64,
        sampling,
        prop::option::of(1..500u64),
        prop::collection::vec(words(), 0..3),
        prop::option::of("[a-z0-9-]{1,12}"),
        any::<bool>(),
    )
        .prop_map(
            |(
                model,
                system,
                messages,
                (tools, tool_choice, parallel),
                max,
                (temperature, top_p),
                top_k,
                stop,
                user,
                stream,
            )| {
                Request {
                    model,
                    system,
                    messages,
                    tools,
                    tool_choice,
                    parallel_tool_calls: parallel,
                    max_tokens: Some(max),
                    temperature,
                    top_p,
                    top_k,
                    stop,
                    response_format: None,
                    reasoning: None,
                    stream,
                    user,
                    seed: None,
                }
            },
        )
}

/// A canonical answer Anthropic can carry, and the well-formed event sequence streaming it.
fn answer_and_events() -> impl Strategy<Value = (Response, Vec<StreamEvent>)> {
    let part = prop_oneof![
        3 => words().prop_map(Part::text),
        2 => ("c[a-zA-Z0-9_-]{0,10}", "[a-z_]{1,10}", arguments(), prop::option::of("([A-Za-z0-9+/]{4}){1,3}"))
            .prop_map(|(id, name, arguments, thought_signature)| Part::ToolCall {
                id, name, arguments, thought_signature,
            }),
        1 => signed_thinking(),
        1 => redacted_thinking(),
    ];
    (
        prop::collection::vec(part, 1..5),
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::MaxTokens),
            Just(StopReason::StopSequence),
            Just(StopReason::ContentFilter),
        ],
        (1..10_000u64, 0..500u64, 0..5_000u64, 1..2_000u64),
        1..5usize,
    )
        .prop_map(
            |(parts, stop, (input, cache_read, cache_write, output), chunk)| {
                let called = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
                let stop = if called { StopReason::ToolUse } else { stop };
                let usage = TokenUsage {
                    input_tokens: input + cache_read + cache_write,
                    output_tokens: output,
                    cache_read_tokens: cache_read,
                    cache_write_tokens: cache_write,
                    reasoning_tokens: 0,
                };
                let response = Response {
                    id: "msg_prop".into(),
                    model: "m".into(),
                    parts,
                    stop_reason: Some(stop),
                    usage,
                    created: 0,
                };
                let input_usage = TokenUsage {
                    output_tokens: 0,
                    ..usage
                };
                let events = common::answer_events(&response, Some(input_usage), |s| {
                    common::pieces(s, chunk)
                });
                (response, events)
            },
        )
}

/// Any sequence of canonical events, however malformed its source.
fn any_event() -> impl Strategy<Value = StreamEvent> {
    let usage = (0..100u64, 0..100u64, 0..20u64).prop_map(|(i, o, c)| TokenUsage {
        input_tokens: i + c,
        output_tokens: o,
        cache_read_tokens: c,
        ..TokenUsage::default()
    });
    let block = prop_oneof![
        Just(BlockStart::Text),
        Just(BlockStart::Thinking),
        Just(BlockStart::RedactedThinking { data: "x".into() }),
        "[a-z.:]{0,6}".prop_map(|id| BlockStart::ToolCall {
            id,
            name: "f".into(),
            thought_signature: None
        }),
    ];
    let delta = prop_oneof![
        words().prop_map(Delta::Text),
        words().prop_map(Delta::Thinking),
        "[a-z]{0,4}".prop_map(Delta::Signature),
        "[{}a-z\":]{0,6}".prop_map(Delta::ToolArguments),
    ];
    prop_oneof![
        1 => prop::option::of(usage.clone()).prop_map(|usage| StreamEvent::MessageStart {
            id: "id".into(), model: "m".into(), usage,
        }),
        4 => (0..4usize, block).prop_map(|(index, block)| StreamEvent::BlockStart { index, block }),
        8 => (0..4usize, delta).prop_map(|(index, delta)| StreamEvent::Delta { index, delta }),
        3 => (0..4usize).prop_map(|index| StreamEvent::BlockStop { index }),
        1 => (prop::option::of(Just(StopReason::EndTurn)), prop::option::of(usage.clone()))
            .prop_map(|(stop_reason, usage)| StreamEvent::MessageDelta { stop_reason, usage }),
        1 => usage.prop_map(|usage| StreamEvent::Usage { usage }),
        1 => Just(StreamEvent::Ping),
        1 => Just(StreamEvent::MessageStop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Canonical → Anthropic → canonical keeps everything Anthropic can express.
    #[test]
    fn requests_survive_a_round_trip(req in anthropic_request()) {
        let body = anthropic::encode_request(&req);
        assert_anthropic_accepts(&body);
        let back = anthropic::decode_request(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(back, req);
    }

    #[test]
    fn thinking_budgets_survive_a_round_trip(budget in 1024..30_000i64, room in 1..40_000u64, off in any::<bool>()) {
        let mut req = request(vec![user(vec![Part::text("Think.")])]);
        let budget = if off { 0 } else { budget };
        req.max_tokens = Some(budget.unsigned_abs() + room);
        req.reasoning = Some(Reasoning { effort: None, budget_tokens: Some(budget), include_thoughts: None });
        let body = anthropic::encode_request(&req);
        assert_anthropic_accepts(&body);
        prop_assert_eq!(anthropic::decode_request(body.to_string().as_bytes()).unwrap(), req);
    }

    /// The SDK accumulates the same message from the stream as the complete answer, and the
    /// stream decodes back to the canonical answer.
    #[test]
    fn streamed_answers_match_complete_answers((response, events) in answer_and_events()) {
        let bytes = encode_stream(&events, EncodeOptions::default());
        let streamed = sdk_final_message(&check_sdk_stream(&bytes));
        prop_assert_eq!(streamed, anthropic::encode_response(&response));
        let mut back = accumulate(&decode_sse(&bytes));
        // Arguments are re-serialised by the complete-answer path only.
        prop_assert_eq!(back.stop_reason.take(), response.stop_reason.clone());
        prop_assert_eq!(back.parts, response.parts.clone());
        prop_assert_eq!(back.usage, response.usage);
    }

    /// Whatever a source sends, the client gets a stream the SDK can read.
    #[test]
    fn any_event_sequence_encodes_to_a_valid_stream(events in prop::collection::vec(any_event(), 0..30)) {
        let bytes = encode_stream(&events, EncodeOptions::default());
        let parsed = check_sdk_stream(&bytes);
        if events.contains(&StreamEvent::MessageStop) {
            prop_assert_eq!(parsed.last().map(|(n, _)| n.as_str()), Some("message_stop"));
        }
    }
}

#[test]
fn tool_arguments_that_are_not_an_object_are_sent_as_empty_input() {
    let mut events = vec![StreamEvent::BlockStart {
        index: 0,
        block: BlockStart::ToolCall {
            id: "c".into(),
            name: "f".into(),
            thought_signature: None,
        },
    }];
    events.push(StreamEvent::MessageStop);
    let resp = Response {
        parts: vec![tool_call("c", "f", "[1,2]")],
        ..accumulate(&events)
    };
    assert_eq!(
        anthropic::encode_response(&resp)["content"][0]["input"],
        json!({})
    );
}
