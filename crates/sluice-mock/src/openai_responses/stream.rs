//! The SSE events of a streamed response, each `event: <type>` + `data: {"type",
//! "sequence_number", …}`: `response.created`, `response.in_progress`, the items (reasoning
//! summary, message text or function-call arguments, each opened, filled and closed), then
//! `response.completed` carrying the full response. No `[DONE]`.

use axum::body::Bytes;
use serde::Serialize;

use super::request::ResponsesRequest;
use super::wire::{Body, OutputItem, OutputText, Reply, Settings, Stage, Status, SummaryText};
use crate::sse::{self, fragments, word_pieces};

/// Renders every event of the stream, in order.
pub(crate) fn events(
    reply: &Reply,
    request: &ResponsesRequest<'_>,
    settings: &Settings<'_>,
) -> serde_json::Result<Vec<Bytes>> {
    let mut out = Events::default();
    let started = reply.response(request, settings, Status::InProgress);
    out.push("response.created", &Wrapped { response: &started })?;
    out.push("response.in_progress", &Wrapped { response: &started })?;
    let mut output_index = 0;
    if let (Some(reasoning), Some(added)) = (&reply.reasoning, reply.reasoning_item(Stage::Added)) {
        let item_id = reasoning.id.as_str();
        out.push(
            "response.output_item.added",
            &ItemEvent::new(output_index, added),
        )?;
        let part = |text| SummaryPart {
            item_id,
            output_index,
            summary_index: 0,
            part: SummaryText::new(text),
        };
        out.push("response.reasoning_summary_part.added", &part(""))?;
        for delta in word_pieces(&reasoning.summary) {
            out.push(
                "response.reasoning_summary_text.delta",
                &SummaryDelta {
                    item_id,
                    output_index,
                    summary_index: 0,
                    delta,
                },
            )?;
        }
        out.push(
            "response.reasoning_summary_text.done",
            &SummaryDone {
                item_id,
                output_index,
                summary_index: 0,
                text: &reasoning.summary,
            },
        )?;
        out.push(
            "response.reasoning_summary_part.done",
            &part(&reasoning.summary),
        )?;
        if let Some(done) = reply.reasoning_item(Stage::Done) {
            out.push(
                "response.output_item.done",
                &ItemEvent::new(output_index, done),
            )?;
        }
        output_index += 1;
    }
    out.push(
        "response.output_item.added",
        &ItemEvent::new(output_index, reply.body_item(Stage::Added)),
    )?;
    match &reply.body {
        Body::Message { id, text } => {
            let part = |text| ContentPart {
                item_id: id,
                output_index,
                content_index: 0,
                part: OutputText::new(text),
            };
            out.push("response.content_part.added", &part(""))?;
            for delta in word_pieces(text) {
                out.push(
                    "response.output_text.delta",
                    &TextDelta {
                        item_id: id,
                        output_index,
                        content_index: 0,
                        delta,
                        logprobs: [],
                    },
                )?;
            }
            out.push(
                "response.output_text.done",
                &TextDone {
                    item_id: id,
                    output_index,
                    content_index: 0,
                    text,
                    logprobs: [],
                },
            )?;
            out.push("response.content_part.done", &part(text))?;
        }
        Body::Call {
            id,
            name,
            arguments,
            ..
        } => {
            for delta in fragments(arguments) {
                out.push(
                    "response.function_call_arguments.delta",
                    &ArgumentsDelta {
                        item_id: id,
                        output_index,
                        delta,
                    },
                )?;
            }
            out.push(
                "response.function_call_arguments.done",
                &ArgumentsDone {
                    item_id: id,
                    output_index,
                    name,
                    arguments,
                },
            )?;
        }
    }
    out.push(
        "response.output_item.done",
        &ItemEvent::new(output_index, reply.body_item(Stage::Done)),
    )?;
    let completed = reply.response(request, settings, Status::Completed);
    out.push(
        "response.completed",
        &Wrapped {
            response: &completed,
        },
    )?;
    Ok(out.events)
}

/// `response.failed` as the `sequence`-th event (`mock:fail_after`).
pub(crate) fn failed_event(
    sequence: usize,
    failed: &super::wire::ResponseObject<'_>,
) -> serde_json::Result<Bytes> {
    let mut out = Events {
        sequence_number: sequence as u64,
        events: Vec::new(),
    };
    out.push("response.failed", &Wrapped { response: failed })?;
    Ok(out.events.remove(0))
}

#[derive(Default)]
struct Events {
    sequence_number: u64,
    events: Vec<Bytes>,
}

impl Events {
    fn push(&mut self, kind: &str, body: &impl Serialize) -> serde_json::Result<()> {
        let event = Event {
            kind,
            sequence_number: self.sequence_number,
            body,
        };
        self.events.push(sse::named(kind, &event)?);
        self.sequence_number += 1;
        Ok(())
    }
}

#[derive(Serialize)]
struct Event<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct Wrapped<'a, T> {
    response: &'a T,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: usize,
    item: OutputItem<'a>,
}

impl<'a> ItemEvent<'a> {
    fn new(output_index: usize, item: OutputItem<'a>) -> Self {
        Self { output_index, item }
    }
}

#[derive(Serialize)]
struct ContentPart<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: OutputText<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct SummaryPart<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    part: SummaryText<'a>,
}

#[derive(Serialize)]
struct SummaryDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct SummaryDone<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    text: &'a str,
}
