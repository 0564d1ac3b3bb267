"""Legacy completions through the official `openai` SDK (`completions.create`, whole and
streamed): the prompt is served as one chat message and answered in the completions shape."""

from __future__ import annotations

import openai
import pytest

from _support import mock_reply


def test_completions_create_whole(client: openai.OpenAI) -> None:
    result = client.completions.create(model="gpt-4o-mini", prompt="Say hello", max_tokens=64, stop=["\n\n"])
    assert result.object == "text_completion"
    assert result.id.startswith("cmpl-")
    assert result.choices[0].text == mock_reply("Say hello")
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens > 0


def test_completions_create_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="gpt-4o-mini", prompt="Say hello", stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == mock_reply("Say hello")
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_completions_echo_is_refused_clearly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="gpt-4o-mini", prompt="x", echo=True)
    assert refused.value.body["param"] == "echo"
    assert "echo" in refused.value.message
