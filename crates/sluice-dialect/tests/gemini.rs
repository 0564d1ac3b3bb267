//! The Gemini adapter: golden translations (read the snapshots), stream transcripts, the
//! behaviour clients and upstreams depend on, and canonical → Gemini → canonical round trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{accumulate, canonical_request, corpus_bytes, corpus_files, read};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_dialect::canonical::{
    BlockStart, Delta, Effort, ImageSource, Message, Part, Reasoning, Request, Response,
    ResponseFormat, Role, StopReason, StreamEvent, SystemBlock, Tool, ToolChoice,
    embed_thought_signature,
};
use sluice_dialect::gemini::{self, EncodeOptions, StreamDecoder, StreamEncoder};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind, SseParser, TokenUsage, registry};

fn decode_sse(bytes: &[u8]) -> Vec<StreamEvent> {
    common::decode_stream(Dialect::Gemini, bytes)
}

fn encode_events(events: &[StreamEvent], options: EncodeOptions) -> String {
    let encoder = registry::StreamEncoder::Gemini(StreamEncoder::new(options));
    String::from_utf8(common::encode_stream(encoder, events)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Golden files

#[test]
fn golden_canonical_requests_encode_to_gemini() {
    for (name, req) in common::canonical_requests() {
        insta::assert_json_snapshot!(
            format!("encode_request__{name}"),
            gemini::encode_request(&req)
        );
    }
}

#[test]
fn golden_reasoning_effort_becomes_a_thinking_level_for_gemini_3() {
    let mut req = canonical_request("thinking");
    req.model = "gemini-3-pro-preview".into();
    req.reasoning = Some(Reasoning {
        effort: Some(Effort::Low),
        budget_tokens: None,
        include_thoughts: Some(true),
    });
    insta::assert_json_snapshot!(
        "encode_request__thinking_gemini_3",
        gemini::encode_request(&req)
    );
}

#[test]
fn golden_native_requests_decode_to_canonical() {
    for (name, path) in corpus_files("gemini/requests", "json") {
        let req = gemini::decode_request(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        insta::assert_json_snapshot!(format!("decode_request__{name}"), req);
    }
}

#[test]
fn golden_native_responses_decode_to_canonical() {
    for (name, path) in corpus_files("gemini/responses", "json") {
        let resp = gemini::decode_response(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        insta::assert_json_snapshot!(format!("decode_response__{name}"), resp);
    }
}

/// An answer as an Anthropic upstream would give it: signed thinking, text, a tool call.
fn sample_response() -> Response {
    Response {
        id: "msg_01".into(),
        model: "claude-sonnet-4-5".into(),
        parts: vec![
            Part::Thinking {
                text: "The user wants the weather.".into(),
                signature: Some("EqQBCkYIBxgCKkDsig==".into()),
            },
            Part::RedactedThinking {
                data: "opaque".into(),
            },
            Part::text("Let me check."),
            Part::ToolCall {
                id: "toolu_01".into(),
                name: "get_weather".into(),
                arguments: r#"{"location":"Paris"}"#.into(),
                thought_signature: None,
            },
            Part::ToolCall {
                id: embed_thought_signature("call_2", "CiQBVKhc7g+/Yw=="),
                name: "get_weather".into(),
                arguments: "not json".into(),
                thought_signature: None,
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        usage: TokenUsage {
            input_tokens: 100,
            output_tokens: 40,
            cache_read_tokens: 60,
            cache_write_tokens: 20,
            reasoning_tokens: 15,
        },
        created: 1_700_000_000,
    }
}

#[test]
fn golden_canonical_response_encodes_to_gemini() {
    insta::assert_json_snapshot!(
        "encode_response__tool_use",
        gemini::encode_response(&sample_response())
    );
    let refused = Response {
        id: "chatcmpl-9".into(),
        model: "models/gpt-4o".into(),
        parts: vec![],
        stop_reason: Some(StopReason::ContentFilter),
        usage: TokenUsage::default(),
        created: 0,
    };
    insta::assert_json_snapshot!(
        "encode_response__content_filter",
        gemini::encode_response(&refused)
    );
}

#[test]
fn golden_sse_transcripts_decode_to_canonical_events() {
    for (name, path) in corpus_files("gemini", "sse") {
        insta::assert_json_snapshot!(format!("decode_stream__{name}"), decode_sse(&read(&path)));
    }
}

/// Anthropic-shaped events: usage at the start and in the message delta.
fn anthropic_like_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "msg_01".into(),
            model: "claude-sonnet-4-5".into(),
            usage: Some(TokenUsage {
                input_tokens: 100,
                cache_read_tokens: 60,
                ..TokenUsage::default()
            }),
        },
        StreamEvent::Ping,
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Thinking,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking("Weather, ".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Thinking("for Paris.".into()),
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature("EqQBCkYIBxgCKkDsig==".into()),
        },
        StreamEvent::BlockStop { index: 0 },
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
                id: "toolu_01".into(),
                name: "get_weather".into(),
                thought_signature: Some("CiQBVKhc7g+/==".into()),
            },
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments(r#"{"locat"#.into()),
        },
        StreamEvent::Delta {
            index: 2,
            delta: Delta::ToolArguments(r#"ion":"Paris"}"#.into()),
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::ToolUse),
            usage: Some(TokenUsage {
                output_tokens: 40,
                reasoning_tokens: 15,
                ..TokenUsage::default()
            }),
        },
        StreamEvent::MessageStop,
    ]
}

/// OpenAI-shaped events: the finish reason first, usage in a trailing chunk.
fn openai_like_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::MessageStart {
            id: "chatcmpl-1".into(),
            model: "gpt-4o".into(),
            usage: None,
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Hi".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop_reason: Some(StopReason::MaxTokens),
            usage: None,
        },
        StreamEvent::Usage {
            usage: TokenUsage {
                input_tokens: 7,
                output_tokens: 1,
                ..TokenUsage::default()
            },
        },
        StreamEvent::MessageStop,
    ]
}

#[test]
fn golden_canonical_events_encode_to_gemini_sse() {
    insta::assert_snapshot!(
        "encode_stream__anthropic_like",
        encode_events(
            &anthropic_like_events(),
            EncodeOptions {
                model: "gemini-2.5-pro".into()
            }
        )
    );
    insta::assert_snapshot!(
        "encode_stream__openai_like",
        encode_events(&openai_like_events(), EncodeOptions::default())
    );
    let failing = [
        StreamEvent::MessageStart {
            id: "m".into(),
            model: "x".into(),
            usage: None,
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("Par".into()),
        },
        StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::Overloaded, "upstream overloaded"),
        },
        StreamEvent::MessageStop,
    ];
    insta::assert_snapshot!(
        "encode_stream__error",
        encode_events(&failing, EncodeOptions::default())
    );
}

// ---------------------------------------------------------------------------------------------
// Behaviour

#[test]
fn a_streamed_answer_equals_the_same_answer_whole() {
    let streamed = accumulate(&decode_sse(&corpus_bytes("gemini/thinking_tools.sse")), 0);
    let whole =
        gemini::decode_response(&corpus_bytes("gemini/responses/thinking_tools.json")).unwrap();
    assert_eq!(streamed, whole);
    assert_eq!(whole.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(whole.usage.output_tokens, 50);
}

#[test]
fn minted_tool_ids_are_stable_and_distinct() {
    let body = corpus_bytes("gemini/responses/function_calls.json");
    let ids = |r: &Response| -> Vec<String> {
        r.parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    };
    let first = ids(&gemini::decode_response(&body).unwrap());
    let again = ids(&gemini::decode_response(&body).unwrap());
    assert_eq!(first, again);
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], first[1]);
    assert!(first.iter().all(|id| id.starts_with("call_")));
}

#[test]
fn function_responses_without_ids_answer_calls_by_name_and_order() {
    let req =
        gemini::decode_request(&corpus_bytes("gemini/requests/function_history.json")).unwrap();
    let calls: Vec<&str> = req.messages[1]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let results: Vec<(&str, bool)> = req.messages[2]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult {
                call_id, is_error, ..
            } => Some((call_id.as_str(), *is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec![(calls[0], false), (calls[1], true)]);
}

#[test]
fn thought_signatures_travel_back_to_gemini() {
    // Carried on the call, or inside an id an OpenAI/Anthropic client echoed.
    let mut req = canonical_request("tool_results");
    let Part::ToolCall { id, .. } = &mut req.messages[1].parts[1] else {
        panic!("corpus changed");
    };
    *id = embed_thought_signature("call_paris_1", "CiQBVKhc7g+/Yw==");
    let Part::ToolResult { call_id, name, .. } = &mut req.messages[2].parts[0] else {
        panic!("corpus changed");
    };
    *call_id = embed_thought_signature("call_paris_1", "CiQBVKhc7g+/Yw==");
    *name = None;
    let body = gemini::encode_request(&req);
    let model_parts = &body["contents"][1]["parts"];
    assert_eq!(model_parts[1]["thoughtSignature"], "CiQBVKhc7g+/Yw==");
    assert_eq!(
        model_parts[1]["functionCall"],
        json!({"name": "get_weather", "args": {"location": "Paris"}})
    );
    assert_eq!(model_parts[2].get("thoughtSignature"), None);
    // The result lost its name; it is found from the call.
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );

    let thinking = gemini::encode_request(&canonical_request("thinking"));
    assert_eq!(
        thinking["contents"][3]["parts"][0]["thoughtSignature"],
        "CiQBVKhc7gsig+/=="
    );
    let back = gemini::decode_request(thinking.to_string().as_bytes()).unwrap();
    assert!(matches!(
        &back.messages[3].parts[0],
        Part::ToolCall { thought_signature: Some(s), .. } if s == "CiQBVKhc7gsig+/=="
    ));
}

#[test]
fn gemini_3_skips_the_signature_check_for_calls_it_did_not_make() {
    let mut req = canonical_request("tool_results");
    let calls = |body: &Value| -> Vec<Value> {
        body["contents"][1]["parts"].as_array().unwrap()[1..]
            .iter()
            .map(|p| p.get("thoughtSignature").cloned().unwrap_or(Value::Null))
            .collect()
    };
    assert_eq!(
        calls(&gemini::encode_request(&req)),
        vec![Value::Null, Value::Null]
    );
    req.model = "gemini-3-flash-preview".into();
    assert_eq!(
        calls(&gemini::encode_request(&req)),
        vec![json!("skip_thought_signature_validator"), Value::Null]
    );
    // A real signature on any call of the turn is left alone.
    if let Part::ToolCall {
        thought_signature, ..
    } = &mut req.messages[1].parts[2]
    {
        *thought_signature = Some("CiQBVKhc7g+/Yw==".into());
    }
    assert_eq!(
        calls(&gemini::encode_request(&req)),
        vec![Value::Null, json!("CiQBVKhc7g+/Yw==")]
    );
}

#[test]
fn foreign_thinking_is_not_sent_to_gemini() {
    let body = gemini::encode_request(&canonical_request("thinking"));
    let text = body.to_string();
    assert!(!text.contains("17*23 = 391"), "{text}");
    assert!(!text.contains("EqQBCkYIBxgCKkDsig=="), "{text}");
    assert_eq!(body["contents"][1]["parts"], json!([{"text": "391"}]));
    // A turn that held only thinking disappears instead of going out empty.
    let mut req = canonical_request("plain");
    req.messages.push(Message {
        role: Role::Assistant,
        parts: vec![Part::Thinking {
            text: "hm".into(),
            signature: Some("sig".into()),
        }],
    });
    assert_eq!(
        gemini::encode_request(&req)["contents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn tool_choice_is_dropped_without_tools() {
    let mut req = canonical_request("plain");
    req.tool_choice = Some(ToolChoice::Required);
    let body = gemini::encode_request(&req);
    assert_eq!(body.get("toolConfig"), None);
    assert_eq!(body.get("tools"), None);
}

#[test]
fn invalid_requests_name_the_field() {
    let cases: [(&[u8], Option<&str>); 8] = [
        (b"{not json", None),
        (b"[]", None),
        (br#"{"contents": []}"#, Some("contents")),
        (br#"{"generationConfig": {}}"#, Some("contents")),
        (
            br#"{"contents": [{"role": "system", "parts": [{"text": "x"}]}]}"#,
            Some("contents[0].role"),
        ),
        (
            br#"{"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}"#,
            Some("contents[0].parts[0].functionCall.name"),
        ),
        (
            br#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}}"#,
            Some("generationConfig.temperature"),
        ),
        (
            br#"{"contents": [{"parts": [{"inlineData": {"data": "AAAA"}}]}]}"#,
            Some("contents[0].parts[0].inlineData.mimeType"),
        ),
    ];
    for (body, param) in cases {
        let err = gemini::decode_request(body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err:?}");
        assert_eq!(err.param.as_deref(), param, "{err:?}");
    }
}

#[test]
fn upstream_errors_become_error_bodies() {
    let body = br#"{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}"#;
    let err = gemini::decode_response(body).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.message, "Resource has been exhausted");

    let mut decoder = StreamDecoder::default();
    let mut parser = SseParser::default();
    parser.push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}],\"responseId\":\"r\"}\n\ndata: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n");
    let mut events = Vec::new();
    while let Some(event) = parser.next_event() {
        events.extend(decoder.push(&event));
    }
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error { error }) if error.kind == ErrorKind::Overloaded
    ));
}

#[test]
fn a_stream_cut_short_still_closes() {
    let mut parser = SseParser::default();
    parser.push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hal\"}]}}],\"responseId\":\"r\",\"usageMetadata\":{\"promptTokenCount\":3}}\n\n");
    let event = parser.next_event().unwrap();
    let mut decoder = StreamDecoder::default();
    let mut events = decoder.push(&event);
    events.extend(decoder.finish());
    assert_eq!(
        &events[events.len() - 3..],
        &[
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::MessageDelta {
                stop_reason: None,
                usage: Some(TokenUsage {
                    input_tokens: 3,
                    ..TokenUsage::default()
                })
            },
            StreamEvent::MessageStop,
        ]
    );
    assert!(decoder.finish().is_empty());
    assert!(StreamDecoder::default().finish().is_empty());
    // A relay's `[DONE]` is no error.
    parser.push(b"data: [DONE]\n\n");
    let done = parser.next_event().unwrap();
    assert!(StreamDecoder::default().push(&done).is_empty());
}

#[test]
fn the_last_chunk_waits_for_usage() {
    let events = openai_like_events();
    let mut encoder = StreamEncoder::new(EncodeOptions::default());
    let mut out = Vec::new();
    for event in &events[..5] {
        encoder.push(event, &mut out);
    }
    let before = String::from_utf8(out.clone()).unwrap();
    assert!(!before.contains("finishReason"), "{before}");
    encoder.push(&events[5], &mut out);
    let after = String::from_utf8(out.clone()).unwrap();
    assert!(after.contains(r#""finishReason":"MAX_TOKENS""#), "{after}");
    assert!(after.contains(r#""promptTokenCount":7"#), "{after}");
    let len = out.len();
    encoder.push(&StreamEvent::MessageStop, &mut out);
    assert_eq!(out.len(), len, "the answer was already complete");
}

#[test]
fn encoded_streams_decode_to_the_same_answer() {
    let events = anthropic_like_events();
    let sse = encode_events(&events, EncodeOptions::default());
    let back = accumulate(&decode_sse(sse.as_bytes()), 0);
    let mut expected = accumulate(&events, 0);
    expected.usage.cache_write_tokens = 0;
    assert_eq!(back, expected);
}

#[test]
fn count_tokens_and_models() {
    assert_eq!(
        gemini::count_tokens_response(42),
        json!({"totalTokens": 42})
    );
    let req = gemini::count_tokens_request(
        br#"{"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": "Hello"}]}], "tools": [{"functionDeclarations": [{"name": "f"}]}]}}"#,
    )
    .unwrap();
    assert_eq!(req.messages[0].parts, vec![Part::text("Hello")]);
    assert_eq!(req.tools.len(), 1);
    insta::assert_json_snapshot!(
        "models_list",
        gemini::models_list(&[
            (
                "gemini-2.5-flash".into(),
                "Gemini 2.5 Flash".into(),
                sluice_dialect::Capabilities::only(sluice_dialect::Capability::Chat)
            ),
            (
                "claude-sonnet-4-5".into(),
                "Claude Sonnet 4.5 (via Sluice)".into(),
                sluice_dialect::Capabilities::only(sluice_dialect::Capability::Chat)
            ),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Tool-call ids do not travel to Gemini upstreams (results pair by name and order), so they
/// are compared by position: the n-th call's id becomes `tN`, and results follow their call.
fn normalize_ids(req: &mut Request) {
    let mut ids: HashMap<String, String> = HashMap::new();
    for part in req.messages.iter_mut().flat_map(|m| m.parts.iter_mut()) {
        match part {
            Part::ToolCall { id, .. } => {
                let n = format!("t{}", ids.len());
                ids.insert(id.clone(), n.clone());
                *id = n;
            }
            Part::ToolResult { call_id, .. } => {
                if let Some(n) = ids.get(call_id) {
                    call_id.clone_from(n);
                }
            }
            _ => {}
        }
    }
}

/// What Gemini 3 is sent for model turns whose calls carry no signature.
fn expect_signature_check_skipped(req: &mut Request) {
    for message in req
        .messages
        .iter_mut()
        .filter(|m| m.role == Role::Assistant)
    {
        let mut calls = message.parts.iter_mut().filter_map(|p| match p {
            Part::ToolCall {
                thought_signature, ..
            } => Some(thought_signature),
            _ => None,
        });
        let Some(first) = calls.next() else { continue };
        if first.is_none() && calls.all(|s| s.is_none()) {
            *first = Some("skip_thought_signature_validator".into());
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?]{1,16}"
}

fn signature() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[A-Za-z0-9+/]{4,16}={0,2}")
}

fn arguments() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        text().prop_map(|s| json!(s))
    ];
    common::json_arguments(value, 0..3)
}

fn user_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        (text(), signature()).prop_map(|(text, thought_signature)| Part::Text {
            text,
            cache_control: None,
            thought_signature,
        }),
        (
            prop::sample::select(vec!["image/png", "image/jpeg", "image/webp"]),
            // Real base64: whole four-character groups, as the decoder checks.
            "([A-Za-z0-9+/]{4}){1,3}"
        )
            .prop_map(|(media_type, data)| Part::Image {
                source: ImageSource::Base64 {
                    media_type: media_type.into(),
                    data,
                },
                detail: None,
            }),
        "[a-z]{1,8}".prop_map(|name| Part::Image {
            source: ImageSource::Url {
                url: format!("https://example.com/{name}.png"),
            },
            detail: None,
        }),
    ]
}

/// A model turn (optional text, then calls) and the user turn answering its calls in order.
fn model_turn(turn: usize) -> impl Strategy<Value = Vec<Message>> {
    (
        prop::option::of((text(), signature())),
        prop::collection::vec(
            (
                prop::sample::select(vec!["f", "g"]),
                arguments(),
                signature(),
                text(),
                any::<bool>(),
            ),
            0..3,
        ),
    )
        .prop_filter("a turn has content", |(t, calls)| {
            t.is_some() || !calls.is_empty()
        })
        .prop_map(move |(t, calls)| {
            let mut parts: Vec<Part> = t
                .into_iter()
                .map(|(text, thought_signature)| Part::Text {
                    text,
                    cache_control: None,
                    thought_signature,
                })
                .collect();
            let mut results = Vec::new();
            for (k, (name, arguments, thought_signature, output, is_error)) in
                calls.into_iter().enumerate()
            {
                let id = format!("id_{turn}_{k}");
                parts.push(Part::ToolCall {
                    id: id.clone(),
                    name: name.into(),
                    arguments,
                    thought_signature,
                });
                results.push(Part::ToolResult {
                    call_id: id,
                    name: Some(name.into()),
                    content: vec![Part::text(output)],
                    is_error,
                });
            }
            let mut turns = vec![Message {
                role: Role::Assistant,
                parts,
            }];
            if !results.is_empty() {
                turns.push(Message {
                    role: Role::User,
                    parts: results,
                });
            }
            turns
        })
}

fn conversation() -> impl Strategy<Value = Vec<Message>> {
    (
        prop::collection::vec(user_part(), 1..4),
        prop::option::of(model_turn(0)),
        prop::option::of(model_turn(1)),
    )
        .prop_map(|(first, a, b)| {
            let mut messages = vec![Message {
                role: Role::User,
                parts: first,
            }];
            messages.extend(a.into_iter().flatten());
            messages.extend(b.into_iter().flatten());
            messages
        })
}

fn tools() -> impl Strategy<Value = Vec<Tool>> {
    prop::collection::vec(
        (
            "[a-z_]{1,10}",
            prop::option::of("[a-zA-Z ]{0,20}"),
            prop::collection::btree_set("[a-z]{1,6}", 0..3),
        )
            .prop_map(|(name, description, props)| Tool {
                name,
                description,
                parameters: json!({
                    "type": "object",
                    "properties": props.iter().map(|p| (p.clone(), json!({"type": "string"}))).collect::<serde_json::Map<_, _>>(),
                }),
                strict: None,
            }),
        0..3,
    )
}

fn reasoning(levels: bool) -> impl Strategy<Value = Option<Reasoning>> {
    let effort = prop::sample::select(vec![
        Effort::Minimal,
        Effort::Low,
        Effort::Medium,
        Effort::High,
    ]);
    let by_level = (effort, prop::option::of(any::<bool>())).prop_map(|(e, include)| Reasoning {
        effort: Some(e),
        budget_tokens: None,
        include_thoughts: include,
    });
    let by_budget =
        (-1i64..40_000, prop::option::of(any::<bool>())).prop_map(|(b, include)| Reasoning {
            effort: None,
            budget_tokens: Some(b),
            include_thoughts: include,
        });
    let include_only = any::<bool>().prop_map(|include| Reasoning {
        effort: None,
        budget_tokens: None,
        include_thoughts: Some(include),
    });
    if levels {
        prop::option::of(prop_oneof![by_level, by_budget, include_only]).boxed()
    } else {
        prop::option::of(prop_oneof![by_budget, include_only]).boxed()
    }
}

/// Requests holding only what Gemini can carry.
fn gemini_request() -> impl Strategy<Value = Request> {
    any::<bool>().prop_flat_map(|gemini_3| {
        (
            prop::collection::vec(text(), 0..3),
            conversation(),
            tools(),
            0usize..4,
            (
                prop::option::of(1u64..100_000),
                prop::option::of((0u32..=8).prop_map(|n| f64::from(n) / 4.0)),
                prop::option::of((0u32..=4).prop_map(|n| f64::from(n) / 4.0)),
                prop::option::of(1u64..100),
                prop::collection::vec(text(), 0..3),
                prop::option::of(any::<i32>().prop_map(i64::from)),
            ),
            prop_oneof![
                Just(None),
                Just(Some(ResponseFormat::Text)),
                Just(Some(ResponseFormat::JsonObject)),
                Just(Some(ResponseFormat::JsonSchema {
                    name: "response".into(),
                    schema: json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
                    strict: None,
                })),
            ],
            reasoning(gemini_3),
        )
            .prop_map(
                move |(system, messages, tools, choice, sampling, response_format, reasoning)| {
                    let (max_tokens, temperature, top_p, top_k, stop, seed) = sampling;
                    let tool_choice = match (choice, tools.first()) {
                        (_, None) | (0, _) => None,
                        (1, Some(_)) => Some(ToolChoice::Auto),
                        (2, Some(_)) => Some(ToolChoice::Required),
                        (3, Some(t)) => Some(ToolChoice::Named(t.name.clone())),
                        (_, Some(_)) => Some(ToolChoice::None),
                    };
                    Request {
                        model: if gemini_3 {
                            "gemini-3-flash-preview".into()
                        } else {
                            String::new()
                        },
                        system: system
                            .into_iter()
                            .map(|text| SystemBlock {
                                text,
                                cache_control: None,
                            })
                            .collect(),
                        messages,
                        tools,
                        tool_choice,
                        max_tokens,
                        temperature,
                        top_p,
                        top_k,
                        stop,
                        response_format,
                        reasoning,
                        seed,
                        ..Request::default()
                    }
                },
            )
    })
}

/// Answers holding only what a Gemini client can be shown: no adjacent text (or thinking) parts
/// where the first has no signature, since Gemini readers join those as streams do.
fn gemini_response() -> impl Strategy<Value = Response> {
    let part = prop_oneof![
        (text(), signature()).prop_map(|(text, thought_signature)| Part::Text {
            text,
            cache_control: None,
            thought_signature,
        }),
        (text(), signature()).prop_map(|(text, signature)| Part::Thinking { text, signature }),
        (
            "[a-z0-9]{1,8}",
            prop::sample::select(vec!["f", "g"]),
            arguments(),
            signature()
        )
            .prop_map(|(id, name, arguments, thought_signature)| Part::ToolCall {
                id: format!("call_{id}"),
                name: name.into(),
                arguments,
                thought_signature,
            }),
    ];
    (
        "[a-zA-Z0-9_-]{1,20}",
        "gemini-[0-9a-z.-]{1,10}",
        prop::collection::vec(part, 0..5),
        prop::option::of(prop::sample::select(vec![
            StopReason::EndTurn,
            StopReason::ToolUse,
            StopReason::MaxTokens,
            StopReason::ContentFilter,
            StopReason::Other("MALFORMED_FUNCTION_CALL".into()),
        ])),
        (0u64..10_000, 0u64..10_000, 0u64..10_000, 0u64..10_000),
    )
        .prop_map(
            |(id, model, parts, stop_reason, (input, out, reasoning, cached))| {
                let mut kept: Vec<Part> = Vec::new();
                for part in parts {
                    let joins = matches!(
                        (kept.last(), &part),
                        (
                            Some(Part::Text {
                                thought_signature: None,
                                ..
                            }),
                            Part::Text { .. },
                        ) | (
                            Some(Part::Thinking {
                                signature: None,
                                ..
                            }),
                            Part::Thinking { .. },
                        )
                    );
                    if !joins {
                        kept.push(part);
                    }
                }
                // Gemini says STOP for both; function calls decide.
                let has_calls = kept.iter().any(|p| matches!(p, Part::ToolCall { .. }));
                let stop_reason = stop_reason.map(|r| match r {
                    StopReason::EndTurn | StopReason::ToolUse if has_calls => StopReason::ToolUse,
                    StopReason::ToolUse => StopReason::EndTurn,
                    r => r,
                });
                Response {
                    id,
                    model,
                    parts: kept,
                    stop_reason,
                    usage: TokenUsage {
                        input_tokens: input + cached,
                        output_tokens: out + reasoning,
                        cache_read_tokens: cached,
                        cache_write_tokens: 0,
                        reasoning_tokens: reasoning,
                    },
                    created: 0,
                }
            },
        )
}

/// The events an upstream would stream for `resp`, text and arguments cut at `cut`.
fn events_for(resp: &Response, cut: usize) -> Vec<StreamEvent> {
    common::answer_events(resp, None, |s| common::pieces(s, cut))
}

proptest! {
    #[test]
    fn requests_survive_gemini_and_back(req in gemini_request()) {
        let body = gemini::encode_request(&req);
        let mut back = gemini::decode_request(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{body:#}")))?;
        back.model.clone_from(&req.model);
        let mut expected = req.clone();
        if !req.model.is_empty() {
            expect_signature_check_skipped(&mut expected);
        }
        normalize_ids(&mut expected);
        normalize_ids(&mut back);
        prop_assert_eq!(back, expected, "{:#}", body);
    }

    #[test]
    fn responses_survive_gemini_and_back(resp in gemini_response()) {
        let body = gemini::encode_response(&resp);
        let back = gemini::decode_response(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{body:#}")))?;
        prop_assert_eq!(back, resp, "{:#}", body);
    }

    #[test]
    fn streams_survive_gemini_and_back(resp in gemini_response(), cut in 1usize..6) {
        let sse = encode_events(&events_for(&resp, cut), EncodeOptions::default());
        let back = accumulate(&decode_sse(sse.as_bytes()), 0);
        prop_assert_eq!(back, resp, "{}", sse);
    }
}
