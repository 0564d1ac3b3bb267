"""`GET /v1/models` through the SDK."""

from __future__ import annotations

import openai


def test_models_list_shows_upstream_models_and_aliases(client: openai.OpenAI) -> None:
    page = client.models.list()
    ids = [m.id for m in page]

    assert {"mock-model", "gpt-4o-mini", "mock-tools"} <= set(ids), ids
    assert len(ids) == len(set(ids)), f"duplicate model ids: {ids}"
    for m in page:
        assert m.object == "model", m
