"""A Gemini Code Assist account (a `gemini` token file, as `sluice login gemini` writes it) through
Sluice with the official SDKs: google-genai, OpenAI and Anthropic, whole and streamed.

The fake Code Assist API (sluice-mock's `/v1internal`) refuses what Google's does: a Bearer token
its Google token endpoint did not issue, a body that is not wrapped as
`{model, project, request}`, a project the account lacks. The token file's access token is one
the fake refuses, so the first call also proves the refresh-after-401 path; every 200 here
proves the wrapping, and the answers the SDKs parse prove the unwrapping.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest

from _process import MOCK_START_TIMEOUT_S, ManagedProcess, find_binary, free_port
from _support import CLIENT_KEY
from _gateway import Gateway, MockUpstream, _start_gateway

MODEL = "gemini-2.5-pro"
PROJECT = "fake-project"  # the project sluice-mock's Code Assist hands its accounts


@pytest.fixture(scope="module")
def code_assist_mock(logdir: Path) -> Iterator[MockUpstream]:
    binary = find_binary("SLUICE_MOCK_BIN", "sluice-mock")
    process = ManagedProcess("sluice-mock-code-assist", [str(binary), "--listen", "127.0.0.1:0"], logdir)
    banner = re.compile(r"sluice-mock listening on http://127\.0\.0\.1:(\d+)")
    m = process.wait_for_stdout(banner, MOCK_START_TIMEOUT_S)
    try:
        yield MockUpstream(port=int(m.group(1)))
    finally:
        process.stop()


@pytest.fixture(scope="module")
def code_assist_gateway(code_assist_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    auths = logdir / "code-assist-auths"
    auths.mkdir(exist_ok=True)
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    (auths / "gemini-me@example.com.json").write_text(
        json.dumps(
            {
                "type": "gemini",
                "token": {
                    "access_token": "expired-sdk-token",
                    "refresh_token": "sdk-google-refresh-token",
                    "token_type": "Bearer",
                    "expiry": expiry,
                },
                "project_id": PROJECT,
                "email": "me@example.com",
            }
        )
    )
    base = code_assist_mock.base_url
    port = free_port()
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
auth-dir: {auths}
oauth:
  refresh-interval: 1h
  gemini: {{token-url: '{base}/token', code-assist-url: '{base}/v1internal'}}
providers: []
"""
    gw = _start_gateway("sluice-code-assist", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def last_code_assist_call(mock: MockUpstream) -> dict[str, Any]:
    calls = [r for r in mock.requests() if str(r.get("path", "")).startswith("/v1internal:")]
    assert calls, "Code Assist was not called"
    return calls[-1]


def assert_wrapped(mock: MockUpstream, method: str) -> None:
    call = last_code_assist_call(mock)
    assert call["path"] == f"/v1internal:{method}"
    body = call["body"] if isinstance(call["body"], dict) else json.loads(call["body"])
    assert body["model"] == MODEL and body["project"] == PROJECT, body
    assert "contents" in body["request"] and "contents" not in body, body


def genai_client(gw: Gateway):
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=CLIENT_KEY,
        http_options=types.HttpOptions(
            base_url=gw.root_url,
            api_version="v1beta",
            timeout=10_000,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def test_google_genai_whole_stream_and_count(code_assist_gateway: Gateway, code_assist_mock: MockUpstream) -> None:
    client = genai_client(code_assist_gateway)
    whole = client.models.generate_content(model=MODEL, contents="hello from genai")
    assert "hello from genai" in whole.text
    assert whole.usage_metadata and whole.usage_metadata.total_token_count
    assert whole.response_id, "the trace id becomes the response id"
    assert_wrapped(code_assist_mock, "generateContent")

    text = "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="stream from genai"))
    assert "stream from genai" in text
    call = last_code_assist_call(code_assist_mock)
    assert call["path"] == "/v1internal:streamGenerateContent" and call.get("query") == "alt=sse", call
    assert_wrapped(code_assist_mock, "streamGenerateContent")

    counted = client.models.count_tokens(model=MODEL, contents="count these words")
    assert counted.total_tokens and counted.total_tokens > 0
    call = last_code_assist_call(code_assist_mock)
    body = call["body"] if isinstance(call["body"], dict) else json.loads(call["body"])
    assert call["path"] == "/v1internal:countTokens" and body["request"]["model"] == f"models/{MODEL}", call


def test_openai_sdk_whole_and_stream(code_assist_gateway: Gateway, code_assist_mock: MockUpstream) -> None:
    client = openai.OpenAI(base_url=code_assist_gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=10)
    whole = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi from openai"}])
    assert "hi from openai" in (whole.choices[0].message.content or "")
    assert whole.usage and whole.usage.total_tokens > 0
    assert_wrapped(code_assist_mock, "generateContent")
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "openai stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "openai stream" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage and chunks[-1].usage.total_tokens > 0
    assert_wrapped(code_assist_mock, "streamGenerateContent")


def test_anthropic_sdk_whole_and_stream(code_assist_gateway: Gateway, code_assist_mock: MockUpstream) -> None:
    client = anthropic.Anthropic(base_url=code_assist_gateway.root_url, api_key=CLIENT_KEY, max_retries=0, timeout=10)
    whole = client.messages.create(
        model=MODEL, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hi from anthropic"}]
    )
    assert "hi from anthropic" in whole.content[0].text
    call = last_code_assist_call(code_assist_mock)
    body = call["body"] if isinstance(call["body"], dict) else json.loads(call["body"])
    assert body["request"]["systemInstruction"]["parts"][0]["text"] == "Be brief.", body
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "anthropic stream"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "anthropic stream" in text and final.stop_reason == "end_turn"
    assert_wrapped(code_assist_mock, "streamGenerateContent")
