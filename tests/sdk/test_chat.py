"""Chat Completions, plain and streamed, through the official SDK."""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from _support import (
    CLIENT_KEY,
    UPSTREAM_KEY,
    assert_secret_absent,
    header,
    mock_reply,
)


def test_chat_via_alias_reaches_upstream_model_with_upstream_key(client: openai.OpenAI, mock) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "ping through the alias"}],
    )

    assert isinstance(completion, ChatCompletion)
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == mock_reply("ping through the alias")
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0

    [upstream] = mock.chat_requests()
    assert upstream["method"] == "POST"
    assert upstream["body"]["model"] == "mock-model", "alias was not rewritten to the upstream model"
    assert header(upstream, "authorization") == [f"Bearer {UPSTREAM_KEY}"]
    # The caller's gateway key must never travel upstream, in any header, the query or the body.
    assert_secret_absent(CLIENT_KEY, upstream)


def test_stream_without_include_usage_matches_plain_text_and_hides_usage(client: openai.OpenAI, mock) -> None:
    prompt = "stream me some words please"
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    mock.clear()

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
    )

    assert chunks, "stream yielded no chunks"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 2, "answer arrived in one piece: the gateway did not stream"

    # The caller did not ask for usage, so it must not see the usage-only chunk that Sluice
    # requested from upstream for its own accounting.
    assert [c for c in chunks if c.usage is not None] == []
    assert [c for c in chunks if not c.choices] == []
    finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finish == ["stop"]

    [upstream] = mock.chat_requests()
    assert upstream["body"]["stream"] is True
    assert upstream["body"].get("stream_options", {}).get("include_usage") is True, (
        "Sluice did not ask upstream for streamed usage"
    )


def test_stream_with_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    prompt = "count my tokens"
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert len(chunks) >= 2
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1]), "usage appeared before the final chunk"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == mock_reply(prompt)


def test_stream_helper_final_completion(client: openai.OpenAI) -> None:
    prompt = "use the helper"
    deltas: list[str] = []
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()

    assert "".join(deltas) == mock_reply(prompt)
    assert final.choices[0].message.content == mock_reply(prompt)
    assert final.choices[0].finish_reason == "stop"
