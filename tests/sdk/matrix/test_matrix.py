"""The client × upstream dialect matrix: every official SDK against every upstream kind.

Each cell is (client dialect, upstream alias). The upstream is sluice-mock speaking that
provider's API; its replies are deterministic:
  text  -> "Hello from sluice-mock! You said: <the user's words>"
  tools -> one call get_weather({"location": "Paris"}); after a tool result ->
           "Tool result received: <the result>"
so every cell can assert the same contract, whatever translation happens in between.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors

from matrix_drivers import DRIVERS
from matrix_support import (
    CLIENTS,
    GREETING,
    TOOL_RESULT_PREFIX,
    UPSTREAM_ALIASES,
    error_alias,
    marker,
    show,
)

CELLS = [pytest.param(c, u, id=f"{c}:{u}") for c in CLIENTS for u in UPSTREAM_ALIASES]


def _driver(client: str, sdk: Any) -> Any:
    return DRIVERS[client](sdk)


def _words() -> str:
    return f"matrix check {marker()}"


def _assert_greeting(text: str | None, words: str, what: str) -> None:
    assert isinstance(text, str), f"{what}: no text came back ({text!r})"
    assert text.startswith(GREETING), f"{what}: reply does not start with the greeting: {text!r}"
    assert text.endswith(words), f"{what}: reply does not end with the user's words {words!r}: {text!r}"


def _assert_usage(usage: dict[str, int | None] | None, what: str) -> None:
    assert usage is not None, f"{what}: the SDK's usage object is missing"
    bad = {k: v for k, v in usage.items() if not (isinstance(v, int) and v > 0)}
    assert not bad, f"{what}: usage counts not positive: {usage}"


@pytest.mark.parametrize(("client", "upstream"), CELLS)
def test_text(client: str, upstream: str, matrix_sdk: Any) -> None:
    words = _words()
    reply = _driver(client, matrix_sdk).text(upstream, words)
    _assert_greeting(reply.text, words, "non-stream reply")
    _assert_usage(reply.usage, "non-stream reply")


@pytest.mark.parametrize(("client", "upstream"), CELLS)
def test_stream_text(client: str, upstream: str, matrix_sdk: Any) -> None:
    words = _words()
    reply = _driver(client, matrix_sdk).stream_text(upstream, words)
    _assert_greeting(reply.delta_text, words, "concatenated stream deltas")
    assert reply.final_text == reply.delta_text, (
        f"the SDK's final object ({reply.final_text!r}) differs from the deltas "
        f"({reply.delta_text!r}): {show(reply.raw)}")
    _assert_usage(reply.usage, "end of stream")


# Values documented as ways to skip Gemini's signature check: sending one is not carrying it.
SIGNATURE_BYPASSES = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}


def _history_signatures(record: dict[str, Any]) -> list[Any]:
    """The thoughtSignature of each model function call in a recorded Gemini request's history."""
    body = record.get("body")
    contents = body.get("contents", []) if isinstance(body, dict) else []
    return [part.get("thoughtSignature", part.get("thought_signature"))
            for content in contents if content.get("role") == "model"
            for part in content.get("parts", [])
            if "functionCall" in part or "function_call" in part]


def _signature_bytes(signature: Any) -> bytes | None:
    """A signature as bytes, whichever base64 alphabet carried it (the SDK sends URL-safe)."""
    if not isinstance(signature, str):
        return None
    text = signature.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize(("client", "upstream"), CELLS)
def test_tool_round_trip(client: str, upstream: str, stream: bool, matrix_sdk: Any,
                         matrix_mock: Any) -> None:
    driver = _driver(client, matrix_sdk)
    tag = marker()
    turn = driver.tool_call(upstream, f"What is the weather in Paris? {tag}", stream)
    assert turn.calls == [("get_weather", {"location": "Paris"})], (
        f"expected exactly one get_weather call with {{'location': 'Paris'}}, got {turn.calls}: "
        f"{show(turn.raw)}")
    # Second turn: the tool's result goes back the SDK's own way. For Gemini upstreams this only
    # succeeds if Sluice carried the call's thought signature through the client's dialect.
    text = driver.tool_result(turn, stream)
    assert isinstance(text, str) and text.startswith(TOOL_RESULT_PREFIX), (
        f"second turn did not answer the tool result: {text!r}")
    assert "sunny" in text, f"the tool result did not reach the upstream intact: {text!r}"
    if upstream == "via-gemini":
        # The mock only checks that a signature is present; make sure it is the real one.
        sent = [sig for rec in matrix_mock.requests_with(tag) for sig in _history_signatures(rec)]
        assert sent, "no upstream request replayed the function call history"
        assert not SIGNATURE_BYPASSES & set(sent), (
            f"Sluice sent a signature-check bypass instead of the upstream's signature: {sent}")
        if client == "gemini":
            issued = [p.thought_signature for p in turn.state["model_turn"].parts if p.function_call]
            assert [_signature_bytes(s) for s in sent] == issued, (
                f"signature sent upstream {sent} != the one issued {issued}")


RATE_LIMITED = {"chat": openai.RateLimitError, "responses": openai.RateLimitError,
                "anthropic": anthropic.RateLimitError, "gemini": genai_errors.ClientError}
SERVER_ERROR = {"chat": openai.InternalServerError, "responses": openai.InternalServerError,
                "anthropic": anthropic.InternalServerError, "gemini": genai_errors.ServerError}


@pytest.mark.parametrize(("status", "directives", "expected"), [
    pytest.param(429, "mock:status=429 mock:retry_after=1", RATE_LIMITED, id="429"),
    pytest.param(500, "mock:status=500", SERVER_ERROR, id="500"),
])
@pytest.mark.parametrize(("client", "upstream"), CELLS)
def test_upstream_error(client: str, upstream: str, status: int, directives: str,
                        expected: dict[str, type], matrix_error_sdk: Any, matrix_mock: Any) -> None:
    # Each error cell has a provider of its own on a separate gateway (see error_config).
    tag = marker()
    model = error_alias(status, client, upstream)
    with pytest.raises(Exception) as caught:
        reply = _driver(client, matrix_error_sdk).text(model, f"please fail {tag} {directives}")
        pytest.fail(f"no error raised; got {show(reply.raw)}")
    err = caught.value
    assert isinstance(err, expected[client]), (
        f"expected {expected[client].__module__}.{expected[client].__name__}, got "
        f"{type(err).__module__}.{type(err).__name__}: {err}")
    if client == "gemini" and status == 429:
        assert err.code == 429, f"ClientError.code {err.code}, expected 429: {err}"
    assert matrix_mock.requests_with(tag), (
        "the upstream never saw the request: the error did not come from the upstream")
