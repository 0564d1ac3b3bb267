"""Session fixtures: a real `sluice-mock` upstream and real `sluice` gateways on loopback ports.

Binaries come from `$CARGO_TARGET_DIR/debug/`, default `target/debug/` (override with SLUICE_BIN / SLUICE_MOCK_BIN). Nothing here
talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import httpx2
import openai
import pytest

from _process import (
    MOCK_START_TIMEOUT_S,
    ManagedProcess,
    find_binary,
    free_port,
)
from _support import (
    CLIENT_KEY,
    DEAD_UPSTREAM_KEY,
    MOCK_MODELS,
    UPSTREAM_KEY,
)
from _gateway import CLIENT_TIMEOUT_S, Gateway, MockUpstream, _start_gateway


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
