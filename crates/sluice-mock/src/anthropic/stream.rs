//! The SSE events of a streamed message, named and ordered as Anthropic sends them:
//! `message_start`, then per block `content_block_start` / `content_block_delta`… /
//! `content_block_stop` (a `ping` after the first start), `message_delta`, `message_stop`.

use axum::body::Bytes;
use serde::Serialize;
use serde_json::Map;

use super::wire::{Block, Body, DeltaUsage, Message, Reply};
use crate::sse::{self, fragments, word_pieces};

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: Message<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta,
        usage: DeltaUsage,
    },
    MessageStop,
}

impl Event<'_> {
    /// The SSE event name, equal to the payload's `type`.
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

/// Renders every event of the stream, in order.
pub(crate) fn events(reply: &Reply, model: &str) -> serde_json::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut push = |event: Event<'_>| -> serde_json::Result<()> {
        out.push(sse::named(event.name(), &event)?);
        Ok(())
    };
    push(Event::MessageStart {
        message: reply.started(model),
    })?;
    let mut index = 0;
    if let Some(thinking) = &reply.thinking {
        push(Event::ContentBlockStart {
            index,
            content_block: Block::Thinking {
                thinking: "",
                signature: "",
            },
        })?;
        push(Event::Ping)?;
        for piece in word_pieces(&thinking.text) {
            push(Event::ContentBlockDelta {
                index,
                delta: Delta::Thinking { thinking: piece },
            })?;
        }
        push(Event::ContentBlockDelta {
            index,
            delta: Delta::Signature {
                signature: &thinking.signature,
            },
        })?;
        push(Event::ContentBlockStop { index })?;
        index += 1;
    }
    let no_input = Map::new();
    let input_json = match &reply.body {
        Body::ToolUse { input, .. } => serde_json::to_string(input)?,
        Body::Text(_) => String::new(),
    };
    let (start, deltas): (Block<'_>, Vec<Delta<'_>>) = match &reply.body {
        Body::Text(text) => (
            Block::Text { text: "" },
            word_pieces(text)
                .into_iter()
                .map(|text| Delta::Text { text })
                .collect(),
        ),
        Body::ToolUse { id, name, .. } => (
            Block::ToolUse {
                id,
                name,
                input: &no_input,
            },
            fragments(&input_json)
                .into_iter()
                .map(|partial_json| Delta::InputJson { partial_json })
                .collect(),
        ),
    };
    push(Event::ContentBlockStart {
        index,
        content_block: start,
    })?;
    if reply.thinking.is_none() {
        push(Event::Ping)?;
    }
    for delta in deltas {
        push(Event::ContentBlockDelta { index, delta })?;
    }
    push(Event::ContentBlockStop { index })?;
    push(Event::MessageDelta {
        delta: StopDelta {
            stop_reason: reply.stop_reason(),
            stop_sequence: None,
        },
        usage: reply.final_usage(),
    })?;
    push(Event::MessageStop)?;
    Ok(out)
}
