//! Server-sent-event framing, and how an answer is cut into stream deltas. Shared by every fake's
//! stream; the faults are applied later, by [`crate::stream_body`].

use axum::body::Bytes;
use serde::Serialize;

/// `data: <json>` followed by `terminator` (each dialect ends its events its own way).
pub(crate) fn data(payload: &impl Serialize, terminator: &str) -> serde_json::Result<Bytes> {
    let mut event = b"data: ".to_vec();
    serde_json::to_writer(&mut event, payload)?;
    event.extend_from_slice(terminator.as_bytes());
    Ok(Bytes::from(event))
}

/// `event: <name>` + `data: <json>` + blank line, as Anthropic and OpenAI Responses send them.
pub(crate) fn named(name: &str, payload: &impl Serialize) -> serde_json::Result<Bytes> {
    let mut event = format!("event: {name}\ndata: ").into_bytes();
    serde_json::to_writer(&mut event, payload)?;
    event.extend_from_slice(b"\n\n");
    Ok(Bytes::from(event))
}

/// Splits text into words, each with the whitespace that follows it, so the pieces concatenate
/// back to the text.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
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
pub(crate) fn fragments(arguments: &str) -> Vec<&str> {
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

    #[test]
    fn framing() {
        let payload = serde_json::json!({"a": 1});
        assert_eq!(
            data(&payload, "\r\n\r\n").ok(),
            Some(Bytes::from_static(b"data: {\"a\":1}\r\n\r\n"))
        );
        assert_eq!(
            named("ping", &payload).ok(),
            Some(Bytes::from_static(b"event: ping\ndata: {\"a\":1}\n\n"))
        );
    }
}
