"""Function calling, streamed and not, including the tool-result turn."""

from __future__ import annotations

import json

import openai

from _support import WEATHER_TOOL, accumulate_tool_calls

WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_streamed_tool_call_accumulates_to_one_call(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mock-tools",
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )

    calls = accumulate_tool_calls(chunks)
    assert list(calls) == [0], f"expected exactly one tool call at index 0, got {calls}"
    call = calls[0]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"location": "Paris"}
    assert call["id"].startswith("call_"), call["id"]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]


def test_stream_helper_final_completion_carries_tool_call(client: openai.OpenAI) -> None:
    done_events = []
    with client.chat.completions.stream(
        model="mock-tools",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done_events.append(event)
        final = stream.get_final_completion()

    assert [e.name for e in done_events] == ["get_weather"]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [tool_call] = choice.message.tool_calls or []
    assert tool_call.type == "function"
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"location": "Paris"}
    assert tool_call.id.startswith("call_")


def test_tool_call_then_tool_result_turn(client: openai.OpenAI, mock) -> None:
    first = client.chat.completions.create(model="mock-tools", messages=WEATHER_QUESTION, tools=[WEATHER_TOOL])

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [tool_call] = choice.message.tool_calls or []
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"location": "Paris"}
    assert tool_call.id.startswith("call_")

    mock.clear()
    second = client.chat.completions.create(
        model="mock-tools",
        tools=[WEATHER_TOOL],
        messages=[
            *WEATHER_QUESTION,
            choice.message.model_dump(exclude_unset=True, exclude_none=True),
            {"role": "tool", "tool_call_id": tool_call.id, "content": '{"temperature_c": 21}'},
        ],
    )

    assert second.choices[0].finish_reason == "stop"
    assert (second.choices[0].message.content or "").startswith("Tool result received")

    [upstream] = mock.chat_requests()
    sent = upstream["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == tool_call.id
    assert sent[2]["tool_call_id"] == tool_call.id
