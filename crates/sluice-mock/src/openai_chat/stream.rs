//! The SSE events of a streamed completion: role chunk, one chunk per word (or tool-call
//! fragments), finish chunk, optional usage chunk, `[DONE]`.

use axum::body::Bytes;
use serde::Serialize;

use super::reply::{Reply, Usage};
use super::wire::{Chunk, ChunkChoice, Delta, Meta, ToolCallFragment, ToolCallStart};
use crate::sse::{self, fragments, word_pieces};

/// Renders every event of the stream, in order.
pub(crate) fn events(
    meta: &Meta<'_>,
    reply: &Reply,
    usage: Usage,
    include_usage: bool,
) -> Result<Vec<Bytes>, serde_json::Error> {
    let mut out = Events {
        meta,
        include_usage,
        events: Vec::new(),
    };
    out.choice(Delta::ROLE, None)?;
    match reply {
        Reply::Text(text) => {
            for piece in word_pieces(text) {
                out.choice(Delta::Content { content: piece }, None)?;
            }
        }
        Reply::ToolCall(call) => {
            out.choice(
                Delta::ToolCallStart {
                    tool_calls: [ToolCallStart::new(call)],
                },
                None,
            )?;
            for fragment in fragments(&call.arguments) {
                out.choice(
                    Delta::ToolCallArguments {
                        tool_calls: [ToolCallFragment::new(fragment)],
                    },
                    None,
                )?;
            }
        }
    }
    out.choice(Delta::Empty {}, Some(reply.finish_reason()))?;
    if include_usage {
        out.push(&Chunk::new(meta, &[], Some(Some(usage.into()))))?;
    }
    out.events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Ok(out.events)
}

struct Events<'m> {
    meta: &'m Meta<'m>,
    include_usage: bool,
    events: Vec<Bytes>,
}

impl Events<'_> {
    fn choice(
        &mut self,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<(), serde_json::Error> {
        let choices = [ChunkChoice::new(delta, finish_reason)];
        let usage = self.include_usage.then_some(None);
        self.push(&Chunk::new(self.meta, &choices, usage))
    }

    fn push(&mut self, chunk: &impl Serialize) -> Result<(), serde_json::Error> {
        self.events.push(sse::data(chunk, "\n\n")?);
        Ok(())
    }
}
