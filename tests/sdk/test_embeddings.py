"""Embeddings through the official SDKs: `openai` (`embeddings.create`, float and base64) against
every upstream kind that serves embeddings, and `google-genai` (`embed_content`, one text and a
batch) against a Gemini upstream and an OpenAI-compatible one. The upstreams are one
sluice-mock (any model) that fakes each provider's embedding format strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import openai
import pytest

from _process import free_port
from _support import CLIENT_KEY
from _gateway import Gateway, MockUpstream, _start_gateway

# (client-facing model, provider that serves it, whether only one text fits one request)
UPSTREAMS = [
    ("emb-openai", "openai", False),
    ("emb-azure", "azure", False),
    ("emb-gemini", "google", False),
    ("emb-qwen", "dashscope", False),
    ("emb-titan", "aws", True),
    ("emb-cohere", "aws", False),
]


@pytest.fixture(scope="module")
def embed_gateway(any_model_mock: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    port = free_port()
    base = any_model_mock.base_url
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [k1], models: [{{name: text-embedding-3-small, alias: emb-openai}}, {{name: mock-model, alias: chat-model}}]}}
  - {{name: azure, kind: azure-openai, base-url: '{base}', api-keys: [k2], models: [{{name: text-embedding-3-large, deployment: prod-embed, alias: emb-azure}}]}}
  - {{name: google, kind: gemini, base-url: '{base}', api-keys: [k3], models: [{{name: gemini-embedding-001, alias: emb-gemini}}]}}
  - {{name: dashscope, kind: qwen, base-url: '{base}/v1', api-keys: [k4], models: [{{name: text-embedding-v4, alias: emb-qwen}}]}}
  - {{name: aws, kind: bedrock, region: us-east-1, base-url: '{base}', api-keys: [k5], models: [{{name: 'amazon.titan-embed-text-v2:0', alias: emb-titan}}, {{name: cohere.embed-english-v3, alias: emb-cohere}}]}}
"""
    gw = _start_gateway("sluice-embeddings", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


def _genai(gw: Gateway):
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=CLIENT_KEY,
        http_options=types.HttpOptions(
            base_url=gw.root_url,
            api_version="v1beta",
            timeout=10_000,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@pytest.mark.parametrize("model,provider,one_text", UPSTREAMS)
def test_openai_embeddings_float_and_base64(embed_gateway: Gateway, model: str, provider: str, one_text: bool) -> None:
    client = embed_gateway.client()
    texts: str | list[str] = "hello vectors" if one_text else ["hello vectors", "second text"]
    floats = client.embeddings.with_raw_response.create(model=model, input=texts, encoding_format="float")
    assert floats.headers["x-sluice-provider"] == provider
    result = floats.parse()
    count = 1 if one_text else 2
    assert len(result.data) == count
    assert result.model == model
    assert result.usage.prompt_tokens > 0
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    # The SDK asks for base64 by default and decodes it into floats: the same vectors.
    decoded = client.embeddings.create(model=model, input=texts)
    for a, b in zip(result.data, decoded.data):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)
    raw = client.embeddings.create(model=model, input=texts, encoding_format="base64")
    assert isinstance(raw.data[0].embedding, str)


def test_openai_embeddings_dimensions_and_token_ids(embed_gateway: Gateway) -> None:
    client = embed_gateway.client()
    result = client.embeddings.create(model="emb-gemini", input=["a", "b"], dimensions=8)
    assert [len(d.embedding) for d in result.data] == [8, 8]
    result = client.embeddings.create(model="emb-openai", input=[[1, 2, 3], [4, 5]])
    assert len(result.data) == 2
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="emb-gemini", input=[1, 2, 3])
    assert "Token-id input" in refused.value.message


def test_wrong_capability_is_a_clear_400(embed_gateway: Gateway) -> None:
    client = embed_gateway.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="chat-model", input="x")
    assert refused.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="emb-openai", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_supported"
    listed = {m.id: m for m in client.models.list()}
    assert listed["emb-openai"].model_extra["capabilities"] == ["embedding"]
    assert listed["chat-model"].model_extra["capabilities"] == ["chat"]


# google-genai sends a list to a model whose name holds `gemini` (other than
# gemini-embedding-001) as one multimodal content: the real model name keeps it a batch.
@pytest.mark.parametrize("model", ["gemini-embedding-001", "emb-openai"])
def test_genai_embed_content_single_and_batch(embed_gateway: Gateway, model: str) -> None:
    client = _genai(embed_gateway)
    one = client.models.embed_content(model=model, contents="one text")
    assert len(one.embeddings) == 1
    assert len(one.embeddings[0].values) == 16
    batch = client.models.embed_content(model=model, contents=["x", "y", "z"])
    assert len(batch.embeddings) == 3
    assert batch.embeddings[0].values != batch.embeddings[1].values
    # The same text gives the same vector through either upstream and either SDK.
    via_openai = embed_gateway.client().embeddings.create(model=model, input="one text", encoding_format="float")
    assert one.embeddings[0].values == pytest.approx(via_openai.data[0].embedding, rel=1e-6)


def test_genai_model_list_says_what_embeds(embed_gateway: Gateway) -> None:
    client = _genai(embed_gateway)
    models = {m.name: m for m in client.models.list()}
    assert "embedContent" in models["models/emb-gemini"].supported_actions
    assert "generateContent" not in models["models/emb-gemini"].supported_actions
    assert "generateContent" in models["models/chat-model"].supported_actions
