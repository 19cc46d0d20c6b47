//! Server-sent events (the WHATWG "event stream" format), read incrementally:
//! bytes arrive in network reads that need not line up with events, so the
//! parser keeps the unfinished line and event between reads.
//!
//! Only what a model-serving endpoint's stream needs is kept: the `data` of
//! each event (several `data:` lines joined by `\n`). Comments (`:` lines,
//! often keep-alives), `event`, `id`, `retry` and unknown fields are skipped.
//! Lines end with CRLF, LF or CR, also when a CRLF is split between reads.

/// The most bytes one event (or one line) may take: an upstream that never
/// ends a line cannot make the parser buffer without bound.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// An event grew past [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event of the stream is larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

/// Turns a byte stream into the data of its events, read by read.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The data of the event being read; `None` until a `data` field.
    data: Option<String>,
    /// The last byte read was a CR: an LF right after it ends no other line.
    after_cr: bool,
    /// A line has been completed: a byte order mark is only skipped before.
    past_first_line: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `bytes` and answers the data of every event they complete, in
    /// order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if let Some(data) = self.end_line() {
                        events.push(data);
                    }
                }
                _ => {
                    self.line.push(byte);
                    let pending = self.data.as_ref().map_or(0, String::len);
                    if self.line.len() + pending > MAX_EVENT_BYTES {
                        return Err(EventTooLarge);
                    }
                }
            }
        }
        Ok(events)
    }

    /// The stream ended. Unlike a browser, which drops an event the stream
    /// did not close with a blank line, this answers it: an upstream that
    /// ends cleanly has said all it had to say, and its last words count.
    pub fn finish(&mut self) -> Option<String> {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.data.take()
    }

    /// Interprets the line just ended; answers an event's data when the line
    /// was blank and ended one.
    fn end_line(&mut self) -> Option<String> {
        let mut line = std::mem::take(&mut self.line);
        if !std::mem::replace(&mut self.past_first_line, true) && line.starts_with(BOM) {
            line.drain(..BOM.len());
        }
        if line.is_empty() {
            return self.data.take();
        }
        // CR and LF never occur inside a UTF-8 sequence, so a line is whole.
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` one after another and collects every event.
    fn parse(reads: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for read in reads {
            events.extend(parser.push(read).unwrap());
        }
        events.extend(parser.finish());
        events
    }

    #[test]
    fn one_event_per_blank_line() {
        assert_eq!(
            parse(&[b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"]),
            ["{\"a\":1}", "{\"b\":2}"]
        );
    }

    #[test]
    fn an_event_split_across_reads_at_every_byte() {
        let stream = b"data: {\"text\":\"h\xC3\xA9llo\"}\r\n\r\ndata: [DONE]\r\n\r\n";
        for cut in 0..stream.len() {
            let (first, second) = stream.split_at(cut);
            assert_eq!(
                parse(&[first, second]),
                ["{\"text\":\"h\u{e9}llo\"}", "[DONE]"],
                "cut at {cut}"
            );
        }
        let byte_by_byte: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse(&byte_by_byte).len(), 2);
    }

    #[test]
    fn an_event_is_answered_by_the_read_that_completes_it() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: 1\n").unwrap().is_empty());
        assert_eq!(parser.push(b"\ndata: 2").unwrap(), ["1"]);
        assert!(parser.push(b"\n").unwrap().is_empty());
        assert_eq!(parser.push(b"\n").unwrap(), ["2"]);
    }

    #[test]
    fn crlf_lf_and_cr_all_end_lines() {
        for stream in [
            &b"data: x\r\n\r\n"[..],
            b"data: x\n\n",
            b"data: x\r\r",
            b"data: x\r\n\n",
        ] {
            assert_eq!(parse(&[stream]), ["x"], "{stream:?}");
        }
        // A CR and its LF in separate reads are one line end, not two.
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: a\r").unwrap().is_empty());
        assert!(parser.push(b"\ndata: b\r").unwrap().is_empty());
        assert_eq!(parser.push(b"\n\r\n").unwrap(), ["a\nb"]);
    }

    #[test]
    fn data_lines_are_joined_with_newlines() {
        assert_eq!(
            parse(&[b"data: {\n", b"data:  \"a\": 1\ndata:}\n\n"]),
            ["{\n \"a\": 1\n}"]
        );
    }

    #[test]
    fn comments_keep_alives_and_other_fields_are_skipped() {
        let stream = b": keep-alive\n\n:\n\nevent: delta\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n\n\nevent: ping\n\n";
        assert_eq!(parse(&[stream]), ["x"]);
    }

    #[test]
    fn a_field_without_colon_or_space_follows_the_spec() {
        // `data` alone is an empty data line; only one space is stripped.
        assert_eq!(parse(&[b"data\n\n"]), [""]);
        assert_eq!(parse(&[b"data:  two\n\n"]), [" two"]);
        assert_eq!(parse(&[b"data:x:y\n\n"]), ["x:y"]);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_only_at_the_start() {
        assert_eq!(parse(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]), ["x"]);
        assert_eq!(
            parse(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]),
            ["x"],
            "a BOM later makes an unknown field"
        );
    }

    #[test]
    fn the_last_event_counts_without_its_blank_line() {
        assert_eq!(parse(&[b"data: a\n\ndata: b"]), ["a", "b"]);
        assert_eq!(parse(&[b"data: a\n\ndata: b\n"]), ["a", "b"]);
        assert_eq!(parse(&[b"data: a\n\n: bye"]), ["a"]);
    }

    #[test]
    fn a_line_that_never_ends_is_refused() {
        let mut parser = SseParser::new();
        let chunk = vec![b'x'; 64 * 1024];
        let mut outcome = Ok(Vec::new());
        for _ in 0..=(MAX_EVENT_BYTES / chunk.len()) {
            outcome = parser.push(&chunk);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(EventTooLarge));
    }

    #[test]
    fn many_data_lines_count_towards_the_limit() {
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(1024 * 1024));
        let outcome: Result<Vec<_>, _> = (0..5).map(|_| parser.push(line.as_bytes())).collect();
        assert_eq!(outcome, Err(EventTooLarge));
    }
}
