"""Child-process plumbing shared by the SDK suite (`conftest.py`) and the dialect matrix
(`matrix/conftest.py`): locating the binaries, free loopback ports, and a managed subprocess
whose output is kept for failure messages.

Importable from both directories: `tests/sdk/` is on sys.path through pytest's prepend import
mode (the matrix conftest also makes sure of it). The name is distinct from everything in
`matrix/`, which lands on sys.path too.
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
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 15.0
MOCK_START_TIMEOUT_S = 10.0

# A proxy configured in the environment must never see loopback traffic (neither ours nor the
# gateway's own upstream calls, which inherit this environment).
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(_var)]))


def find_binary(env_var: str, name: str) -> Path:
    """A binary from `$CARGO_TARGET_DIR/debug/` (default `target/debug/`), or `$env_var`; fails
    the test run if it is missing."""
    override = os.environ.get(env_var)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    path = Path(override) if override else REPO_ROOT / target / "debug" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} binary not found at {path} (set {env_var} to override). "
            "Build it first: cargo build -p sluice -p sluice-mock",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output captured>"
    return text[-limit:] if text else "<empty>"


def decode_bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parse the `body` of sluice-mock's request records when it was recorded as JSON text."""
    for rec in records:
        body = rec.get("body")
        if isinstance(body, str):
            try:
                rec["body"] = json.loads(body) if body else None
            except ValueError:
                pass
    return records


class ManagedProcess:
    """A child process whose stdout/stderr are mirrored to files for failure messages."""

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
        """The first stdout line matching `pattern`; None on timeout or once the process exits."""
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

    def wait_for_stdout(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Like `wait_for_line`, but raises RuntimeError with the process's output instead."""
        m = self.wait_for_line(pattern, timeout)
        if m is None:
            raise RuntimeError(
                f"{self.name} did not print /{pattern.pattern}/ (waited up to {timeout}s) "
                f"(exit code {self.proc.poll()}).\nstdout:\n{tail(self.stdout_path)}\n"
                f"stderr:\n{tail(self.stderr_path)}"
            )
        return m

    def diagnostics(self) -> str:
        return (
            f"{self.name} exit code: {self.proc.poll()}\n"
            f"{self.name} stderr:\n{tail(self.stderr_path)}\n"
            f"{self.name} stdout:\n{tail(self.stdout_path)}"
        )

    def stop(self) -> None:
        """SIGTERM, then kill if it has not exited within 5 seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
