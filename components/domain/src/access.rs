//! Who may do what with a chat. Reading follows the chat's visibility; writing
//! (deleting, re-sharing) belongs to the owner alone, whatever the visibility.
//!
//! The rules decide from facts the caller looked up; they never guess. A
//! lookup that failed is no fact: the caller answers with that failure (503
//! when the database is out of reach) instead of deciding, so access fails
//! closed (the seed let the request through).

use crate::ApiError;
use crate::database::sql::{Row, SqlParam, Statement};
use serde::Serialize;
use uuid::Uuid;

/// Selects, in order: "userId", visibility; no row for an unknown chat.
const CHAT_ACCESS: &str = r#"SELECT "userId", visibility FROM chat."Chat" WHERE id = $1"#;

/// Who besides the owner may read a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone who can reach the app may read it.
    Public,
    /// Only the owner.
    Private,
}

impl Visibility {
    /// The visibility a request names, spelled exactly as the API documents.
    pub fn from_request(value: &str) -> Option<Self> {
        match value {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }

    /// The stored `visibility` column. Anything but exactly `public` counts as
    /// private, so an odd value written by another program never widens access.
    pub fn from_stored(value: &str) -> Self {
        Self::from_request(value).unwrap_or(Self::Private)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// The facts about a chat that access depends on. Every statement that
/// selects them (this module's, and those that look them up beside what
/// their route reads) decodes its own columns into one with [`ChatAccess::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAccess {
    /// The owner's user id (`chat."Chat"."userId"`).
    pub owner: String,
    pub visibility: Visibility,
}

impl ChatAccess {
    /// From the stored `"userId"` and `visibility` columns.
    pub fn new(owner: String, stored_visibility: &str) -> Self {
        Self {
            owner,
            visibility: Visibility::from_stored(stored_visibility),
        }
    }
}

/// What a caller wants to do with a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatAction {
    ReadMessages,
    Delete,
    ChangeVisibility,
    Rename,
    /// Stopping the reply that streams in it.
    Stop,
    /// Replacing its last reply by a new one.
    Regenerate,
    /// Continuing the conversation (`POST /api/chat` with the chat's id).
    AddMessages,
    /// Rating its replies, withdrawing a rating or reading the ratings.
    Rate,
    /// Pinning it, archiving it or filing it in a folder: the owner's own
    /// order, which no one else sees.
    Organise,
}

/// Whether `caller` (a user id) may perform `action` on the chat described by
/// `access` (`None`: no such chat).
///
/// - no such chat: 404 whatever the action;
/// - the owner may do everything;
/// - anyone may read a public chat; a private one is 403;
/// - deleting someone else's chat is 404, as if it did not exist, so a failed
///   delete reveals nothing;
/// - changing someone else's chat's visibility or title, pinning, archiving
///   or filing it, stopping or
///   regenerating its reply, adding messages to it or
///   rating its replies (public or not), is 403.
pub fn decide(
    access: Option<&ChatAccess>,
    caller: &str,
    action: ChatAction,
) -> Result<(), ApiError> {
    let Some(access) = access else {
        return Err(chat_not_found());
    };
    if access.owner == caller {
        return Ok(());
    }
    match action {
        ChatAction::ReadMessages if access.visibility == Visibility::Public => Ok(()),
        ChatAction::ReadMessages => Err(ApiError::forbidden(
            "This chat is private: only its owner can read it.",
        )),
        ChatAction::Delete => Err(chat_not_found()),
        ChatAction::ChangeVisibility => Err(ApiError::forbidden(
            "Only the chat's owner can change its visibility.",
        )),
        ChatAction::Rename => Err(ApiError::forbidden("Only the chat's owner can rename it.")),
        ChatAction::Organise => Err(ApiError::forbidden(
            "Only the chat's owner can pin, archive or file it in a folder.",
        )),
        ChatAction::Stop => Err(ApiError::forbidden(
            "Only the chat's owner can stop its replies.",
        )),
        ChatAction::Regenerate => Err(ApiError::forbidden(
            "Only the chat's owner can regenerate its replies.",
        )),
        ChatAction::AddMessages => Err(ApiError::forbidden(
            "This chat belongs to someone else: only its owner can add messages to it.",
        )),
        ChatAction::Rate => Err(ApiError::forbidden(
            "This chat belongs to someone else: only its owner can rate its replies.",
        )),
    }
}

/// The 404 for a chat that does not exist (or must look as if it did not).
pub fn chat_not_found() -> ApiError {
    ApiError::not_found("Chat not found.")
}

/// Looks up the facts [`decide`] needs, decoded by [`chat_access`].
pub fn access_statement(chat_id: Uuid) -> Statement {
    Statement::new(CHAT_ACCESS, vec![SqlParam::Uuid(chat_id)])
}

/// Decodes the rows of [`access_statement`] (`None`: no such chat).
pub fn chat_access<R: Row>(rows: &[R]) -> Result<Option<ChatAccess>, R::Error> {
    rows.first()
        .map(|row| Ok(ChatAccess::new(row.text(0)?, &row.text(1)?)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "owner@example.com";
    const OTHER: &str = "other@example.com";
    const ACTIONS: [ChatAction; 9] = [
        ChatAction::ReadMessages,
        ChatAction::Delete,
        ChatAction::ChangeVisibility,
        ChatAction::Rename,
        ChatAction::AddMessages,
        ChatAction::Rate,
        ChatAction::Stop,
        ChatAction::Regenerate,
        ChatAction::Organise,
    ];

    fn chat(visibility: Visibility) -> ChatAccess {
        ChatAccess {
            owner: OWNER.into(),
            visibility,
        }
    }

    fn status(access: Option<&ChatAccess>, caller: &str, action: ChatAction) -> u16 {
        match decide(access, caller, action) {
            Ok(()) => 200,
            Err(error) => error.status,
        }
    }

    #[test]
    fn an_unknown_chat_is_404_for_every_action() {
        for action in ACTIONS {
            assert_eq!(status(None, OWNER, action), 404, "{action:?}");
        }
    }

    #[test]
    fn the_owner_may_do_everything_whatever_the_visibility() {
        for visibility in [Visibility::Public, Visibility::Private] {
            for action in ACTIONS {
                assert_eq!(
                    status(Some(&chat(visibility)), OWNER, action),
                    200,
                    "{visibility:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn others_may_read_only_public_chats() {
        assert_eq!(
            status(
                Some(&chat(Visibility::Public)),
                OTHER,
                ChatAction::ReadMessages
            ),
            200
        );
        let error = decide(
            Some(&chat(Visibility::Private)),
            OTHER,
            ChatAction::ReadMessages,
        )
        .unwrap_err();
        assert_eq!(error.status, 403);
        assert!(error.message.contains("private"), "{}", error.message);
    }

    #[test]
    fn a_public_chat_is_never_writable_by_others() {
        for visibility in [Visibility::Public, Visibility::Private] {
            let access = chat(visibility);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Delete), 404);
            assert_eq!(
                status(Some(&access), OTHER, ChatAction::ChangeVisibility),
                403
            );
            assert_eq!(status(Some(&access), OTHER, ChatAction::AddMessages), 403);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Rate), 403);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Rename), 403);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Stop), 403);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Regenerate), 403);
            assert_eq!(status(Some(&access), OTHER, ChatAction::Organise), 403);
        }
    }

    #[test]
    fn a_refused_delete_looks_exactly_like_an_unknown_chat() {
        let refused = decide(Some(&chat(Visibility::Private)), OTHER, ChatAction::Delete);
        assert_eq!(refused, decide(None, OTHER, ChatAction::Delete));
    }

    #[test]
    fn user_ids_compare_exactly() {
        for caller in ["OWNER@example.com", "owner@example.com ", ""] {
            assert_eq!(
                status(Some(&chat(Visibility::Private)), caller, ChatAction::Delete),
                404,
                "{caller:?}"
            );
        }
    }

    #[test]
    fn visibility_from_requests_is_exact() {
        assert_eq!(Visibility::from_request("public"), Some(Visibility::Public));
        assert_eq!(
            Visibility::from_request("private"),
            Some(Visibility::Private)
        );
        for value in ["Public", "PRIVATE", " public", "shared", ""] {
            assert_eq!(Visibility::from_request(value), None, "{value:?}");
        }
    }

    #[test]
    fn an_odd_stored_visibility_counts_as_private() {
        assert_eq!(Visibility::from_stored("public"), Visibility::Public);
        for value in ["private", "Public", "shared", ""] {
            assert_eq!(Visibility::from_stored(value), Visibility::Private);
        }
        let odd = ChatAccess {
            owner: OWNER.into(),
            visibility: Visibility::from_stored("PUBLIC"),
        };
        assert_eq!(status(Some(&odd), OTHER, ChatAction::ReadMessages), 403);
    }

    #[test]
    fn visibility_serialises_in_lower_case() {
        assert_eq!(
            serde_json::to_value(Visibility::Public).unwrap(),
            serde_json::json!("public")
        );
        assert_eq!(Visibility::Private.as_str(), "private");
    }

    #[test]
    fn access_statement_binds_the_chat_id() {
        let id = Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap();
        let statement = access_statement(id);
        assert_eq!(statement.sql, CHAT_ACCESS);
        assert_eq!(statement.params, vec![SqlParam::Uuid(id)]);
    }

    #[test]
    fn the_access_row_decodes_as_its_select_lists_it() {
        use crate::database::sql::fake::{FakeRow, Value};
        let row = FakeRow::laid_out_by(
            CHAT_ACCESS,
            &[
                (r#""userId""#, Value::Text(OWNER)),
                ("visibility", Value::Text("public")),
            ],
        );
        let access = chat_access(&[row]).unwrap().expect("a chat");
        assert_eq!(access.owner, OWNER);
        assert_eq!(access.visibility, Visibility::Public);
        assert_eq!(chat_access::<FakeRow>(&[]).unwrap(), None, "no such chat");
    }
}
