"""HTTP-level behaviour the SDK relies on but does not expose directly."""

from __future__ import annotations

import httpx2
import openai

from _support import CLIENT_KEY, UPSTREAM_KEY, assert_secret_absent, header, mock_reply


def test_x_api_key_header_authenticates(http: httpx2.Client, mock) -> None:
    r = http.post(
        "/v1/chat/completions",
        headers={"X-API-Key": CLIENT_KEY},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "key in x-api-key"}]},
    )

    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == mock_reply("key in x-api-key")
    [upstream] = mock.chat_requests()
    assert header(upstream, "authorization") == [f"Bearer {UPSTREAM_KEY}"]
    assert_secret_absent(CLIENT_KEY, upstream)


def test_caller_request_id_is_echoed(http: httpx2.Client) -> None:
    r = http.get(
        "/v1/models",
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "test-req-123"},
    )

    assert r.status_code == 200, r.text
    assert r.headers.get_list("x-request-id") == ["test-req-123"]


def test_request_id_is_generated_and_visible_to_sdk(http: httpx2.Client, client: openai.OpenAI) -> None:
    r = http.get("/v1/models", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 200, r.text
    assert r.headers.get("x-request-id", "").strip()

    first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    second = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}])
    assert first._request_id and second._request_id, "SDK could not read x-request-id from the response"
    assert first._request_id != second._request_id, "two requests got the same generated request id"


def test_error_response_carries_request_id(gateway) -> None:
    with gateway.client(api_key="sk-not-a-valid-key") as client:
        try:
            client.models.list()
        except openai.AuthenticationError as e:
            assert e.request_id, "401 response had no x-request-id for the user to quote"
        else:
            raise AssertionError("a wrong key listed models")
