//! Performs the writes of a conversation, the same way whether they happen
//! now or are replayed from the write-behind journal after an outage.

use crate::failure::Failure;
use crate::postgres::{Db, DbError, DbRow};
use chat_domain::chat::conversation::{self, ReplyRow, TurnOutcome, UserTurn};
use chat_domain::database::sql::Statement;
use chat_domain::feedback::{self, Rating, Target};
use chat_domain::resilience::journal::ConversationWrite;

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
            let turn = UserTurn {
                chat_id: *chat_id,
                message_id: *message_id,
                caller: user_id,
                email,
                title,
                text,
            };
            let chat_created = store_user_turn(db, &turn, written_at).await?;
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
        ConversationWrite::Vote {
            chat_id,
            message_id,
            owner,
            email,
            is_upvoted,
            comment,
        } => {
            let statement = match is_upvoted {
                Some(is_upvoted) => Rating {
                    chat_id: *chat_id,
                    message_id: *message_id,
                    is_upvoted: *is_upvoted,
                    comment: comment.clone(),
                }
                .statement(owner, email),
                None => feedback::withdraw_statement(*chat_id, *message_id, owner, email),
            };
            rate(db, &statement, owner).await?;
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

/// Stores the user's turn in one statement, run a second time when a
/// concurrent write left the first run unsettled; answers whether the chat
/// was created. A refused turn leaves nothing behind: a chat that the first
/// run created before the message id turned out to be taken is removed.
async fn store_user_turn(
    db: &Db,
    turn: &UserTurn<'_>,
    written_at: Option<u64>,
) -> Result<bool, Failure> {
    let statement = turn.store_statement(written_at);
    let mut created_by_an_earlier_run = false;
    for _ in 0..2 {
        let row = db
            .query(&statement)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Decode {
                message: format!("storing the turn of chat {} answered no row", turn.chat_id),
            })?;
        match turn.outcome(&row)? {
            TurnOutcome::Stored { created } => return Ok(created || created_by_an_earlier_run),
            TurnOutcome::Refused(refusal) => {
                if created_by_an_earlier_run {
                    db.execute(&turn.remove_empty_chat_statement()).await?;
                }
                return Err(refusal.into());
            }
            TurnOutcome::Unsettled { created } => created_by_an_earlier_run |= created,
        }
    }
    Err(DbError::Decode {
        message: format!(
            "storing the turn of chat {} was unsettled by concurrent writes, twice",
            turn.chat_id
        ),
    }
    .into())
}

/// Runs a rating write (`feedback`'s rate or withdraw statement), which
/// writes only what `feedback::may_rate` allows, and answers its row, or the
/// refusal (nothing was written).
pub async fn rate(db: &Db, statement: &Statement, caller: &str) -> Result<DbRow, Failure> {
    let row = db.query(statement).await?.into_iter().next();
    let target = row.as_ref().map(Target::from_row).transpose()?;
    feedback::may_rate(target.as_ref(), caller)?;
    Ok(row.expect("a rated message has a row"))
}
