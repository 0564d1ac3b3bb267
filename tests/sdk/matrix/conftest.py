"""Fixtures of the dialect matrix: one sluice-mock, two real Sluice gateways, four SDK clients.

Fixture names carry a `matrix_` prefix so they never shadow the parent suite's fixtures.
Binaries come from `$CARGO_TARGET_DIR/debug/`, default `target/debug/` (override with SLUICE_BIN / SLUICE_MOCK_BIN). Nothing here
talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

# The shared process helpers live one directory up (already on sys.path when the parent
# conftest has been loaded; made sure of here for runs that start in this directory).
_SDK_DIR = str(Path(__file__).resolve().parents[1])
if _SDK_DIR not in sys.path:
    sys.path.append(_SDK_DIR)

from _process import (  # noqa: E402
    MOCK_START_TIMEOUT_S,
    READY_TIMEOUT_S,
    ManagedProcess,
    decode_bodies,
    find_binary,
    free_port,
    tail,
)
from matrix_support import (  # noqa: E402
    SdkClients,
    UPSTREAM_KEY,
    anthropic_client,
    error_config,
    gemini_client,
    matrix_config,
    openai_client,
)


def _http(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """A bare loopback HTTP call (stdlib, no proxy), for readiness and the mock's log."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class MatrixMock:
    """The running sluice-mock and its record of the requests it received."""

    port: int

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        status, body = _http("GET", f"{self.root_url}/__mock/requests")
        assert status == 200, f"reading the mock's request log failed: {status} {body[:300]!r}"
        return decode_bodies(json.loads(body))

    def requests_with(self, needle: str) -> list[dict[str, Any]]:
        """The recorded requests whose path, query or body mention `needle` (a test's marker).

        Tests never clear the shared log: each finds its own traffic by a unique marker.
        """
        return [r for r in self.requests() if needle in json.dumps(r, default=str)]


@dataclass
class MatrixGateway:
    port: int
    process: ManagedProcess
    config: str

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logtail(self) -> str:
        return tail(self.process.stderr_path, 3000)


def _start_gateway(name: str, config: str, port: int, logdir: Path) -> MatrixGateway:
    sluice = find_binary("SLUICE_BIN", "sluice")
    config_path = logdir / f"{name}.yaml"
    config_path.write_text(config)
    process = ManagedProcess(name, [str(sluice), "serve", "--config", str(config_path)], logdir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no attempt made"
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            break
        try:
            status, body = _http("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)
            if status == 200:
                return MatrixGateway(port=port, process=process, config=config)
            last = f"GET /readyz -> {status} {body[:300]!r}"
        except OSError as e:
            last = f"GET /readyz -> {type(e).__name__}: {e}"
        time.sleep(0.1)
    exited = process.proc.poll() is not None
    process.stop()
    pytest.fail(
        (f"{name} exited before becoming ready" if exited
         else f"{name} did not become ready within {READY_TIMEOUT_S}s")
        + f" (last: {last}).\n"
        f"config:\n{config}\n{process.diagnostics()}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def matrix_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sluice-matrix")


@pytest.fixture(scope="session")
def matrix_mock(matrix_logdir: Path) -> Iterator[MatrixMock]:
    binary = find_binary("SLUICE_MOCK_BIN", "sluice-mock")
    process = ManagedProcess(
        "matrix-mock",
        [str(binary), "--listen", "127.0.0.1:0", "--api-key", UPSTREAM_KEY],
        matrix_logdir,
    )
    m = process.wait_for_line(
        re.compile(r"sluice-mock listening on http://127\.0\.0\.1:(\d+)"), MOCK_START_TIMEOUT_S
    )
    if m is None:
        process.stop()
        pytest.fail(f"sluice-mock did not start.\n{process.diagnostics()}", pytrace=False)
    try:
        yield MatrixMock(port=int(m.group(1)))
    finally:
        process.stop()


@pytest.fixture(scope="session")
def matrix_gateway(matrix_mock: MatrixMock, matrix_logdir: Path) -> Iterator[MatrixGateway]:
    port = free_port()
    gw = _start_gateway("matrix-sluice", matrix_config(port, matrix_mock.port), port, matrix_logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture(scope="session")
def matrix_error_gateway(matrix_mock: MatrixMock, matrix_logdir: Path) -> Iterator[MatrixGateway]:
    port = free_port()
    gw = _start_gateway(
        "matrix-sluice-errors", error_config(port, matrix_mock.port), port, matrix_logdir
    )
    try:
        yield gw
    finally:
        gw.process.stop()


# --- SDK clients ---------------------------------------------------------------------------


def _clients(gw: MatrixGateway) -> Iterator[SdkClients]:
    clients = SdkClients(openai_client(gw), anthropic_client(gw), gemini_client(gw))
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture(scope="session")
def matrix_sdk(matrix_gateway: MatrixGateway) -> Iterator[SdkClients]:
    yield from _clients(matrix_gateway)


@pytest.fixture(scope="session")
def matrix_error_sdk(matrix_error_gateway: MatrixGateway) -> Iterator[SdkClients]:
    yield from _clients(matrix_error_gateway)
