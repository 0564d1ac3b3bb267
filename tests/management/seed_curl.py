#!/usr/bin/env python3
"""Seed 003's curl examples, run verbatim against a real Sluice.

Each command below is copied from seed 003 (the management API document). Only three things
are substituted, as the seed intends: `<MANAGEMENT_KEY>` by the key, `localhost:8317` by the
test server's address, and `/path/to/acc1.json` by a file this script writes. Each answer is
compared with the one the seed shows. The seed shows each example against a state (its GET
examples say which); where two examples of one section are alternatives (delete by value /
by index), a `setup` step restores that state with the section's own PUT example first.

Then the server is restarted from the same file, and the changes are checked in the file and
in behaviour. Uses only the standard library and curl. Prints `N passed, M failed`.

Usage: tests/management/seed_curl.py [path/to/sluice]   (default: $CARGO_TARGET_DIR/debug/sluice,
$CARGO_TARGET_DIR defaulting to target/)
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY = "seed-examples-management-key"

# The state the seed's GET examples show (values elided in the seed, like "AIzaSy...01", kept
# as written there).
CONFIG = """\
# Config for seed 003's examples.
listen: 127.0.0.1:{port}
api-keys: [k1, k2, k3]
remote-management-key: {key}
debug: false
proxy-url: "socks5://user:pass@127.0.0.1:1080/"
quota-exceeded:
  switch-project: true
  switch-preview-model: true
request-retry: 3
allow-localhost-unauthenticated: false
generative-language-api-key: ["AIzaSy...01", "AIzaSy...02"]
codex-api-key: [{{api-key: sk-a, base-url: ""}}]
claude-api-key: [{{api-key: sk-a, base-url: ""}}]
openai-compatibility:
  - {{name: openrouter, base-url: "https://openrouter.ai/api/v1", api-keys: [], models: []}}
auth-dir: auths
"""

ACC1 = {"type": "claude", "access_token": "seed-example-token", "refresh_token": "r",
        "email": "acc1@example.com", "expired": "2030-01-01T00:00:00Z"}

OK = {"status": "ok"}

# (kind, command, expected answer). kind: "check" compares the JSON answer; "setup" only runs.
STEPS: list[tuple[str, str, object]] = [
    # Config
    ("keys", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/config",
     ["debug", "proxy-url", "api-keys", "quota-exceeded", "generative-language-api-key", "request-log",
      "request-retry", "claude-api-key", "codex-api-key", "openai-compatibility", "allow-localhost-unauthenticated"]),
    # Debug
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/debug",
     {"debug": False}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":true}' \\
  http://localhost:8317/v0/management/debug""", OK),
    # Proxy URL
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/proxy-url",
     {"proxy-url": "socks5://user:pass@127.0.0.1:1080/"}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":"socks5://user:pass@127.0.0.1:1080/"}' \\
  http://localhost:8317/v0/management/proxy-url""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":"http://127.0.0.1:8080"}' \\
  http://localhost:8317/v0/management/proxy-url""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE http://localhost:8317/v0/management/proxy-url", OK),
    # Quota exceeded
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/quota-exceeded/switch-project",
     {"switch-project": True}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":false}' \\
  http://localhost:8317/v0/management/quota-exceeded/switch-project""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/quota-exceeded/switch-preview-model",
     {"switch-preview-model": True}),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":true}' \\
  http://localhost:8317/v0/management/quota-exceeded/switch-preview-model""", OK),
    # API keys
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/api-keys",
     {"api-keys": ["k1", "k2", "k3"]}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '["k1","k2","k3"]' \\
  http://localhost:8317/v0/management/api-keys""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"old":"k2","new":"k2b"}' \\
  http://localhost:8317/v0/management/api-keys""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"index":0,"value":"k1b"}' \\
  http://localhost:8317/v0/management/api-keys""", OK),
    ("setup", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '["k1","k2","k3"]' \\
  http://localhost:8317/v0/management/api-keys""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/api-keys?value=k1'", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/api-keys?index=0'", OK),
    # Gemini API keys
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/generative-language-api-key",
     {"generative-language-api-key": ["AIzaSy...01", "AIzaSy...02"]}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '["AIzaSy-1","AIzaSy-2"]' \\
  http://localhost:8317/v0/management/generative-language-api-key""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"old":"AIzaSy-1","new":"AIzaSy-1b"}' \\
  http://localhost:8317/v0/management/generative-language-api-key""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/generative-language-api-key?value=AIzaSy-2'", OK),
    # Codex API keys
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/codex-api-key",
     {"codex-api-key": [{"api-key": "sk-a", "base-url": ""}]}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '[{"api-key":"sk-a"},{"api-key":"sk-b","base-url":"https://c.example.com"}]' \\
  http://localhost:8317/v0/management/codex-api-key""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"index":1,"value":{"api-key":"sk-b2","base-url":"https://c.example.com"}}' \\
  http://localhost:8317/v0/management/codex-api-key""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"match":"sk-a","value":{"api-key":"sk-a","base-url":""}}' \\
  http://localhost:8317/v0/management/codex-api-key""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/codex-api-key?api-key=sk-b2'", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/codex-api-key?index=0'", OK),
    # Request retry
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/request-retry",
     {"request-retry": 3}),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":5}' \\
  http://localhost:8317/v0/management/request-retry""", OK),
    # Allow localhost unauthenticated
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/allow-localhost-unauthenticated",
     {"allow-localhost-unauthenticated": False}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"value":true}' \\
  http://localhost:8317/v0/management/allow-localhost-unauthenticated""", OK),
    # Claude API keys
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/claude-api-key",
     {"claude-api-key": [{"api-key": "sk-a", "base-url": ""}]}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '[{"api-key":"sk-a"},{"api-key":"sk-b","base-url":"https://c.example.com"}]' \\
  http://localhost:8317/v0/management/claude-api-key""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"index":1,"value":{"api-key":"sk-b2","base-url":"https://c.example.com"}}' \\
  http://localhost:8317/v0/management/claude-api-key""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"match":"sk-a","value":{"api-key":"sk-a","base-url":""}}' \\
  http://localhost:8317/v0/management/claude-api-key""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/claude-api-key?api-key=sk-b2'", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/claude-api-key?index=0'", OK),
    # OpenAI compatibility
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/openai-compatibility",
     {"openai-compatibility": [{"name": "openrouter", "base-url": "https://openrouter.ai/api/v1", "api-keys": [], "models": []}]}),
    ("check", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '[{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":["sk"],"models":[{"name":"m","alias":"a"}]}]' \\
  http://localhost:8317/v0/management/openai-compatibility""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"name":"openrouter","value":{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":[],"models":[]}}' \\
  http://localhost:8317/v0/management/openai-compatibility""", OK),
    ("check", """curl -X PATCH -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '{"index":0,"value":{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":[],"models":[]}}' \\
  http://localhost:8317/v0/management/openai-compatibility""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/openai-compatibility?name=openrouter'", OK),
    ("setup", """curl -X PUT -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d '[{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":["sk"],"models":[{"name":"m","alias":"a"}]}]' \\
  http://localhost:8317/v0/management/openai-compatibility""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/openai-compatibility?index=0'", OK),
    # Auth files (acc1.json was placed in auth-dir before start)
    ("files", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' http://localhost:8317/v0/management/auth-files", ["acc1.json"]),
    ("download", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -OJ 'http://localhost:8317/v0/management/auth-files/download?name=acc1.json'", "acc1.json"),
    ("check", """curl -X POST -F 'file=@/path/to/acc1.json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  http://localhost:8317/v0/management/auth-files""", OK),
    ("check", """curl -X POST -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer <MANAGEMENT_KEY>' \\
  -d @/path/to/acc1.json \\
  'http://localhost:8317/v0/management/auth-files?name=acc1.json'""", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/auth-files?name=acc1.json'", OK),
    # The seed's "delete all" answer counts three files: put three there.
    ("setup", "curl -X POST -H 'Authorization: Bearer <MANAGEMENT_KEY>' -d @/path/to/acc1.json 'http://localhost:8317/v0/management/auth-files?name=acc1.json'", OK),
    ("setup", "curl -X POST -H 'Authorization: Bearer <MANAGEMENT_KEY>' -d @/path/to/acc1.json 'http://localhost:8317/v0/management/auth-files?name=acc2.json'", OK),
    ("setup", "curl -X POST -H 'Authorization: Bearer <MANAGEMENT_KEY>' -d @/path/to/acc1.json 'http://localhost:8317/v0/management/auth-files?name=acc3.json'", OK),
    ("check", "curl -H 'Authorization: Bearer <MANAGEMENT_KEY>' -X DELETE 'http://localhost:8317/v0/management/auth-files?all=true'",
     {"status": "ok", "deleted": 3}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, binary: Path, config: Path, port: int, log: Path):
        self.port = port
        self.log = log.open("ab")
        self.proc = subprocess.Popen([str(binary), "serve", "--config", str(config)],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"sluice exited early; see {log}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"sluice did not answer within 20s; see {log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main() -> int:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    binary = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / target / "debug" / "sluice"
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    passed = failed = 0

    def record(ok: bool, what: str, detail: str = "") -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {what}\n     {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        config = tmp / "config.yaml"
        config.write_text(CONFIG.format(port=port, key=KEY))
        (tmp / "auths").mkdir(mode=0o700)
        acc1 = tmp / "acc1.json"
        acc1.write_text(json.dumps(ACC1))
        (tmp / "auths" / "acc1.json").write_text(json.dumps(ACC1))
        downloads = tmp / "downloads"
        downloads.mkdir()
        gateway = Gateway(binary, config, port, tmp / "sluice.log")
        try:
            for kind, command, expected in STEPS:
                run = (command.replace("<MANAGEMENT_KEY>", KEY)
                       .replace("localhost:8317", f"127.0.0.1:{port}")
                       .replace("/path/to/acc1.json", str(acc1)))
                out = subprocess.run(["bash", "-c", f"set -e; {run}"], cwd=downloads,
                                     capture_output=True, text=True, timeout=30)
                first_line = command.splitlines()[0] if "\n" in command else command
                what = f"{kind}: {first_line[:110]}"
                if kind == "download":
                    got = (downloads / str(expected))
                    record(got.is_file() and json.loads(got.read_text()) == ACC1, what,
                           f"downloaded file missing or different; curl said {out.stdout!r} {out.stderr[-300:]!r}")
                    continue
                try:
                    answer = json.loads(out.stdout)
                except json.JSONDecodeError:
                    record(False, what, f"not JSON: {out.stdout!r} {out.stderr[-300:]!r}")
                    continue
                if kind == "keys":
                    missing = [k for k in expected if k not in answer]
                    record(not missing, what, f"missing keys {missing} in {answer}")
                elif kind == "files":
                    names = [f.get("name") for f in answer.get("files", [])]
                    shaped = all({"name", "size", "modtime"} <= f.keys() for f in answer.get("files", []))
                    record(names == expected and shaped, what, f"got {answer}")
                else:
                    record(answer == expected, what, f"expected {expected}, got {answer}")
        finally:
            gateway.stop()

        # Restart from the same file: every change persisted, and takes effect.
        text = config.read_text()
        record(KEY not in text and "remote-management-key: $2" in text.replace("'", ""),
               "restart: the management key is stored as a bcrypt hash", text)
        record(text.startswith("# Config for seed 003's examples.\n"), "restart: the file's comment is kept", text[:200])
        gateway = Gateway(binary, config, port, tmp / "sluice.log")
        try:
            def get(path: str) -> object:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v0/management{path}",
                                             headers={"Authorization": f"Bearer {KEY}"})
                return json.loads(urllib.request.urlopen(req, timeout=10).read())

            for path, want in [
                ("/debug", {"debug": True}),
                ("/proxy-url", {"proxy-url": ""}),
                ("/quota-exceeded/switch-project", {"switch-project": False}),
                ("/quota-exceeded/switch-preview-model", {"switch-preview-model": True}),
                ("/api-keys", {"api-keys": ["k3"]}),
                ("/generative-language-api-key", {"generative-language-api-key": ["AIzaSy-1b"]}),
                ("/codex-api-key", {"codex-api-key": []}),
                ("/claude-api-key", {"claude-api-key": []}),
                ("/openai-compatibility", {"openai-compatibility": []}),
                ("/request-retry", {"request-retry": 5}),
                ("/allow-localhost-unauthenticated", {"allow-localhost-unauthenticated": True}),
                ("/auth-files", {"files": []}),
            ]:
                got = get(path)
                record(got == want, f"restart: GET {path}", f"expected {want}, got {got}")
            # allow-localhost-unauthenticated is in effect: /v1/models without a key.
            models = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10).read())
            ids = [m["id"] for m in models["data"]]
            record("gemini-2.5-pro" in ids, "restart: keyless local call served; the Gemini key is a provider", str(ids))
        finally:
            gateway.stop()

    print(f"seed 003 curl examples: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
