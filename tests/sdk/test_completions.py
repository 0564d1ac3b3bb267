"""Legacy completions through the official `openai` SDK (`completions.create`, whole and
streamed): a chat model's prompt is served as one chat message and answered in the completions
shape; a completions model (`gpt-3.5-turbo-instruct`) is forwarded as-is to its upstream's own
`/v1/completions`, so what only that endpoint does (`echo`, `n`) works too."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import openai
import pytest

from _gateway import Gateway, MockUpstream, _start_gateway
from _process import free_port
from _support import CLIENT_KEY, mock_reply

INSTRUCT = "gpt-3.5-turbo-instruct"


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


@pytest.fixture(scope="module")
def instruct_gateway(any_model_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    port = free_port()
    base = any_model_mock.base_url
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [k1], models: [{{name: {INSTRUCT}}}, {{name: mock-model, alias: chat-model}}]}}
"""
    gw = _start_gateway("sluice-instruct", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def test_instruct_model_is_forwarded_whole(instruct_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    any_model_mock.clear()
    result = instruct_gateway.client().completions.create(
        model=INSTRUCT, prompt="Say hello", max_tokens=64, n=2, echo=True
    )
    assert result.object == "text_completion"
    assert result.model == INSTRUCT
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[1].text == "Say hello" + mock_reply("Say hello")
    assert result.usage is not None and result.usage.completion_tokens > 0
    (sent,) = any_model_mock.requests()
    assert sent["path"] == "/v1/completions"
    assert sent["body"]["echo"] is True and sent["body"]["n"] == 2


def test_instruct_model_is_forwarded_streamed(instruct_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    any_model_mock.clear()
    chunks = list(
        instruct_gateway.client().completions.create(
            model=INSTRUCT, prompt="Say hello", stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "text_completion" and c.id.startswith("cmpl-") for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == mock_reply("Say hello")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert [r["path"] for r in any_model_mock.requests()] == ["/v1/completions"]


def test_instruct_model_refusals_come_from_the_upstream(instruct_gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        instruct_gateway.client().completions.create(model=INSTRUCT, prompt="x", logprobs=9)
    assert refused.value.body["param"] == "logprobs"
    # A completions model is no chat model.
    with pytest.raises(openai.BadRequestError) as refused:
        instruct_gateway.client().chat.completions.create(
            model=INSTRUCT, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.body["code"] == "model_not_supported"
