"""Seed 004's done criterion, through the official OpenAI SDK: a user created by the `sluice`
CLI signs in, creates an API key, calls the gateway with it, and sees the call's tokens and
cost in `/api/api-keys/:id/usage`. Limits surface as the SDK's own exceptions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx2
import openai
import pytest

from _gateway import api as _api
from _support import UPSTREAM_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]

USERNAME = "alice"
PASSWORD = "alice-password"
# USD per million tokens for the mock's model: the call's cost is exactly predictable.
INPUT_PRICE = 2.0
OUTPUT_PRICE = 8.0


def _sluice() -> str:
    path = Path(os.environ.get("SLUICE_BIN") or REPO_ROOT / "target" / "debug" / "sluice")
    assert path.is_file(), f"sluice binary not found at {path}: cargo build -p sluice"
    return str(path)


@dataclass
class Gateway:
    port: int

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, api_key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.root_url}/v1", api_key=api_key, max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def keyed_gateway(mock_upstream: Any, logdir: Path) -> Iterator[Gateway]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = logdir / "keys-data"
    config = f"""\
listen: 127.0.0.1:{port}
data-dir: {data_dir}
prices:
  mock-model: {{input: {INPUT_PRICE}, output: {OUTPUT_PRICE}}}
providers:
  - name: mock
    kind: openai-compatible
    platform: openai
    base-url: http://127.0.0.1:{mock_upstream.port}/v1
    api-keys: [{UPSTREAM_KEY}]
    models:
      - name: mock-model
"""
    config_path = logdir / "sluice-keys.yaml"
    config_path.write_text(config)
    created = subprocess.run(
        [_sluice(), "users", "create", "--config", str(config_path),
         "--username", USERNAME, "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=30,
    )
    assert created.returncode == 0, created.stderr
    log = (logdir / "sluice-keys.stderr.log").open("wb")
    proc = subprocess.Popen([_sluice(), "serve", "--config", str(config_path)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, cwd=logdir, start_new_session=True)
    gw = Gateway(port)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"sluice exited: {(logdir / 'sluice-keys.stderr.log').read_text()}"
            try:
                if httpx2.get(f"{gw.root_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "sluice did not become ready"
            time.sleep(0.05)
        yield gw
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def token(keyed_gateway: Gateway) -> str:
    body = _api(keyed_gateway, "POST", "/api/auth/login", json={"username": USERNAME, "password": PASSWORD})
    assert body["data"]["user"]["username"] == USERNAME
    return body["data"]["token"]


def _usage_once_recorded(gw: Gateway, token: str, key_id: int, requests: int) -> dict[str, Any]:
    # Records reach the store in batches off the request path; they land within moments.
    deadline = time.monotonic() + 10
    while True:
        data = _api(gw, "GET", f"/api/api-keys/{key_id}/usage", token)["data"]
        if data["requests"] >= requests or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def test_cli_user_signs_in_creates_a_key_uses_it_and_sees_its_cost(keyed_gateway: Gateway, token: str) -> None:
    created = _api(keyed_gateway, "POST", "/api/api-keys", token, json={"name": "sdk"})
    assert created["message"] == "created"
    key, key_id = created["data"]["key"], created["data"]["id"]
    assert key.startswith("sk-") and len(key) == 67

    client = keyed_gateway.client(api_key=key)
    reply = client.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "What does this cost?"}]
    )
    assert reply.usage is not None and reply.usage.completion_tokens > 0

    data = _usage_once_recorded(keyed_gateway, token, key_id, 1)
    assert data["requests"] == 1
    assert data["input_tokens"] == reply.usage.prompt_tokens
    assert data["output_tokens"] == reply.usage.completion_tokens
    expected = (reply.usage.prompt_tokens * INPUT_PRICE + reply.usage.completion_tokens * OUTPUT_PRICE) / 1e6
    assert data["cost"] == pytest.approx(expected, abs=1e-9)
    record = data["records"][0]
    assert (record["model_served"], record["status"], record["estimated"]) == ("mock-model", 200, False)

    listed = _api(keyed_gateway, "GET", f"/api/api-keys/{key_id}", token)["data"]
    assert listed["used_tokens"] == reply.usage.total_tokens
    assert listed["request_count"] == 1
    assert listed["used_cost"] == pytest.approx(expected, abs=1e-9)
    assert "key" not in listed


def test_seed_route_streams_and_limits_raise_the_sdks_errors(keyed_gateway: Gateway, token: str) -> None:
    created = _api(keyed_gateway, "POST", "/api/api-keys", token, json={"name": "one-a-minute", "rate_limit": 1})
    key = created["data"]["key"]
    client = openai.OpenAI(base_url=f"{keyed_gateway.root_url}/openai/v1", api_key=key, max_retries=0, timeout=10)
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if chunk.choices
    )
    assert text
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "again"}])

    _api(keyed_gateway, "PUT", f"/api/api-keys/{created['data']['id']}/toggle", token)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "off"}])
    with pytest.raises(openai.AuthenticationError):
        keyed_gateway.client(api_key="sk-" + "0" * 64).chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": "who?"}]
        )
