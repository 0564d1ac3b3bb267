"""Handles on the real processes the SDK suite starts: `sluice-mock` and `sluice` gateways.

Shared by `conftest.py`'s session fixtures and by test files that start gateways of their own
(import from here, not from `conftest`: pytest loads `tests/sdk/matrix/conftest.py` under the same
module name, so `from conftest import …` depends on which files a run collects).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from _process import READY_TIMEOUT_S, ManagedProcess, decode_bodies, find_binary
from _support import CLIENT_KEY

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


def api(gateway: Any, method: str, path: str, token: str | None = None, **kw: Any) -> dict[str, Any]:
    """Calls seed 004's `/api` on `gateway` (anything with a `root_url`) and returns its
    `{code, message, data}` envelope, asserting success."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx2.request(method, f"{gateway.root_url}{path}", headers=headers, timeout=10, **kw)
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0, f"{method} {path}: {r.status_code} {body}"
    return body


def create_user(config_path: Path, username: str, password: str) -> None:
    """Creates a user in the config's store with the `sluice users create` CLI."""
    created = subprocess.run(
        [str(find_binary("SLUICE_BIN", "sluice")), "users", "create", "--config", str(config_path),
         "--username", username, "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=30,
    )
    assert created.returncode == 0, created.stderr


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
