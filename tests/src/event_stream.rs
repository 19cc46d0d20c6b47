//! Reads a `text/event-stream` answer event by event, as it arrives.

use crate::sse::EventReader;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;

pub struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    /// The tests' own reader, not the app's parser.
    reader: Option<EventReader>,
    ready: VecDeque<String>,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            reader: Some(EventReader::new()),
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
            let reader = self.reader.as_mut()?;
            match self.body.next().await {
                Some(Ok(bytes)) => self.ready.extend(reader.push(&bytes)),
                Some(Err(error)) => panic!("the event stream broke off: {error}"),
                None => {
                    let reader = self.reader.take().expect("read above");
                    let last = reader.finish().expect("the answer ends between events");
                    self.ready.extend(last);
                }
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
