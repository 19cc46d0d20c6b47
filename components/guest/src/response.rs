//! HTTP answers: JSON bodies, errors as `{"error": "<sentence>"}`, 204, and
//! streams of server-sent events.

use crate::failure::Failure;
use crate::request::{Request, admit, split_body};
use bytes::Bytes;
use chat_domain::ApiError;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{Empty, Full};
use serde::Serialize;
use spin_sdk::http::{BoxBody, box_body};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What every handler answers; spin-sdk turns it into a `wasi:http` response.
/// The body is boxed so one handler can answer JSON or a stream.
pub type HttpResponse = Response<BoxBody>;

/// `body` as JSON with `content-type: application/json`.
pub fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(error) => {
            crate::log::failure("encoding a JSON answer", &error);
            json_bytes(
                StatusCode::INTERNAL_SERVER_ERROR,
                chat_contract::error_body::json("The server could not encode its answer.")
                    .into_bytes(),
            )
        }
    }
}

/// `page` as HTML (the demo MLflow's answer to a path it has no route
/// for, as the real server's web server answers).
pub fn html(status: StatusCode, page: &'static str) -> HttpResponse {
    let mut response = Response::new(box_body(Full::new(Bytes::from_static(page.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The error's status and `{"error": ...}` body; a 405 carries `Allow`.
pub fn error(error: &ApiError) -> HttpResponse {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = chat_contract::error_body::json(&error.message);
    let mut response = json_bytes(status, body.into_bytes());
    if let Some(allow) = error
        .allow
        .as_deref()
        .and_then(|allow| HeaderValue::from_str(allow).ok())
    {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

/// 204 with an empty body.
pub fn no_content() -> HttpResponse {
    let mut response = Response::new(box_body(Empty::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The most bytes of events that wait for one client. A client that falls
/// this far behind is dropped rather than buffered for without limit; the
/// sender carries on (the reply is still read to its end and stored). A
/// sender that can wait instead ([`EventSender::send_paced`]) is held to
/// it.
pub const EVENT_BUFFER_LIMIT: usize = 1024 * 1024;

/// Events on their way to the client, shared by the sender and the body.
#[derive(Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    queued_bytes: usize,
    /// The sender is done: the body ends once the queue is empty.
    finished: bool,
    /// The client fell [`EVENT_BUFFER_LIMIT`] behind and was let go.
    overrun: bool,
    /// The body was dropped: the client is gone.
    body_gone: bool,
    /// The sender could not finish: the body ends in an error.
    failed: bool,
    waker: Option<Waker>,
    /// A paced sender waiting for room.
    room_waker: Option<Waker>,
}

type SharedOutbox = Arc<Mutex<Outbox>>;

fn lock(outbox: &SharedOutbox) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sending end of an [`event_stream`] answer.
pub struct EventSender(SharedOutbox);

impl EventSender {
    /// Queues one frame for the client once fewer than
    /// [`EVENT_BUFFER_LIMIT`] bytes wait for it (at once when none wait,
    /// however large the frame), so a sender that makes its frames as fast
    /// as it likes holds at most that much for a slow client. Answers false
    /// once the client is gone; the frame is then discarded.
    pub async fn send_paced(&self, frame: impl Into<Bytes>) -> bool {
        let mut frame = Some(frame.into());
        std::future::poll_fn(|context| {
            let mut outbox = lock(&self.0);
            if outbox.body_gone {
                return Poll::Ready(false);
            }
            let length = frame.as_ref().map_or(0, Bytes::len);
            if outbox.queued_bytes > 0 && outbox.queued_bytes + length > EVENT_BUFFER_LIMIT {
                outbox.room_waker = Some(context.waker().clone());
                return Poll::Pending;
            }
            outbox.queued_bytes += length;
            outbox.frames.extend(frame.take());
            if let Some(waker) = outbox.waker.take() {
                waker.wake();
            }
            Poll::Ready(true)
        })
        .await
    }

    /// Ends the answer in an error rather than as if it were whole: the
    /// runtime breaks the connection off, and the client sees the answer
    /// failed (a download is marked failed, not saved cut short).
    pub fn fail(self) {
        lock(&self.0).failed = true;
    }

    /// Queues one frame for the client, without waiting for it to be read
    /// (so a slow client never holds up the sender). Answers false once the
    /// client is gone: its body was dropped, or it fell more than
    /// [`EVENT_BUFFER_LIMIT`] behind and its stream was cut; the frame is
    /// then discarded.
    pub fn send(&self, frame: impl Into<Bytes>) -> bool {
        let frame = frame.into();
        let mut outbox = lock(&self.0);
        if outbox.body_gone || outbox.overrun {
            return false;
        }
        if outbox.queued_bytes + frame.len() > EVENT_BUFFER_LIMIT {
            outbox.overrun = true;
            outbox.frames.clear();
            outbox.queued_bytes = 0;
        } else {
            outbox.queued_bytes += frame.len();
            outbox.frames.push_back(frame);
        }
        if let Some(waker) = outbox.waker.take() {
            waker.wake();
        }
        !outbox.overrun
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let mut outbox = lock(&self.0);
        outbox.finished = true;
        if let Some(waker) = outbox.waker.take() {
            waker.wake();
        }
    }
}

/// Why an event stream was cut.
#[derive(Debug, thiserror::Error)]
pub enum StreamCut {
    #[error("the client fell more than {EVENT_BUFFER_LIMIT} bytes of events behind")]
    ClientTooSlow,
    #[error("the server could not finish the answer")]
    SenderFailed,
}

/// The receiving end: the answer's body. A stream cut (a client too slow,
/// a sender that failed) ends in an error, so the runtime breaks the
/// connection off instead of ending it as if the answer were whole.
struct EventBody(SharedOutbox);

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        let mut outbox = lock(&self.0);
        if let Some(frame) = outbox.frames.pop_front() {
            outbox.queued_bytes -= frame.len();
            if let Some(waker) = outbox.room_waker.take() {
                waker.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if outbox.overrun {
            return Poll::Ready(Some(Err(StreamCut::ClientTooSlow)));
        }
        if outbox.failed {
            return Poll::Ready(Some(Err(StreamCut::SenderFailed)));
        }
        if outbox.finished {
            return Poll::Ready(None);
        }
        outbox.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        let mut outbox = lock(&self.0);
        outbox.body_gone = true;
        outbox.frames.clear();
        outbox.queued_bytes = 0;
        if let Some(waker) = outbox.room_waker.take() {
            waker.wake();
        }
    }
}

/// A `200 text/event-stream` answer whose body is what the returned sender
/// sends, each frame passed on as soon as it is sent; the body ends when the
/// sender is dropped. The handler returns the answer at once and sends from
/// a task it spawned.
pub fn event_stream() -> (EventSender, HttpResponse) {
    let (sender, mut response) = streamed("text/event-stream");
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (sender, response)
}

/// A `200` answer of `content_type` whose body is what the returned sender
/// sends, as [`event_stream`]'s is.
pub fn streamed(content_type: &'static str) -> (EventSender, HttpResponse) {
    let outbox = SharedOutbox::default();
    let mut response = Response::new(box_body(EventBody(Arc::clone(&outbox))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (EventSender(outbox), response)
}

/// Answers `request` with `route`, the component's handler: refuses what no
/// route takes first ([`admit`]: an oversized body, a cross-site or non-JSON
/// write), turns a failure into its JSON error (a
/// server-side failure is logged, labelled with the method and path), and
/// receives whatever body the route left unread before answering, so the
/// client always gets the answer on a connection that stays usable.
pub async fn serve(
    request: spin_sdk::http::Request,
    route: impl AsyncFnOnce(Request) -> Result<HttpResponse, Failure>,
) -> HttpResponse {
    let context = format!("{} {}", request.method(), request.uri().path());
    let (request, unread) = split_body(request);
    let outcome = match admit(&request, &unread) {
        Ok(()) => route(request).await,
        Err(refused) => Err(refused.into()),
    };
    unread.discard().await;
    outcome.unwrap_or_else(|failure| error(&failure.into_api_error(&context)))
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(box_body(Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;
    use http_body_util::BodyExt;

    /// The body of a response that is ready without any I/O.
    fn body_text(response: HttpResponse) -> String {
        let mut collect = std::pin::pin!(response.into_body().collect());
        match collect
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(collected)) => String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
            other => panic!("a full body is ready at once: {other:?}"),
        }
    }

    #[test]
    fn errors_are_json_with_their_status() {
        let response = error(&ApiError::bad_request("limit must be a whole number"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert!(response.headers().get(ALLOW).is_none());
        assert_eq!(
            body_text(response),
            r#"{"error":"limit must be a whole number"}"#
        );
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let response = error(&ApiError::method_not_allowed("GET"));
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET");
    }

    #[test]
    fn an_impossible_status_becomes_500() {
        let response = error(&ApiError::new(42, "odd"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn an_event_stream_passes_frames_on_until_the_sender_is_dropped() {
        let (sender, response) = event_stream();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        assert!(sender.send("data: 1\n\n"));
        assert!(sender.send(String::from("data: 2\n\n")));
        drop(sender);
        assert_eq!(body_text(response), "data: 1\n\ndata: 2\n\n");
    }

    #[test]
    fn an_event_sender_knows_when_the_client_is_gone() {
        let (sender, response) = event_stream();
        drop(response);
        assert!(!sender.send("data: lost\n\n"));
    }

    #[test]
    fn an_event_stream_lets_go_of_a_client_that_falls_too_far_behind() {
        let (sender, response) = event_stream();
        let frame = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut accepted = 0;
        while sender.send(frame.clone()) {
            accepted += 1;
        }
        assert_eq!(accepted, EVENT_BUFFER_LIMIT / frame.len());
        assert!(!sender.send("data: later\n\n"), "the client stays gone");
        let mut body = std::pin::pin!(response.into_body());
        let polled = body
            .as_mut()
            .poll_frame(&mut Context::from_waker(Waker::noop()));
        assert!(
            matches!(polled, Poll::Ready(Some(Err(_)))),
            "the stream ends in an error, not as if the reply were whole"
        );
    }

    #[test]
    fn a_client_that_keeps_up_gets_every_frame_however_many() {
        let (sender, response) = event_stream();
        let mut body = std::pin::pin!(response.into_body());
        let frame = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..(4 * EVENT_BUFFER_LIMIT / frame.len()) {
            assert!(sender.send(frame.clone()));
            let polled = body
                .as_mut()
                .poll_frame(&mut Context::from_waker(Waker::noop()));
            assert!(matches!(polled, Poll::Ready(Some(Ok(_)))));
        }
    }

    /// Polls `future` once, with no I/O to wait for.
    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_paced_sender_waits_while_a_slow_client_has_enough_to_read() {
        let (sender, response) = streamed("application/jsonl");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/jsonl");
        let mut body = Box::pin(response.into_body());
        let frame = Bytes::from(vec![b'x'; EVENT_BUFFER_LIMIT / 2]);
        for _ in 0..2 {
            let sent = std::pin::pin!(sender.send_paced(frame.clone()));
            assert_eq!(poll_once(sent), Poll::Ready(true));
        }
        let mut third = std::pin::pin!(sender.send_paced(frame.clone()));
        assert_eq!(poll_once(third.as_mut()), Poll::Pending, "full: it waits");
        let read = body
            .as_mut()
            .poll_frame(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(read, Poll::Ready(Some(Ok(_)))));
        assert_eq!(poll_once(third.as_mut()), Poll::Ready(true), "room again");
        // However large, a frame goes when nothing waits.
        drain(body.as_mut());
        let huge = std::pin::pin!(sender.send_paced(vec![b'y'; 3 * EVENT_BUFFER_LIMIT]));
        assert_eq!(poll_once(huge), Poll::Ready(true));
        drop(body);
        let gone = std::pin::pin!(sender.send_paced("late"));
        assert_eq!(poll_once(gone), Poll::Ready(false), "the client is gone");
    }

    /// Reads every frame that is ready.
    fn drain(mut body: Pin<&mut impl Body<Data = Bytes>>) {
        while let Poll::Ready(Some(Ok(_))) = body
            .as_mut()
            .poll_frame(&mut Context::from_waker(Waker::noop()))
        {}
    }

    #[test]
    fn a_failed_sender_ends_the_answer_in_an_error_after_what_it_sent() {
        let (sender, response) = streamed("text/markdown");
        let mut body = std::pin::pin!(response.into_body());
        assert!(sender.send("# Title\n"));
        sender.fail();
        let mut context = Context::from_waker(Waker::noop());
        assert!(matches!(
            body.as_mut().poll_frame(&mut context),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(matches!(
            body.as_mut().poll_frame(&mut context),
            Poll::Ready(Some(Err(_)))
        ));
    }

    #[test]
    fn no_content_is_empty() {
        let response = no_content();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(body_text(response), "");
    }
}
