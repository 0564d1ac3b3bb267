//! The OpenAI Responses adapter: golden files for every direction, the stream invariants the
//! official SDK's stream helper relies on, and round trips through the canonical form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{corpus_bytes, corpus_files, read, sse_events, usage};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_dialect::canonical::{
    BlockStart, Delta, Message, Part, Reasoning, Request, Response, Role, StopReason, StreamEvent,
    SystemBlock, Tool, ToolChoice,
};
use sluice_dialect::openai_responses::{
    self as responses, EncodeOptions, StreamDecoder, StreamEncoder,
};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind, SseEvent, TokenUsage, registry};

const CREATED: u64 = 1_756_315_696;

/// The JSON data of each encoded event, checked to be named by its `event:` line.
fn encoded_data(bytes: &[u8]) -> Vec<Value> {
    sse_events(bytes)
        .into_iter()
        .filter(SseEvent::has_data)
        .map(|e| {
            let data: Value = serde_json::from_slice(&e.data).unwrap();
            assert_eq!(e.event.as_deref(), data["type"].as_str(), "{data}");
            data
        })
        .collect()
}

fn encode_stream(events: &[StreamEvent], model: &str) -> Vec<u8> {
    let encoder = StreamEncoder::new(EncodeOptions {
        model: model.into(),
        created: CREATED,
    });
    common::encode_stream(registry::StreamEncoder::OpenAiResponses(encoder), events)
}

fn decode_stream(bytes: &[u8]) -> Vec<StreamEvent> {
    common::decode_stream(Dialect::OpenAiResponses, bytes)
}

fn accumulate(events: &[StreamEvent]) -> Response {
    common::accumulate(events, CREATED)
}

// ---------------------------------------------------------------------------------------------
// Canonical event sequences, as other dialects' decoders produce them.

/// Anthropic-shaped: explicit blocks, a thinking signature, usage at start and end.
fn thinking_text_tool() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_01Abc".into(),
            model: "claude-sonnet-4-5".into(),
            usage: Some(usage(120, 1, 100, 0, 0)),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Thinking,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking("Paris, so".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking(" call the tool.".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature("EqQBCkYIBxgC".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::Ping,
        StreamEvent::BlockStart {
            index: 1,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("Let me ".into()),
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("check.".into()),
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::BlockStart {
            index: 2,
            block: BlockStart::ToolCall {
                id: "toolu_01XYZ".into(),
                name: "get_weather".into(),
                thought_signature: None,
            },
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments("{\"location\":".into()),
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments("\"Paris\"}".into()),
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::ToolUse),
            usage: Some(usage(0, 57, 0, 0, 0)),
        },
        StreamEvent::MessageStop,
    ]
}

/// Gemini-shaped: a tool call whose thought signature must reach the client inside `call_id`.
fn gemini_tool_call() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "gem-resp-7".into(),
            model: "gemini-3-pro".into(),
            usage: None,
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::ToolCall {
                id: "call_0f3a".into(),
                name: "calc".into(),
                thought_signature: Some("CiQBVKhc7gsig+/=".into()),
            },
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::ToolArguments("{\"expr\":\"17*23\"}".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::ToolUse),
            usage: Some(usage(40, 12, 0, 0, 8)),
        },
        StreamEvent::MessageStop,
    ]
}

/// Chat-Completions-shaped: no block starts or stops, usage in a trailing chunk.
fn blockless_trailing_usage() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "chatcmpl-9xyz".into(),
            model: "gpt-4o-2024-08-06".into(),
            usage: None,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Hel".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("lo!".into()),
        },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::EndTurn),
            usage: None,
        },
        StreamEvent::Usage {
            usage: usage(11, 3, 0, 0, 0),
        },
        StreamEvent::MessageStop,
    ]
}

/// Cut at the output limit, without a block stop.
fn max_tokens() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_02".into(),
            model: "claude-haiku".into(),
            usage: Some(usage(12, 0, 0, 0, 0)),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("The history of Rome begins".into()),
        },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::MaxTokens),
            usage: Some(usage(0, 16, 0, 0, 0)),
        },
        StreamEvent::MessageStop,
    ]
}

/// Anthropic redacted thinking before the answer.
fn redacted_thinking() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_03".into(),
            model: "claude-opus".into(),
            usage: None,
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::RedactedThinking {
                data: "EmwKAhgBEgy3va3p".into(),
            },
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("Done.".into()),
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::EndTurn),
            usage: Some(usage(30, 5, 0, 0, 0)),
        },
        StreamEvent::MessageStop,
    ]
}

/// The upstream fails mid-answer.
fn error_mid_stream() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_04".into(),
            model: "claude-sonnet".into(),
            usage: Some(usage(20, 0, 0, 0, 0)),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Partial".into()),
        },
        StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::Overloaded, "The upstream is overloaded.")
                .with_code("overloaded"),
        },
        StreamEvent::MessageStop,
    ]
}

fn canonical_streams() -> Vec<(&'static str, Vec<StreamEvent>)> {
    vec![
        ("thinking_text_tool", thinking_text_tool()),
        ("gemini_tool_call", gemini_tool_call()),
        ("blockless_trailing_usage", blockless_trailing_usage()),
        ("max_tokens", max_tokens()),
        ("redacted_thinking", redacted_thinking()),
        ("error_mid_stream", error_mid_stream()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Golden files.

#[test]
fn golden_canonical_requests_encode_for_an_upstream() {
    for (name, req) in common::canonical_requests() {
        let body = responses::encode_request(&req);
        insta::assert_json_snapshot!(format!("encode_request__{name}"), body);
    }
}

#[test]
fn golden_native_requests_decode_to_canonical() {
    for (name, path) in corpus_files("openai_responses/requests", "json") {
        let req = responses::decode_request(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        insta::assert_json_snapshot!(format!("decode_request__{name}"), req);
    }
}

#[test]
fn golden_native_responses_decode_to_canonical() {
    for name in ["response", "response_incomplete"] {
        let body = corpus_bytes(&format!("openai_responses/{name}.json"));
        let resp = responses::decode_response(&body).unwrap();
        insta::assert_json_snapshot!(format!("decode_response__{name}"), resp);
    }
}

#[test]
fn golden_canonical_response_encodes_for_a_client() {
    let resp = Response {
        id: "msg_01Abc".into(),
        model: "claude-sonnet-4-5".into(),
        parts: vec![
            Part::Thinking {
                text: "The user wants Paris.".into(),
                signature: Some("EqQBCkYIBxgC".into()),
            },
            Part::RedactedThinking {
                data: "EmwKAhgBEgy3va3p".into(),
            },
            Part::text("Let me check."),
            Part::ToolCall {
                id: "call_0f3a".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Paris\"}".into(),
                thought_signature: Some("CiQBVKhc7gsig+/=".into()),
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        usage: usage(1320, 210, 1024, 200, 128),
        created: CREATED,
    };
    insta::assert_json_snapshot!(
        "encode_response__tool_use",
        responses::encode_response(&resp)
    );
}

#[test]
fn golden_recorded_streams_decode_to_canonical_events() {
    for (name, path) in corpus_files("openai_responses", "sse") {
        let events = decode_stream(&read(&path));
        insta::assert_json_snapshot!(format!("decode_stream__{name}"), events);
    }
}

#[test]
fn golden_canonical_streams_encode_to_sse() {
    for (name, events) in canonical_streams() {
        let sse = String::from_utf8(encode_stream(&events, "client-model")).unwrap();
        insta::assert_snapshot!(format!("encode_stream__{name}"), sse);
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[test]
fn validation_errors_name_the_field() {
    let cases: &[(&str, Option<&str>)] = &[
        (r#"not json"#, None),
        (r#"[1,2]"#, None),
        (r#"{"input":"hi"}"#, Some("model")),
        (r#"{"model":"","input":"hi"}"#, Some("model")),
        (r#"{"model":"m"}"#, Some("input")),
        (r#"{"model":"m","input":42}"#, Some("input")),
        (r#"{"model":"m","input":[]}"#, Some("input")),
        (
            r#"{"model":"m","input":[{"role":"system","content":"only instructions"}]}"#,
            Some("input"),
        ),
        (r#"{"model":"m","input":["hi"]}"#, Some("input[0]")),
        (
            r#"{"model":"m","input":[{"role":"robot","content":"x"}]}"#,
            Some("input[0].role"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user"}]}"#,
            Some("input[0].content"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":"a"},{"type":"function_call","name":"f","arguments":"{}"}]}"#,
            Some("input[1].call_id"),
        ),
        (
            r#"{"model":"m","input":[{"type":"function_call_output","output":"x"}]}"#,
            Some("input[0].call_id"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
            Some("input[0].content[0].text"),
        ),
        (
            r#"{"model":"m","input":"hi","tools":[{"type":"function","parameters":{}}]}"#,
            Some("tools[0].name"),
        ),
        (
            r#"{"model":"m","input":"hi","tool_choice":{"type":"function"}}"#,
            Some("tool_choice.name"),
        ),
        (
            r#"{"model":"m","input":"hi","temperature":"hot"}"#,
            Some("temperature"),
        ),
        (
            r#"{"model":"m","input":"hi","max_output_tokens":-1}"#,
            Some("max_output_tokens"),
        ),
        (
            r#"{"model":"m","input":"hi","stream":"yes"}"#,
            Some("stream"),
        ),
        (
            r#"{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"x"}}}"#,
            Some("text.format.schema"),
        ),
    ];
    for (body, param) in cases {
        let err = responses::decode_request(body.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
        assert_eq!(err.param.as_deref(), *param, "{body}: {}", err.message);
        if let Some(param) = param {
            assert!(err.message.contains(param), "{body}: {}", err.message);
        }
    }
}

#[test]
fn previous_response_id_and_hosted_tools_leave_no_trace() {
    let req = responses::decode_request(
        br#"{"model":"m","input":"hi","previous_response_id":"resp_1","store":true,
            "tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"},
            "metadata":{"a":"b"},"conversation":"conv_1"}"#,
    )
    .unwrap();
    assert_eq!(
        req,
        Request {
            model: "m".into(),
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::text("hi")],
            }],
            ..Request::default()
        }
    );
}

#[test]
fn upstream_requests_are_stateless_and_lenient() {
    let req = Request {
        model: "gpt-5".into(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::text("hi")],
        }],
        tools: vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
        }],
        reasoning: Some(Reasoning {
            effort: None,
            budget_tokens: Some(2000),
            include_thoughts: Some(true),
        }),
        stop: vec!["END".into()],
        ..Request::default()
    };
    let body = responses::encode_request(&req);
    assert_eq!(body["store"], json!(false));
    assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(
        body["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    // Responses defaults `strict` to true, which rejects most hand-written schemas.
    assert_eq!(body["tools"][0]["strict"], json!(false));
    assert!(body.get("stop").is_none());

    // tool_choice and parallel_tool_calls go only with tools.
    let no_tools = Request {
        tool_choice: Some(ToolChoice::Required),
        parallel_tool_calls: Some(false),
        tools: Vec::new(),
        reasoning: None,
        ..req
    };
    let body = responses::encode_request(&no_tools);
    assert!(body.get("tool_choice").is_none());
    assert!(body.get("parallel_tool_calls").is_none());
    assert!(body.get("include").is_none());
}

#[test]
fn thought_signatures_ride_in_call_ids_and_come_back() {
    let signature = "CiQBVKhc7gsig+/=";
    let resp = Response {
        id: "r".into(),
        model: "gemini-3-pro".into(),
        parts: vec![Part::ToolCall {
            id: "call_chk".into(),
            name: "calc".into(),
            arguments: "{}".into(),
            thought_signature: Some(signature.into()),
        }],
        stop_reason: Some(StopReason::ToolUse),
        usage: TokenUsage::default(),
        created: CREATED,
    };
    let out = responses::encode_response(&resp);
    let call_id = out["output"][0]["call_id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_chk__ts__"), "{call_id}");

    // The client echoes the call and answers it: both carry the original id and signature again.
    let next = json!({
        "model": "m",
        "input": [
            {"role": "user", "content": "check"},
            {"type": "function_call", "call_id": call_id, "name": "calc", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call_id, "output": "391"},
        ],
    });
    let req = responses::decode_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.messages[1].parts,
        vec![Part::ToolCall {
            id: "call_chk".into(),
            name: "calc".into(),
            arguments: "{}".into(),
            thought_signature: Some(signature.into()),
        }]
    );
    assert_eq!(
        req.messages[2].parts,
        vec![Part::ToolResult {
            call_id: "call_chk".into(),
            name: Some("calc".into()),
            content: vec![Part::text("391")],
            is_error: false,
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// Responses.

#[test]
fn stop_reasons_map_both_ways() {
    let base = Response {
        id: "resp_x".into(),
        model: "m".into(),
        parts: vec![Part::text("Hi")],
        stop_reason: Some(StopReason::EndTurn),
        usage: usage(3, 2, 0, 0, 0),
        created: CREATED,
    };
    let cases = [
        (
            StopReason::EndTurn,
            "completed",
            Value::Null,
            StopReason::EndTurn,
        ),
        (
            StopReason::MaxTokens,
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            StopReason::MaxTokens,
        ),
        (
            StopReason::ContentFilter,
            "incomplete",
            json!({"reason": "content_filter"}),
            StopReason::ContentFilter,
        ),
        (
            StopReason::StopSequence,
            "completed",
            Value::Null,
            StopReason::EndTurn,
        ),
        (
            StopReason::Other("pause_turn".into()),
            "completed",
            Value::Null,
            StopReason::EndTurn,
        ),
    ];
    for (stop, status, details, back) in cases {
        let resp = Response {
            stop_reason: Some(stop.clone()),
            ..base.clone()
        };
        let out = responses::encode_response(&resp);
        assert_eq!(out["status"], json!(status), "{stop:?}");
        assert_eq!(out["incomplete_details"], details, "{stop:?}");
        let decoded = responses::decode_response(out.to_string().as_bytes()).unwrap();
        assert_eq!(decoded.stop_reason, Some(back), "{stop:?}");
    }

    // A refusal is a content filter; a function call is tool use.
    let refusal = json!({"id": "r", "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
    ]});
    let decoded = responses::decode_response(refusal.to_string().as_bytes()).unwrap();
    assert_eq!(decoded.stop_reason, Some(StopReason::ContentFilter));
    assert_eq!(decoded.parts, vec![Part::text("No.")]);
}

#[test]
fn failed_upstream_responses_are_errors() {
    let body = corpus_bytes("openai_responses/response_failed.json");
    let err = responses::decode_response(&body).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    assert!(err.message.starts_with("Rate limit reached"));

    let err = responses::decode_response(b"<html>bad gateway</html>").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Upstream);
}

#[test]
fn response_objects_have_what_the_sdk_model_requires() {
    let out = responses::encode_response(&accumulate(&thinking_text_tool()));
    for key in [
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "usage",
        "error",
        "incomplete_details",
    ] {
        assert!(out.get(key).is_some(), "missing {key}");
    }
    assert_eq!(out["object"], "response");
    assert!(out["id"].as_str().unwrap().starts_with("resp_"));
    let usage = &out["usage"];
    assert_eq!(usage["input_tokens"], 120);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 100);
    assert_eq!(usage["input_tokens_details"]["cache_write_tokens"], 0);
    assert_eq!(usage["output_tokens"], 57);
    assert_eq!(usage["total_tokens"], 177);
    let kinds: Vec<&str> = out["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(out["output"][1]["content"][0]["annotations"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Stream encoding.

/// What the `openai` SDK's `ResponseStreamState` checks while it folds events: the first event
/// is `response.created`; every content event names an output item announced before it, of the
/// right type, and a text delta a content part announced before it.
fn assert_sdk_can_fold(events: &[Value]) {
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[0]["response"]["status"], "in_progress");
    let mut items: HashMap<u64, (String, usize)> = HashMap::new();
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(n), "{e}");
        let kind = e["type"].as_str().unwrap();
        let index = e["output_index"].as_u64();
        match kind {
            "response.output_item.added" => {
                let t = e["item"]["type"].as_str().unwrap().to_string();
                items.insert(index.unwrap(), (t, 0));
            }
            "response.content_part.added" => {
                let item = items
                    .get_mut(&index.unwrap())
                    .expect("part of an unknown item");
                assert_eq!(item.0, "message");
                item.1 += 1;
            }
            "response.output_text.delta" | "response.output_text.done" => {
                let item = &items[&index.unwrap()];
                assert_eq!(item.0, "message");
                assert!((e["content_index"].as_u64().unwrap() as usize) < item.1);
                assert!(e["logprobs"].is_array());
            }
            "response.function_call_arguments.delta" => {
                assert_eq!(items[&index.unwrap()].0, "function_call");
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_summary_part.added" => {
                assert_eq!(items[&index.unwrap()].0, "reasoning");
            }
            _ => {}
        }
    }
}

#[test]
fn streams_satisfy_the_sdk_stream_helper() {
    for (name, events) in canonical_streams() {
        let data = encoded_data(&encode_stream(&events, "client-model"));
        assert_sdk_can_fold(&data);
        assert_eq!(data[1]["type"], "response.in_progress", "{name}");
    }
}

#[test]
fn the_final_event_carries_the_whole_answer() {
    for (name, events) in canonical_streams() {
        if name == "error_mid_stream" || name == "blockless_trailing_usage" {
            continue;
        }
        let data = encoded_data(&encode_stream(&events, "client-model"));
        let last = data.last().unwrap();
        let mut expected = accumulate(&events);
        expected.model = "client-model".into();
        assert_eq!(
            last["response"],
            responses::encode_response(&expected),
            "{name}: streamed and complete answers differ"
        );
        let status = last["response"]["status"].as_str().unwrap();
        assert_eq!(last["type"], format!("response.{status}"), "{name}");
    }
}

#[test]
fn blockless_sources_get_items_and_trailing_usage_counts() {
    let data = encoded_data(&encode_stream(&blockless_trailing_usage(), ""));
    let kinds: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = &data[9]["response"];
    assert_eq!(
        done["model"], "gpt-4o-2024-08-06",
        "without a model option, the upstream's"
    );
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello!");
    assert_eq!(done["usage"]["input_tokens"], 11);
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["usage"]["total_tokens"], 14);
}

#[test]
fn a_stream_error_is_an_error_event_then_failed_and_the_end() {
    let data = encoded_data(&encode_stream(&error_mid_stream(), "client-model"));
    let n = data.len();
    assert_eq!(data[n - 2]["type"], "error");
    assert_eq!(data[n - 2]["code"], "overloaded");
    assert_eq!(data[n - 2]["message"], "The upstream is overloaded.");
    assert_eq!(data[n - 1]["type"], "response.failed");
    assert_eq!(data[n - 1]["response"]["status"], "failed");
    assert_eq!(data[n - 1]["response"]["error"]["code"], "server_error");
    // What was produced is kept; nothing follows the failure (the trailing MessageStop is dropped).
    assert_eq!(
        data[n - 1]["response"]["output"][0]["content"][0]["text"],
        "Partial"
    );
}

#[test]
fn an_error_before_anything_still_opens_the_response() {
    let data = encoded_data(&encode_stream(
        &[StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::RateLimited, "slow down"),
        }],
        "m",
    ));
    let kinds: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert_eq!(data[2]["code"], "rate_limit_exceeded");
    assert_eq!(data[3]["response"]["error"]["code"], "rate_limit_exceeded");
}

// ---------------------------------------------------------------------------------------------
// Stream decoding.

#[test]
fn a_truncated_upstream_stream_ends_in_an_error() {
    let bytes = corpus_bytes("openai_responses/stream_reasoning_text.sse");
    let events = sse_events(&bytes);
    let mut decoder = StreamDecoder::default();
    let mut out: Vec<StreamEvent> = events[..16].iter().flat_map(|e| decoder.push(e)).collect();
    assert!(!out.iter().any(|e| matches!(e, StreamEvent::MessageStop)));
    out.extend(decoder.finish());
    assert!(matches!(
        out.last(),
        Some(StreamEvent::Error { error }) if error.kind == ErrorKind::Upstream
    ));
    assert!(decoder.finish().is_empty(), "the error is reported once");
}

#[test]
fn recorded_streams_agree_with_their_final_response() {
    // The folded deltas equal the output the upstream reports in `response.completed`.
    for name in ["stream_reasoning_text", "stream_function_calls"] {
        let bytes = corpus_bytes(&format!("openai_responses/{name}.sse"));
        let streamed = accumulate(&decode_stream(&bytes));
        let last = sse_events(&bytes).pop().unwrap();
        let data: Value = serde_json::from_slice(&last.data).unwrap();
        let complete = responses::decode_response(data["response"].to_string().as_bytes()).unwrap();
        assert_eq!(streamed.parts, complete.parts, "{name}");
        assert_eq!(streamed.stop_reason, complete.stop_reason, "{name}");
        assert_eq!(streamed.usage, complete.usage, "{name}");
    }
}

#[test]
fn done_events_fill_in_what_no_delta_carried() {
    // Some servers send whole items without deltas.
    let sse = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"m\",\"output\":[]}}\n\n",
        "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Whole.\"}]}}\n\n",
        "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[]}}\n\n",
    );
    let resp = accumulate(&decode_stream(sse.as_bytes()));
    assert_eq!(
        resp.parts,
        vec![
            Part::text("Whole."),
            Part::ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into(),
                thought_signature: None,
            },
        ]
    );
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?é漢\n\"{}]{1,24}"
}

fn arb_signature() -> impl Strategy<Value = String> {
    common::padded_base64("[A-Za-z0-9+/]{4,40}")
}

/// The cache markers Responses can express (`1h` rides as the `12h` breakpoint TTL).
fn arb_cache_control() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"type": "ephemeral"}))),
        Just(Some(json!({"type": "ephemeral", "ttl": "1h"}))),
    ]
}

/// User-side text, possibly a cache breakpoint.
fn arb_user_text() -> impl Strategy<Value = Part> {
    (arb_text(), arb_cache_control()).prop_map(|(text, cache_control)| Part::Text {
        text,
        cache_control,
        thought_signature: None,
    })
}

fn arb_image() -> impl Strategy<Value = Part> {
    let source = common::image_source("example.com");
    // `auto` is the default and decodes as no detail.
    let detail = prop_oneof![
        Just(None),
        Just(Some("low".to_string())),
        Just(Some("high".to_string()))
    ];
    (source, detail).prop_map(|(source, detail)| Part::Image { source, detail })
}

fn arb_arguments() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("{}".to_string()),
        ("[a-z]{1,6}", arb_text()).prop_map(|(k, v)| json!({ k: v }).to_string()),
    ]
}

/// Tool results use ids no call in the request has, so decoding adds no function name.
fn arb_user_part() -> impl Strategy<Value = Part> {
    let result_content = prop_oneof![
        Just(Vec::new()),
        arb_user_text().prop_map(|t| vec![t]),
        (arb_user_text(), arb_image()).prop_map(|(t, i)| vec![t, i]),
    ];
    prop_oneof![
        arb_user_text(),
        arb_image(),
        ("res_[a-z0-9]{1,8}", result_content).prop_map(|(call_id, content)| Part::ToolResult {
            call_id,
            name: None,
            content,
            is_error: false,
        }),
    ]
}

fn arb_assistant_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        arb_text().prop_map(Part::text),
        ("call_[a-z0-9]{1,8}", "[a-z_]{1,10}", arb_arguments()).prop_map(
            |(id, name, arguments)| {
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    thought_signature: None,
                }
            }
        ),
        (
            prop_oneof![Just(String::new()), arb_text()],
            arb_signature()
        )
            .prop_map(|(text, sig)| Part::Thinking {
                text,
                signature: Some(sig),
            }),
    ]
}

fn arb_unit() -> impl Strategy<Value = Option<f64>> {
    prop::option::of((0u32..=100).prop_map(|n| f64::from(n) / 100.0))
}

/// Requests restricted to what Responses carries (see the module's "Not carried").
fn arb_request() -> impl Strategy<Value = Request> {
    let turns = prop::collection::vec(
        (
            prop::collection::vec(arb_user_part(), 1..4),
            prop::collection::vec(arb_assistant_part(), 1..4),
        ),
        1..3,
    );
    let tools = prop::collection::vec(
        ("[a-z_]{1,10}", prop::option::of(arb_text()), any::<bool>()).prop_map(
            |(name, description, strict)| Tool {
                name,
                description,
                parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
                strict: Some(strict),
            },
        ),
        0..3,
    );
    let choice = prop::option::of(common::tool_choice("[a-z_]{1,10}"));
    let format = prop::option::of(common::response_format(
        "[a-z_]{1,10}",
        json!({"type": "object", "properties": {}}),
    ));
    let reasoning = prop::option::of(
        (prop::option::of(common::effort()), any::<bool>())
            .prop_filter("something set", |(e, t)| e.is_some() || *t)
            .prop_map(|(effort, thoughts)| Reasoning {
                effort,
                budget_tokens: None,
                include_thoughts: thoughts.then_some(true),
            }),
    );
    (
        (
            "[a-z0-9-]{1,12}",
            prop::collection::vec((arb_text(), arb_cache_control()), 0..3),
            turns,
            any::<bool>(),
        ),
        (tools, choice, prop::option::of(any::<bool>())),
        (
            prop::option::of(0u64..1_000_000),
            arb_unit(),
            arb_unit(),
            format,
            reasoning,
            any::<bool>(),
            prop::option::of("[a-z0-9-]{1,10}"),
        ),
    )
        .prop_map(
            |(
                (model, system, turns, trailing_user),
                (tools, tool_choice, parallel),
                (max_tokens, temperature, top_p, response_format, reasoning, stream, user),
            )| {
                let mut messages = Vec::new();
                for (user_parts, assistant_parts) in turns {
                    messages.push(Message {
                        role: Role::User,
                        parts: user_parts,
                    });
                    messages.push(Message {
                        role: Role::Assistant,
                        parts: assistant_parts,
                    });
                }
                if trailing_user {
                    messages.push(Message {
                        role: Role::User,
                        parts: vec![Part::text("next")],
                    });
                }
                let has_tools = !tools.is_empty();
                Request {
                    model,
                    system: system
                        .into_iter()
                        .map(|(text, cache_control)| SystemBlock {
                            text,
                            cache_control,
                        })
                        .collect(),
                    messages,
                    tools,
                    tool_choice: tool_choice.filter(|_| has_tools),
                    parallel_tool_calls: parallel.filter(|_| has_tools),
                    max_tokens,
                    temperature,
                    top_p,
                    response_format,
                    reasoning,
                    stream,
                    user,
                    ..Request::default()
                }
            },
        )
}

fn arb_response_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        prop_oneof![Just(String::new()), arb_text()].prop_map(Part::text),
        (
            "call_[a-zA-Z0-9]{1,8}",
            "[a-z_]{1,10}",
            arb_arguments(),
            prop::option::of(arb_signature()),
        )
            .prop_map(|(id, name, arguments, thought_signature)| Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            }),
        (arb_text(), prop::option::of(arb_signature()))
            .prop_map(|(text, signature)| Part::Thinking { text, signature }),
        arb_signature().prop_map(|sig| Part::Thinking {
            text: String::new(),
            signature: Some(sig),
        }),
        arb_signature().prop_map(|data| Part::RedactedThinking { data }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    (
        "resp_[a-z0-9]{1,8}",
        "[a-z0-9-]{1,12}",
        prop::collection::vec(arb_response_part(), 0..5),
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::MaxTokens),
            Just(StopReason::ContentFilter),
        ],
        (
            0u64..1 << 40,
            0u64..1 << 40,
            0u64..1 << 20,
            0u64..1 << 20,
            0u64..1 << 20,
        ),
        0u64..1 << 40,
    )
        .prop_map(|(id, model, parts, stop, (i, o, c, w, r), created)| {
            // What Responses says about a finished answer: function calls mean tool use.
            let has_call = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let stop = match stop {
                StopReason::EndTurn if has_call => StopReason::ToolUse,
                other => other,
            };
            Response {
                id,
                model,
                parts,
                stop_reason: Some(stop),
                usage: usage(i, o, c, w, r),
                created,
            }
        })
}

/// Canonical events for an answer, text and arguments in chunks of three characters.
fn events_of(resp: &Response) -> Vec<StreamEvent> {
    common::answer_events(resp, None, |s| common::pieces(s, 3))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// canonical → Responses request → canonical keeps everything Responses can carry.
    #[test]
    fn requests_survive_the_round_trip(req in arb_request()) {
        let body = responses::encode_request(&req).to_string();
        let back = responses::decode_request(body.as_bytes());
        prop_assert_eq!(back, Ok(req), "{}", body);
    }

    /// canonical → Response object → canonical keeps the answer.
    #[test]
    fn responses_survive_the_round_trip(resp in arb_response()) {
        let body = responses::encode_response(&resp).to_string();
        let back = responses::decode_response(body.as_bytes()).unwrap();
        prop_assert_eq!(back, resp, "{}", body);
    }

    /// canonical events → client SSE → (as an upstream's) canonical events: same answer, and the
    /// SDK can fold the stream.
    #[test]
    fn streams_survive_the_round_trip(resp in arb_response()) {
        let sse = encode_stream(&events_of(&resp), "");
        assert_sdk_can_fold(&encoded_data(&sse));
        let back = accumulate(&decode_stream(&sse));
        prop_assert_eq!(&back.parts, &resp.parts);
        prop_assert_eq!(&back.stop_reason, &resp.stop_reason);
        prop_assert_eq!(back.usage, resp.usage);
        prop_assert_eq!(&back.id, &resp.id);
    }
}
