"""One driver per client dialect: the same conversation, spoken through each official SDK.

Each driver does what a user of that SDK would do (including how a tool call and its result are
sent back in the second turn) and returns SDK-neutral results, checking on the way what is
specific to its dialect (stop reasons, the shape of the final object). The tests in
`test_matrix.py` then assert one contract for all sixteen cells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from matrix_support import TOOL_RESULT_TEXT, show

TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Get the current weather for a location."
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City name"}},
    "required": ["location"],
}
MAX_TOKENS = 256


@dataclass
class Reply:
    """A finished text answer."""

    text: str | None
    # The SDK's own usage numbers, by their SDK names; None when the SDK object had no usage.
    usage: dict[str, int | None] | None
    raw: Any


@dataclass
class StreamReply:
    """A streamed text answer: what the deltas added up to and what the SDK's final object says."""

    delta_text: str
    final_text: str | None
    usage: dict[str, int | None] | None
    raw: Any


@dataclass
class ToolTurn:
    """The first turn of a tool conversation: the calls made, and what the driver needs to reply."""

    calls: list[tuple[str, Any]]
    raw: Any
    state: dict[str, Any] = field(default_factory=dict)


def _args(raw: Any) -> Any:
    """Arguments as a JSON value, or the raw text when they are not valid JSON."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return f"<not JSON: {raw!r}>"
    return raw


# --- OpenAI Chat Completions -------------------------------------------------------------------


class ChatDriver:
    name = "chat"
    TOOLS = [{"type": "function",
              "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                           "parameters": TOOL_SCHEMA}}]

    def __init__(self, sdk: Any) -> None:
        self.client = sdk.openai

    @staticmethod
    def _usage(u: Any) -> dict[str, int | None] | None:
        if u is None:
            return None
        return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens}

    def text(self, model: str, prompt: str) -> Reply:
        r = self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}])
        assert len(r.choices) == 1, f"expected one choice: {show(r)}"
        choice = r.choices[0]
        assert choice.finish_reason == "stop", f"finish_reason: {show(r)}"
        assert choice.message.role == "assistant", show(r)
        return Reply(choice.message.content, self._usage(r.usage), r)

    def _stream(self, **kwargs: Any) -> tuple[str, Any, list[Any]]:
        """Streams with usage; returns the text deltas, the SDK-accumulated completion, chunks."""
        from openai.lib.streaming.chat import ChatCompletionStreamState

        state = ChatCompletionStreamState(input_tools=kwargs.get("tools", []) or [])
        chunks, deltas = [], []
        stream = self.client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs)
        with stream:
            for chunk in stream:
                chunks.append(chunk)
                list(state.handle_chunk(chunk))
                for c in chunk.choices:
                    if c.delta.content:
                        deltas.append(c.delta.content)
        assert chunks, "the stream had no chunks"
        return "".join(deltas), state.get_final_completion(), chunks

    def stream_text(self, model: str, prompt: str) -> StreamReply:
        text, final, chunks = self._stream(
            model=model, messages=[{"role": "user", "content": prompt}])
        assert final.choices and final.choices[0].finish_reason == "stop", (
            f"accumulated completion lacks finish_reason stop: {show(final)}")
        # include_usage: the usage chunk is the last one, with no choices.
        last = chunks[-1]
        assert last.usage is not None and not last.choices, (
            f"last chunk is not the usage chunk: {show(last)}")
        return StreamReply(text, final.choices[0].message.content, self._usage(last.usage), final)

    def tool_call(self, model: str, prompt: str, stream: bool) -> ToolTurn:
        messages = [{"role": "user", "content": prompt}]
        if stream:
            _, final, _ = self._stream(model=model, messages=messages, tools=self.TOOLS)
            message = final.choices[0].message
            # Replay what the SDK accumulated (extra fields included), minus the SDK's own
            # client-side parse results.
            assistant = message.model_dump(exclude_none=True, exclude={"parsed"})
            for tc in assistant.get("tool_calls", []):
                tc.get("function", {}).pop("parsed_arguments", None)
            raw, finish = final, final.choices[0].finish_reason
        else:
            r = self.client.chat.completions.create(model=model, messages=messages,
                                                    tools=self.TOOLS)
            message, assistant = r.choices[0].message, r.choices[0].message
            raw, finish = r, r.choices[0].finish_reason
        assert finish == "tool_calls", f"finish_reason {finish!r}: {show(raw)}"
        calls = [(tc.function.name, _args(tc.function.arguments))
                 for tc in message.tool_calls or []]
        return ToolTurn(calls, raw, {"messages": messages, "assistant": assistant,
                                     "ids": [tc.id for tc in message.tool_calls or []],
                                     "model": model})

    def tool_result(self, turn: ToolTurn, stream: bool) -> str | None:
        s = turn.state
        messages = [*s["messages"], s["assistant"],
                    *({"role": "tool", "tool_call_id": i, "content": TOOL_RESULT_TEXT}
                      for i in s["ids"])]
        if stream:
            text, final, _ = self._stream(model=s["model"], messages=messages, tools=self.TOOLS)
            assert final.choices[0].message.content == text, show(final)
            return text
        r = self.client.chat.completions.create(model=s["model"], messages=messages,
                                                tools=self.TOOLS)
        return r.choices[0].message.content


# --- OpenAI Responses --------------------------------------------------------------------------


class ResponsesDriver:
    name = "responses"
    TOOLS = [{"type": "function", "name": TOOL_NAME, "description": TOOL_DESCRIPTION,
              "parameters": TOOL_SCHEMA}]

    def __init__(self, sdk: Any) -> None:
        self.client = sdk.openai

    @staticmethod
    def _usage(u: Any) -> dict[str, int | None] | None:
        if u is None:
            return None
        return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "total_tokens": u.total_tokens}

    def text(self, model: str, prompt: str) -> Reply:
        r = self.client.responses.create(model=model, input=prompt)
        assert r.status == "completed", f"status {r.status!r}: {show(r)}"
        return Reply(r.output_text, self._usage(r.usage), r)

    def _stream(self, **kwargs: Any) -> tuple[str, Any]:
        deltas = []
        with self.client.responses.stream(**kwargs) as s:
            for event in s:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
            final = s.get_final_response()
        assert final.status == "completed", f"status {final.status!r}: {show(final)}"
        return "".join(deltas), final

    def stream_text(self, model: str, prompt: str) -> StreamReply:
        text, final = self._stream(model=model, input=prompt)
        return StreamReply(text, final.output_text, self._usage(final.usage), final)

    def tool_call(self, model: str, prompt: str, stream: bool) -> ToolTurn:
        items: list[Any] = [{"role": "user", "content": prompt}]
        if stream:
            _, r = self._stream(model=model, input=items, tools=self.TOOLS)
        else:
            r = self.client.responses.create(model=model, input=items, tools=self.TOOLS)
        fcs = [o for o in r.output if o.type == "function_call"]
        return ToolTurn([(fc.name, _args(fc.arguments)) for fc in fcs], r,
                        {"items": items, "output": list(r.output),
                         "call_ids": [fc.call_id for fc in fcs], "model": model})

    def tool_result(self, turn: ToolTurn, stream: bool) -> str | None:
        s = turn.state
        # The documented way: the whole previous output (reasoning items included), then outputs.
        items = [*s["items"], *s["output"],
                 *({"type": "function_call_output", "call_id": c, "output": TOOL_RESULT_TEXT}
                   for c in s["call_ids"])]
        if stream:
            text, final = self._stream(model=s["model"], input=items, tools=self.TOOLS)
            assert final.output_text == text, show(final)
            return text
        r = self.client.responses.create(model=s["model"], input=items, tools=self.TOOLS)
        return r.output_text


# --- Anthropic Messages ------------------------------------------------------------------------


class AnthropicDriver:
    name = "anthropic"
    TOOLS = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": TOOL_SCHEMA}]

    def __init__(self, sdk: Any) -> None:
        self.client = sdk.anthropic

    @staticmethod
    def _usage(u: Any) -> dict[str, int | None] | None:
        if u is None:
            return None
        return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}

    @staticmethod
    def _text(message: Any) -> str:
        return "".join(b.text for b in message.content if b.type == "text")

    def text(self, model: str, prompt: str) -> Reply:
        r = self.client.messages.create(model=model, max_tokens=MAX_TOKENS,
                                        messages=[{"role": "user", "content": prompt}])
        assert r.stop_reason == "end_turn", f"stop_reason {r.stop_reason!r}: {show(r)}"
        return Reply(self._text(r), self._usage(r.usage), r)

    def _stream(self, **kwargs: Any) -> tuple[str, Any]:
        with self.client.messages.stream(max_tokens=MAX_TOKENS, **kwargs) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        return text, final

    def stream_text(self, model: str, prompt: str) -> StreamReply:
        text, final = self._stream(model=model, messages=[{"role": "user", "content": prompt}])
        assert final.stop_reason == "end_turn", f"stop_reason: {show(final)}"
        return StreamReply(text, self._text(final), self._usage(final.usage), final)

    def tool_call(self, model: str, prompt: str, stream: bool) -> ToolTurn:
        messages: list[Any] = [{"role": "user", "content": prompt}]
        if stream:
            _, r = self._stream(model=model, messages=messages, tools=self.TOOLS)
        else:
            r = self.client.messages.create(model=model, max_tokens=MAX_TOKENS,
                                            messages=messages, tools=self.TOOLS)
        assert r.stop_reason == "tool_use", f"stop_reason {r.stop_reason!r}: {show(r)}"
        uses = [b for b in r.content if b.type == "tool_use"]
        return ToolTurn([(b.name, b.input) for b in uses], r,
                        {"messages": messages, "content": list(r.content),
                         "ids": [b.id for b in uses], "model": model})

    def tool_result(self, turn: ToolTurn, stream: bool) -> str | None:
        s = turn.state
        messages = [*s["messages"],
                    {"role": "assistant", "content": s["content"]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": i, "content": TOOL_RESULT_TEXT}
                        for i in s["ids"]]}]
        if stream:
            text, final = self._stream(model=s["model"], messages=messages, tools=self.TOOLS)
            assert self._text(final) == text, show(final)
            return text
        r = self.client.messages.create(model=s["model"], max_tokens=MAX_TOKENS,
                                        messages=messages, tools=self.TOOLS)
        return self._text(r)


# --- Gemini ------------------------------------------------------------------------------------


class GeminiDriver:
    name = "gemini"

    def __init__(self, sdk: Any) -> None:
        from google.genai import types

        self.client = sdk.gemini
        self.types = types
        self.config = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                name=TOOL_NAME,
                description=TOOL_DESCRIPTION,
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"location": types.Schema(type=types.Type.STRING,
                                                         description="City name")},
                    required=["location"],
                ),
            )])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    @staticmethod
    def _usage(u: Any) -> dict[str, int | None] | None:
        if u is None:
            return None
        return {"prompt_token_count": u.prompt_token_count,
                "candidates_token_count": u.candidates_token_count,
                "total_token_count": u.total_token_count}

    @staticmethod
    def _parts(response: Any) -> list[Any]:
        if not response.candidates or response.candidates[0].content is None:
            return []
        return list(response.candidates[0].content.parts or [])

    @classmethod
    def _text(cls, response: Any) -> str:
        return "".join(p.text for p in cls._parts(response) if p.text and not p.thought)

    def _user(self, text: str) -> Any:
        return self.types.Content(role="user", parts=[self.types.Part(text=text)])

    def text(self, model: str, prompt: str) -> Reply:
        r = self.client.models.generate_content(model=model, contents=prompt)
        assert r.candidates, f"no candidates: {show(r)}"
        assert r.candidates[0].finish_reason == self.types.FinishReason.STOP, (
            f"finish_reason: {show(r)}")
        return Reply(self._text(r), self._usage(r.usage_metadata), r)

    def _stream(self, model: str, contents: Any, config: Any = None) -> tuple[str, list[Any]]:
        chunks = list(self.client.models.generate_content_stream(
            model=model, contents=contents, config=config))
        assert chunks, "the stream had no chunks"
        return "".join(self._text(c) for c in chunks), chunks

    def stream_text(self, model: str, prompt: str) -> StreamReply:
        text, chunks = self._stream(model, prompt)
        last = chunks[-1]
        assert last.candidates and last.candidates[0].finish_reason == self.types.FinishReason.STOP, (
            f"last chunk has no finish_reason STOP: {show(last)}")
        # Gemini's final object is the chunks themselves: the text they add up to, and the usage
        # the last one carries.
        final_text = "".join(p.text or "" for c in chunks for p in self._parts(c)
                             if not p.thought)
        return StreamReply(text, final_text, self._usage(last.usage_metadata), chunks)

    def tool_call(self, model: str, prompt: str, stream: bool) -> ToolTurn:
        contents = [self._user(prompt)]
        if stream:
            _, chunks = self._stream(model, contents, self.config)
            # Rebuild the model turn from every part streamed (thought signatures included),
            # dropping only parts that carry nothing at all.
            parts = [p for c in chunks for p in self._parts(c)
                     if any(v not in ("", None) for v in p.model_dump().values())]
            model_turn = self.types.Content(role="model", parts=parts)
            raw: Any = chunks
        else:
            r = self.client.models.generate_content(model=model, contents=contents,
                                                    config=self.config)
            assert r.candidates and r.candidates[0].content, f"no candidate content: {show(r)}"
            model_turn, raw = r.candidates[0].content, r
        fcs = [p.function_call for p in model_turn.parts or [] if p.function_call]
        return ToolTurn([(fc.name, fc.args) for fc in fcs], raw,
                        {"contents": contents, "model_turn": model_turn, "calls": fcs,
                         "model": model})

    def tool_result(self, turn: ToolTurn, stream: bool) -> str | None:
        s, types = turn.state, self.types
        reply = types.Content(role="user", parts=[
            types.Part(function_response=types.FunctionResponse(
                id=fc.id, name=fc.name, response={"result": TOOL_RESULT_TEXT}))
            for fc in s["calls"]])
        contents = [*s["contents"], s["model_turn"], reply]
        if stream:
            text, _ = self._stream(s["model"], contents, self.config)
            return text
        r = self.client.models.generate_content(model=s["model"], contents=contents,
                                                config=self.config)
        return self._text(r)


DRIVERS = {d.name: d for d in (ChatDriver, ResponsesDriver, AnthropicDriver, GeminiDriver)}
