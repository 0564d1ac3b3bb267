"""Session fixtures: a real `sluice-mock` upstream and real `sluice` gateways on loopback ports.

Binaries come from `$CARGO_TARGET_DIR/debug/`, default `target/debug/` (override with SLUICE_BIN / SLUICE_MOCK_BIN). Nothing here
talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx2
import openai
import pytest

from _process import (
    MOCK_START_TIMEOUT_S,
    READY_TIMEOUT_S,
    ManagedProcess,
    decode_bodies,
    find_binary,
    free_port,
)
from _support import (
    CLIENT_KEY,
    DEAD_UPSTREAM_KEY,
    MOCK_MODELS,
    UPSTREAM_KEY,
)

CLIENT_TIMEOUT_S = 10.0


@dataclass
class MockUpstream:
    """Handle on the running sluice-mock: its address and its record of received requests."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear(self) -> None:
        r = httpx2.delete(f"{self.base_url}/__mock/requests", timeout=5)
        assert r.status_code < 300, f"clearing the mock's request log failed: {r.status_code} {r.text}"

    def requests(self) -> list[dict[str, Any]]:
        r = httpx2.get(f"{self.base_url}/__mock/requests", timeout=5)
        assert r.status_code == 200, f"reading the mock's request log failed: {r.status_code} {r.text}"
        # Tolerate the body being recorded either as parsed JSON or as raw text.
        return decode_bodies(r.json())

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if str(r.get("path", "")).endswith("/chat/completions")]


@dataclass
class Gateway:
    """Handle on a running sluice instance."""

    port: int
    process: ManagedProcess

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def client(self, api_key: str = CLIENT_KEY, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", CLIENT_TIMEOUT_S)
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, **kwargs)


def _start_gateway(name: str, config_yaml: str, port: int, logdir: Path) -> Gateway:
    sluice = find_binary("SLUICE_BIN", "sluice")
    config_path = logdir / f"{name}.yaml"
    config_path.write_text(config_yaml)
    process = ManagedProcess(name, [str(sluice), "serve", "--config", str(config_path)], logdir)
    gateway = Gateway(port=port, process=process)

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no attempt made"
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            process.stop()
            pytest.fail(
                f"{name} exited before becoming ready.\nconfig:\n{config_yaml}\n{process.diagnostics()}",
                pytrace=False,
            )
        try:
            r = httpx2.get(f"{gateway.root_url}/readyz", timeout=1)
            if r.status_code == 200:
                return gateway
            last = f"GET /readyz -> {r.status_code} {r.text[:300]}"
        except httpx2.HTTPError as e:
            last = f"GET /readyz -> {type(e).__name__}: {e}"
        time.sleep(0.1)
    process.stop()
    pytest.fail(
        f"{name} not ready within {READY_TIMEOUT_S}s (last: {last}).\nconfig:\n{config_yaml}\n"
        f"{process.diagnostics()}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sluice-sdk")


@pytest.fixture(scope="session")
def mock_upstream(logdir: Path) -> Iterator[MockUpstream]:
    binary = find_binary("SLUICE_MOCK_BIN", "sluice-mock")
    argv = [str(binary), "--listen", "127.0.0.1:0"]
    for model in MOCK_MODELS:
        argv += ["--model", model]
    argv += ["--api-key", UPSTREAM_KEY]
    process = ManagedProcess("sluice-mock", argv, logdir)
    banner = re.compile(r"sluice-mock listening on http://127\.0\.0\.1:(\d+)")
    try:
        m, failure = process.wait_for_stdout(banner, MOCK_START_TIMEOUT_S), None
    except RuntimeError as e:
        m, failure = None, str(e)
    if m is None:
        process.stop()
        pytest.fail(failure or "sluice-mock did not start", pytrace=False)
    try:
        yield MockUpstream(port=int(m.group(1)))
    finally:
        process.stop()


@pytest.fixture(scope="session")
def any_model_mock(logdir: Path) -> Iterator[MockUpstream]:
    """A second sluice-mock that serves any model name and takes any key."""
    binary = find_binary("SLUICE_MOCK_BIN", "sluice-mock")
    process = ManagedProcess("sluice-mock-any-model", [str(binary), "--listen", "127.0.0.1:0"], logdir)
    banner = re.compile(r"sluice-mock listening on http://127\.0\.0\.1:(\d+)")
    try:
        m = process.wait_for_stdout(banner, MOCK_START_TIMEOUT_S)
    except RuntimeError as e:
        process.stop()
        pytest.fail(str(e), pytrace=False)
    try:
        yield MockUpstream(port=int(m.group(1)))
    finally:
        process.stop()


@pytest.fixture(scope="session")
def gateway(mock_upstream: MockUpstream, logdir: Path) -> Iterator[Gateway]:
    port = free_port()
    # The error tests inject upstream 429s (with Retry-After) and 5xx into the one credential this
    # gateway has; cooldowns of a millisecond keep those faults from cooling it down for the tests
    # after them (cooldowns and failover have their own tests in crates/sluice/tests/failover.rs).
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
cooldown: {{quota-backoff: 1ms, quota-backoff-max: 1ms, server-error: 1ms}}
providers:
  - name: mock
    kind: openai-compatible
    platform: openai
    base-url: http://127.0.0.1:{mock_upstream.port}/v1
    api-keys: [{UPSTREAM_KEY}]
    models:
      - name: mock-model
        alias: gpt-4o-mini
      - name: mock-tools
"""
    gw = _start_gateway("sluice", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture(scope="session")
def dead_gateway(logdir: Path) -> Iterator[Gateway]:
    """A second gateway whose only provider points at a port where nothing listens."""
    port = free_port()
    config = f"""\
listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
providers:
  - name: dead
    kind: openai-compatible
    platform: openai
    base-url: http://127.0.0.1:1/v1
    api-keys: [{DEAD_UPSTREAM_KEY}]
    models:
      - name: dead-model
"""
    gw = _start_gateway("sluice-dead", config, port, logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture
def mock(mock_upstream: MockUpstream) -> MockUpstream:
    """The mock upstream with an empty request log, so a test sees only its own traffic."""
    mock_upstream.clear()
    return mock_upstream


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    c = gateway.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx2.Client]:
    """A raw HTTP client on the gateway's root, for what the SDK does not expose."""
    with httpx2.Client(base_url=gateway.root_url, timeout=CLIENT_TIMEOUT_S, trust_env=False) as c:
        yield c
