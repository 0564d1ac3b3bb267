"""Forward with accounting through the official `openai` SDK: `moderations.create` and
`audio.speech.create` reach an OpenAI-compatible upstream and its answer comes back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import openai
import pytest

from _process import free_port
from _support import CLIENT_KEY
from _gateway import Gateway, MockUpstream, _start_gateway


@pytest.fixture(scope="module")
def forward_gateway(any_model_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    port = free_port()
    base = any_model_mock.base_url
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [k1], models: [{{name: omni-moderation-latest}}, {{name: tts-1}}, {{name: mock-model, alias: chat-model}}]}}
"""
    gw = _start_gateway("sluice-forward", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def test_moderations_create(forward_gateway: Gateway) -> None:
    result = forward_gateway.client().moderations.create(input=["plan an attack", "hello"])
    assert result.results[0].flagged is True
    assert result.results[0].categories.violence is True
    assert result.results[1].flagged is False


def test_audio_speech_create(forward_gateway: Gateway, any_model_mock: MockUpstream) -> None:
    client = forward_gateway.client()
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
    direct = openai.OpenAI(base_url=f"{any_model_mock.base_url}/v1", api_key="k1", max_retries=0)
    expected = direct.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
    assert audio.content == expected.content
    assert audio.response.headers["content-type"] == "audio/mpeg"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello there", response_format="wav"
    ) as streamed:
        assert streamed.headers["content-type"] == "audio/wav"
        assert b"".join(streamed.iter_bytes()).startswith(b"ID3")


def test_speech_with_a_chat_model_is_a_clear_400(forward_gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        forward_gateway.client().audio.speech.create(model="chat-model", voice="alloy", input="x")
    assert refused.value.code == "model_not_supported"
