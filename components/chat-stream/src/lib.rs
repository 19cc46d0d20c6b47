//! The chat-stream component: `POST /api/chat`. Stores the user's message
//! while the model is already being called, streams the model's reply to the
//! client as server-sent events while storing it, and names a new chat, all
//! without losing the reply: the endpoint is read to its end even when the
//! client leaves, text is checkpointed while it streams, and a failed reply
//! keeps what arrived. `POST /api/chat/:chatId/stop` ends a reply early;
//! `POST /api/chat/:chatId/regenerate` streams a new one into the last
//! reply's place; `GET /api/chat/:chatId/stream` follows the one being
//! written, from its checkpoints. A temporary chat's reply (`temporary.rs`)
//! streams the same way and is kept nowhere.

mod follow;
mod stop;
mod temporary;
mod transcript;
mod upstream;

use chat_domain::chat::conversation::{MessageStatus, checkpoint_due_in};
use chat_domain::chat::relay::{DONE_FRAME, MetaEvent, ReplyRelay, data_frame, error_frame};
use chat_domain::chat::request::{ChatMessage, ChatRequest};
use chat_domain::chat::serving::{self, UpstreamFailure};
use chat_domain::http::routes::{ChatHandler, Found, Handler};
use chat_domain::identity::users;
use chat_guest::deadline::within;
use chat_guest::request::{Request, identify, read_body};
use chat_guest::response::{self, EventSender, HttpResponse};
use chat_guest::router;
use chat_guest::{Failure, journal, log, store};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, LocalBoxFuture, select};
use http_body_util::BodyExt;
use spin_sdk::wit_bindgen::spawn;
use std::pin::pin;
use std::time::{Duration, Instant};
use stop::StopWatch;
use transcript::Transcript;
use upstream::Endpoint;
use uuid::Uuid;

/// The most of a title answer that is read.
const TITLE_ANSWER_BYTES: usize = 64 * 1024;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Chat(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, route).await
}

/// The model's answer to the reply request once its head is in, with how
/// long the endpoint may stay silent.
type Upstream = Result<(spin_sdk::http::Response, Duration), UpstreamFailure>;

/// Everything that can be refused is checked before the stream begins, so
/// those answers are plain JSON errors; after that, failures are events.
///
/// The model is called as soon as the chat is known to be the caller's,
/// while the user's message is being written, so the write's round trips
/// overlap the model's first token; nothing is sent to the client before
/// the write has committed (or been journaled), and a write that is refused
/// (the message id is another message's) cancels the call.
async fn route(request: Request, found: Found<ChatHandler>) -> Result<HttpResponse, Failure> {
    match found.handler {
        ChatHandler::Send => chat(request).await,
        ChatHandler::Stop => stop::request(&request, found.chat_id()?).await,
        ChatHandler::Regenerate => regenerate(&request, found.chat_id()?).await,
        ChatHandler::Follow => follow::request(&request, found.chat_id()?).await,
    }
}

async fn chat(request: Request) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let chat = ChatRequest::parse(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    if chat.temporary {
        return temporary::chat(identity, chat).await;
    }
    users::check_storable(&identity)?;
    let chat_id = chat.chat_id.unwrap_or_else(Uuid::new_v4);
    let message_id = chat.new_message().id.unwrap_or_else(Uuid::new_v4);
    let endpoint = Endpoint::configured(identity.access_token.as_deref()).await;

    let (cleared, on_cleared) = oneshot::channel();
    let call = call_model(endpoint.clone(), on_cleared);
    let write = transcript::open(&identity, &chat, chat_id, message_id, cleared);
    let (opened, upstream) = match select(pin!(write), call).await {
        Either::Left((opened, call)) => (opened?, call),
        Either::Right((answered, write)) => (write.await?, async { answered }.boxed_local()),
    };

    if let (true, Ok(endpoint)) = (opened.chat_is_new, &endpoint) {
        let first_message = chat.first_user_message().content.clone();
        spawn(name_chat(
            endpoint.clone(),
            chat_id,
            identity.user_id,
            first_message,
        ));
    }
    let server_made_chat_id = chat.chat_id.is_none().then_some(chat_id);
    let keeping = Keeping::Stored {
        id: Uuid::new_v4(),
        transcript: opened.transcript,
    };
    Ok(stream_reply(
        keeping,
        store::now_ms(),
        server_made_chat_id,
        upstream,
    ))
}

/// Replaces the chat's last reply by a new one, asked with the stored
/// conversation up to the user's last message and streamed as `POST
/// /api/chat` streams; the replaced reply's rating goes with its text.
async fn regenerate(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    users::check_storable(&identity)?;
    let endpoint = Endpoint::configured(identity.access_token.as_deref()).await;
    let regeneration = transcript::prepare_regeneration(&identity, chat_id).await?;
    let (cleared, on_cleared) = oneshot::channel();
    let _ = cleared.send(regeneration.context);
    let upstream = call_model(endpoint, on_cleared);
    let keeping = Keeping::Stored {
        id: regeneration.replaced.unwrap_or_else(Uuid::new_v4),
        transcript: Transcript::of(chat_id, identity.user_id),
    };
    Ok(stream_reply(keeping, store::now_ms(), None, upstream))
}

/// Answers with the event stream of a reply that began at `started_at`,
/// which a task of its own relays from `upstream` and keeps as `keeping`
/// says.
fn stream_reply(
    keeping: Keeping,
    started_at: u64,
    server_made_chat_id: Option<Uuid>,
    upstream: LocalBoxFuture<'static, Upstream>,
) -> HttpResponse {
    let (events, response) = response::event_stream();
    let stop = match &keeping {
        Keeping::Stored { transcript, .. } => StopWatch::for_chat(transcript.chat_id(), started_at),
        Keeping::Temporary(marker) => marker.stop_watch(),
    };
    let reply = Reply {
        keeping,
        started_at,
        server_made_chat_id,
        events,
        stop,
    };
    spawn(reply.relay(upstream));
    // Expired reply records and stop signals go (at most hourly per
    // instance; see journal).
    spawn(journal::prune_expired_records());
    response
}

/// Calls the model once `cleared` says the chat is the caller's, with the
/// conversation it tells; the call never starts when the write refused the
/// message first.
fn call_model(
    endpoint: Result<Endpoint, UpstreamFailure>,
    cleared: oneshot::Receiver<Vec<ChatMessage>>,
) -> LocalBoxFuture<'static, Upstream> {
    async move {
        let endpoint = endpoint?;
        let Ok(context) = cleared.await else {
            // Only a refused write drops the signal, and then this call is dropped too.
            return std::future::pending().await;
        };
        let body = serving::reply_request_body(endpoint.api, &context);
        let response = endpoint.post(body, "text/event-stream").await?;
        Ok((response, endpoint.timeout))
    }
    .boxed_local()
}

/// One assistant reply on its way from the endpoint to the client and, but
/// for a temporary chat's, the database.
struct Reply {
    keeping: Keeping,
    /// When the reply began: its place in the conversation if it has to
    /// wait in the journal.
    started_at: u64,
    server_made_chat_id: Option<Uuid>,
    events: EventSender,
    stop: StopWatch,
}

/// What becomes of a reply besides reaching the client.
enum Keeping {
    /// Stored as message `id` of the chat, checkpointed while it streams.
    Stored { id: Uuid, transcript: Transcript },
    /// Kept nowhere (a temporary chat): only its marker, for a stop, while
    /// it streams.
    Temporary(temporary::Marker),
}

/// How a reply that did not fail ended.
enum Ending {
    /// The endpoint finished it.
    Complete,
    /// Its owner stopped it, or (a temporary chat's) its client left, which
    /// nothing would keep the rest for; the endpoint's request was closed.
    Stopped,
}

impl Reply {
    /// Streams the reply, then stores it in full (or what arrived, marked as
    /// such) BEFORE telling the client it is over, so a client that reads
    /// the chat right after `[DONE]` finds it.
    async fn relay(self, upstream: LocalBoxFuture<'static, Upstream>) {
        let mut relay = ReplyRelay::new();
        // A model that has not answered yet can be stopped too; dropping
        // its call closes the request.
        let answered = match select(upstream, pin!(self.stop.until_requested())).await {
            Either::Left((answered, _)) => Some(answered),
            Either::Right(_) => None,
        };
        let outcome = match answered {
            None => Ok(Ending::Stopped),
            Some(Ok((response, timeout))) => self.stream(response, timeout, &mut relay).await,
            Some(Err(failure)) => Err(failure),
        };
        if relay.skipped() > 0 {
            let skipped = format!("{} events whose data was not JSON", relay.skipped());
            log::failure("POST /api/chat: the model endpoint's stream had", &skipped);
        }
        let stopped = matches!(outcome, Ok(Ending::Stopped));
        match &self.keeping {
            Keeping::Stored { id, transcript } => {
                let status = if stopped {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::of_ended_reply(outcome.is_ok(), relay.text())
                };
                let (text, trace_id) = (relay.text(), relay.trace_id());
                transcript
                    .save_reply(*id, text, trace_id, status, self.started_at)
                    .await;
            }
            // Gone before the client hears the end, so nothing is left after it.
            Keeping::Temporary(marker) => marker.remove().await,
        }
        // A truncated reply is told as an error, and still ends as a reply
        // does: the part that came is stored (incomplete) under its id.
        let ends_with_meta = match &outcome {
            Ok(_) => true,
            Err(failure) => {
                log::failure("POST /api/chat: the reply failed", &failure.message());
                self.events.send(error_frame(failure));
                *failure == UpstreamFailure::Truncated
            }
        };
        if ends_with_meta {
            let meta = match &self.keeping {
                Keeping::Stored { id, transcript } => {
                    if let Some(trace_id) = relay.trace_id() {
                        transcript.keep_for_feedback(*id, trace_id).await;
                    }
                    MetaEvent::new(*id, relay.trace_id(), self.server_made_chat_id)
                }
                Keeping::Temporary(_) => {
                    MetaEvent::temporary(relay.trace_id(), self.server_made_chat_id)
                }
            };
            let meta = if stopped { meta.stopped() } else { meta };
            self.events.send(data_frame(&meta));
            self.events.send(DONE_FRAME);
        }
    }

    /// Forwards each event the moment its bytes are in, and checkpoints the
    /// text of a stored reply at most every [`CHECKPOINT_INTERVAL`](chat_domain::chat::conversation::CHECKPOINT_INTERVAL)
    /// while it streams. A client that left changes nothing for a stored
    /// reply: the endpoint is read to its end all the same, so the whole
    /// reply is stored; a temporary one ends there. Between
    /// frames (never during a checkpoint's write) it looks for a stop on the
    /// watch's timer; stopping drops the body, which closes the request.
    async fn stream(
        &self,
        response: spin_sdk::http::Response,
        timeout: Duration,
        relay: &mut ReplyRelay,
    ) -> Result<Ending, UpstreamFailure> {
        let mut body = response.into_body();
        let mut last_heard = Instant::now();
        let mut last_checkpoint = Instant::now();
        // How much text the last checkpoint held; none written yet.
        let mut checkpointed_len: Option<usize> = None;
        loop {
            if self.stop.stop_requested().await {
                return Ok(Ending::Stopped);
            }
            let stored = match &self.keeping {
                Keeping::Stored { id, transcript } => Some((*id, transcript)),
                Keeping::Temporary(_) => None,
            };
            let due = stored.and(checkpoint_due_in(
                relay.text().len() > checkpointed_len.unwrap_or(0),
                checkpointed_len.is_some(),
                last_checkpoint.elapsed(),
            ));
            if let (Some((id, transcript)), Some(Duration::ZERO)) = (stored, due) {
                let (text, trace_id) = (relay.text(), relay.trace_id());
                let status = MessageStatus::Streaming;
                transcript
                    .save_reply(id, text, trace_id, status, self.started_at)
                    .await;
                last_checkpoint = Instant::now();
                checkpointed_len = Some(relay.text().len());
                continue;
            }
            let silence_left = timeout.saturating_sub(last_heard.elapsed());
            let wait = due
                .map_or(silence_left, |due| due.min(silence_left))
                .min(self.stop.next_look_in());
            let frame = match within(wait, body.frame()).await {
                Some(frame) => frame,
                None if last_heard.elapsed() >= timeout => {
                    return Err(UpstreamFailure::TimedOut);
                }
                None => continue, // a checkpoint or a look for a stop is due
            };
            last_heard = Instant::now();
            match frame {
                None => {
                    self.forward(relay.end_of_body());
                    return if relay.is_complete() {
                        Ok(Ending::Complete)
                    } else {
                        Err(UpstreamFailure::Truncated)
                    };
                }
                Some(Err(error)) => {
                    log::failure("POST /api/chat: reading the model endpoint's reply", &error);
                    return Err(UpstreamFailure::BrokeOff);
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let heard = self.forward(relay.receive(&data)?);
                        if !heard && matches!(self.keeping, Keeping::Temporary(_)) {
                            return Ok(Ending::Stopped);
                        }
                        if relay.upstream_done() {
                            return Ok(Ending::Complete);
                        }
                    }
                }
            }
        }
    }

    /// Sends frames on; once the client is gone they are dropped unread,
    /// and the answer is false.
    fn forward(&self, frames: Vec<String>) -> bool {
        frames.into_iter().all(|frame| self.events.send(frame))
    }
}

/// Asks the endpoint for a title for a new chat (at once, alongside the
/// reply) and stores it when it comes. The chat was created with the
/// fallback title, which stays when this fails.
async fn name_chat(endpoint: Endpoint, chat_id: Uuid, owner: String, first_message: String) {
    let answer = async {
        let response = endpoint
            .post(
                serving::title_request_body(endpoint.api, &first_message),
                "application/json",
            )
            .await?;
        endpoint.read_start(response, TITLE_ANSWER_BYTES).await
    };
    match answer.await {
        Ok(answer) => match serving::title_from_answer(&answer) {
            Some(title) => transcript::set_title(chat_id, &owner, &title).await,
            None => log::failure(
                "POST /api/chat: the title answer",
                &"held no title; the chat keeps its first words as title",
            ),
        },
        Err(failure) => log::failure("POST /api/chat: generating a title", &failure.message()),
    }
}
