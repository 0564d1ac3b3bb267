#![allow(clippy::unwrap_used, clippy::panic)]
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;

use super::*;

/// 2015-08-30T12:36:00Z, the time of the AWS SigV4 test suite.
fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn suite_keys(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token.map(String::from),
        None,
        "test",
    )
}

fn header<'a>(signed: &'a [(HeaderName, HeaderValue)], name: &str) -> &'a str {
    signed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} in {signed:?}"))
}

/// The AWS Signature Version 4 test suite's vectors (`get-vanilla`, `post-vanilla`,
/// `get-vanilla-with-session-token`, `get-vanilla-query-order-key-case`).
#[test]
fn sigv4_matches_the_aws_test_suite() {
    let cases = [
        (
            "GET",
            "https://example.amazonaws.com/",
            None,
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "POST",
            "https://example.amazonaws.com/",
            None,
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "GET",
            "https://example.amazonaws.com/",
            Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
            "host;x-amz-date;x-amz-security-token",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        ),
        (
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            None,
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ];
    for (method, url, token, signed_headers, signature) in cases {
        let signed = sign_request(
            &suite_keys(token),
            "us-east-1",
            "service",
            method,
            url,
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&signed, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&signed, "authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
            ),
            "{method} {url}"
        );
        if let Some(token) = token {
            assert_eq!(header(&signed, "x-amz-security-token"), token);
        }
        let auth = signed.iter().find(|(n, _)| n == "authorization").unwrap();
        assert!(auth.1.is_sensitive(), "never printed");
    }
}

#[test]
fn bedrock_requests_are_signed_for_bedrock_with_the_model_id_encoded() {
    assert_eq!(
        encode_segment("anthropic.claude-3-5-sonnet-20241022-v2:0"),
        "anthropic.claude-3-5-sonnet-20241022-v2%3A0"
    );
    assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    let url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke";
    let signed = sign_request(
        &suite_keys(None),
        "eu-west-1",
        SERVICE,
        "POST",
        url,
        &[("content-type", "application/json")],
        br#"{"anthropic_version":"bedrock-2023-05-31"}"#,
        suite_time(),
    )
    .unwrap();
    let auth = header(&signed, "authorization");
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ),
        "{auth}"
    );
}

#[test]
fn bedrock_body_moves_the_model_out_and_the_version_in() {
    let mut forwarded = HeaderMap::new();
    forwarded.insert("anthropic-beta", "a-1, b-2".parse().unwrap());
    let body = bedrock_body(
        br#"{"model":"m","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        &forwarded,
    )
    .unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"max_tokens":5,"messages":[{"role":"user","content":"hi"}],
            "anthropic_version":"bedrock-2023-05-31","anthropic_beta":["a-1","b-2"]})
    );
    assert!(bedrock_body(b"[1]", &HeaderMap::new()).is_err());
}

/// Decodes a transcript fed in `size`-byte chunks.
async fn decode(transcript: &'static [u8], size: usize) -> String {
    let chunks: Vec<reqwest::Result<Bytes>> = transcript
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut sse = decode_stream(Box::pin(futures_util::stream::iter(chunks)));
    let mut out = Vec::new();
    while let Some(chunk) = sse.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

const STREAM: &[u8] = include_bytes!("../../../tests/corpus/bedrock/claude-stream.eventstream");
const THROTTLED: &[u8] =
    include_bytes!("../../../tests/corpus/bedrock/claude-throttled.eventstream");

#[tokio::test]
async fn event_stream_frames_become_anthropic_sse_however_they_are_split() {
    let whole = decode(STREAM, STREAM.len()).await;
    for size in [1, 7, 64, 333] {
        assert_eq!(
            decode(STREAM, size).await,
            whole,
            "split every {size} bytes"
        );
    }
    let events: Vec<(&str, Value)> = whole
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let text: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from Bedrock!");
    assert_eq!(events[6].1["usage"]["output_tokens"], 9);

    // The canonical decoder reads it as any Anthropic stream.
    let mut decoder = sluice_dialect::Dialect::Anthropic.stream_decoder();
    let mut parser = sluice_dialect::SseParser::default();
    parser.push(whole.as_bytes());
    let mut usage = sluice_dialect::TokenUsage::default();
    while let Some(event) = parser.next_event() {
        for e in decoder.push(&event) {
            if let sluice_dialect::canonical::StreamEvent::MessageDelta { usage: Some(u), .. } = e {
                sluice_dialect::canonical::merge_usage(&mut usage, &u);
            }
        }
    }
    assert_eq!(usage.output_tokens, 9);
}

#[tokio::test]
async fn an_exception_frame_ends_the_stream_with_an_anthropic_error_event() {
    let sse = decode(THROTTLED, 5).await;
    let last = sse.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{sse}");
    let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["error"]["type"], "rate_limit_error");
    assert!(
        data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests")
    );
    assert_eq!(sse.matches("event: content_block_delta").count(), 1);
}

#[tokio::test]
async fn a_corrupt_frame_is_an_error_event_not_a_hang() {
    let mut corrupt = STREAM.to_vec();
    corrupt[20] ^= 0xff; // inside the first frame's headers: its CRC no longer matches
    let sse = decode(Box::leak(corrupt.into_boxed_slice()), 100).await;
    assert!(sse.starts_with("event: error\n"), "{sse}");
    assert!(sse.contains("could not be decoded"));
}
