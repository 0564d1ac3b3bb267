"""A ChatGPT account signed in with Codex OAuth (a `codex` token file, platform `codex`) served by
the ChatGPT Codex backend, called with the official SDKs: OpenAI Chat Completions and Responses,
Anthropic Messages, Google GenAI, each whole and streamed.

The fake backend (sluice-mock's `/backend-api/codex/responses`) is strict: it refuses a request
without the `chatgpt-account-id` of the token's account, without `stream: true`, `store: false`
and `instructions`, with a string `input` or with a parameter the real backend refuses
(`max_output_tokens`, `temperature`…). So a 200 here proves the shape, and a whole answer proves
the stream was folded into one.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from _gateway import Gateway, MockUpstream, _start_gateway
from _process import free_port
from _support import CLIENT_KEY, header

MODEL = "gpt-5-codex"
ACCOUNT = "chatgpt-acct-sdk"
ACCESS_TOKEN = "codex-sdk-access-token"


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT (`alg: none`), as OpenAI's id_token looks to a reader that never verifies."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join([b64(json.dumps({"alg": "none"}).encode()), b64(json.dumps(claims).encode()), ""])


@pytest.fixture(scope="module")
def codex_gateway(any_model_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    auths = logdir / "codex-auths"
    auths.mkdir(exist_ok=True)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7 * 24 * 3600))
    id_token = unsigned_jwt(
        {
            "email": "me@example.com",
            "https://api.openai.com/auth": {"chatgpt_account_id": ACCOUNT, "chatgpt_plan_type": "plus"},
        }
    )
    (auths / "codex-me.json").write_text(
        json.dumps(
            {
                "type": "codex",
                "access_token": ACCESS_TOKEN,
                "refresh_token": "codex-sdk-refresh-unused",
                "id_token": id_token,
                "email": "me@example.com",
                "expired": expires,
            }
        )
    )
    port = free_port()
    base = any_model_mock.base_url
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
auth-dir: {auths}
oauth:
  codex: {{token-url: '{base}/oauth/token', base-url: '{base}/backend-api/codex'}}
providers: []
"""
    gw = _start_gateway("sluice-codex", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def last_backend_request(mock: MockUpstream) -> dict[str, Any]:
    records = [r for r in mock.requests() if r.get("path") == "/backend-api/codex/responses"]
    assert records, "the fake Codex backend was not called"
    return records[-1]


def assert_codex_shape(record: dict[str, Any]) -> None:
    assert header(record, "authorization") == [f"Bearer {ACCESS_TOKEN}"]
    assert header(record, "chatgpt-account-id") == [ACCOUNT]
    assert header(record, "originator") == ["codex_cli_rs"]
    body = record["body"] if isinstance(record["body"], dict) else json.loads(record["body"])
    assert body["stream"] is True and body["store"] is False, body
    assert isinstance(body["instructions"], str), body
    assert "reasoning.encrypted_content" in body["include"], body


def test_openai_chat_whole_and_stream(codex_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    client = codex_gateway.client()
    whole = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=32,
        temperature=0.3,
    )
    assert whole.choices[0].message.content
    assert whole.usage and whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    assert_codex_shape(last_backend_request(any_model_mock))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens > 0
    assert_codex_shape(last_backend_request(any_model_mock))


def test_openai_responses_whole_and_stream(codex_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    client = codex_gateway.client()
    whole = client.responses.create(model=MODEL, input="hi", max_output_tokens=64)
    assert whole.status == "completed"
    assert whole.output_text
    assert whole.usage and whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    assert_codex_shape(last_backend_request(any_model_mock))

    with client.responses.stream(model=MODEL, input="hi", instructions="Answer in one line.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas)
    assert final.usage and final.usage.output_tokens == whole.usage.output_tokens
    record = last_backend_request(any_model_mock)
    assert_codex_shape(record)
    body = record["body"] if isinstance(record["body"], dict) else json.loads(record["body"])
    assert body["instructions"] == "Answer in one line."


def test_anthropic_whole_and_stream(codex_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    client = anthropic.Anthropic(base_url=codex_gateway.root_url, api_key=CLIENT_KEY, max_retries=0, timeout=10)
    whole = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="Answer briefly.",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert whole.content[0].text
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    assert_codex_shape(last_backend_request(any_model_mock))
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello again"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.stop_reason
    assert_codex_shape(last_backend_request(any_model_mock))


def test_google_genai_whole_and_stream(codex_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    client = genai.Client(
        api_key=CLIENT_KEY,
        http_options=genai_types.HttpOptions(
            base_url=codex_gateway.root_url,
            api_version="v1beta",
            timeout=10_000,
            retry_options=genai_types.HttpRetryOptions(attempts=1),
        ),
    )
    config = genai_types.GenerateContentConfig(max_output_tokens=64)
    whole = client.models.generate_content(model=MODEL, contents="hi", config=config)
    assert whole.text
    assert whole.usage_metadata and whole.usage_metadata.candidates_token_count
    assert_codex_shape(last_backend_request(any_model_mock))
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert text
    assert_codex_shape(last_backend_request(any_model_mock))
