//! Export and import of a user's history (`GET /api/export`,
//! `POST /api/import`) and a chat as Markdown.
//!
//! - [`export`]: our export format, JSON Lines (docs/export-format.md),
//!   one encoder per line so a component streams it chat by chat.
//! - [`read`]: an uploaded file, whichever kind it is: our export
//!   ([`ours`]), or ChatGPT's data export as its ZIP or its bare
//!   `conversations.json` ([`chatgpt`]). A file whose structure is broken is
//!   refused whole (400, saying where); a chat that cannot be read is
//!   skipped and reported, and the others import.
//! - [`store`]: the statements that write one imported chat, each chat in a
//!   transaction of its own, so a cut connection leaves whole chats only.
//! - [`markdown`]: one chat as a Markdown document.
//!
//! Importing the same file twice creates nothing new: every id an import
//! writes is either the one the file carries (a restore of one's own
//! export) or derived from the importer and the source's own id
//! ([`Ids`]), and every insert does nothing on an id that exists.

pub mod chatgpt;
pub mod export;
pub mod markdown;
pub mod ours;
pub mod store;
mod time;

use crate::ApiError;
use crate::access::Visibility;
use crate::chat::conversation::MessageStatus;
use crate::chat::serving::fallback_title;
use crate::database::timestamp::UtcDateTime;
use crate::history::changes::MAX_TITLE_CHARS;
use crate::messages::MessageVote;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The largest file `POST /api/import` takes (the API's other routes take
/// 1 MiB). A ZIP's conversations, unpacked, may not exceed it either.
pub const MAX_IMPORT_BYTES: usize = 64 << 20;
/// The most messages one imported chat may have; a chat is written in one
/// transaction, and this bounds it.
pub const MAX_MESSAGES_PER_CHAT: usize = 100_000;
/// The longest text one imported message may have, in bytes.
pub const MAX_MESSAGE_TEXT_BYTES: usize = 4 << 20;

/// Who wrote a message; imports keep only these two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// A folder to create, with the id it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFolder {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
}

/// A chat ready to be written: ids already decided ([`Ids`]), times in
/// order, text checked against the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedChat {
    pub id: Uuid,
    /// Where in the file it came from, for the report: `line 7`,
    /// `conversation 3 of conversations.json ("Trip")`.
    pub source: String,
    pub title: String,
    pub created_at: UtcDateTime,
    pub last_activity_at: UtcDateTime,
    pub visibility: Visibility,
    pub pinned: bool,
    pub archived: bool,
    pub folder_id: Option<Uuid>,
    /// Oldest first, their times never decreasing.
    pub messages: Vec<ImportedMessage>,
    /// What of the source was left out of this chat, counted by reason.
    pub skipped_parts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMessage {
    pub id: Uuid,
    pub role: Role,
    pub text: String,
    pub created_at: UtcDateTime,
    pub status: MessageStatus,
    pub trace_id: Option<String>,
    /// The owner's rating, kept on assistant messages only.
    pub vote: Option<MessageVote>,
}

/// A chat (or folder) of the file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// A file read and checked: its folders, and its chats, each read when it
/// is asked for, so only one chat at a time is held besides the file.
pub struct Import<'a> {
    pub folders: Vec<ImportedFolder>,
    /// What could not be read before any chat: folder lines of our export.
    pub skipped: Vec<Skipped>,
    chats: Chats<'a>,
}

enum Chats<'a> {
    Ours(ours::ChatLines<'a>),
    ChatGpt(chatgpt::Conversations<'a>),
}

impl Import<'_> {
    /// The chats of the file in its order: each one ready to write, or why
    /// it is skipped.
    pub fn chats(&self) -> Box<dyn Iterator<Item = Result<ImportedChat, Skipped>> + '_> {
        match &self.chats {
            Chats::Ours(lines) => Box::new(lines.chats()),
            Chats::ChatGpt(conversations) => Box::new(conversations.chats()),
        }
    }

    /// A report that starts with what was skipped while reading the file.
    pub fn report(&self) -> ImportReport {
        ImportReport {
            skipped: self.skipped.clone(),
            ..ImportReport::default()
        }
    }
}

/// Reads an uploaded file for `importer` (the caller's user id): our
/// export, a ChatGPT data export ZIP, or its `conversations.json` (or one of
/// its `conversations-NNN.json` parts), told apart by their first bytes.
/// `now` stands in for times a ChatGPT file leaves out altogether.
pub fn read<'a>(body: &'a [u8], importer: &str, now: UtcDateTime) -> Result<Import<'a>, ApiError> {
    if body.len() > MAX_IMPORT_BYTES {
        return Err(too_large("The file"));
    }
    if body.starts_with(chatgpt::ZIP_SIGNATURE) {
        return chatgpt::read_zip(body, importer, now);
    }
    let text = std::str::from_utf8(body).map_err(|error| {
        ApiError::bad_request(format!(
            "The file is not UTF-8 text (byte {} is not), nor a ZIP: \
             import takes this app's export, or ChatGPT's data export.",
            error.valid_up_to() + 1
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().chars().next() {
        Some('[') => chatgpt::read_json(text, importer, now),
        Some('{') => ours::read(text, importer),
        _ => Err(ApiError::bad_request(
            "The file is neither this app's export (JSON Lines starting with a \
             chat-history-export line) nor ChatGPT's data export (a ZIP, or its \
             conversations.json).",
        )),
    }
}

/// A `Content-Disposition` that saves an answer as the file `name`: in
/// ASCII for old clients (`filename`, what is not printable ASCII as `_`)
/// and exactly (`filename*`, UTF-8 percent-encoded as RFC 8187 says).
pub fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => encoded.push(char::from(byte)),
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' => {
                encoded.push(char::from(byte))
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The 413 for more than [`MAX_IMPORT_BYTES`].
pub(crate) fn too_large(what: &str) -> ApiError {
    ApiError::payload_too_large(format!(
        "{what} is larger than {} MiB, the most an import takes.",
        MAX_IMPORT_BYTES >> 20
    ))
}

/// The ids an import writes. A restore (our export, imported by the user
/// who exported it) keeps the file's ids, so the chats come back as they
/// were, links included. Any other import derives each id from the
/// importer and the source's own id (UUID v5), so a second import of the
/// same file finds the rows of the first and two users importing the same
/// file never collide.
#[derive(Debug, Clone)]
pub struct Ids {
    importer: String,
    keep: bool,
}

/// The namespace of derived ids; a constant, so derived ids never change.
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3116c34a_9c27_43af_af98_3b5dbffce93c);

impl Ids {
    /// For our export: `exporter` is the header's `userId`.
    pub fn for_our_export(importer: &str, exporter: &str) -> Self {
        Self {
            importer: importer.to_owned(),
            keep: importer == exporter,
        }
    }

    /// For an import whose ids are not ours: always derived.
    pub fn derived(importer: &str) -> Self {
        Self {
            importer: importer.to_owned(),
            keep: false,
        }
    }

    /// Whether the file's own ids are kept.
    pub fn is_restore(&self) -> bool {
        self.keep
    }

    /// The id of a row of kind `kind` ("chat", "message", "folder") that
    /// the file calls `id`.
    pub fn ours(&self, kind: &str, id: Uuid) -> Uuid {
        if self.keep {
            id
        } else {
            self.derive(&["chat-history", kind, &id.to_string()])
        }
    }

    /// The id of something whose source names it by `path` (such as a
    /// ChatGPT conversation id, then a node id).
    pub fn derive(&self, path: &[&str]) -> Uuid {
        // Each part is length-prefixed, so no two different paths (or
        // importers) spell the same name.
        let mut name = String::new();
        for part in std::iter::once(self.importer.as_str()).chain(path.iter().copied()) {
            name.push_str(&part.len().to_string());
            name.push(':');
            name.push_str(part);
        }
        Uuid::new_v5(&DERIVED_ID_NAMESPACE, name.as_bytes())
    }
}

/// What writing one chat came to ([`store::chat_outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatOutcome {
    /// The chat was created: write its messages and votes, then commit.
    Created,
    /// The importer has this chat already (an earlier import of the same
    /// file, or the chat a restore brings back is still there): nothing
    /// was written.
    AlreadyThere,
    /// Its id is another user's chat (or one created at this instant):
    /// nothing was written, nothing of that chat was touched.
    Exists,
}

/// The answer of `POST /api/import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub chats_imported: u64,
    pub chats_already_there: u64,
    /// Chats (and folders) not imported, each with why.
    pub skipped: Vec<Skipped>,
    /// What was left out of the imported chats (system and hidden
    /// messages, images, reasoning, ...), counted by reason.
    pub skipped_parts: BTreeMap<String, u64>,
}

impl ImportReport {
    /// Counts how writing `chat` came out.
    pub fn record(&mut self, chat: &ImportedChat, outcome: ChatOutcome) {
        match outcome {
            ChatOutcome::Created => {
                self.chats_imported += 1;
                for (reason, count) in &chat.skipped_parts {
                    *self.skipped_parts.entry(reason.clone()).or_default() += count;
                }
            }
            ChatOutcome::AlreadyThere => self.chats_already_there += 1,
            ChatOutcome::Exists => self.skipped.push(Skipped {
                source: chat.source.clone(),
                reason: "exists: its id is another account's chat".to_owned(),
            }),
        }
    }

    /// Counts a chat that could not be read.
    pub fn skip(&mut self, skipped: Skipped) {
        self.skipped.push(skipped);
    }
}

/// Reads one JSON value of type `T` from `text`; the error says which
/// field was wrong (`field messages[2].role: unknown variant ...`) and
/// where in `text`.
fn decode<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let problem = json_problem(error.inner());
        match path.as_str() {
            "." => problem,
            _ => format!("field {path}: {problem}"),
        }
    })?;
    deserializer.end().map_err(|error| json_problem(&error))?;
    Ok(value)
}

/// A JSON error as a sentence: its own words, then the column when the
/// text is one line (a line of our export: the caller names the line). In
/// a value spread over lines (a ChatGPT conversation), the field path says
/// more than a position would.
fn json_problem(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let problem = message.strip_suffix(&position).unwrap_or(&message);
    match error.line() {
        1 => format!("{problem} (column {})", error.column()),
        _ => problem.to_owned(),
    }
}

/// The text of a message's stored `parts`: its text parts, a paragraph
/// each, and how many parts were something else; `None` when `parts` is
/// not an array.
fn text_of_parts(parts: &RawValue) -> Option<(String, u64)> {
    let parts: Vec<serde_json::Value> = serde_json::from_str(parts.get()).ok()?;
    let mut texts = Vec::new();
    let mut others = 0;
    for part in &parts {
        match (part["type"].as_str(), part["text"].as_str()) {
            (Some("text"), Some(text)) => texts.push(text),
            _ => others += 1,
        }
    }
    Some((texts.join("\n\n"), others))
}

/// Adds one to `reason`'s count.
fn count(parts: &mut BTreeMap<String, u64>, reason: &str) {
    *parts.entry(reason.to_owned()).or_default() += 1;
}

/// A chat's title as the sidebar shows it: one line, at most
/// [`MAX_TITLE_CHARS`] characters; without one, named after its first
/// message (as a new chat is), else "New chat" (the schema's default).
fn imported_title(title: Option<&str>, messages: &[ImportedMessage]) -> String {
    let title = one_line(title.unwrap_or_default(), MAX_TITLE_CHARS);
    if !title.is_empty() {
        return title;
    }
    messages
        .iter()
        .map(|message| fallback_title(&message.text))
        .find(|title| !title.is_empty())
        .unwrap_or_else(|| "New chat".to_owned())
}

/// `text` as one line of at most `max_chars` characters: runs of
/// whitespace (line breaks included) as one space, trimmed.
fn one_line(text: &str, max_chars: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max_chars) {
        Some((cut, _)) => line[..cut].trim_end().to_owned(),
        None => line,
    }
}

/// Makes the messages' times never decrease, so the conversation reads in
/// the file's order (messages are shown by time): a message older than the
/// one before it takes that one's time.
fn keep_in_order(messages: &mut [ImportedMessage]) {
    let mut latest: Option<UtcDateTime> = None;
    for message in messages {
        if let Some(latest) = latest.filter(|latest| *latest > message.created_at) {
            message.created_at = latest;
        }
        latest = Some(message.created_at);
    }
}

/// Why a chat breaks a limit, if it does.
fn over_limits(messages: &[ImportedMessage]) -> Option<String> {
    if messages.len() > MAX_MESSAGES_PER_CHAT {
        return Some(format!(
            "it has {} messages; an imported chat may have at most {MAX_MESSAGES_PER_CHAT}",
            messages.len()
        ));
    }
    messages.iter().enumerate().find_map(|(index, message)| {
        (message.text.len() > MAX_MESSAGE_TEXT_BYTES).then(|| {
            format!(
                "its message {} has {} bytes of text; an imported message may have at most {} MiB",
                index + 1,
                message.text.len(),
                MAX_MESSAGE_TEXT_BYTES >> 20
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u8) -> UtcDateTime {
        UtcDateTime::from_parts(2024, 5, 1, 12, 0, second, 0).unwrap()
    }

    fn message(text: &str, second: u8) -> ImportedMessage {
        ImportedMessage {
            id: Uuid::from_u128(u128::from(second)),
            role: Role::User,
            text: text.to_owned(),
            created_at: at(second),
            status: MessageStatus::Complete,
            trace_id: None,
            vote: None,
        }
    }

    #[test]
    fn a_restore_keeps_ids_and_anyone_else_derives_them() {
        let id = Uuid::from_u128(42);
        let restore = Ids::for_our_export("a@example.com", "a@example.com");
        assert!(restore.is_restore());
        assert_eq!(restore.ours("chat", id), id);

        let other = Ids::for_our_export("b@example.com", "a@example.com");
        assert!(!other.is_restore());
        let derived = other.ours("chat", id);
        assert_ne!(derived, id);
        assert_eq!(derived.get_version_num(), 5);
        // Stable: the same importer and source give the same id, always.
        assert_eq!(derived, Ids::derived("b@example.com").ours("chat", id));
        // Another importer, another kind or another source: another id.
        assert_ne!(derived, Ids::derived("c@example.com").ours("chat", id));
        assert_ne!(derived, other.ours("message", id));
        assert_ne!(derived, other.ours("chat", Uuid::from_u128(43)));
    }

    #[test]
    fn derived_ids_do_not_run_parts_together() {
        let ids = Ids::derived("a");
        assert_ne!(ids.derive(&["bc", "d"]), ids.derive(&["b", "cd"]));
        assert_ne!(
            Ids::derived("ab").derive(&["c"]),
            Ids::derived("a").derive(&["bc"])
        );
    }

    #[test]
    fn titles_are_one_line_and_fall_back_to_the_first_message() {
        assert_eq!(
            imported_title(Some("  Trip\n to\tLisbon "), &[]),
            "Trip to Lisbon"
        );
        let long = "é".repeat(MAX_TITLE_CHARS + 5);
        assert_eq!(
            imported_title(Some(&long), &[]).chars().count(),
            MAX_TITLE_CHARS
        );
        let messages = [message("", 1), message("What is the capital of France?", 2)];
        assert_eq!(
            imported_title(Some("   "), &messages),
            "What is the capital of France?"
        );
        assert_eq!(imported_title(None, &[]), "New chat");
    }

    #[test]
    fn an_older_message_after_a_newer_one_takes_its_time() {
        let mut messages = [message("a", 5), message("b", 3), message("c", 7)];
        keep_in_order(&mut messages);
        let times: Vec<_> = messages.iter().map(|m| m.created_at).collect();
        assert_eq!(times, [at(5), at(5), at(7)]);
    }

    #[test]
    fn limits_name_the_message_that_breaks_them() {
        let mut messages = vec![message("ok", 1), message("ok", 2)];
        assert_eq!(over_limits(&messages), None);
        messages[1].text = "x".repeat(MAX_MESSAGE_TEXT_BYTES + 1);
        let reason = over_limits(&messages).unwrap();
        assert!(reason.starts_with("its message 2 has"), "{reason}");
        let many = vec![message("", 1); MAX_MESSAGES_PER_CHAT + 1];
        assert!(over_limits(&many).unwrap().contains("at most 100000"));
    }

    #[test]
    fn the_report_counts_each_outcome() {
        let mut chat = ImportedChat {
            id: Uuid::from_u128(1),
            source: "line 2".to_owned(),
            title: "t".to_owned(),
            created_at: at(0),
            last_activity_at: at(0),
            visibility: Visibility::Private,
            pinned: false,
            archived: false,
            folder_id: None,
            messages: Vec::new(),
            skipped_parts: BTreeMap::from([("image".to_owned(), 2)]),
        };
        let mut report = ImportReport::default();
        report.record(&chat, ChatOutcome::Created);
        report.record(&chat, ChatOutcome::Created);
        report.record(&chat, ChatOutcome::AlreadyThere);
        chat.source = "line 3".to_owned();
        report.record(&chat, ChatOutcome::Exists);
        report.skip(Skipped {
            source: "line 4".to_owned(),
            reason: "bad".to_owned(),
        });
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({
                "chatsImported": 2,
                "chatsAlreadyThere": 1,
                "skipped": [
                    {"source": "line 3", "reason": "exists: its id is another account's chat"},
                    {"source": "line 4", "reason": "bad"},
                ],
                "skippedParts": {"image": 4},
            })
        );
    }

    #[test]
    fn an_attachment_is_named_in_ascii_and_exactly() {
        assert_eq!(
            attachment("chat-history-2024-05-01.jsonl"),
            "attachment; filename=\"chat-history-2024-05-01.jsonl\"; \
             filename*=UTF-8''chat-history-2024-05-01.jsonl"
        );
        assert_eq!(
            attachment("Café \"x\".md"),
            "attachment; filename=\"Caf_ _x_.md\"; filename*=UTF-8''Caf%C3%A9%20%22x%22.md"
        );
    }

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let now = at(0);
        let neither = read(b"hello", "u", now).err().unwrap();
        assert_eq!(neither.status, 400);
        assert!(neither.message.contains("neither"), "{}", neither.message);
        let binary = read(&[0xff, 0xfe, 0x00], "u", now).err().unwrap();
        assert!(binary.message.contains("byte 1"), "{}", binary.message);
        let huge = vec![b' '; MAX_IMPORT_BYTES + 1];
        assert_eq!(read(&huge, "u", now).err().unwrap().status, 413);
        // A byte-order mark and leading blank space are allowed.
        let chatgpt = read("\u{feff}\n [ ]".as_bytes(), "u", now).unwrap();
        assert_eq!(chatgpt.chats().count(), 0);
    }
}
