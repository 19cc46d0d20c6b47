//! Applies chat-domain's access rules to a chat as the database has it.

use crate::failure::Failure;
use crate::postgres::Db;
use chat_domain::access::{self, ChatAction};
use uuid::Uuid;

/// Looks the chat up and lets `action` go ahead only if the rules allow it.
/// A lookup that fails is that failure (503 when the database is out of
/// reach), never a decision, so access fails closed.
pub async fn authorize(
    db: &Db,
    chat_id: Uuid,
    caller: &str,
    action: ChatAction,
) -> Result<(), Failure> {
    let rows = db.query(&access::access_statement(chat_id)).await?;
    let chat = access::chat_access(&rows)?;
    Ok(access::decide(chat.as_ref(), caller, action)?)
}
