//! The SSE events of a streamed completion: role chunk, one chunk per word (or tool-call
//! fragments), finish chunk, optional usage chunk, `[DONE]`.

use axum::body::Bytes;
use serde::Serialize;

use super::reply::{Reply, Usage};
use super::wire::{Chunk, ChunkChoice, Delta, Meta, ToolCallFragment, ToolCallStart};

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
        let mut event = b"data: ".to_vec();
        serde_json::to_writer(&mut event, chunk)?;
        event.extend_from_slice(b"\n\n");
        self.events.push(Bytes::from(event));
        Ok(())
    }
}

/// Splits text into words, each with the whitespace that follows it, so the pieces concatenate
/// back to the text.
fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut after_space) = (0, false);
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        if after_space && !space {
            pieces.push(&text[start..at]);
            start = at;
        }
        after_space = space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits a tool call's arguments into three fragments (two when very short).
fn fragments(arguments: &str) -> Vec<&str> {
    let parts = if arguments.len() >= 3 { 3 } else { 2 };
    let mut cuts = vec![0];
    for k in 1..parts {
        let mut at = arguments.len() * k / parts;
        while !arguments.is_char_boundary(at) {
            at += 1;
        }
        cuts.push(at);
    }
    cuts.push(arguments.len());
    cuts.windows(2)
        .filter_map(|cut| arguments.get(cut[0]..cut[1]))
        .filter(|fragment| !fragment.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_concatenate_to_the_text() {
        for text in [
            "Hello from  sluice-mock!\nYou said: é x ",
            " lead",
            "",
            "one",
        ] {
            let pieces = word_pieces(text);
            assert_eq!(pieces.concat(), text);
            assert_eq!(
                pieces.iter().filter(|p| !p.trim().is_empty()).count(),
                text.split_whitespace().count()
            );
        }
        assert_eq!(word_pieces("a b  c"), ["a ", "b  ", "c"]);
    }

    #[test]
    fn fragments_concatenate_to_the_arguments() {
        for arguments in ["{}", r#"{"location":"Paris"}"#, r#"{"é":"ü"}"#] {
            let pieces = fragments(arguments);
            assert!((2..=3).contains(&pieces.len()), "{pieces:?}");
            assert_eq!(pieces.concat(), arguments);
        }
    }
}
