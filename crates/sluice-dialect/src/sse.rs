//! Incremental Server-Sent Events parsing (the WHATWG `text/event-stream` format).
//!
//! The relay feeds network chunks in as they arrive and takes complete events out; each event
//! keeps its raw bytes so a passthrough can forward it untouched.

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event exactly as received, including its terminating blank line.
    pub raw: Bytes,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (empty when the event had none, e.g. a comment).
    pub data: Bytes,
}

impl SseEvent {
    /// Whether the event carries data (comments and bare `event:` lines do not).
    pub fn has_data(&self) -> bool {
        !self.data.is_empty()
    }

    /// Encodes an event with an optional `event:` line. `data` is split into `data:` lines at
    /// every line ending the SSE spec knows (`\r\n`, `\n` and a lone `\r`), so no text inside
    /// it can start a field or end the event for any client.
    pub fn encode(event: Option<&str>, data: &str) -> Bytes {
        let mut out = Vec::with_capacity(data.len() + 32);
        Self::encode_into(event, data, &mut out);
        Bytes::from(out)
    }

    /// [`SseEvent::encode`], appended to `out` (a relay's output buffer) without a copy.
    pub fn encode_into(event: Option<&str>, data: &str, out: &mut Vec<u8>) {
        out.reserve(data.len() + 32);
        if let Some(name) = event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        let mut rest = data;
        loop {
            out.extend_from_slice(b"data: ");
            let Some(end) = memchr::memchr2(b'\r', b'\n', rest.as_bytes()) else {
                out.extend_from_slice(rest.as_bytes());
                out.push(b'\n');
                break;
            };
            out.extend_from_slice(&rest.as_bytes()[..end]);
            out.push(b'\n');
            let ending = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + ending..];
        }
        out.push(b'\n');
    }

    fn parse(raw: Bytes) -> SseEvent {
        let mut event = None;
        let mut data_lines: Vec<(usize, usize)> = Vec::new();
        let mut pos = 0;
        while pos < raw.len() {
            let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i);
            let mut line_end = end;
            if line_end > pos && raw[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let line = &raw[pos..line_end];
            let (name, value_start) = match memchr::memchr(b':', line) {
                Some(0) => (&line[..0], None), // comment
                Some(i) => {
                    let mut v = pos + i + 1;
                    if raw.get(v) == Some(&b' ') {
                        v += 1;
                    }
                    (&line[..i], Some(v))
                }
                None => (line, Some(line_end)),
            };
            match (name, value_start) {
                (b"data", Some(v)) => data_lines.push((v, line_end.max(v))),
                (b"event", Some(v)) => {
                    event = Some(String::from_utf8_lossy(&raw[v..line_end.max(v)]).into_owned())
                }
                _ => {}
            }
            pos = end + 1;
        }
        let data = match data_lines.as_slice() {
            [] => Bytes::new(),
            [(s, e)] => raw.slice(*s..*e),
            many => {
                let mut joined = BytesMut::new();
                for (i, (s, e)) in many.iter().enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(b"\n");
                    }
                    joined.extend_from_slice(&raw[*s..*e]);
                }
                joined.freeze()
            }
        };
        SseEvent { raw, event, data }
    }
}

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// Offset up to which `buf` is known to hold no event terminator.
    scanned: usize,
}

impl SseParser {
    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut pos = self.scanned;
        loop {
            let Some(i) = memchr::memchr(b'\n', &self.buf[pos..]) else {
                self.scanned = pos;
                return None;
            };
            let nl = pos + i;
            let line_start = pos;
            pos = nl + 1;
            let line = &self.buf[line_start..nl];
            let blank = line.is_empty() || line == b"\r";
            if blank {
                let raw = self.buf.split_to(pos).freeze();
                self.scanned = 0;
                return Some(SseEvent::parse(raw));
            }
        }
    }

    /// At end of stream: whatever is left, as a final event (servers may omit the last blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        if rest.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        }
        Some(SseEvent::parse(rest))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn collect(parser: &mut SseParser) -> Vec<SseEvent> {
        std::iter::from_fn(|| parser.next_event()).collect()
    }

    #[test]
    fn parses_data_and_event_lines() {
        let mut p = SseParser::default();
        p.push(b"event: message_start\ndata: {\"a\":1}\n\ndata: [DONE]\n\n");
        let events = collect(&mut p);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("message_start"));
        assert_eq!(&events[0].data[..], b"{\"a\":1}");
        assert_eq!(
            &events[0].raw[..],
            b"event: message_start\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(&events[1].data[..], b"[DONE]");
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn handles_crlf_multiline_and_comments() {
        let mut p = SseParser::default();
        p.push(b": keep-alive\r\n\r\ndata:a\r\ndata: b\r\n\r\n");
        let events = collect(&mut p);
        assert_eq!(events.len(), 2);
        assert!(!events[0].has_data());
        assert_eq!(&events[1].data[..], b"a\nb");
    }

    #[test]
    fn finish_returns_unterminated_tail() {
        let mut p = SseParser::default();
        p.push(b"data: tail");
        assert!(p.next_event().is_none());
        assert_eq!(&p.finish().unwrap().data[..], b"tail");
        assert!(p.finish().is_none());
    }

    #[test]
    fn encode_round_trips() {
        let raw = SseEvent::encode(Some("ping"), "{\"x\":\"y\"}");
        let mut p = SseParser::default();
        p.push(&raw);
        let ev = p.next_event().unwrap();
        assert_eq!(ev.event.as_deref(), Some("ping"));
        assert_eq!(&ev.data[..], b"{\"x\":\"y\"}");
        assert_eq!(ev.raw, raw);
    }

    #[test]
    fn encode_splits_data_at_every_line_ending() {
        let raw = SseEvent::encode(None, "a\revent: x\r\nb\nid: 7\r\rc\n");
        assert_eq!(
            &raw[..],
            b"data: a\ndata: event: x\ndata: b\ndata: id: 7\ndata: \ndata: c\ndata: \n\n"
        );
        // What a spec-following client sees: every line (split at \r\n, \n and a lone \r)
        // is a `data:` field until the blank line that ends the event.
        let text = std::str::from_utf8(&raw).unwrap();
        let lines: Vec<&str> = text.split(['\r', '\n']).collect();
        let (body, tail) = lines.split_at(lines.len() - 2);
        assert!(body.iter().all(|l| l.starts_with("data: ")), "{lines:?}");
        assert_eq!(tail, ["", ""]);
    }

    proptest! {
        /// However the bytes are split into network chunks, the same events come out.
        #[test]
        fn chunking_does_not_matter(
            datas in prop::collection::vec("[a-z{}\":, ]{0,20}", 1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let stream: Vec<u8> = datas.iter().flat_map(|d| SseEvent::encode(None, d).to_vec()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut p = SseParser::default();
            let mut got = Vec::new();
            let mut at = 0;
            for point in points.into_iter().chain([stream.len()]) {
                p.push(&stream[at..point]);
                at = point;
                got.extend(collect(&mut p));
            }
            let got: Vec<String> = got.iter().map(|e| String::from_utf8(e.data.to_vec()).unwrap()).collect();
            prop_assert_eq!(got, datas);
        }
    }
}
