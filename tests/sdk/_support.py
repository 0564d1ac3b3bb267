"""Constants and small helpers shared by the SDK conformance tests."""

from __future__ import annotations

import json
from typing import Any, Iterable

CLIENT_KEY = "sk-test-client-key"
UPSTREAM_KEY = "upstream-secret-key"
DEAD_UPSTREAM_KEY = "dead-upstream-secret-key"
MOCK_MODELS = ("mock-model", "mock-tools")

MOCK_GREETING = "Hello from sluice-mock!"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def mock_reply(user_text: str) -> str:
    """What sluice-mock answers to a plain user message."""
    return f"{MOCK_GREETING} You said: {user_text}"


def header(record: dict[str, Any], name: str) -> list[str]:
    """All values of a header in a mock request record (names compared case-insensitively)."""
    return [v for k, v in record.get("headers", []) if k.lower() == name.lower()]


def assert_secret_absent(secret: str, *where: Any) -> None:
    """Fail if `secret` occurs anywhere in the given (JSON-able or text) values."""
    for item in where:
        text = item if isinstance(item, str) else json.dumps(item, default=str)
        assert secret not in text, f"secret {secret!r} leaked into: {text[:2000]}"


def accumulate_tool_calls(chunks: Iterable[Any]) -> dict[int, dict[str, str]]:
    """Merge streamed `delta.tool_calls` fragments by index, as an SDK user would."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    call["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        call["name"] += tc.function.name
                    if tc.function.arguments:
                        call["arguments"] += tc.function.arguments
    return calls
