//! An independent reader of `text/event-stream`, written from the WHATWG
//! "server-sent events" parsing rules and sharing no code with the app's
//! parser (`chat_domain::http::sse`), so a bug there cannot hide in what the tests
//! see. It is strict where a test should be: a stream that ends inside an
//! event is reported, not silently completed.

/// Reads the data of each event as its bytes arrive.
#[derive(Default)]
pub struct EventReader {
    /// Bytes of the line being read.
    pending: Vec<u8>,
    /// The data lines of the event being read, each followed by `\n`.
    data: String,
    /// Whether anything of the stream was read (a leading BOM is skipped).
    started: bool,
}

impl EventReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `bytes`; answers the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        if !self.started && self.pending.len() >= 3 {
            self.started = true;
            if self.pending.starts_with(b"\xEF\xBB\xBF") {
                self.pending.drain(..3);
            }
        }
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\r' || b == b'\n') {
            // A CR may be the first half of a CRLF that has not arrived yet.
            let terminator = match (self.pending[end], self.pending.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => break,
                _ => 1,
            };
            let line: Vec<u8> = self.pending.drain(..end + terminator).take(end).collect();
            let line = String::from_utf8(line).expect("event stream lines are UTF-8");
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    /// The stream ended: answers the event a final CR completes, or an error
    /// when the stream ended inside an event (bytes or data lines not closed
    /// by a blank line).
    pub fn finish(mut self) -> Result<Option<String>, String> {
        let mut last = None;
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
            let line = String::from_utf8(std::mem::take(&mut self.pending))
                .map_err(|_| "a line that is not UTF-8".to_owned())?;
            last = self.line(&line);
        }
        let unterminated = String::from_utf8_lossy(&self.pending);
        if unterminated.is_empty() && self.data.is_empty() {
            Ok(last)
        } else {
            Err(format!(
                "the stream ended inside an event: data {:?}, then {unterminated:?}",
                self.data
            ))
        }
    }

    fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            let data = std::mem::take(&mut self.data);
            return data.strip_suffix('\n').map(str::to_owned);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push_str(value);
            self.data.push('\n');
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> (Vec<String>, Result<(), String>) {
        let mut reader = EventReader::new();
        let mut events: Vec<String> = chunks.iter().flat_map(|chunk| reader.push(chunk)).collect();
        let end = reader.finish().map(|last| events.extend(last));
        (events, end)
    }

    #[test]
    fn reads_events_as_the_spec_says() {
        let (events, end) = read_all(&[
            b"\xEF\xBB\xBFdata: one\n\n",
            b": a comment\nevent: x\nid: 7\ndata:two\ndata:  three\n\n",
            b"data\n\n",
            b"\n\n",
            b"data: crlf\r\n\r\ndata: cr\r\r",
        ]);
        assert_eq!(events, ["one", "two\n three", "", "crlf", "cr"]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn events_split_anywhere_read_the_same() {
        let stream = b"data: {\"a\":1}\r\n\r\ndata: x\rdata: y\r\rdata: \xC3\xA9\n\n";
        let (whole, _) = read_all(&[stream]);
        for cut in 0..stream.len() {
            let (events, end) = read_all(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(events, whole, "cut at {cut}");
            assert_eq!(end, Ok(()), "cut at {cut}");
        }
        assert_eq!(whole, ["{\"a\":1}", "x\ny", "é"]);
    }

    #[test]
    fn a_stream_that_ends_inside_an_event_is_reported() {
        assert!(read_all(&[b"data: cut"]).1.is_err());
        assert!(read_all(&[b"data: cut\n"]).1.is_err());
        assert_eq!(read_all(&[b"data: whole\n\n"]).1, Ok(()));
    }

    /// The app's parser and this one agree on what the app and its model
    /// endpoints send, however the bytes are split.
    #[test]
    fn the_apps_parser_agrees_with_this_one() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}\n\n\
                      : keep-alive\n\nevent: message\r\ndata: a\r\ndata: b\r\n\r\n\
                      data:[DONE]\n\n";
        let bytes = stream.as_bytes();
        for step in 1..=bytes.len() {
            let mut ours = EventReader::new();
            let mut apps = chat_domain::http::sse::SseParser::new();
            let (mut seen_ours, mut seen_apps) = (Vec::new(), Vec::new());
            for chunk in bytes.chunks(step) {
                seen_ours.extend(ours.push(chunk));
                seen_apps.extend(apps.push(chunk).expect("small events"));
            }
            assert_eq!(seen_apps, seen_ours, "chunks of {step} bytes");
        }
    }
}

/// The `meta` event of a whole event stream's text (`POST /api/chat`'s);
/// panics, showing the stream, when it has none.
pub fn meta_event(stream: &str) -> serde_json::Value {
    EventReader::new()
        .push(stream.as_bytes())
        .iter()
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .find(|event| event["type"] == "meta")
        .unwrap_or_else(|| panic!("no meta event in {stream:?}"))
}
