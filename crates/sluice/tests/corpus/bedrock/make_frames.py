#!/usr/bin/env python3
"""Writes the Bedrock event-stream transcripts used by `providers/bedrock/tests.rs`.

The frames are built here, independently of the Rust crates under test, from the published
`application/vnd.amazon.eventstream` format: a prelude (total length, headers length, CRC32 of
the two), headers (name length, name, type 7 = string, value length, value), the payload, and a
CRC32 of everything before it. The payloads are what Bedrock's InvokeModelWithResponseStream
sends for an Anthropic model: `{"bytes": base64(<Anthropic stream event JSON>), "p": <padding>}`,
with `amazon-bedrock-invocationMetrics` on `message_stop`; the second transcript ends with a
`throttlingException` exception frame.

Run from this directory: python3 make_frames.py
"""
import base64
import json
import struct
import zlib


def header(name, value):
    name_b, value_b = name.encode(), value.encode()
    return bytes([len(name_b)]) + name_b + b"\x07" + struct.pack(">H", len(value_b)) + value_b


def frame(headers, payload):
    hdrs = b"".join(header(k, v) for k, v in headers)
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdrs))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + hdrs + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def chunk(event, padding):
    payload = json.dumps(
        {"bytes": base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode(), "p": padding},
        separators=(",", ":"),
    ).encode()
    return frame(
        [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
        payload,
    )


EVENTS = [
    {"type": "message_start", "message": {"id": "msg_bdrk_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
     "model": "claude-3-5-sonnet-20241022", "content": [], "stop_reason": None, "stop_sequence": None,
     "usage": {"input_tokens": 12, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " from"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " Bedrock!"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 9}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 9,
     "invocationLatency": 412, "firstByteLatency": 301}},
]
PADDING = ["abcdefghijklmnopqrstuvwxyzABCDEFGH", "abcdefghijklmnop", "abcdefghijklmnopqrstu", "abcd",
           "abcdefghijklmnopqrstuvwxyzABC", "abcdefgh", "abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqr"]

with open("claude-stream.eventstream", "wb") as f:
    for event, pad in zip(EVENTS, PADDING):
        f.write(chunk(event, pad))

with open("claude-throttled.eventstream", "wb") as f:
    for event, pad in zip(EVENTS[:3], PADDING):
        f.write(chunk(event, pad))
    f.write(frame(
        [(":exception-type", "throttlingException"), (":content-type", "application/json"), (":message-type", "exception")],
        json.dumps({"message": "Too many requests, please wait before trying again."}).encode(),
    ))
