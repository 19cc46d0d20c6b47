//! Reading ChatGPT's data export (Settings → Data controls → Export data),
//! as the ZIP it is downloaded as or as its bare conversations file.
//!
//! What the format is, as public reports and tools that read it describe it
//! (docs/export-format.md lists them):
//!
//! - The ZIP holds `conversations.json`, a JSON array of conversations
//!   (with `chat.html`, `user.json`, `message_feedback.json`, images and
//!   more, none of which matter here). Exports since 2026 split the array
//!   into `conversations-000.json`, `conversations-001.json`, ..., each an
//!   array of its own.
//! - A conversation has `title`, `create_time` and `update_time` (seconds
//!   since the epoch as floats, possibly null), `conversation_id` (older
//!   exports: only `id`), `is_archived` (newer exports), `current_node`, and
//!   `mapping`: node id → `{id, message|null, parent, children}`. The
//!   messages form a tree (an edited question or a regenerated answer is a
//!   sibling branch); `current_node` is the leaf of the branch on screen.
//! - A message has `author.role` (`user`, `assistant`, `system`, `tool`),
//!   `create_time` (may be null), `content` with its `content_type`, and
//!   `metadata` (newer exports leave much of it out).
//!   `is_visually_hidden_from_conversation` marks what the app never showed
//!   (the system prompt, the user's custom instructions). An assistant
//!   message whose `recipient` is not `all` is a call to a tool.
//! - Content types: `text` (`parts`: strings), `multimodal_text` (`parts`:
//!   strings and objects such as `image_asset_pointer`), `thoughts` and
//!   `reasoning_recap` (a reasoning model's thinking), `code`,
//!   `execution_output`, `tether_browsing_display`, `tether_quote`,
//!   `user_editable_context`, and more as ChatGPT grows.
//!
//! What is imported: the branch from the root to `current_node` (walking
//! `parent` links up from it, stopping at a missing node and refusing a
//! cycle), keeping the text that was shown of user and assistant messages,
//! with their times (a missing time is the message's before, else the
//! conversation's). Everything else is counted in the report by reason.
//! Consecutive assistant messages (text, a tool call, more text) are one
//! reply, as ChatGPT shows them. Ids are always derived (a conversation's
//! from its id, a message's from its conversation's and its node's), so a
//! second import of the same export creates nothing new.

use super::time::from_unix_seconds;
use super::{
    Chats, Ids, Import, ImportedChat, ImportedMessage, MAX_IMPORT_BYTES, Role, Skipped, count,
    decode, imported_title, keep_in_order, over_limits, too_large,
};
use crate::ApiError;
use crate::access::Visibility;
use crate::chat::conversation::MessageStatus;
use crate::database::timestamp::UtcDateTime;
use crate::http::validate::abbreviate;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::ops::Range;

/// How a ZIP file begins (a local file header).
pub(super) const ZIP_SIGNATURE: &[u8] = b"PK\x03\x04";

/// The conversations file of an unsplit export.
const WHOLE_FILE: &str = "conversations.json";

// Reasons counted in the report's `skippedParts`.
const EMPTY_NODE: &str = "empty node";
const MISSING_NODE: &str = "missing parent node";
const HIDDEN: &str = "hidden message";
const SYSTEM: &str = "system message";
const TOOL: &str = "tool message";
const TOOL_CALL: &str = "tool call";
const REASONING: &str = "reasoning";
const IMAGE: &str = "image";
const NON_TEXT_PART: &str = "non-text part";
const EMPTY_TEXT: &str = "empty text";

/// The conversations of a checked export, read one at a time.
pub struct Conversations<'a> {
    files: Vec<File<'a>>,
    ids: Ids,
    now: UtcDateTime,
}

/// One conversations file: its text, and where each conversation lies in it.
struct File<'a> {
    name: String,
    text: Cow<'a, str>,
    conversations: Vec<Range<usize>>,
}

impl<'a> File<'a> {
    /// Checks that `text` is a JSON array and notes where its elements are,
    /// without reading them yet.
    fn new(name: String, text: Cow<'a, str>) -> Result<Self, ApiError> {
        let elements: Vec<&RawValue> = serde_json::from_str(&text).map_err(|error| {
            ApiError::bad_request(format!(
                "{name} is not a JSON array of conversations: {error}."
            ))
        })?;
        let start = text.as_ptr() as usize;
        let conversations = elements
            .iter()
            .map(|element| {
                let from = element.get().as_ptr() as usize - start;
                from..from + element.get().len()
            })
            .collect();
        Ok(Self {
            name,
            text,
            conversations,
        })
    }
}

/// A bare conversations file (`conversations.json`, or one part of a split
/// export).
pub(super) fn read_json<'a>(
    text: &'a str,
    importer: &str,
    now: UtcDateTime,
) -> Result<Import<'a>, ApiError> {
    let file = File::new(WHOLE_FILE.to_owned(), Cow::Borrowed(text))?;
    Ok(import(vec![file], importer, now))
}

/// The export's ZIP: its `conversations.json`, or else all the parts of a
/// split export in their order. Unpacked, they may not exceed
/// [`MAX_IMPORT_BYTES`] together.
pub(super) fn read_zip(
    body: &[u8],
    importer: &str,
    now: UtcDateTime,
) -> Result<Import<'static>, ApiError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(body))
        .map_err(|error| ApiError::bad_request(format!("The ZIP cannot be read: {error}.")))?;
    let names = conversation_files(
        archive
            .file_names()
            .filter_map(Result::ok)
            .map(Cow::into_owned),
    );
    if names.is_empty() {
        return Err(ApiError::bad_request(format!(
            "The ZIP holds no {WHOLE_FILE} (nor its parts conversations-000.json, ...): \
             is it ChatGPT's data export?"
        )));
    }
    let mut files = Vec::with_capacity(names.len());
    let mut unpacked = 0;
    for name in names {
        let entry = archive.by_name(&name).map_err(|error| {
            ApiError::bad_request(format!("{name} in the ZIP cannot be read: {error}."))
        })?;
        if entry.encrypted() {
            return Err(ApiError::bad_request(format!(
                "{name} in the ZIP is encrypted; export again without a password."
            )));
        }
        // Sizes in a ZIP's directory can lie: read one byte past what is
        // left, to know it is too much without unpacking all of it.
        let allowed = MAX_IMPORT_BYTES - unpacked;
        let mut text = String::new();
        entry
            .take(allowed as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|error| {
                ApiError::bad_request(format!(
                    "{name} in the ZIP cannot be unpacked as UTF-8 text: {error}."
                ))
            })?;
        if text.len() > allowed {
            return Err(too_large("The conversations in the ZIP, unpacked,"));
        }
        unpacked += text.len();
        files.push(File::new(name, Cow::Owned(text))?);
    }
    Ok(import(files, importer, now))
}

fn import<'a>(files: Vec<File<'a>>, importer: &str, now: UtcDateTime) -> Import<'a> {
    Import {
        folders: Vec::new(),
        skipped: Vec::new(),
        chats: Chats::ChatGpt(Conversations {
            files,
            ids: Ids::derived(importer),
            now,
        }),
    }
}

/// The entries to read, in order: every `conversations.json` (at the
/// root, or in a folder the ZIP was repacked with), or else every part
/// `conversations-NNN.json`, by number.
fn conversation_files(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut whole = Vec::new();
    let mut parts = Vec::new();
    for name in names {
        let file_name = name.rsplit('/').next().unwrap_or_default();
        if file_name == WHOLE_FILE {
            whole.push(name);
        } else if let Some(number) = file_name
            .strip_prefix("conversations-")
            .and_then(|rest| rest.strip_suffix(".json"))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            parts.push((number, name));
        }
    }
    if !whole.is_empty() {
        whole.sort();
        return whole;
    }
    parts.sort();
    parts.into_iter().map(|(_, name)| name).collect()
}

#[derive(Deserialize)]
struct Conversation {
    title: Option<String>,
    create_time: Option<f64>,
    update_time: Option<f64>,
    mapping: Option<BTreeMap<String, Node>>,
    current_node: Option<String>,
    conversation_id: Option<String>,
    id: Option<String>,
    is_archived: Option<bool>,
}

#[derive(Deserialize)]
struct Node {
    message: Option<Message>,
    parent: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    author: Author,
    create_time: Option<f64>,
    content: Content,
    status: Option<String>,
    /// Kept loose: its fields come and go between exports.
    #[serde(default)]
    metadata: Value,
    recipient: Option<String>,
    channel: Option<String>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
}

#[derive(Deserialize)]
struct Content {
    content_type: String,
    parts: Option<Vec<Value>>,
}

impl Conversations<'_> {
    pub(super) fn chats(&self) -> impl Iterator<Item = Result<ImportedChat, Skipped>> + '_ {
        self.files.iter().flat_map(move |file| {
            file.conversations
                .iter()
                .enumerate()
                .map(move |(index, range)| {
                    let source = format!("conversation {} of {}", index + 1, file.name);
                    let conversation: Conversation =
                        decode(&file.text[range.clone()]).map_err(|reason| Skipped {
                            source: source.clone(),
                            reason,
                        })?;
                    let source = match &conversation.title {
                        Some(title) => format!("{source} ({:?})", abbreviate(title)),
                        None => source,
                    };
                    self.chat(&conversation, &source)
                        .map_err(|reason| Skipped { source, reason })
                })
        })
    }

    fn chat(&self, conversation: &Conversation, source: &str) -> Result<ImportedChat, String> {
        let conversation_id = conversation
            .conversation_id
            .as_deref()
            .or(conversation.id.as_deref())
            .ok_or("it has no conversation_id (nor id)")?;
        let mapping = conversation
            .mapping
            .as_ref()
            .ok_or("it has no mapping of messages")?;
        let mut skipped_parts = BTreeMap::new();
        let branch = branch(conversation, mapping, &mut skipped_parts)?;
        let conversation_time = conversation
            .create_time
            .or(conversation.update_time)
            .and_then(from_unix_seconds);

        let mut messages: Vec<ImportedMessage> = Vec::new();
        for (node_id, node) in branch {
            let Some(message) = &node.message else {
                count(&mut skipped_parts, EMPTY_NODE);
                continue;
            };
            let Some((role, text)) = shown_text(message, &mut skipped_parts) else {
                continue;
            };
            let created_at = message
                .create_time
                .and_then(from_unix_seconds)
                .or(messages.last().map(|previous| previous.created_at))
                .or(conversation_time)
                .unwrap_or(self.now);
            let status = status(role, message.status.as_deref());
            match messages.last_mut() {
                Some(previous) if role == Role::Assistant && previous.role == Role::Assistant => {
                    previous.text.push_str("\n\n");
                    previous.text.push_str(&text);
                    previous.status = status;
                }
                _ => messages.push(ImportedMessage {
                    id: self.ids.derive(&["chatgpt", conversation_id, node_id]),
                    role,
                    text,
                    created_at,
                    status,
                    trace_id: None,
                    vote: None,
                }),
            }
        }
        if messages.is_empty() {
            return Err("it has no text messages to import".to_owned());
        }
        keep_in_order(&mut messages);
        if let Some(reason) = over_limits(&messages) {
            return Err(reason);
        }
        let first = messages[0].created_at;
        let last = messages[messages.len() - 1].created_at;
        let created_at = conversation_time.map_or(first, |time| time.min(first));
        Ok(ImportedChat {
            id: self.ids.derive(&["chatgpt", conversation_id]),
            source: source.to_owned(),
            title: imported_title(conversation.title.as_deref(), &messages),
            created_at,
            last_activity_at: last,
            visibility: Visibility::Private,
            pinned: false,
            archived: conversation.is_archived.unwrap_or(false),
            folder_id: None,
            messages,
            skipped_parts,
        })
    }
}

/// The nodes from the root to the conversation's current node, oldest
/// first. Without a usable `current_node`, the branch ends at the newest
/// message. A parent that is not in the mapping ends the walk there
/// (counted); a cycle makes the conversation unreadable.
fn branch<'c>(
    conversation: &'c Conversation,
    mapping: &'c BTreeMap<String, Node>,
    skipped_parts: &mut BTreeMap<String, u64>,
) -> Result<Vec<(&'c str, &'c Node)>, String> {
    let leaf = conversation
        .current_node
        .as_deref()
        .filter(|id| mapping.contains_key(*id))
        .or_else(|| newest_message(mapping))
        .ok_or("it has no messages")?;
    let mut branch = Vec::new();
    let mut seen = BTreeSet::new();
    let mut at = Some(leaf);
    while let Some(id) = at {
        if !seen.insert(id) {
            return Err(format!(
                "its messages' parent links form a cycle (at node {id:?})"
            ));
        }
        let Some((id, node)) = mapping.get_key_value(id) else {
            count(skipped_parts, MISSING_NODE);
            break;
        };
        branch.push((id.as_str(), node));
        at = node.parent.as_deref();
    }
    branch.reverse();
    Ok(branch)
}

/// The node whose message was created last (ties: the greatest node id,
/// so the choice does not depend on anything but the file).
fn newest_message(mapping: &BTreeMap<String, Node>) -> Option<&str> {
    mapping
        .iter()
        .filter_map(|(id, node)| Some((node.message.as_ref()?.create_time.unwrap_or(0.0), id)))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, id)| id.as_str())
}

/// The role and text of a message as ChatGPT showed it; `None` (counted)
/// for what it did not show as a user's or assistant's text.
fn shown_text(
    message: &Message,
    skipped_parts: &mut BTreeMap<String, u64>,
) -> Option<(Role, String)> {
    if message.metadata["is_visually_hidden_from_conversation"] == true {
        return left_out(skipped_parts, HIDDEN);
    }
    let role = match message.author.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => return left_out(skipped_parts, SYSTEM),
        "tool" => return left_out(skipped_parts, TOOL),
        other => return left_out(skipped_parts, &format!("{other} message")),
    };
    if role == Role::Assistant && message.recipient.as_deref().is_some_and(|to| to != "all") {
        return left_out(skipped_parts, TOOL_CALL);
    }
    // The reasoning channel of the newest models: thinking, not the reply.
    if message.channel.as_deref() == Some("analysis") {
        return left_out(skipped_parts, REASONING);
    }
    match message.content.content_type.as_str() {
        "text" | "multimodal_text" => {}
        "thoughts" | "reasoning_recap" => return left_out(skipped_parts, REASONING),
        other => return left_out(skipped_parts, &format!("{other} message")),
    }
    let mut texts = Vec::new();
    for part in message.content.parts.iter().flatten() {
        match part {
            Value::String(text) => texts.push(text.as_str()),
            Value::Object(object)
                if object.get("content_type") == Some(&Value::from("image_asset_pointer")) =>
            {
                count(skipped_parts, IMAGE);
            }
            _ => count(skipped_parts, NON_TEXT_PART),
        }
    }
    let text = texts.join("\n\n");
    if text.trim().is_empty() {
        return left_out(skipped_parts, EMPTY_TEXT);
    }
    Some((role, text))
}

/// Counts what is left out, and leaves it out.
fn left_out<T>(skipped_parts: &mut BTreeMap<String, u64>, reason: &str) -> Option<T> {
    count(skipped_parts, reason);
    None
}

/// How much of a reply the message holds: a reply the user stopped is
/// `finished_partial_completion`, one that broke off stays `in_progress`.
fn status(role: Role, status: Option<&str>) -> MessageStatus {
    match (role, status) {
        (Role::Assistant, Some("finished_partial_completion")) => MessageStatus::Stopped,
        (Role::Assistant, Some("in_progress")) => MessageStatus::Incomplete,
        _ => MessageStatus::Complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::{ImportedChat, read};
    use std::io::Write;
    use uuid::Uuid;

    const TEXT_ONLY: &str = include_str!("fixtures/chatgpt-text-only.json");
    const CURRENT: &str = include_str!("fixtures/chatgpt-current.json");
    const SPLIT: [(&str, &str); 2] = [
        (
            "conversations-000.json",
            include_str!("fixtures/chatgpt-split/conversations-000.json"),
        ),
        (
            "conversations-001.json",
            include_str!("fixtures/chatgpt-split/conversations-001.json"),
        ),
    ];
    const IMPORTER: &str = "b@example.com";

    fn now() -> UtcDateTime {
        UtcDateTime::from_parts(2026, 1, 2, 3, 4, 5, 0).unwrap()
    }

    fn time(seconds: f64) -> UtcDateTime {
        from_unix_seconds(seconds).unwrap()
    }

    fn chats(body: &[u8]) -> Vec<Result<ImportedChat, Skipped>> {
        read(body, IMPORTER, now()).unwrap().chats().collect()
    }

    fn texts(chat: &ImportedChat) -> Vec<(Role, &str)> {
        chat.messages
            .iter()
            .map(|m| (m.role, m.text.as_str()))
            .collect()
    }

    fn parts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), *n))
            .collect()
    }

    /// A ZIP made here, of `files` (name, text), deflated as ChatGPT's is.
    fn zip(files: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, text) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(text.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn an_older_export_imports_its_text_with_the_original_times() {
        let chats = chats(TEXT_ONLY.as_bytes());
        let [Ok(first), Ok(second)] = &chats[..] else {
            panic!("{chats:?}");
        };
        assert_eq!(first.title, "Sourdough starter");
        assert_eq!(
            texts(first),
            [
                (Role::User, "My starter smells of nail polish. Is it dead?"),
                (
                    Role::Assistant,
                    "No: it is hungry. Feed it twice a day for a few days."
                ),
            ]
        );
        assert_eq!(first.created_at, time(1_681_300_000.25));
        assert_eq!(
            first.messages[1].created_at.to_string(),
            "2023-04-12T11:47:00.750Z"
        );
        assert_eq!(first.last_activity_at, first.messages[1].created_at);
        assert_eq!(
            first.skipped_parts,
            parts(&[("empty node", 1), ("system message", 1)])
        );
        assert!(!first.archived && !first.pinned);
        assert_eq!(first.visibility, Visibility::Private);
        assert_eq!(
            first.source,
            "conversation 1 of conversations.json (\"Sourdough starter\")"
        );
        // Older exports name a conversation by `id` alone.
        let ids = Ids::derived(IMPORTER);
        assert_eq!(
            first.id,
            ids.derive(&["chatgpt", "aaaa0001-0000-4000-8000-00000000000c"])
        );
        assert_eq!(
            first.messages[0].id,
            ids.derive(&[
                "chatgpt",
                "aaaa0001-0000-4000-8000-00000000000c",
                "aaaa0001-0000-4000-8000-000000000003"
            ])
        );
        // No title: named after its first message. No times: the
        // conversation's.
        assert_eq!(second.title, "Rhyme with orange, please.");
        let conversation_time = time(1_681_400_000.0);
        assert!(
            second
                .messages
                .iter()
                .all(|m| m.created_at == conversation_time)
        );
    }

    #[test]
    fn a_current_export_imports_the_shown_branch_and_counts_the_rest() {
        let chats = chats(CURRENT.as_bytes());
        assert_eq!(chats.len(), 5);
        let packing = chats[0].as_ref().unwrap();
        // The edited question's branch (current_node), not the first one.
        assert_eq!(
            texts(packing),
            [
                (Role::User, "What should I pack for Lisbon in March?"),
                (
                    Role::Assistant,
                    "Layers: a light jacket, a sweater and an umbrella."
                ),
                (Role::User, "And shoes?"),
                // Text, a search, more text: one reply, as ChatGPT shows it.
                (
                    Role::Assistant,
                    "Let me check the forecast.\n\nWaterproof trainers, and sandals for a sunny day."
                ),
            ]
        );
        let start = 1_756_000_000.5;
        let times: Vec<_> = packing.messages.iter().map(|m| m.created_at).collect();
        // The reply without a time takes its question's.
        assert_eq!(
            times,
            [
                time(start + 30.0),
                time(start + 30.0),
                time(start + 50.0),
                time(start + 51.0)
            ]
        );
        assert_eq!(packing.created_at, time(start));
        assert_eq!(packing.last_activity_at, time(start + 51.0));
        // The user stopped the last reply.
        let statuses: Vec<_> = packing.messages.iter().map(|m| m.status).collect();
        assert_eq!(
            statuses,
            [
                MessageStatus::Complete,
                MessageStatus::Complete,
                MessageStatus::Complete,
                MessageStatus::Stopped
            ]
        );
        assert!(packing.archived);
        assert_eq!(
            packing.skipped_parts,
            parts(&[
                ("empty node", 1),
                ("empty text", 1),
                ("hidden message", 2),
                ("image", 1),
                ("reasoning", 2),
                ("tool call", 1),
                ("tool message", 1),
            ])
        );
        let ids = Ids::derived(IMPORTER);
        assert_eq!(
            packing.messages[3].id,
            ids.derive(&["chatgpt", "cccc0001-0000-4000-8000-00000000000c", "a3"])
        );

        let skipped: Vec<_> = chats[1..4]
            .iter()
            .map(|c| c.as_ref().unwrap_err())
            .collect();
        assert_eq!(
            skipped[0],
            &Skipped {
                source: "conversation 2 of conversations.json (\"No mapping at all\")".to_owned(),
                reason: "it has no mapping of messages".to_owned(),
            }
        );
        assert!(skipped[1].reason.contains("cycle"), "{:?}", skipped[1]);
        assert_eq!(skipped[2].reason, "it has no text messages to import");

        // No current node: the branch of the newest message; its start is
        // missing from the mapping, and the times from the conversation.
        let half = chats[4].as_ref().unwrap();
        assert_eq!(half.title, "Half a tree");
        assert_eq!(
            texts(half),
            [
                (Role::User, "Where did the start go?"),
                (Role::Assistant, "The newest answer.")
            ]
        );
        assert_eq!(half.skipped_parts, parts(&[("missing parent node", 1)]));
        assert_eq!(half.created_at, time(start + 400.0));
    }

    #[test]
    fn a_conversation_with_wrong_fields_is_skipped_by_its_field() {
        let body = r#"[{"title": "Bad", "conversation_id": "c", "mapping": {"n": {"message": {"author": {"role": 7}}}}}]"#;
        let chats = chats(body.as_bytes());
        let skipped = chats[0].as_ref().unwrap_err();
        assert_eq!(skipped.source, "conversation 1 of conversations.json");
        assert!(
            skipped
                .reason
                .starts_with("field mapping.n.message.author.role: invalid type"),
            "{}",
            skipped.reason
        );
    }

    #[test]
    fn a_file_that_is_not_an_array_of_conversations_is_refused() {
        let error = read(b"[{\"title\": 1},", IMPORTER, now()).err().unwrap();
        assert_eq!(error.status, 400);
        assert!(
            error
                .message
                .starts_with("conversations.json is not a JSON array"),
            "{}",
            error.message
        );
        assert!(error.message.contains("line 1 column"), "{}", error.message);
    }

    #[test]
    fn the_zip_is_read_for_its_conversations_file_alone() {
        let body = zip(&[
            ("user.json", r#"{"id": "user-x"}"#),
            ("chat.html", "<html></html>"),
            ("conversations.json", TEXT_ONLY),
            ("message_feedback.json", "[]"),
        ]);
        let from_zip = chats(&body);
        assert_eq!(from_zip, chats(TEXT_ONLY.as_bytes()));
    }

    #[test]
    fn a_split_export_is_read_part_by_part_in_order() {
        // Parts stored out of order, in a folder, as a repacked ZIP has them.
        let body = zip(&[
            ("export/conversations-001.json", SPLIT[1].1),
            ("export/conversations-000.json", SPLIT[0].1),
            ("export/user.json", "{}"),
        ]);
        let titles: Vec<_> = chats(&body)
            .into_iter()
            .map(|chat| chat.unwrap().title)
            .collect();
        assert_eq!(titles, ["Part one, first", "Part one, second", "Part two"]);
        // A part uploaded alone imports too.
        assert_eq!(chats(SPLIT[1].1.as_bytes()).len(), 1);
    }

    #[test]
    fn the_whole_file_wins_over_parts_and_other_names_are_ignored() {
        let names = conversation_files(
            [
                "conversations-10.json",
                "conversations-2.json",
                "conversations-x.json",
                "__MACOSX/._conversations.json",
                "shared_conversations.json",
            ]
            .into_iter()
            .map(String::from),
        );
        assert_eq!(names, ["conversations-2.json", "conversations-10.json"]);
        let names = conversation_files(
            ["conversations-000.json", "a/conversations.json"]
                .into_iter()
                .map(String::from),
        );
        assert_eq!(names, ["a/conversations.json"]);
    }

    #[test]
    fn a_zip_without_conversations_or_too_big_unpacked_is_refused() {
        let error = read(&zip(&[("user.json", "{}")]), IMPORTER, now())
            .err()
            .unwrap();
        assert_eq!(error.status, 400);
        assert!(
            error.message.contains("holds no conversations.json"),
            "{}",
            error.message
        );

        let broken = read(b"PK\x03\x04 not really", IMPORTER, now())
            .err()
            .unwrap();
        assert_eq!(broken.status, 400);
        assert!(
            broken.message.starts_with("The ZIP cannot be read"),
            "{}",
            broken.message
        );

        // Spaces deflate to almost nothing: a small ZIP, too big unpacked.
        let huge = format!("[{}]", " ".repeat(MAX_IMPORT_BYTES));
        let body = zip(&[("conversations.json", &huge)]);
        assert!(body.len() < MAX_IMPORT_BYTES / 100);
        let error = read(&body, IMPORTER, now()).err().unwrap();
        assert_eq!(error.status, 413);
        assert!(error.message.contains("unpacked"), "{}", error.message);
    }

    #[test]
    fn importing_again_gives_the_same_ids_and_another_user_other_ids() {
        let ids = |importer: &str| -> Vec<Uuid> {
            read(CURRENT.as_bytes(), importer, now())
                .unwrap()
                .chats()
                .filter_map(Result::ok)
                .flat_map(|chat| {
                    std::iter::once(chat.id)
                        .chain(chat.messages.into_iter().map(|m| m.id))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let first = ids(IMPORTER);
        assert_eq!(first.len(), 2 + 4 + 2);
        assert_eq!(first, ids(IMPORTER));
        let other = ids("c@example.com");
        assert!(first.iter().all(|id| !other.contains(id)));
    }
}
