//! Performs the writes of a conversation, the same way whether they happen
//! now or are replayed from the write-behind journal after an outage.

use crate::failure::Failure;
use crate::postgres::{Db, DbError, DbRow};
use chat_domain::conversation::{self, ChatClaim, ReplyRow};
use chat_domain::journal::ConversationWrite;
use chat_domain::sql::Statement;
use chat_domain::users;

/// What a write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// A user's message created its chat (which then needs a title).
    pub chat_created: bool,
}

/// Performs `write`; `written_at` is the time a replayed write happened
/// (`None`: now). A user's message is refused, with nothing written, when its
/// chat is someone else's (403) or its id is another message's (409).
pub async fn apply(
    db: &Db,
    write: &ConversationWrite,
    written_at: Option<u64>,
) -> Result<Applied, Failure> {
    match write {
        ConversationWrite::UserMessage {
            user_id,
            email,
            chat_id,
            title,
            message_id,
            text,
        } => {
            // In one transaction, so a refused message leaves nothing behind.
            let chat_created = db
                .transaction(async |db: &Db| {
                    db.execute(&users::record_user_statement(user_id, email))
                        .await?;
                    let claim =
                        conversation::claim_chat_statement(*chat_id, user_id, title, written_at);
                    let claim = match settled(db, &claim).await? {
                        Some(row) => ChatClaim::from_row(&row)?,
                        None => {
                            return Err(DbError::Decode {
                                message: format!("claiming chat {chat_id} found no row, twice"),
                            }
                            .into());
                        }
                    };
                    claim.authorize(user_id)?;
                    let store = conversation::store_user_message_statement(
                        *message_id,
                        *chat_id,
                        text,
                        written_at,
                    );
                    if settled(db, &store).await?.is_none() {
                        return Err(conversation::message_id_taken(*message_id).into());
                    }
                    Ok::<_, Failure>(claim.created)
                })
                .await?;
            Ok(Applied { chat_created })
        }
        ConversationWrite::Reply {
            chat_id,
            owner,
            message_id,
            text,
            trace_id,
            status,
        } => {
            let row = ReplyRow {
                message_id: *message_id,
                chat_id: *chat_id,
                owner,
            };
            let save = conversation::save_assistant_message_statement(
                row,
                text,
                trace_id.as_deref(),
                *status,
                written_at,
            );
            db.execute(&save).await?;
            Ok(Applied {
                chat_created: false,
            })
        }
        ConversationWrite::Title {
            chat_id,
            owner,
            title,
        } => {
            db.execute(&conversation::set_title_statement(*chat_id, owner, title))
                .await?;
            Ok(Applied {
                chat_created: false,
            })
        }
    }
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
