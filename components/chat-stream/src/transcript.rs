//! The conversation's rows: the chat and the user's message, written before
//! the model is called, and the reply, written while and after it streams.

use chat_domain::chat_request::ChatRequest;
use chat_domain::conversation::{self, ChatClaim, MessageStatus};
use chat_domain::identity::Identity;
use chat_domain::serving::fallback_title;
use chat_domain::sql::Statement;
use chat_guest::failure::or_when_unreachable;
use chat_guest::{Db, DbError, DbRow, Failure, log, schema};
use uuid::Uuid;

/// Where the reply of one chat is written.
pub struct Transcript {
    db: Db,
    chat_id: Uuid,
}

/// A conversation ready for the model's reply.
pub struct Opened {
    pub transcript: Transcript,
    /// This request created the chat, so it needs a title.
    pub chat_is_new: bool,
}

/// Records the caller, claims the chat (creating it, titled after its first
/// message, or checking it is the caller's) and stores the user's message.
/// `None` when the database is out of reach: the reply then streams without
/// being stored (a later issue keeps it for when the database returns).
pub async fn open(
    identity: &Identity,
    ensure_user: &Statement,
    request: &ChatRequest,
    chat_id: Uuid,
    message_id: Uuid,
) -> Result<Option<Opened>, Failure> {
    let opened = open_reachable(identity, ensure_user, request, chat_id, message_id).await;
    or_when_unreachable(
        opened.map(Some),
        "POST /api/chat (streaming the reply without storing the conversation)",
        || None,
    )
}

/// In one transaction, so a refused request (someone else's chat, a taken
/// message id) leaves nothing behind.
async fn open_reachable(
    identity: &Identity,
    ensure_user: &Statement,
    request: &ChatRequest,
    chat_id: Uuid,
    message_id: Uuid,
) -> Result<Opened, Failure> {
    let db = schema::connect_migrated().await?;
    let chat_is_new = db
        .transaction(async |db: &Db| {
            db.execute(ensure_user).await?;
            let title = fallback_title(&request.first_user_message().content);
            let claim = conversation::claim_chat_statement(chat_id, &identity.user_id, &title);
            let claim = match settled(db, &claim).await? {
                Some(row) => ChatClaim::new(row.text(0)?, &row.text(1)?, row.boolean(2)?),
                None => {
                    return Err(DbError::Decode {
                        message: format!("claiming chat {chat_id} found no row, twice"),
                    }
                    .into());
                }
            };
            claim.authorize(&identity.user_id)?;
            let text = &request.new_message().content;
            let store = conversation::store_user_message_statement(message_id, chat_id, text);
            if settled(db, &store).await?.is_none() {
                return Err(conversation::message_id_taken(message_id).into());
            }
            Ok::<_, Failure>(claim.created)
        })
        .await?;
    Ok(Opened {
        transcript: Transcript { db, chat_id },
        chat_is_new,
    })
}

/// The first row of `statement`, which is run a second time when it answers
/// none: the claim and store statements answer no row when a concurrent
/// request wrote the row after their snapshot was taken, and a second run
/// sees it.
async fn settled(db: &Db, statement: &Statement) -> Result<Option<DbRow>, DbError> {
    for _ in 0..2 {
        if let Some(row) = db.query(statement).await?.into_iter().next() {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

impl Transcript {
    /// Writes the reply as it is now. A failure is logged, not raised: the
    /// reply still reaches the user, and a later write may succeed.
    pub async fn save_reply(
        &self,
        message_id: Uuid,
        text: &str,
        trace_id: Option<&str>,
        status: MessageStatus,
    ) {
        let save = conversation::save_assistant_message_statement(
            message_id,
            self.chat_id,
            text,
            trace_id,
            status,
        );
        if let Err(error) = self.db.execute(&save).await {
            log::failure(
                &format!("POST /api/chat: saving the reply ({})", status.as_str()),
                &error,
            );
        }
    }
}

/// Gives a new chat its generated title, on a connection of its own (the
/// reply's writes go on meanwhile).
pub async fn set_title(chat_id: Uuid, owner: &str, title: &str) {
    let outcome = async {
        let db = Db::connect().await?;
        db.execute(&conversation::set_title_statement(chat_id, owner, title))
            .await
    };
    if let Err(error) = outcome.await {
        log::failure("POST /api/chat: storing the chat's title", &error);
    }
}
