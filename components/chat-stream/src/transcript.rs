//! The conversation's rows: the chat and the user's message, written while
//! the model is being called (once the chat is known to be the caller's),
//! and the reply, written while and after it streams.
//! What the database cannot take (it is out of reach) goes to the
//! write-behind journal and reaches the database when it is back.

use chat_domain::access::{self, ChatAction};
use chat_domain::chat::context::{self, Regeneration};
use chat_domain::chat::conversation::MessageStatus;
use chat_domain::chat::request::{ChatMessage, ChatRequest};
use chat_domain::chat::serving::fallback_title;
use chat_domain::feedback;
use chat_domain::feedback::ReplyRecord;
use chat_domain::identity::Identity;
use chat_domain::resilience::journal::ConversationWrite;
use chat_guest::database;
use chat_guest::{Failure, journal, log, store, writes};
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use uuid::Uuid;

/// Where the reply of one chat is written.
pub struct Transcript {
    chat_id: Uuid,
    owner: String,
    /// The conversation's writes go to the journal: the database was out of
    /// reach for an earlier one, and a later write must not overtake it.
    journaled: Cell<bool>,
}

/// A conversation ready for the model's reply.
pub struct Opened {
    pub transcript: Transcript,
    /// This request created the chat, so it needs a title.
    pub chat_is_new: bool,
}

/// Records the caller, claims the chat (creating it, titled after its first
/// message, or checking it is the caller's) and stores the user's message,
/// under the retry policy. When the database is out of reach the message is
/// journaled instead (its chat's owner is checked when it is replayed) and
/// the chat counts as new if this is its first turn.
///
/// `cleared` is told the conversation to ask the model with
/// (`chat_domain::chat::context`) as soon as nothing but the write itself can
/// refuse the message: a chat the client named has been read and is the
/// caller's (or does not exist yet), or the database is out of reach. The
/// model is called from then on, while the write runs. Someone else's chat
/// is refused before that, so their chat never reaches the model.
pub async fn open(
    identity: &Identity,
    request: &ChatRequest,
    chat_id: Uuid,
    message_id: Uuid,
    cleared: oneshot::Sender<Vec<ChatMessage>>,
) -> Result<Opened, Failure> {
    let cleared = RefCell::new(Some(cleared));
    let clear = |context: Vec<ChatMessage>| {
        if let Some(cleared) = cleared.borrow_mut().take() {
            let _ = cleared.send(context);
        }
    };
    let new_message = ChatMessage {
        id: Some(message_id),
        ..request.new_message().clone()
    };
    if request.chat_id.is_none() {
        // A chat id the server just made is nobody else's, and new.
        clear(context::from_stored(None, &new_message));
    }
    let message = ConversationWrite::UserMessage {
        user_id: identity.user_id.clone(),
        email: identity.email.clone(),
        chat_id,
        title: fallback_title(&request.first_user_message().content),
        message_id,
        text: request.new_message().content.clone(),
    };
    let transcript = Transcript {
        chat_id,
        owner: identity.user_id.clone(),
        journaled: Cell::new(false),
    };
    let stored = database::write(async |db| {
        if request.chat_id.is_some() {
            let rows = db.query(&context::statement(chat_id)).await?;
            let recent = match rows.first() {
                Some(row) => {
                    let (chat, recent) = context::stored_chat(row)?;
                    access::decide(Some(&chat), &identity.user_id, ChatAction::AddMessages)?;
                    recent
                }
                None => None,
            };
            clear(context::from_stored(recent.as_deref(), &new_message));
        }
        writes::apply(db, &message, None).await
    })
    .await;
    match stored {
        Ok(applied) => Ok(Opened {
            transcript,
            chat_is_new: applied.chat_created,
        }),
        Err(failure) if failure.is_unreachable() => {
            clear(context::from_client(&request.messages));
            log::failure(
                "POST /api/chat (streaming the reply; the conversation waits in the journal)",
                &failure,
            );
            transcript.journaled.set(true);
            journal::keep(message, store::now_ms()).await;
            Ok(Opened {
                transcript,
                chat_is_new: request.messages.len() == 1,
            })
        }
        Err(refused) => Err(refused),
    }
}

/// Reads the chat, checks it is the caller's and what its last reply is,
/// and withdraws that reply's rating (its text is about to be replaced).
/// Needs the database: without it the answer is 503.
pub async fn prepare_regeneration(
    identity: &Identity,
    chat_id: Uuid,
) -> Result<Regeneration, Failure> {
    database::write(async |db| {
        let rows = db.query(&context::statement(chat_id)).await?;
        let stored = rows.first().map(context::stored_chat).transpose()?;
        access::decide(
            stored.as_ref().map(|(chat, _)| chat),
            &identity.user_id,
            ChatAction::Regenerate,
        )?;
        let recent = stored.and_then(|(_, recent)| recent);
        let regeneration = context::for_regeneration(recent.as_deref())?;
        if let Some(replaced) = regeneration.replaced {
            let withdraw =
                feedback::withdraw_statement(chat_id, replaced, &identity.user_id, &identity.email);
            db.query(&withdraw).await?;
        }
        Ok(regeneration)
    })
    .await
}

impl Transcript {
    /// The transcript of a chat already stored as `owner`'s.
    pub fn of(chat_id: Uuid, owner: String) -> Self {
        Self {
            chat_id,
            owner,
            journaled: Cell::new(false),
        }
    }

    pub fn chat_id(&self) -> Uuid {
        self.chat_id
    }

    /// Writes the reply as it is now (`started_at`: when it began, its
    /// place in the conversation). One attempt: when the database is out of
    /// reach the reply is journaled. A failure is logged, not raised: the
    /// reply still reaches the user.
    pub async fn save_reply(
        &self,
        message_id: Uuid,
        text: &str,
        trace_id: Option<&str>,
        status: MessageStatus,
        started_at: u64,
    ) {
        let write = ConversationWrite::Reply {
            chat_id: self.chat_id,
            owner: self.owner.clone(),
            message_id,
            text: text.to_owned(),
            trace_id: trace_id.map(str::to_owned),
            status,
        };
        if !self.journaled.get() {
            match database::write_once(async |db| writes::apply(db, &write, None).await).await {
                Ok(_) => return,
                Err(failure) if failure.is_unreachable() => {
                    log::failure("POST /api/chat: saving the reply (journaled)", &failure);
                    self.journaled.set(true);
                }
                Err(failure) => {
                    let context = format!("POST /api/chat: saving the reply ({})", status.as_str());
                    log::failure(&context, &failure);
                    return;
                }
            }
        }
        journal::keep(write, started_at).await;
    }

    /// Keeps the record of a reply sent with a trace id, so it can be rated
    /// even while the database is out of reach.
    pub async fn keep_for_feedback(&self, message_id: Uuid, trace_id: &str) {
        let record = ReplyRecord {
            chat_id: self.chat_id,
            owner: self.owner.clone(),
            trace_id: trace_id.to_owned(),
            kept_at: store::now_ms(),
        };
        journal::keep_reply(message_id, &record).await;
    }
}

/// Gives a new chat its generated title, or journals it when the database
/// is out of reach.
pub async fn set_title(chat_id: Uuid, owner: &str, title: &str) {
    let write = ConversationWrite::Title {
        chat_id,
        owner: owner.to_owned(),
        title: title.to_owned(),
    };
    match database::write_once(async |db| writes::apply(db, &write, None).await).await {
        Ok(_) => {}
        Err(failure) if failure.is_unreachable() => {
            journal::keep(write, store::now_ms()).await;
        }
        Err(failure) => log::failure("POST /api/chat: storing the chat's title", &failure),
    }
}
