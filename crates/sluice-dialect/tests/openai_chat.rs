//! OpenAI Chat Completions adapter: golden files for every direction, and round trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{accumulate, corpus_files, read, sse_events, usage};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_dialect::canonical::{
    BlockStart, Delta, Message, Part, Reasoning, Request, Response, Role, StopReason, StreamEvent,
    SystemBlock, Tool, ToolChoice,
};
use sluice_dialect::openai_chat::{
    EncodeOptions, StreamEncoder, decode_request, decode_response, encode_request, encode_response,
};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind, TokenUsage, registry};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs an upstream transcript through the decoder, `finish` included.
fn decode_stream(bytes: &[u8]) -> Vec<StreamEvent> {
    common::decode_stream(Dialect::OpenAiChat, bytes)
}

fn encode_stream(events: &[StreamEvent], options: EncodeOptions) -> String {
    let encoder = registry::StreamEncoder::OpenAiChat(StreamEncoder::new(options));
    String::from_utf8(common::encode_stream(encoder, events)).unwrap()
}

fn decode_err(body: Value) -> ErrorBody {
    decode_request(body.to_string().as_bytes()).unwrap_err()
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn canonical_requests_encode_to_chat_completions() {
    for (name, req) in common::canonical_requests() {
        insta::assert_json_snapshot!(format!("encode_request__{name}"), encode_request(&req));
    }
}

#[test]
fn native_requests_decode_to_canonical() {
    for (name, path) in corpus_files("openai_chat/requests", "json") {
        let req = decode_request(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        insta::assert_json_snapshot!(format!("decode_request__{name}"), req);
    }
}

#[test]
fn tool_messages_join_one_user_turn_with_names_looked_up() {
    let body = common::corpus_bytes("openai_chat/requests/tool_loop.json");
    let req = decode_request(&body).unwrap();
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User
        ]
    );
    // Two tool results and the user's "Go ahead." form one turn, results first.
    match req.messages[2].parts.as_slice() {
        [
            Part::ToolResult {
                call_id: paris,
                name: Some(n1),
                ..
            },
            Part::ToolResult {
                call_id: rome,
                name: Some(n2),
                ..
            },
            Part::Text { text, .. },
        ] => {
            assert_eq!((paris.as_str(), rome.as_str()), ("call_paris", "call_rome"));
            assert_eq!((n1.as_str(), n2.as_str()), ("get_weather", "get_weather"));
            assert_eq!(text, "Go ahead.");
        }
        other => panic!("unexpected parts {other:?}"),
    }
    // The signature carried in the id comes back out of it.
    match &req.messages[1].parts[1] {
        Part::ToolCall {
            id,
            thought_signature,
            ..
        } => {
            assert_eq!(id, "call_rome");
            assert_eq!(thought_signature.as_deref(), Some("CiQBVKhc7g+/"));
        }
        other => panic!("unexpected part {other:?}"),
    }
}

#[test]
fn invalid_requests_name_the_field() {
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"messages": user}), "model"),
        (json!({"model": "", "messages": user}), "model"),
        (json!({"model": 5, "messages": user}), "model"),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (json!({"model": "m", "messages": [42]}), "messages[0]"),
        (
            json!({"model": "m", "messages": [{"content": "hi"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 7}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}),
            "messages[1].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]}),
            "messages[0].tool_calls[0].function",
        ),
        (
            json!({"model": "m", "messages": user, "max_tokens": "lots"}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "messages": user, "max_completion_tokens": -1}),
            "max_completion_tokens",
        ),
        (
            json!({"model": "m", "messages": user, "temperature": "hot"}),
            "temperature",
        ),
        (json!({"model": "m", "messages": user, "stop": 3}), "stop"),
        (
            json!({"model": "m", "messages": user, "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "m", "messages": user, "tool_choice": {"type": "function"}}),
            "tool_choice.function",
        ),
        (
            json!({"model": "m", "messages": user, "response_format": {"type": "json_schema"}}),
            "response_format.json_schema",
        ),
    ];
    for (body, param) in cases {
        let err = decode_err(body.clone());
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
    }
    let err = decode_request(b"{nope").unwrap_err();
    assert!(err.message.contains("parse the JSON"), "{}", err.message);
    let err = decode_request(b"[1]").unwrap_err();
    assert!(err.message.contains("JSON object"), "{}", err.message);
}

#[test]
fn upstream_bodies_say_max_tokens_and_ask_for_stream_usage() {
    let req = Request {
        model: "m".into(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::text("hi")],
        }],
        max_tokens: Some(64),
        tool_choice: Some(ToolChoice::Required),
        parallel_tool_calls: Some(false),
        reasoning: Some(Reasoning {
            effort: None,
            budget_tokens: Some(2000),
            include_thoughts: Some(true),
        }),
        top_k: Some(40),
        stream: true,
        ..Request::default()
    };
    let body = encode_request(&req);
    assert_eq!(body["max_tokens"], 64);
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    // Budget 2000 → the smallest effort that covers it.
    assert_eq!(body["reasoning_effort"], "medium");
    // No tools: OpenAI rejects tool_choice / parallel_tool_calls on their own.
    assert!(body.get("tool_choice").is_none());
    assert!(body.get("parallel_tool_calls").is_none());
    assert!(body.get("top_k").is_none());
}

// ---------------------------------------------------------------------------------------------
// Responses

#[test]
fn native_responses_decode_to_canonical() {
    for (name, path) in corpus_files("openai_chat/responses", "json") {
        let resp = decode_response(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        insta::assert_json_snapshot!(format!("decode_response__{name}"), resp);
    }
}

#[test]
fn upstream_error_bodies_decode_to_errors() {
    let err = decode_response(
        br#"{"error":{"message":"Rate limit reached","type":"rate_limit_exceeded","param":null,"code":"rate_limit_exceeded"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.message, "Rate limit reached");

    let err = decode_response(br#"{"error":"model is loading"}"#).unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Upstream, "model is loading")
    );

    let err = decode_response(b"<html>502</html>").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Upstream);
    let err = decode_response(br#"{"id":"x"}"#).unwrap_err();
    assert!(err.message.contains("choices"), "{}", err.message);
}

/// An answer from another dialect: thinking with a signature, text, a Gemini call with a
/// thought signature, and Anthropic-style usage with cache reads and writes.
fn rich_response() -> Response {
    Response {
        id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
        model: "claude-sonnet-4-5".into(),
        parts: vec![
            Part::Thinking {
                text: "The user wants the weather.".into(),
                signature: Some("EqQBCkYIBxgC".into()),
            },
            Part::RedactedThinking {
                data: "EmwKAhgBEgy3va3p".into(),
            },
            Part::text("Let me check."),
            Part::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Paris\"}".into(),
                thought_signature: Some("CiQBVKhc7gsig+/=".into()),
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        usage: usage(1500, 120, 1000, 300, 40),
        created: 1_753_000_000,
    }
}

#[test]
fn canonical_responses_encode_to_chat_completions() {
    insta::assert_json_snapshot!("encode_response__rich", encode_response(&rich_response()));
    let truncated = Response {
        id: "chatcmpl-already".into(),
        model: "gemini-2.5-flash".into(),
        parts: vec![Part::text("Once upon a")],
        stop_reason: Some(StopReason::MaxTokens),
        usage: usage(10, 3, 0, 0, 0),
        created: 1_753_000_001,
    };
    insta::assert_json_snapshot!("encode_response__truncated", encode_response(&truncated));
    // Gemini says STOP after function calls: clients must still see `tool_calls`.
    let gemini_calls = Response {
        id: "resp-1".into(),
        model: "gemini-2.5-pro".into(),
        parts: vec![Part::ToolCall {
            id: "call_a".into(),
            name: "f".into(),
            arguments: "{}".into(),
            thought_signature: None,
        }],
        stop_reason: Some(StopReason::EndTurn),
        usage: TokenUsage::default(),
        created: 0,
    };
    let body = encode_response(&gemini_calls);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
}

#[test]
fn thought_signatures_survive_a_client_round_trip() {
    // The gateway answers an OpenAI client with a Gemini call…
    let answer = encode_response(&rich_response());
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    let client_id = call["id"].as_str().unwrap();
    assert!(client_id.starts_with("call_1__ts__"), "{client_id}");
    // …and the client sends it back with the result.
    let next = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": client_id, "content": "18°C"},
        ],
    });
    let req = decode_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.messages[1].parts[0],
        Part::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: "{\"location\":\"Paris\"}".into(),
            thought_signature: Some("CiQBVKhc7gsig+/=".into()),
        }
    );
    assert_eq!(
        req.messages[2].parts[0],
        Part::ToolResult {
            call_id: "call_1".into(),
            name: Some("get_weather".into()),
            content: vec![Part::text("18°C")],
            is_error: false,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Streams

#[test]
fn upstream_transcripts_decode_to_canonical_events() {
    for (name, path) in corpus_files("openai_chat", "sse") {
        let events = decode_stream(&read(&path));
        insta::assert_json_snapshot!(format!("decode_stream__{name}"), events);
        // The same transcript folded into one answer, as the Responses encoder will see it.
        insta::assert_json_snapshot!(
            format!("decode_stream__{name}__accumulated"),
            accumulate(&events, 0)
        );
    }
}

#[test]
fn decoder_closes_streams_without_done_and_reports_cut_streams() {
    let finished = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n";
    let events = decode_stream(finished);
    assert_eq!(events.last(), Some(&StreamEvent::MessageStop));
    assert_eq!(accumulate(&events, 0).parts, vec![Part::text("hi")]);

    let cut = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
    match decode_stream(cut).last() {
        Some(StreamEvent::Error { error }) => assert_eq!(error.kind, ErrorKind::Upstream),
        other => panic!("expected an error, got {other:?}"),
    }

    match decode_stream(b"data: {not json\n\n").as_slice() {
        [StreamEvent::Error { error }] => assert!(error.message.contains("malformed")),
        other => panic!("expected one error, got {other:?}"),
    }
}

fn text_stream() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_01ABC".into(),
            model: "claude-sonnet-4-5".into(),
            usage: Some(usage(25, 1, 0, 0, 0)),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Text,
        },
        StreamEvent::Ping,
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Hello".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text(" there!".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::EndTurn),
            usage: Some(usage(0, 12, 0, 0, 0)),
        },
        StreamEvent::MessageStop,
    ]
}

/// Anthropic-like: thinking (with a signature delta), then two tool calls at block indices
/// 1 and 2, the second carrying a Gemini thought signature.
fn thinking_and_tools_stream() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_02".into(),
            model: "claude-opus-4-1".into(),
            usage: Some(usage(400, 1, 300, 0, 0)),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Thinking,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking("Two cities.".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature("EqQBCkYI".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockStart::ToolCall {
                id: "toolu_01A".into(),
                name: "get_weather".into(),
                thought_signature: None,
            },
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArguments("{\"location\":".into()),
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArguments("\"Paris\"}".into()),
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::BlockStart {
            index: 2,
            block: BlockStart::ToolCall {
                id: "toolu_01B".into(),
                name: "get_weather".into(),
                thought_signature: Some("CiQBVKhc".into()),
            },
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments("{\"location\":\"Rome\"}".into()),
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::ToolUse),
            usage: Some(usage(0, 80, 0, 0, 0)),
        },
        StreamEvent::MessageStop,
    ]
}

/// Gemini-like: no block starts or stops, STOP after a function call, usage reported after
/// the finish.
fn blockless_stream() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "resp-7".into(),
            model: "gemini-2.5-flash".into(),
            usage: None,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Checking.".into()),
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArguments("{\"q\":1}".into()),
        },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::EndTurn),
            usage: None,
        },
        StreamEvent::Usage {
            usage: usage(30, 9, 0, 0, 4),
        },
        StreamEvent::MessageStop,
    ]
}

fn error_stream() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_03".into(),
            model: "x".into(),
            usage: None,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Partial".into()),
        },
        StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::Overloaded, "Overloaded"),
        },
        StreamEvent::MessageStop,
    ]
}

#[test]
fn canonical_events_encode_to_chat_chunks() {
    let with_usage = |model: &str| EncodeOptions {
        model: model.into(),
        include_usage: true,
        created: 1_753_000_000,
    };
    let cases = [
        ("text_with_usage", text_stream(), with_usage("my-alias")),
        (
            "thinking_and_tools",
            thinking_and_tools_stream(),
            EncodeOptions {
                model: "gpt-4o".into(),
                include_usage: false,
                created: 1_753_000_000,
            },
        ),
        ("blockless", blockless_stream(), with_usage("")),
        ("error", error_stream(), with_usage("x")),
    ];
    for (name, events, options) in cases {
        insta::assert_snapshot!(
            format!("encode_stream__{name}"),
            encode_stream(&events, options)
        );
    }
}

#[test]
fn encoded_chunks_follow_openai_framing() {
    let text = encode_stream(
        &text_stream(),
        EncodeOptions {
            model: "alias".into(),
            include_usage: true,
            created: 7,
        },
    );
    let events = sse_events(text.as_bytes());
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(&done.data[..], b"[DONE]");
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|e| serde_json::from_slice(&e.data).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "alias");
        assert_eq!(chunk["id"], "chatcmpl-msg_01ABC");
        assert!(
            chunk.get("usage").is_some(),
            "include_usage: usage on every chunk"
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 25);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 12);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 37);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);

    // Without include_usage: no usage key anywhere, no usage chunk.
    let plain = encode_stream(&text_stream(), EncodeOptions::default());
    assert!(!plain.contains("usage"), "{plain}");

    // After an error nothing follows, not even [DONE].
    let failed = encode_stream(&error_stream(), EncodeOptions::default());
    assert!(failed.trim_end().ends_with('}'), "{failed}");
    assert!(!failed.contains("[DONE]"));
    assert!(failed.contains(
        r#"{"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}}"#
    ));
}

#[test]
fn content_before_message_start_still_opens_with_the_role_chunk() {
    let events = [
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Hi".into()),
        },
        StreamEvent::MessageStart {
            id: "late".into(),
            model: "late-model".into(),
            usage: None,
        },
        StreamEvent::MessageStop,
    ];
    let options = EncodeOptions {
        model: "alias".into(),
        ..EncodeOptions::default()
    };
    let chunks: Vec<Value> = sse_events(encode_stream(&events, options).as_bytes())
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.data).ok())
        .collect();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(
        deltas,
        [
            &json!({"role": "assistant", "content": ""}),
            &json!({"content": "Hi"}),
            &json!({}),
        ]
    );
    // One id for the whole stream, even though the source named it late.
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == chunks[0]["id"] && c["model"] == "alias")
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn tool_call_indices_count_calls_not_blocks() {
    let text = encode_stream(&thinking_and_tools_stream(), EncodeOptions::default());
    let indices: Vec<u64> = sse_events(text.as_bytes())
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(&e.data).ok())
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/index")
                .and_then(Value::as_u64)
        })
        .collect();
    assert_eq!(indices, [0, 0, 0, 1, 1]);
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?é\n]{1,24}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z_]{0,11}"
}

fn arguments() -> impl Strategy<Value = String> {
    prop_oneof![Just("{}".to_string()), "\\{\"a\":[0-9]{1,4}\\}"]
}

/// Standard base64 that survives the id round trip (padded to a multiple of four).
fn signature() -> impl Strategy<Value = String> {
    common::padded_base64("[A-Za-z0-9+/]{1,40}")
}

fn user_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        3 => text().prop_map(Part::text),
        1 => (
            common::image_source("x.test"),
            prop::option::of(prop_oneof![Just("low"), Just("high"), Just("auto")]),
        )
            .prop_map(|(source, detail)| Part::Image {
                source,
                detail: detail.map(str::to_string),
            }),
    ]
}

/// What an assistant turn can say in Chat Completions: reasoning, one text, tool calls.
#[derive(Debug, Clone)]
struct AssistantTurn {
    thinking: Option<String>,
    text: Option<String>,
    calls: Vec<(String, String)>,
}

fn assistant_turn() -> impl Strategy<Value = AssistantTurn> {
    (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec((name(), arguments()), 0..3),
    )
        .prop_map(|(thinking, text, calls)| AssistantTurn {
            thinking,
            text,
            calls,
        })
}

fn conversation() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(
        (
            prop::collection::vec(user_part(), 0..3),
            prop::collection::vec(text(), 3),
            prop::option::of(assistant_turn()),
        ),
        1..4,
    )
    .prop_map(|rounds| {
        let mut messages = Vec::new();
        let mut pending: Vec<(String, String)> = Vec::new();
        for (round, (user_parts, results, assistant)) in rounds.into_iter().enumerate() {
            let mut parts: Vec<Part> = pending
                .drain(..)
                .zip(results)
                .map(|((call_id, name), text)| Part::ToolResult {
                    call_id,
                    name: Some(name),
                    content: vec![Part::text(text)],
                    is_error: false,
                })
                .collect();
            parts.extend(user_parts);
            if parts.is_empty() {
                parts.push(Part::text("hi"));
            }
            messages.push(Message {
                role: Role::User,
                parts,
            });
            let Some(turn) = assistant else { break };
            let mut parts = Vec::new();
            if let Some(text) = turn.thinking {
                parts.push(Part::Thinking {
                    text,
                    signature: None,
                });
            }
            if let Some(text) = turn.text {
                parts.push(Part::text(text));
            }
            for (k, (name, arguments)) in turn.calls.into_iter().enumerate() {
                let id = format!("call_{round}_{k}");
                pending.push((id.clone(), name.clone()));
                parts.push(Part::ToolCall {
                    id,
                    name,
                    arguments,
                    thought_signature: None,
                });
            }
            if parts.is_empty() {
                parts.push(Part::text("ok"));
            }
            messages.push(Message {
                role: Role::Assistant,
                parts,
            });
        }
        messages
    })
}

fn tool() -> impl Strategy<Value = Tool> {
    (
        name(),
        prop::option::of(text()),
        prop_oneof![
            Just(json!({"type": "object", "properties": {}})),
            Just(json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})),
        ],
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(name, description, parameters, strict)| Tool {
            name,
            description,
            parameters,
            strict,
        })
}

/// Sampling values exact in binary, so JSON text round-trips them bit for bit.
fn quarter() -> impl Strategy<Value = f64> {
    (0u32..9).prop_map(|q| f64::from(q) * 0.25)
}

/// Requests restricted to what Chat Completions carries (see the module's "Not carried").
fn chat_request() -> impl Strategy<Value = Request> {
    let head = (
        "[a-z0-9-]{1,12}",
        prop::option::of(text()),
        conversation(),
        prop::collection::vec(tool(), 0..3),
        prop::option::of(common::tool_choice(name())),
        prop::option::of(any::<bool>()),
    );
    let tail = (
        prop::option::of(0u64..200_000),
        prop::option::of(quarter()),
        prop::option::of(quarter()),
        prop::collection::vec(text(), 0..3),
        prop::option::of(common::response_format(
            name(),
            json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        )),
        prop::option::of(common::effort()),
        any::<bool>(),
        prop::option::of("[a-z0-9-]{1,10}"),
        prop::option::of(any::<i64>()),
    );
    (head, tail).prop_map(
        |(
            (model, system, messages, tools, tool_choice, parallel),
            (max_tokens, temperature, top_p, stop, response_format, effort, stream, user, seed),
        )| {
            let has_tools = !tools.is_empty();
            Request {
                model,
                system: system
                    .map(|text| SystemBlock {
                        text,
                        cache_control: None,
                    })
                    .into_iter()
                    .collect(),
                messages,
                tools,
                tool_choice: tool_choice.filter(|_| has_tools),
                parallel_tool_calls: parallel.filter(|_| has_tools),
                max_tokens,
                temperature,
                top_p,
                top_k: None,
                stop,
                response_format,
                reasoning: effort.map(|effort| Reasoning {
                    effort: Some(effort),
                    budget_tokens: None,
                    include_thoughts: None,
                }),
                stream,
                user,
                seed,
            }
        },
    )
}

fn stop_reason(called_tools: bool) -> BoxedStrategy<StopReason> {
    if called_tools {
        prop_oneof![
            Just(StopReason::ToolUse),
            Just(StopReason::MaxTokens),
            Just(StopReason::ContentFilter),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::MaxTokens),
            Just(StopReason::ContentFilter),
        ]
        .boxed()
    }
}

/// Answers restricted to what Chat Completions carries: reasoning, one text, tool calls.
fn chat_response() -> impl Strategy<Value = Response> {
    (
        "chatcmpl-[a-zA-Z0-9]{1,12}",
        "[a-z0-9-]{1,12}",
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec((name(), arguments(), prop::option::of(signature())), 0..3),
        (0u64..1_000_000, 0u64..100_000, 0u64..1_000, 0u64..1_000),
        0u64..4_000_000_000,
    )
        .prop_flat_map(
            |(id, model, thinking, text, calls, (input, output, cached, reasoning), created)| {
                let called = !calls.is_empty();
                let mut parts = Vec::new();
                if let Some(text) = thinking {
                    parts.push(Part::Thinking {
                        text,
                        signature: None,
                    });
                }
                if let Some(text) = text {
                    parts.push(Part::text(text));
                }
                for (k, (name, arguments, thought_signature)) in calls.into_iter().enumerate() {
                    parts.push(Part::ToolCall {
                        id: format!("call_{k}"),
                        name,
                        arguments,
                        thought_signature,
                    });
                }
                let response = Response {
                    id,
                    model,
                    parts,
                    stop_reason: None,
                    usage: usage(input + cached, output + reasoning, cached, 0, reasoning),
                    created,
                };
                stop_reason(called).prop_map(move |reason| Response {
                    stop_reason: Some(reason),
                    ..response.clone()
                })
            },
        )
}

/// The events an Anthropic-like source would send for `resp`, text split in two deltas, with
/// the usage in a trailing event.
fn events_for(resp: &Response) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::MessageStart {
        id: resp.id.clone(),
        model: resp.model.clone(),
        usage: None,
    }];
    events.extend(common::block_events(&resp.parts, halves));
    events.push(StreamEvent::MessageDelta {
        stop_reason: resp.stop_reason.clone(),
        usage: None,
    });
    events.push(StreamEvent::Usage { usage: resp.usage });
    events.push(StreamEvent::MessageStop);
    events
}

fn halves(text: &str) -> Vec<String> {
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (a, b) = text.split_at(mid);
    [a, b]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

proptest! {
    /// canonical → Chat request body → canonical keeps everything Chat can carry.
    #[test]
    fn requests_survive_the_round_trip(req in chat_request()) {
        let body = encode_request(&req).to_string();
        let back = decode_request(body.as_bytes()).unwrap();
        prop_assert_eq!(back, req, "{}", body);
    }

    /// canonical → `chat.completion` → canonical, signatures riding in tool-call ids.
    #[test]
    fn responses_survive_the_round_trip(resp in chat_response()) {
        let body = encode_response(&resp).to_string();
        let back = decode_response(body.as_bytes()).unwrap();
        prop_assert_eq!(back, resp, "{}", body);
    }

    /// canonical events → Chat chunks → canonical events → the same answer.
    #[test]
    fn streams_survive_the_round_trip(resp in chat_response()) {
        let options = EncodeOptions { model: String::new(), include_usage: true, created: resp.created };
        let sse = encode_stream(&events_for(&resp), options);
        let events = decode_stream(sse.as_bytes());
        prop_assert_eq!(events.last(), Some(&StreamEvent::MessageStop), "{}", sse);
        prop_assert_eq!(accumulate(&events, resp.created), resp, "{}", sse);
    }
}
