"""Fidelity the official SDKs notice: google-genai's image bytes on every upstream, the model
catalog through each SDK, and a cut Responses stream that the openai SDK reads as one response."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from matrix_support import UPSTREAM_ALIASES, gemini_client, marker, openai_client, show

# Bytes whose base64 differs between the standard and URL-safe alphabets.
IMAGE = bytes([0xFB, 0xFF, 0xBF, 0xFE, 0x10, 0x83, 0x47])


@pytest.mark.parametrize("upstream", ["via-chat", "via-responses", "via-anthropic"])
def test_gemini_sdk_image_bytes_reach_the_upstream_as_standard_base64(
        upstream: str, matrix_sdk: Any, matrix_mock: Any) -> None:
    tag = marker()
    r = matrix_sdk.gemini.models.generate_content(
        model=upstream,
        contents=[f"describe {tag}", types.Part.from_bytes(data=IMAGE, mime_type="image/png")],
    )
    assert r.text, show(r)
    records = matrix_mock.requests_with(tag)
    assert len(records) == 1, records
    sent = json.dumps(records[0]["body"])
    assert base64.b64encode(IMAGE).decode() in sent, (
        f"the image did not reach {upstream} as standard base64: {sent}")


def test_openai_sdk_retrieves_a_model(matrix_sdk: Any) -> None:
    model = matrix_sdk.openai.models.retrieve("via-gemini")
    assert (model.id, model.object) == ("via-gemini", "model"), show(model)
    with pytest.raises(openai.NotFoundError):
        matrix_sdk.openai.models.retrieve("no-such-model")


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_gemini_sdk_lists_and_gets_models(api_version: str, matrix_gateway: Any) -> None:
    client = gemini_client(matrix_gateway, api_version=api_version)
    try:
        names = {m.name for m in client.models.list()}
        assert {f"models/{alias}" for alias in UPSTREAM_ALIASES} <= names, names
        model = client.models.get(model="via-chat")
        assert model.name == "models/via-chat", show(model)
        with pytest.raises(genai_errors.ClientError) as caught:
            client.models.get(model="no-such-model")
        assert caught.value.code == 404, caught.value
    finally:
        client.close()


def test_openai_sdk_reads_a_cut_responses_relay_as_one_failed_response(
        matrix_gateway: Any) -> None:
    client = openai_client(matrix_gateway)
    events = []
    try:
        with client.responses.stream(
            model="via-responses", input=f"mock:words=30 mock:cut_after=6 {marker()}"
        ) as stream:
            for event in stream:  # "Lifecycle response identity changed" would raise here
                events.append(event)
    finally:
        client.close()
    types_seen = [e.type for e in events]
    assert types_seen.count("response.created") == 1, types_seen
    assert types_seen[-1] == "response.failed", types_seen
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1, ids
