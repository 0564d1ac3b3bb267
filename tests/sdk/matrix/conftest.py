"""Fixtures of the dialect matrix: one sluice-mock, two real Sluice gateways, four SDK clients.

Fixture names carry a `matrix_` prefix so they never shadow the parent suite's fixtures.
Binaries come from `target/debug/` (override with SLUICE_BIN / SLUICE_MOCK_BIN). Nothing here
talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from matrix_support import (
    SdkClients,
    UPSTREAM_KEY,
    anthropic_client,
    error_config,
    gemini_client,
    matrix_config,
    openai_client,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 15.0
MOCK_START_TIMEOUT_S = 10.0

# Loopback traffic (ours and the gateway's own upstream calls) must never go through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(_var)]))


def _binary(env_var: str, name: str) -> Path:
    override = os.environ.get(env_var)
    path = Path(override) if override else REPO_ROOT / "target" / "debug" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} binary not found at {path} (set {env_var} to override). "
            "Build it first: cargo build -p sluice -p sluice-mock",
            pytrace=False,
        )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output captured>"
    return text[-limit:] if text else "<empty>"


def _http(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """A bare loopback HTTP call (stdlib, no proxy), for readiness and the mock's log."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Process:
    """A child process with stdout/stderr mirrored to files for failure messages."""

    def __init__(self, name: str, argv: list[str], logdir: Path) -> None:
        self.name = name
        self.stdout_path = logdir / f"{name}.stdout.log"
        self.stderr_path = logdir / f"{name}.stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                cwd=logdir, start_new_session=True,
            )
        self._lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, name=f"{name}-stdout", daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.stdout_path.open("w") as sink:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                sink.write(line)
                sink.flush()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if m := pattern.search(line):
                        return m
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(remaining, 0.1))

    def diagnostics(self) -> str:
        return (
            f"{self.name} exit code: {self.proc.poll()}\n"
            f"{self.name} stderr:\n{_tail(self.stderr_path)}\n"
            f"{self.name} stdout:\n{_tail(self.stdout_path)}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


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
        records = json.loads(body)
        for rec in records:
            if isinstance(rec.get("body"), str):
                try:
                    rec["body"] = json.loads(rec["body"]) if rec["body"] else None
                except ValueError:
                    pass
        return records

    def requests_with(self, needle: str) -> list[dict[str, Any]]:
        """The recorded requests whose path, query or body mention `needle` (a test's marker).

        Tests never clear the shared log: each finds its own traffic by a unique marker.
        """
        return [r for r in self.requests() if needle in json.dumps(r, default=str)]


@dataclass
class MatrixGateway:
    port: int
    process: Process
    config: str

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return _tail(self.process.stderr_path, 3000)


def _start_gateway(name: str, config: str, port: int, logdir: Path) -> MatrixGateway:
    sluice = _binary("SLUICE_BIN", "sluice")
    config_path = logdir / f"{name}.yaml"
    config_path.write_text(config)
    process = Process(name, [str(sluice), "serve", "--config", str(config_path)], logdir)
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
    binary = _binary("SLUICE_MOCK_BIN", "sluice-mock")
    process = Process(
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
    port = _free_port()
    gw = _start_gateway("matrix-sluice", matrix_config(port, matrix_mock.port), port, matrix_logdir)
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture(scope="session")
def matrix_error_gateway(matrix_mock: MatrixMock, matrix_logdir: Path) -> Iterator[MatrixGateway]:
    port = _free_port()
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
