"""Around the matrix: client authentication, unknown models, token counting, the Gemini model
list and v1 prefix, and what a same-dialect cell actually sends upstream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors

from matrix_drivers import DRIVERS
from matrix_support import (
    CLIENT_KEY,
    CLIENTS,
    GREETING,
    SAME_DIALECT,
    SdkClients,
    anthropic_client,
    gemini_client,
    openai_client,
    UPSTREAM_ALIASES,
    UPSTREAM_KEY,
    UPSTREAMS,
    WRONG_CLIENT_KEY,
    header_values,
    marker,
    show,
)


def _sdk_with_key(gw: Any, key: str) -> Any:
    return SdkClients(openai_client(gw, key), anthropic_client(gw, key), gemini_client(gw, key))


AUTH_ERROR = {"chat": openai.AuthenticationError, "responses": openai.AuthenticationError,
              "anthropic": anthropic.AuthenticationError, "gemini": genai_errors.ClientError}
NOT_FOUND = {"chat": openai.NotFoundError, "responses": openai.NotFoundError,
             "anthropic": anthropic.NotFoundError, "gemini": genai_errors.ClientError}


def _assert_error(err: BaseException, expected: type, client: str, code: int) -> None:
    assert isinstance(err, expected), (
        f"expected {expected.__module__}.{expected.__name__}, got "
        f"{type(err).__module__}.{type(err).__name__}: {err}")
    if client == "gemini":
        assert err.code == code, f"ClientError.code {err.code}, expected {code}: {err}"


@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_client_key_is_the_sdks_authentication_error(
        client: str, matrix_gateway: Any, matrix_mock: Any) -> None:
    tag = marker()
    sdk = _sdk_with_key(matrix_gateway, WRONG_CLIENT_KEY)
    try:
        with pytest.raises(Exception) as caught:
            DRIVERS[client](sdk).text(SAME_DIALECT[client], f"who am I {tag}")
    finally:
        sdk.close()
    _assert_error(caught.value, AUTH_ERROR[client], client, 401)
    assert not matrix_mock.requests_with(tag), "a request with a wrong client key reached the upstream"


@pytest.mark.parametrize("client", CLIENTS)
def test_unknown_model_is_the_sdks_not_found_error(client: str, matrix_sdk: Any) -> None:
    with pytest.raises(Exception) as caught:
        DRIVERS[client](matrix_sdk).text("no-such-model-anywhere", f"hello {marker()}")
    _assert_error(caught.value, NOT_FOUND[client], client, 404)
    # A 404 for the route itself would raise the same class: the error must be about the model.
    assert "no-such-model-anywhere" in str(caught.value), (
        f"the not-found error does not name the model: {caught.value}")


@pytest.mark.parametrize("upstream", UPSTREAM_ALIASES)
def test_anthropic_count_tokens(upstream: str, matrix_sdk: Any) -> None:
    r = matrix_sdk.anthropic.messages.count_tokens(
        model=upstream, messages=[{"role": "user", "content": "Count the tokens of this sentence."}])
    assert isinstance(r.input_tokens, int) and r.input_tokens > 0, show(r)


@pytest.mark.parametrize("upstream", UPSTREAM_ALIASES)
def test_gemini_count_tokens(upstream: str, matrix_sdk: Any) -> None:
    r = matrix_sdk.gemini.models.count_tokens(
        model=upstream, contents="Count the tokens of this sentence.")
    assert isinstance(r.total_tokens, int) and r.total_tokens > 0, show(r)


def test_gemini_models_list_shows_the_aliases(matrix_sdk: Any) -> None:
    names = {m.name for m in matrix_sdk.gemini.models.list()}
    bare = {n.removeprefix("models/") for n in names if n}
    missing = set(UPSTREAM_ALIASES) - bare
    assert not missing, f"GET /v1beta/models lacks {sorted(missing)}; listed: {sorted(names)}"


def test_gemini_sdk_on_the_v1_prefix(matrix_gateway: Any) -> None:
    client = gemini_client(matrix_gateway, api_version="v1")
    try:
        words = f"v1 prefix {marker()}"
        r = client.models.generate_content(model="via-gemini", contents=words)
    finally:
        client.close()
    assert r.text and r.text.startswith(GREETING) and r.text.endswith(words), show(r)


@pytest.mark.parametrize("client", CLIENTS)
def test_same_dialect_request_is_rewritten_and_reauthenticated(
        client: str, matrix_sdk: Any, matrix_mock: Any) -> None:
    upstream = UPSTREAMS[SAME_DIALECT[client]]
    tag = marker()
    reply = DRIVERS[client](matrix_sdk).text(upstream.alias, f"passthrough {tag}")
    assert reply.text and reply.text.endswith(tag), show(reply.raw)

    records = matrix_mock.requests_with(tag)
    assert len(records) == 1, f"expected one upstream request, got {len(records)}: {records}"
    rec = records[0]
    assert rec["path"] == upstream.path, f"upstream path {rec['path']!r}, expected {upstream.path!r}"
    if client != "gemini":  # Gemini names the model in the path, checked above.
        body = rec["body"]
        assert isinstance(body, dict) and body.get("model") == upstream.model, (
            f"alias not rewritten to {upstream.model!r}: body model {show(body)[:300]}")
    assert upstream.alias not in json.dumps(rec), f"the alias leaked upstream: {show(rec)}"
    got = header_values(rec, upstream.auth_header)
    assert got == [upstream.auth_value], (
        f"{upstream.auth_header}: {got}, expected the provider's key only; headers: "
        f"{[k for k, _ in rec.get('headers', [])]}")
    assert CLIENT_KEY not in json.dumps(rec), "the client's key was forwarded upstream"
    assert UPSTREAM_KEY not in json.dumps(rec.get("body")), "the upstream key ended up in the body"
