"""Audio in, images and their accounting through the official `openai` SDK (issue 13):
`audio.transcriptions.create` (whole and streamed), `audio.translations.create`,
`images.generate` (`url` and `b64_json`) and `images.edit` through Sluice to an
OpenAI-compatible upstream; errors in OpenAI's shape for a wrong capability, the upstream's
4xx/5xx and a too-large upload; a key's rate limit and monthly quota refusing these endpoints;
usage records with their seconds and images and what they cost."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from _process import free_port
from _gateway import Gateway, MockUpstream, _start_gateway, api, create_user

USERNAME = "media"
PASSWORD = "media-password"
# 48 000 bytes of "audio": three seconds to sluice-mock (16 000 bytes a second).
THREE_SECONDS = b"RIFF" + bytes(47_996)


@pytest.fixture(scope="module")
def media_gateway(any_model_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    port = free_port()
    base = any_model_mock.base_url
    config = f"""\
listen: 127.0.0.1:{port}
data-dir: {logdir / "media-data"}
max-upload-size: 256KiB
providers:
  - name: openai
    kind: openai-compatible
    base-url: '{base}/v1'
    api-keys: [k1]
    models: [{{name: whisper-1}}, {{name: gpt-4o-transcribe}}, {{name: dall-e-2}}, {{name: dall-e-3}}, {{name: gpt-image-1}}, {{name: mock-model, alias: chat-model}}]
"""
    config_path = logdir / "sluice-media.yaml"
    config_path.write_text(config)
    create_user(config_path, USERNAME, PASSWORD)
    gw = _start_gateway("sluice-media", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture(scope="module")
def token(media_gateway: Gateway) -> str:
    return api(media_gateway, "POST", "/api/auth/login", json={"username": USERNAME, "password": PASSWORD})["data"]["token"]


def _key(gw: Gateway, token: str, **limits: Any) -> tuple[int, openai.OpenAI]:
    created = api(gw, "POST", "/api/api-keys", token, json={"name": f"k{time.monotonic_ns()}", **limits})["data"]
    return created["id"], gw.client(api_key=created["key"], timeout=30)


def _records(gw: Gateway, token: str, key_id: int, n: int) -> list[dict[str, Any]]:
    # Records reach the store in batches off the request path.
    deadline = time.monotonic() + 10
    while True:
        data = api(gw, "GET", f"/api/api-keys/{key_id}/usage", token)["data"]
        if data["requests"] >= n or time.monotonic() > deadline:
            return sorted(data["records"], key=lambda r: r["time"])
        time.sleep(0.05)


def test_transcriptions_and_translations_are_billed_by_the_second(media_gateway: Gateway, token: str) -> None:
    key_id, client = _key(media_gateway, token)
    heard = client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", THREE_SECONDS))
    assert heard.text == "sluice-mock heard 3 s of talk.wav."
    verbose = client.audio.translations.create(
        model="whisper-1", file=("talk.mp3", THREE_SECONDS[:16_000]), response_format="verbose_json"
    )
    assert verbose.text == "sluice-mock heard 1 s of talk.mp3."
    streamed = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("talk.ogg", THREE_SECONDS), stream=True
    )
    events = list(streamed)
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == events[-1].text

    whole, translated, stream = _records(media_gateway, token, key_id, 3)
    assert (whole["endpoint"], whole["audio_seconds"]) == ("openai.audio_transcriptions", 3.0)
    assert whole["cost"] == pytest.approx(3 * 0.0001), "whisper-1 is $0.006 a minute"
    assert (translated["endpoint"], translated["audio_seconds"]) == ("openai.audio_translations", 1.0)
    assert stream["stream"] is True and stream["input_tokens"] == 30 and stream["cost"] > 0


def test_images_generate_and_edit(media_gateway: Gateway, token: str) -> None:
    key_id, client = _key(media_gateway, token)
    drawn = client.images.generate(model="dall-e-3", prompt="a lighthouse", quality="hd", size="1792x1024")
    assert drawn.data[0].url.startswith("https://")
    assert drawn.data[0].revised_prompt == "A picture of a lighthouse"
    encoded = client.images.generate(model="gpt-image-1", prompt="two cats", n=2, quality="high", size="1024x1536")
    assert [base64.b64decode(d.b64_json)[:4] for d in encoded.data] == [b"\x89PNG"] * 2
    assert encoded.usage is not None and encoded.usage.input_tokens == 2
    edited = client.images.edit(
        model="dall-e-2", image=("in.png", b"\x89PNG fake", "image/png"), prompt="add a hat",
        n=2, size="512x512", response_format="b64_json",
    )
    assert len(edited.data) == 2 and edited.data[0].b64_json

    hd, cats, edit = _records(media_gateway, token, key_id, 3)
    assert (hd["endpoint"], hd["images"], hd["cost"]) == ("openai.images_generations", 1, pytest.approx(0.12))
    assert (cats["images"], cats["cost"]) == (2, pytest.approx(0.5 + 2 * 5.0 / 1e6))
    assert (edit["endpoint"], edit["images"], edit["cost"]) == ("openai.images_edits", 2, pytest.approx(0.036))


def test_errors_come_back_in_openais_shape(media_gateway: Gateway, token: str) -> None:
    _, client = _key(media_gateway, token)
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="whisper-1", prompt="x")
    assert refused.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="chat-model", file=("a.wav", b"RIFF"))
    assert refused.value.code == "model_not_supported"
    # The upstream's own 400 and 500.
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="dall-e-3", prompt="x", n=2)
    assert refused.value.param == "n"
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"), prompt="mock:status=500")
    # An upload over `max-upload-size` (256 KiB).
    with pytest.raises(openai.APIStatusError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", bytes(300_000)))
    assert refused.value.status_code == 413
    assert refused.value.code == "request_too_large"
    assert "262144 bytes" in refused.value.message


def test_limits_and_quotas_refuse_these_endpoints(media_gateway: Gateway, token: str) -> None:
    _, one_a_minute = _key(media_gateway, token, rate_limit=1)
    one_a_minute.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"))
    with pytest.raises(openai.RateLimitError) as refused:
        one_a_minute.images.generate(model="dall-e-2", prompt="x")
    assert refused.value.code == "rate_limit_exceeded"

    # A cent a month: one hd image ($0.08) spends it.
    key_id, quota = _key(media_gateway, token, monthly_quota=0.01)
    quota.images.generate(model="dall-e-3", prompt="x", quality="hd")
    _records(media_gateway, token, key_id, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            quota.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"))
        except openai.RateLimitError as e:
            assert e.code == "monthly_quota_exceeded"
            break
        assert time.monotonic() < deadline, "the quota never refused"
        time.sleep(0.05)

