"""Errors surface as the SDK's exception classes, with bodies the SDK can read."""

from __future__ import annotations

import time

import httpx2
import openai
import pytest

from _support import CLIENT_KEY, DEAD_UPSTREAM_KEY, UPSTREAM_KEY, assert_secret_absent, mock_reply

HELLO = [{"role": "user", "content": "hello"}]


def _error_object(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    return body["error"]


def test_wrong_key_is_authentication_error(gateway, mock) -> None:
    with gateway.client(api_key="sk-not-a-valid-key") as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert info.value.status_code == 401
    error = _error_object(info.value)
    assert isinstance(error.get("message"), str) and error["message"]
    assert isinstance(error.get("type"), str) and error["type"]
    assert mock.chat_requests() == [], "an unauthenticated request reached the upstream"


def test_missing_key_is_authentication_error(gateway, mock) -> None:
    sent_authorization: list[str | None] = []

    def strip_authorization(request: httpx2.Request) -> None:
        request.headers.pop("Authorization", None)
        sent_authorization.append(request.headers.get("Authorization"))

    http_client = openai.DefaultHttpxClient(event_hooks={"request": [strip_authorization]})
    with gateway.client(api_key="placeholder", http_client=http_client) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert sent_authorization == [None], "the test client still sent credentials"
    assert info.value.status_code == 401
    assert _error_object(info.value).get("message")
    assert mock.chat_requests() == []


def test_unknown_model_is_not_found(client: openai.OpenAI, mock) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)

    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert _error_object(info.value).get("message")
    assert mock.chat_requests() == []


def test_upstream_429_is_rate_limit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "mock:status=429 mock:retry_after=1"}],
        )
    assert info.value.status_code == 429
    assert _error_object(info.value).get("message")
    # The SDK's own retry logic backs off by this header; the gateway must pass it on.
    assert info.value.response.headers.get("retry-after") == "1"


def test_upstream_500_is_internal_server_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "mock:status=500"}],
        )
    assert info.value.status_code >= 500
    assert _error_object(info.value).get("message")


def test_upstream_400_is_bad_request_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "mock:status=400"}],
        )
    assert info.value.status_code == 400
    assert _error_object(info.value).get("message")


def test_upstream_error_does_not_leak_keys(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "mock:status=500"}],
        )
    assert_secret_absent(UPSTREAM_KEY, info.value.response.text, dict(info.value.response.headers))
    assert_secret_absent(CLIENT_KEY, info.value.response.text, dict(info.value.response.headers))


def test_unreachable_upstream_is_bad_gateway_naming_provider(dead_gateway) -> None:
    with dead_gateway.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="dead-model", messages=HELLO)

    exc = info.value
    assert exc.status_code in (502, 503, 504), f"unreachable upstream answered {exc.status_code}: {exc.response.text}"
    assert isinstance(exc, openai.InternalServerError)
    message = _error_object(exc).get("message") or ""
    # Naming the model ("dead-model") is not enough: the operator needs the provider.
    assert "dead" in message.replace("dead-model", ""), f"error message does not name the provider: {message!r}"
    assert_secret_absent(DEAD_UPSTREAM_KEY, exc.response.text, dict(exc.response.headers))
    assert_secret_absent(CLIENT_KEY, exc.response.text, dict(exc.response.headers))


def test_stream_cut_mid_way_raises_instead_of_hanging_or_ending_quietly(client: openai.OpenAI) -> None:
    prompt = "mock:cut_after=2 tell me a long story about rivers"
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    elapsed = time.monotonic() - started

    assert not isinstance(info.value, openai.APITimeoutError), (
        f"the stream hung until the client timed out ({elapsed:.1f}s) instead of failing; got {received!r} first"
    )
    assert elapsed < 8, f"the cut stream took {elapsed:.1f}s to fail"
    # A dropped connection only tells the user "Connection error."; an in-band error chunk (the
    # way OpenAI reports mid-stream failures) lets the SDK raise with the gateway's explanation.
    assert not isinstance(info.value, openai.APIConnectionError), (
        f"the gateway dropped the connection instead of sending an error chunk: {info.value!r}"
    )
    assert isinstance(info.value.body, dict) and info.value.body.get("message"), info.value.body
    # What arrived before the cut is passed through intact.
    text = "".join(received)
    assert text and mock_reply(prompt).startswith(text), f"partial text {text!r} is not the start of the reply"
