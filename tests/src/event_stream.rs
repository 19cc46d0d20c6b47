//! Reads a `text/event-stream` answer event by event, as it arrives.

use bytes::Bytes;
use chat_domain::sse::SseParser;
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;

pub struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    ready: VecDeque<String>,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            ready: VecDeque::new(),
        }
    }

    /// The data of the next event, as soon as its bytes are in; `None` once
    /// the answer has ended.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self
                    .ready
                    .extend(self.parser.push(&bytes).expect("events of a sane size")),
                Some(Err(error)) => panic!("the event stream broke off: {error}"),
                None => return self.parser.finish(),
            }
        }
    }

    /// Every event still to come, until the answer ends.
    pub async fn rest(mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}
