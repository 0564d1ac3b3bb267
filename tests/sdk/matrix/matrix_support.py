"""Constants and the gateway configs of the client × upstream dialect matrix.

Four client dialects (each driven through its official SDK) meet four upstream dialects (each a
provider kind served by sluice-mock). Module name kept distinct from `tests/sdk/_support.py`:
both directories land on sys.path.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

CLIENT_KEY = "sk-matrix-client-key"
WRONG_CLIENT_KEY = "sk-matrix-wrong-key"
UPSTREAM_KEY = "upstream-secret-key"

GREETING = "Hello from sluice-mock! You said:"
TOOL_RESULT_PREFIX = "Tool result received:"
# What every tool in this suite answers; the mock echoes it back after TOOL_RESULT_PREFIX.
TOOL_RESULT_TEXT = "sunny, 24C"

CLIENTS = ("chat", "responses", "anthropic", "gemini")


@dataclass(frozen=True)
class Upstream:
    """One provider of the matrix gateway: its kind, alias and the upstream's own model name."""

    provider: str
    kind: str
    alias: str
    model: str
    # Path of the mock request a non-stream call produces (Gemini puts the model in the path).
    path: str
    # How the upstream key travels in this dialect: (header, value).
    auth_header: str
    auth_value: str
    # The base URL Sluice is given for this kind.
    base_suffix: str


UPSTREAM_LIST = (
    Upstream("up-chat", "openai-compatible", "via-chat", "mock-chat-model",
             "/v1/chat/completions", "authorization", f"Bearer {UPSTREAM_KEY}", "/v1"),
    Upstream("up-responses", "openai-responses", "via-responses", "mock-responses-model",
             "/v1/responses", "authorization", f"Bearer {UPSTREAM_KEY}", "/v1"),
    Upstream("up-anthropic", "anthropic", "via-anthropic", "claude-mock",
             "/v1/messages", "x-api-key", UPSTREAM_KEY, ""),
    Upstream("up-gemini", "gemini", "via-gemini", "gemini-mock",
             "/v1beta/models/gemini-mock:generateContent", "x-goog-api-key", UPSTREAM_KEY, ""),
)
UPSTREAMS = {u.alias: u for u in UPSTREAM_LIST}
UPSTREAM_ALIASES = tuple(UPSTREAMS)

# The client dialect whose wire format equals each upstream's: these cells must pass through.
SAME_DIALECT = {"chat": "via-chat", "responses": "via-responses",
                "anthropic": "via-anthropic", "gemini": "via-gemini"}

ERROR_STATUSES = (429, 500)


def matrix_config(port: int, mock_port: int) -> str:
    """The gateway every happy-path cell runs against (the brief's config, verbatim)."""
    lines = [f"listen: 127.0.0.1:{port}", f"api-keys: [{CLIENT_KEY}]", "providers:"]
    for u in UPSTREAM_LIST:
        lines.append(
            f"  - {{name: {u.provider}, kind: {u.kind}, "
            f'base-url: "http://127.0.0.1:{mock_port}{u.base_suffix}", '
            f"api-keys: [{UPSTREAM_KEY}], models: [{{name: {u.model}, alias: {u.alias}}}]}}"
        )
    return "\n".join(lines) + "\n"


def error_alias(status: int, client: str, upstream: str) -> str:
    return f"err{status}-{client}-{upstream}"


def error_config(port: int, mock_port: int) -> str:
    """A separate gateway for the error cells, one provider per (status, client, upstream).

    An upstream 429 legitimately cools the credential that got it down (Retry-After), so error
    cells must not share a credential with each other or with the happy-path cells: each gets a
    provider of its own, and the happy-path gateway never sees an injected fault.
    """
    lines = [f"listen: 127.0.0.1:{port}", f"api-keys: [{CLIENT_KEY}]", "providers:"]
    for status in ERROR_STATUSES:
        for client in CLIENTS:
            for u in UPSTREAM_LIST:
                alias = error_alias(status, client, u.alias)
                lines.append(
                    f"  - {{name: {alias}-provider, kind: {u.kind}, "
                    f'base-url: "http://127.0.0.1:{mock_port}{u.base_suffix}", '
                    f"api-keys: [{UPSTREAM_KEY}], models: [{{name: {u.model}, alias: {alias}}}]}}"
                )
    return "\n".join(lines) + "\n"


def marker() -> str:
    """A word unique to one test, to find its request in the mock's log."""
    return "m" + uuid.uuid4().hex[:12]


def header_values(record: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in record.get("headers", []) if k.lower() == name.lower()]


def show(value: Any, limit: int = 1500) -> str:
    """A readable, bounded rendering of an SDK object or JSON value for failure messages."""
    try:
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True, mode="json")
        text = json.dumps(value, default=str)
    except Exception:  # noqa: BLE001 - best effort for a failure message
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# --- SDK clients: no retries, short timeouts ---------------------------------------------

CLIENT_TIMEOUT_S = 10.0


def openai_client(gw: Any, api_key: str = CLIENT_KEY):
    import openai

    return openai.OpenAI(
        base_url=f"{gw.root_url}/v1", api_key=api_key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def anthropic_client(gw: Any, api_key: str = CLIENT_KEY):
    import anthropic

    return anthropic.Anthropic(
        base_url=gw.root_url, api_key=api_key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def gemini_client(gw: Any, api_key: str = CLIENT_KEY, api_version: str = "v1beta"):
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=gw.root_url,
            api_version=api_version,
            timeout=int(CLIENT_TIMEOUT_S * 1000),
            # attempts=1: no retries, so an error reaches the test as the SDK first raised it.
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@dataclass
class SdkClients:
    openai: Any
    anthropic: Any
    gemini: Any

    def close(self) -> None:
        self.openai.close()
        self.anthropic.close()
        self.gemini.close()
