"""Subscription accounts through Sluice with the official SDKs: a Claude account signed in with
OAuth (platform `claude-official`) called with the Anthropic SDK and the OpenAI SDK, whole and
streamed. The fake Messages API (sluice-mock, started without keys) refuses an OAuth token
unless the request has the shape Claude's OAuth API requires (`anthropic-beta` with
`oauth-2025-04-20`, Claude Code's system line first), so a 200 here proves the shape.

Gemini Code Assist accounts: tests/sdk/test_code_assist.py; ChatGPT accounts on the Codex backend:
tests/sdk/test_codex.py.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx2
import openai
import pytest

from _process import MOCK_START_TIMEOUT_S, ManagedProcess, find_binary, free_port
from _support import CLIENT_KEY, header
from _gateway import Gateway, MockUpstream, _start_gateway

CLAUDE_CODE_SYSTEM = "You are Claude Code, Anthropic's official CLI for Claude."
OAUTH_TOKEN = "sk-ant-oat01-sdk-subscription-test"
MODEL = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def open_mock(logdir: Path) -> Iterator[MockUpstream]:
    """A sluice-mock that takes any Bearer (as Anthropic takes any valid OAuth token)."""
    binary = find_binary("SLUICE_MOCK_BIN", "sluice-mock")
    process = ManagedProcess("sluice-mock-open", [str(binary), "--listen", "127.0.0.1:0"], logdir)
    banner = re.compile(r"sluice-mock listening on http://127\.0\.0\.1:(\d+)")
    m = process.wait_for_stdout(banner, MOCK_START_TIMEOUT_S)
    try:
        yield MockUpstream(port=int(m.group(1)))
    finally:
        process.stop()


@pytest.fixture(scope="module")
def subscription_gateway(open_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    auths = logdir / "subscription-auths"
    auths.mkdir(exist_ok=True)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7 * 24 * 3600))
    (auths / "claude-me.json").write_text(
        json.dumps(
            {
                "type": "claude",
                "access_token": OAUTH_TOKEN,
                "refresh_token": "sk-ant-ort01-unused",
                "email": "me@example.com",
                "expired": expires,
                "base_url": open_mock.base_url,
            }
        )
    )
    port = free_port()
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
auth-dir: {auths}
oauth:
  claude: {{token-url: '{open_mock.base_url}/v1/oauth/token'}}
providers: []
"""
    gw = _start_gateway("sluice-subscriptions", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def last_message_request(mock: MockUpstream) -> dict[str, Any]:
    records = [r for r in mock.requests() if r.get("path") == "/v1/messages"]
    assert records, "the fake Messages API was not called"
    return records[-1]


def assert_claude_code_shape(record: dict[str, Any], caller_system: str | None) -> None:
    assert header(record, "authorization") == [f"Bearer {OAUTH_TOKEN}"]
    assert header(record, "x-api-key") == []
    beta = ",".join(header(record, "anthropic-beta"))
    assert "oauth-2025-04-20" in beta.split(","), beta
    body = record["body"] if isinstance(record["body"], dict) else json.loads(record["body"])
    system = body["system"]
    assert system[0]["text"] == CLAUDE_CODE_SYSTEM, system
    if caller_system is not None:
        assert system[1]["text"] == caller_system, system


def test_anthropic_sdk_whole_and_stream(subscription_gateway: Gateway, open_mock: MockUpstream) -> None:
    client = anthropic.Anthropic(
        base_url=subscription_gateway.root_url, api_key=CLIENT_KEY, max_retries=0, timeout=10
    )
    whole = client.messages.create(
        model=MODEL,
        max_tokens=32,
        system="Answer briefly.",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert whole.content[0].text
    assert_claude_code_shape(last_message_request(open_mock), "Answer briefly.")

    with client.messages.stream(
        model=MODEL,
        max_tokens=32,
        system=[{"type": "text", "text": "Answer in one line."}],
        messages=[{"role": "user", "content": "hello again"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.stop_reason
    assert_claude_code_shape(last_message_request(open_mock), "Answer in one line.")


def test_openai_sdk_reaches_the_claude_account(subscription_gateway: Gateway, open_mock: MockUpstream) -> None:
    client = openai.OpenAI(
        base_url=subscription_gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=10
    )
    whole = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )
    assert whole.choices[0].message.content
    assert_claude_code_shape(last_message_request(open_mock), None)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=16, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert_claude_code_shape(last_message_request(open_mock), None)


def test_the_models_list_names_the_accounts_models(subscription_gateway: Gateway) -> None:
    r = httpx2.get(
        f"{subscription_gateway.root_url}/v1/models",
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        timeout=5,
    )
    assert r.status_code == 200
    assert any(m["id"] == MODEL for m in r.json()["data"]), r.text
