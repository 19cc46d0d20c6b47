//! Reading our own export (its format: [`super::export`]).
//!
//! The file's structure is checked whole before anything is written: a
//! header first, then folder and chat lines, then the end line whose counts
//! match; a line that is not JSON, has no known `type`, or comes after the
//! end makes the file a 400 naming the line, and so does a missing end
//! line (the export is truncated). Within that structure a folder or chat
//! line whose fields are wrong (a bad id, an unknown role, ...) is skipped
//! and reported by its line and field; the other chats import.
//!
//! A restore (the header's `userId` is the importer) keeps every id and the
//! chats' visibility. Imported into another account, ids are derived
//! ([`Ids`]) and every chat comes in private: sharing a chat is its
//! owner's choice to make again.

use super::export::{ChatRecord, EndRecord, FORMAT, FolderRecord, Header, MessageRecord, VERSION};
use super::{
    Chats, Ids, Import, ImportedChat, ImportedFolder, ImportedMessage, Role, Skipped, count,
    decode, imported_title, json_problem, keep_in_order, one_line, over_limits, text_of_parts,
};
use crate::ApiError;
use crate::access::Visibility;
use crate::chat::conversation::MessageStatus;
use crate::history::folders;
use crate::messages::MessageVote;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Reasons counted in the report's `skippedParts`.
const NON_TEXT_PART: &str = "non-text part";
const VOTE_ON_USER_MESSAGE: &str = "vote on a user message";
const FOLDER_NOT_IN_FILE: &str = "folder not in the file";

/// The chat lines of a checked file, read one at a time.
pub struct ChatLines<'a> {
    /// Line number and text of each chat line.
    lines: Vec<(usize, &'a str)>,
    ids: Ids,
    /// The file's ids of the folders that were read.
    folders: BTreeSet<Uuid>,
}

/// Just the `type` of a line, to check the file's structure before reading
/// its chats.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

pub(super) fn read<'a>(text: &'a str, importer: &str) -> Result<Import<'a>, ApiError> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty());

    let (number, first) = lines
        .next()
        .ok_or_else(|| malformed(1, "the file is empty"))?;
    if tag(number, first)?.as_deref() != Some(FORMAT) {
        return Err(malformed(
            number,
            format!(
                "the first line is not a {FORMAT} header, so this is not an export of this app"
            ),
        ));
    }
    let header: Header = decode(first).map_err(|problem| malformed(number, problem))?;
    if header.version != VERSION {
        return Err(malformed(
            number,
            format!(
                "the export is version {}; this app reads version {VERSION}",
                header.version
            ),
        ));
    }

    let ids = Ids::for_our_export(importer, &header.user_id);
    let mut folders = Vec::new();
    let mut folder_lines = 0;
    let mut folder_ids = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut chats = Vec::new();
    let mut end = None;
    for (number, line) in lines {
        if end.is_some() {
            return Err(malformed(number, "it comes after the end line"));
        }
        match tag(number, line)?.as_deref() {
            Some("folder") => {
                folder_lines += 1;
                match folder(line, &ids) {
                    Ok((source_id, folder)) => {
                        folder_ids.insert(source_id);
                        folders.push(folder);
                    }
                    Err(reason) => skipped.push(Skipped {
                        source: source(number),
                        reason,
                    }),
                }
            }
            Some("chat") => chats.push((number, line)),
            Some("end") => {
                let counts: EndRecord =
                    decode(line).map_err(|problem| malformed(number, problem))?;
                end = Some((number, counts));
            }
            Some(FORMAT) => return Err(malformed(number, "it is a second header")),
            Some(other) => {
                return Err(malformed(
                    number,
                    format!(
                        "its type {other:?} is none of this version's \
                         (chat-history-export, folder, chat, end)"
                    ),
                ));
            }
            None => return Err(malformed(number, "it has no type")),
        }
    }
    let Some((end_line, counts)) = end else {
        return Err(ApiError::bad_request(
            "The export is truncated: no end line. Export again and import the whole file.",
        ));
    };
    if counts.chats != chats.len() as u64 || counts.folders != folder_lines {
        return Err(malformed(
            end_line,
            format!(
                "the end line counts {} chats and {} folders, the file holds {} and {}: \
                 the export was cut or altered",
                counts.chats,
                counts.folders,
                chats.len(),
                folder_lines
            ),
        ));
    }
    Ok(Import {
        folders,
        skipped,
        chats: Chats::Ours(ChatLines {
            lines: chats,
            ids,
            folders: folder_ids,
        }),
    })
}

/// The `type` of line `number`; a line that is not a JSON object is a 400.
fn tag<'a>(number: usize, line: &'a str) -> Result<Option<Cow<'a, str>>, ApiError> {
    serde_json::from_str::<Tag>(line)
        .map(|tag| tag.kind)
        .map_err(|error| {
            malformed(
                number,
                format!("it is not a JSON object: {}", json_problem(&error)),
            )
        })
}

/// The 400 for a file whose structure is broken at line `number`.
fn malformed(number: usize, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "The export is malformed at line {number}: {problem}."
    ))
}

fn source(number: usize) -> String {
    format!("line {number}")
}

/// A folder line: its id in the file, and the folder to create.
fn folder(line: &str, ids: &Ids) -> Result<(Uuid, ImportedFolder), String> {
    let record: FolderRecord = decode(line)?;
    // As the folder routes take them: one line, at most so long (longer
    // ones are cut), positions within their range.
    let name = one_line(&record.name, folders::MAX_NAME_CHARS);
    if name.is_empty() {
        return Err("field name: the folder has no name".to_owned());
    }
    Ok((
        record.id,
        ImportedFolder {
            id: ids.ours("folder", record.id),
            name,
            position: record.position.clamp(0, folders::MAX_POSITION as i32),
        },
    ))
}

impl ChatLines<'_> {
    pub(super) fn chats(&self) -> impl Iterator<Item = Result<ImportedChat, Skipped>> + '_ {
        self.lines.iter().map(|&(number, line)| {
            self.chat(number, line).map_err(|reason| Skipped {
                source: source(number),
                reason,
            })
        })
    }

    fn chat(&self, number: usize, line: &str) -> Result<ImportedChat, String> {
        let record: ChatRecord<MessageRecord> = decode(line)?;
        let mut skipped_parts = BTreeMap::new();
        let mut messages = record
            .messages
            .iter()
            .enumerate()
            .map(|(index, message)| self.message(index, message, &mut skipped_parts))
            .collect::<Result<Vec<_>, _>>()?;
        keep_in_order(&mut messages);
        if let Some(reason) = over_limits(&messages) {
            return Err(reason);
        }
        let folder_id = record.folder_id.and_then(|folder| {
            let known = self.folders.contains(&folder);
            if !known {
                count(&mut skipped_parts, FOLDER_NOT_IN_FILE);
            }
            known.then(|| self.ids.ours("folder", folder))
        });
        Ok(ImportedChat {
            id: self.ids.ours("chat", record.id),
            source: source(number),
            title: imported_title(Some(&record.title), &messages),
            created_at: record.created_at,
            last_activity_at: record.last_activity_at,
            visibility: if self.ids.is_restore() {
                record.visibility
            } else {
                Visibility::Private
            },
            pinned: record.pinned,
            archived: record.archived,
            folder_id,
            messages,
            skipped_parts,
        })
    }

    fn message(
        &self,
        index: usize,
        message: &MessageRecord,
        skipped_parts: &mut BTreeMap<String, u64>,
    ) -> Result<ImportedMessage, String> {
        let (text, others) = text_of_parts(message.parts)
            .ok_or_else(|| format!("field messages[{index}].parts: not an array of parts"))?;
        if others > 0 {
            *skipped_parts.entry(NON_TEXT_PART.to_owned()).or_default() += others;
        }
        let vote = match (&message.vote, message.role) {
            (Some(vote), Role::Assistant) => Some(MessageVote {
                is_upvoted: vote.is_upvoted,
                comment: vote.comment.as_deref().map(str::to_owned),
            }),
            (Some(_), Role::User) => {
                count(skipped_parts, VOTE_ON_USER_MESSAGE);
                None
            }
            (None, _) => None,
        };
        Ok(ImportedMessage {
            id: self.ids.ours("message", message.id),
            role: message.role,
            text,
            created_at: message.created_at,
            // A reply still being written when it was exported has no
            // writer here: it is as much as arrived.
            status: match message.status {
                MessageStatus::Streaming => MessageStatus::Incomplete,
                status => status,
            },
            trace_id: message.trace_id.as_deref().map(str::to_owned),
            vote,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::timestamp::UtcDateTime;
    use crate::messages::MessageView;
    use crate::transfer::export::tests::message;
    use crate::transfer::export::{chat_line, end_line, folder_line, header_line};
    use crate::transfer::read;
    use serde_json::json;

    const OWNER: &str = "a@example.com";
    const FOLDER: Uuid = Uuid::from_u128(0xf0);

    fn at(second: u8) -> UtcDateTime {
        UtcDateTime::from_parts(2024, 5, 1, 12, 0, second, 0).unwrap()
    }

    fn now() -> UtcDateTime {
        at(59)
    }

    fn chat(id: u128, messages: Vec<MessageView>) -> ChatRecord<'static, MessageView> {
        ChatRecord {
            id: Uuid::from_u128(id),
            title: Cow::Borrowed("Capitals"),
            created_at: at(0),
            last_activity_at: at(3),
            visibility: Visibility::Public,
            pinned: true,
            archived: false,
            folder_id: Some(FOLDER),
            messages,
        }
    }

    /// An export as this app writes it: one folder, and two chats, the
    /// second with a rated reply still being written.
    fn export() -> String {
        let mut reply = message(12, "assistant", "Paris.", 2);
        reply.status = "streaming".to_owned();
        reply.trace_id = Some("tr-9".to_owned());
        reply.vote = Some(MessageVote {
            is_upvoted: true,
            comment: None,
        });
        [
            header_line(OWNER, now()),
            folder_line(&FolderRecord {
                id: FOLDER,
                name: Cow::Borrowed("Geography"),
                position: 1,
            }),
            chat_line(&chat(1, vec![message(11, "user", "Hello", 1)])),
            chat_line(&chat(
                2,
                vec![message(21, "user", "Capital of France?", 1), reply],
            )),
            end_line(2, 1),
        ]
        .concat()
    }

    fn import(
        text: &str,
        importer: &str,
    ) -> (
        Vec<ImportedFolder>,
        Vec<Skipped>,
        Vec<Result<ImportedChat, Skipped>>,
    ) {
        let import = read(text.as_bytes(), importer, now()).unwrap();
        let chats = import.chats().collect();
        (import.folders, import.skipped, chats)
    }

    fn refusal(text: &str) -> String {
        let error = read(text.as_bytes(), OWNER, now()).err().expect("refused");
        assert_eq!(error.status, 400, "{}", error.message);
        error.message
    }

    #[test]
    fn a_restore_brings_the_chats_back_as_they_were() {
        let (folders, skipped, chats) = import(&export(), OWNER);
        assert!(skipped.is_empty());
        assert_eq!(
            folders,
            [ImportedFolder {
                id: FOLDER,
                name: "Geography".to_owned(),
                position: 1
            }]
        );
        let chats: Vec<ImportedChat> = chats.into_iter().map(Result::unwrap).collect();
        assert_eq!(chats.len(), 2);
        let chat = &chats[1];
        assert_eq!(chat.id, Uuid::from_u128(2));
        assert_eq!(chat.source, "line 4");
        assert_eq!(chat.title, "Capitals");
        assert_eq!((chat.created_at, chat.last_activity_at), (at(0), at(3)));
        assert_eq!(chat.visibility, Visibility::Public);
        assert!(chat.pinned && !chat.archived);
        assert_eq!(chat.folder_id, Some(FOLDER));
        assert!(chat.skipped_parts.is_empty());
        let reply = &chat.messages[1];
        assert_eq!(reply.id, Uuid::from_u128(12));
        assert_eq!(
            (reply.role, reply.text.as_str()),
            (Role::Assistant, "Paris.")
        );
        assert_eq!(reply.created_at, at(2));
        // Nothing writes it any more here: it is what arrived.
        assert_eq!(reply.status, MessageStatus::Incomplete);
        assert_eq!(reply.trace_id.as_deref(), Some("tr-9"));
        assert_eq!(
            reply.vote,
            Some(MessageVote {
                is_upvoted: true,
                comment: None
            })
        );
    }

    #[test]
    fn another_account_gets_derived_ids_and_private_chats() {
        let (folders, _, chats) = import(&export(), "b@example.com");
        let ids = Ids::for_our_export("b@example.com", OWNER);
        let chat = chats[1].as_ref().unwrap();
        assert_eq!(folders[0].id, ids.ours("folder", FOLDER));
        assert_eq!(chat.id, ids.ours("chat", Uuid::from_u128(2)));
        assert_eq!(
            chat.messages[0].id,
            ids.ours("message", Uuid::from_u128(21))
        );
        assert_eq!(chat.folder_id, Some(folders[0].id));
        assert_eq!(chat.visibility, Visibility::Private);
        // The same file again: the same ids, so nothing new is written.
        let (_, _, again) = import(&export(), "b@example.com");
        assert_eq!(again[1].as_ref().unwrap().id, chat.id);
    }

    #[test]
    fn a_bad_chat_line_is_skipped_by_line_and_field_and_the_rest_imports() {
        let mut bad = json!({
            "type": "chat", "id": Uuid::from_u128(3), "title": "Bad", "createdAt": "2024-05-01T12:00:00.000Z",
            "lastActivityAt": "2024-05-01T12:00:00.000Z", "visibility": "private", "pinned": false,
            "archived": false, "folderId": null,
            "messages": [
                {"id": Uuid::from_u128(31), "role": "user", "parts": [], "createdAt": "2024-05-01T12:00:00.000Z",
                 "status": "complete", "traceId": null, "vote": null},
                {"id": Uuid::from_u128(32), "role": "robot", "parts": [], "createdAt": "2024-05-01T12:00:00.000Z",
                 "status": "complete", "traceId": null, "vote": null},
            ],
        });
        let reason = |bad: &serde_json::Value| {
            let text = [
                header_line(OWNER, now()),
                format!("{bad}\n"),
                chat_line(&chat(1, vec![message(11, "user", "Hello", 1)])),
                end_line(2, 0),
            ]
            .concat();
            let (_, _, chats) = import(&text, OWNER);
            assert!(chats[1].is_ok());
            let skipped = chats[0].clone().unwrap_err();
            assert_eq!(skipped.source, "line 2");
            skipped.reason
        };
        let role = reason(&bad);
        assert!(
            role.starts_with("field messages[1].role: unknown variant `robot`"),
            "{role}"
        );
        bad["messages"][1]["role"] = json!("assistant");
        bad["messages"][0]["createdAt"] = json!("yesterday");
        let time = reason(&bad);
        assert!(
            time.starts_with("field messages[0].createdAt: \"yesterday\" is not a UTC time"),
            "{time}"
        );
        bad["messages"][0]["createdAt"] = json!("2024-05-01T12:00:00.000Z");
        bad["id"] = json!("not-a-uuid");
        assert!(reason(&bad).starts_with("field id: "), "{}", reason(&bad));
        bad["id"] = json!(Uuid::from_u128(3));
        bad["visibility"] = json!("everyone");
        assert!(reason(&bad).contains("neither \"private\" nor \"public\""));
        bad["visibility"] = json!("private");
        bad["messages"][0]["parts"] = json!("Hello");
        assert_eq!(
            reason(&bad),
            "field messages[0].parts: not an array of parts"
        );
    }

    #[test]
    fn what_cannot_be_kept_of_a_chat_is_counted() {
        let chat_with_extras = json!({
            "type": "chat", "id": Uuid::from_u128(4), "title": "", "createdAt": "2024-05-01T12:00:00.000Z",
            "lastActivityAt": "2024-05-01T12:00:00.000Z", "visibility": "private", "pinned": false,
            "archived": true, "folderId": Uuid::from_u128(0xbad),
            "messages": [
                {"id": Uuid::from_u128(41), "role": "user",
                 "parts": [{"type": "text", "text": "Look"}, {"type": "file", "url": "x"}, {"type": "text", "text": "here"}],
                 "createdAt": "2024-05-01T12:00:05.000Z", "status": "complete", "traceId": null,
                 "vote": {"isUpvoted": true, "comment": null}},
                {"id": Uuid::from_u128(42), "role": "assistant", "parts": [],
                 "createdAt": "2024-05-01T12:00:01.000Z", "status": "error", "traceId": null, "vote": null},
            ],
        });
        let text = [
            header_line(OWNER, now()),
            format!("{chat_with_extras}\n"),
            end_line(1, 0),
        ]
        .concat();
        let (_, _, chats) = import(&text, OWNER);
        let chat = chats[0].as_ref().unwrap();
        assert_eq!(chat.title, "Look here");
        assert_eq!(chat.messages[0].text, "Look\n\nhere");
        assert_eq!(chat.messages[0].vote, None);
        assert_eq!(chat.folder_id, None);
        assert!(chat.archived);
        // The failed reply keeps its place after the question.
        assert_eq!(
            (chat.messages[1].text.as_str(), chat.messages[1].created_at),
            ("", at(5))
        );
        assert_eq!(chat.messages[1].status, MessageStatus::Error);
        assert_eq!(
            chat.skipped_parts,
            BTreeMap::from([
                (FOLDER_NOT_IN_FILE.to_owned(), 1),
                (NON_TEXT_PART.to_owned(), 1),
                (VOTE_ON_USER_MESSAGE.to_owned(), 1),
            ])
        );
    }

    #[test]
    fn a_bad_folder_line_is_skipped_and_its_chats_are_filed_nowhere() {
        let export = export().replacen("\"name\":\"Geography\"", "\"name\":\"  \"", 1);
        let (folders, skipped, chats) = import(&export, "b@example.com");
        assert!(folders.is_empty());
        assert_eq!(
            skipped,
            [Skipped {
                source: "line 2".to_owned(),
                reason: "field name: the folder has no name".to_owned()
            }]
        );
        let chat = chats[0].as_ref().unwrap();
        assert_eq!(chat.folder_id, None);
        assert_eq!(chat.skipped_parts[FOLDER_NOT_IN_FILE], 1);
    }

    #[test]
    fn blank_lines_and_windows_line_ends_are_fine() {
        let export = export().replace('\n', "\r\n\r\n");
        let (folders, skipped, chats) = import(&export, OWNER);
        assert_eq!((folders.len(), skipped.len(), chats.len()), (1, 0, 2));
        assert_eq!(chats[1].as_ref().unwrap().source, "line 7");
    }

    #[test]
    fn a_file_cut_short_or_broken_is_refused_naming_the_line() {
        let export = export();
        let lines: Vec<&str> = export.lines().collect();
        let without = |skip: usize| {
            lines
                .iter()
                .enumerate()
                .filter(|(n, _)| *n != skip)
                .map(|(_, line)| format!("{line}\n"))
                .collect::<String>()
        };
        assert_eq!(
            refusal(&without(4)),
            "The export is truncated: no end line. Export again and import the whole file."
        );
        assert_eq!(
            refusal(&without(3)),
            "The export is malformed at line 4: the end line counts 2 chats and 1 folders, \
             the file holds 1 and 1: the export was cut or altered."
        );
        let cut_mid_line = &export[..export.len() - 30];
        assert!(
            refusal(cut_mid_line)
                .starts_with("The export is malformed at line 5: it is not a JSON object: EOF")
        );
        assert!(refusal(&without(0)).starts_with(
            "The export is malformed at line 1: the first line is not a chat-history-export header"
        ));
        assert_eq!(
            refusal(""),
            "The file is neither this app's export (JSON Lines starting with a chat-history-export line) nor ChatGPT's data export (a ZIP, or its conversations.json)."
        );
        assert_eq!(
            refusal(&format!("{export}{}", lines[2])),
            "The export is malformed at line 6: it comes after the end line."
        );
        let second_header = format!("{}\n{export}", lines[0]);
        assert_eq!(
            refusal(&second_header),
            "The export is malformed at line 2: it is a second header."
        );
        let unknown = export.replacen("\"type\":\"folder\"", "\"type\":\"tag\"", 1);
        assert!(
            refusal(&unknown)
                .starts_with("The export is malformed at line 2: its type \"tag\" is none")
        );
        let untyped = export.replacen("\"type\":\"folder\",", "", 1);
        assert_eq!(
            refusal(&untyped),
            "The export is malformed at line 2: it has no type."
        );
        let newer = export.replacen("\"version\":1", "\"version\":2", 1);
        assert_eq!(
            refusal(&newer),
            "The export is malformed at line 1: the export is version 2; this app reads version 1."
        );
        let bad_header = export.replacen("\"exportedAt\":\"", "\"exportedAt\":\"x", 1);
        assert!(
            refusal(&bad_header)
                .starts_with("The export is malformed at line 1: field exportedAt: ")
        );
    }
}
