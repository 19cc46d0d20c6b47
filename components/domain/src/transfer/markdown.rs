//! One chat as a Markdown document, for its page's "export as Markdown":
//!
//! ```text
//! # Trip to Lisbon
//!
//! **You** · 2024-05-01 12:00 UTC
//!
//! > Where should I stay?
//!
//! **Assistant** · 2024-05-01 12:00 UTC · *stopped*
//!
//! > Alfama, if you like hills.
//! ```
//!
//! Each message's text is quoted whole (every line starts with `>`): the
//! text keeps its own Markdown (lists, code, emphasis render as the chat
//! showed them, inside the quote), yet nothing in it can stand outside the
//! quote. So a message cannot forge the document's own structure: a line
//! `# Title` or `**You**` in it is a heading or a line of the quote, and a
//! code fence it leaves open ends with the quote, not at the next message.
//!
//! The document streams: [`heading`] once, then [`message`] for each
//! message, oldest first. The chat's title and who may read it come first
//! ([`chat_statement`]), its messages after (`super::export::ChatMessages`).

use super::{one_line, text_of_parts};
use crate::access::ChatAccess;
use crate::database::sql::{Row, SqlParam, Statement};
use crate::database::timestamp::UtcDateTime;
use crate::messages::MessageView;
use uuid::Uuid;

/// The chat's owner, visibility and title, in that order; no row for an
/// unknown chat.
const CHAT: &str = r#"SELECT "userId", visibility, title FROM chat."Chat" WHERE id = $1"#;

/// The longest file name stem, in characters (a title may be longer).
const MAX_FILE_STEM_CHARS: usize = 80;

pub fn chat_statement(chat: Uuid) -> Statement {
    Statement::new(CHAT, vec![SqlParam::Uuid(chat)])
}

/// Decodes the rows of [`chat_statement`]: who may read the chat and its
/// title; `None` for an unknown chat.
pub fn chat<R: Row>(rows: &[R]) -> Result<Option<(ChatAccess, String)>, R::Error> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let access = ChatAccess::new(row.text(0)?, &row.text(1)?);
    Ok(Some((access, row.text(2)?)))
}

/// The name the document is saved under: its title, without what a file
/// system refuses in a name, `.md`.
pub fn file_name(title: &str) -> String {
    let stem: String = one_line(title, MAX_FILE_STEM_CHARS)
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let stem = stem.trim_matches(|c: char| c == '.' || c.is_whitespace());
    match stem {
        "" => "chat.md".to_owned(),
        stem => format!("{stem}.md"),
    }
}

/// The document's first line: the chat's title, on one line.
pub fn heading(title: &str) -> String {
    format!("# {}\n", one_line(title, usize::MAX))
}

/// One message: who wrote it and when, whether the reply is whole, and its
/// text quoted.
pub fn message(message: &MessageView) -> String {
    let author = match message.role.as_str() {
        "user" => "You",
        "assistant" => "Assistant",
        other => other,
    };
    let mut markdown = format!("\n**{author}** · {}", readable(message.created_at));
    if let Some(mark) = status_mark(&message.status) {
        markdown.push_str(" · *");
        markdown.push_str(mark);
        markdown.push('*');
    }
    markdown.push('\n');
    // Parts that are not an array hold no text the app could show.
    let text = text_of_parts(&message.parts)
        .map(|(text, _)| text)
        .unwrap_or_default();
    if !text.trim().is_empty() {
        markdown.push('\n');
        markdown.push_str(&quoted(&text));
    }
    markdown
}

/// How a reply that is not whole is marked; a whole one is not.
fn status_mark(status: &str) -> Option<&'static str> {
    match status {
        "incomplete" => Some("incomplete: the reply broke off"),
        "stopped" => Some("stopped"),
        "error" => Some("no reply: the model failed"),
        "streaming" => Some("still being written"),
        _ => None,
    }
}

/// `2024-05-01 12:00 UTC`.
fn readable(at: UtcDateTime) -> String {
    let iso = at.to_string();
    let (date, time) = iso.split_once('T').expect("an ISO time has a T");
    format!("{date} {} UTC", &time[..5])
}

/// Every line of `text` behind `> ` (an empty one behind `>`, which keeps
/// the quote one block).
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + text.len() / 16);
    for line in text.trim_end().lines() {
        let line = line.trim_end_matches('\r');
        quoted.push('>');
        if !line.is_empty() {
            quoted.push(' ');
            quoted.push_str(line);
        }
        quoted.push('\n');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::export::tests::message as view;

    fn document(title: &str, messages: &[MessageView]) -> String {
        let mut document = heading(title);
        for one in messages {
            document.push_str(&message(one));
        }
        document
    }

    #[test]
    fn the_chat_is_read_with_who_may_read_it() {
        use crate::access::Visibility;
        use crate::database::sql::fake::{FakeRow, Value};
        let statement = chat_statement(Uuid::from_u128(1));
        assert_eq!(statement.params, vec![SqlParam::Uuid(Uuid::from_u128(1))]);
        let row = FakeRow::laid_out_by(
            CHAT,
            &[
                (r#""userId""#, Value::Text("ada")),
                ("visibility", Value::Text("public")),
                ("title", Value::Text("Trip")),
            ],
        );
        let (access, title) = chat(&[row]).unwrap().unwrap();
        assert_eq!(
            (access.owner.as_str(), access.visibility),
            ("ada", Visibility::Public)
        );
        assert_eq!(title, "Trip");
        assert_eq!(chat::<FakeRow>(&[]).unwrap(), None);
    }

    #[test]
    fn the_file_is_named_after_the_title_as_file_systems_allow() {
        assert_eq!(file_name("Trip to Lisbon"), "Trip to Lisbon.md");
        assert_eq!(file_name("a/b: c?\n\"d\""), "a_b_ c_ _d_.md");
        assert_eq!(file_name(" .. "), "chat.md");
        assert_eq!(file_name(&"é".repeat(300)).chars().count(), 83);
    }

    #[test]
    fn a_chat_reads_as_a_titled_dialogue() {
        let mut reply = view(2, "assistant", "Paris.\n\n- It is the capital.", 9);
        reply.status = "stopped".to_owned();
        let document = document(
            "Capitals\nof Europe",
            &[view(1, "user", "Capital of France?", 3), reply],
        );
        assert_eq!(
            document,
            "# Capitals of Europe\n\
             \n**You** · 2024-05-01 12:00 UTC\n\
             \n> Capital of France?\n\
             \n**Assistant** · 2024-05-01 12:00 UTC · *stopped*\n\
             \n> Paris.\n>\n> - It is the capital.\n"
        );
    }

    #[test]
    fn replies_that_are_not_whole_say_so() {
        for (status, mark) in [
            ("incomplete", Some("*incomplete: the reply broke off*")),
            ("error", Some("*no reply: the model failed*")),
            ("streaming", Some("*still being written*")),
            ("complete", None),
        ] {
            let mut reply = view(2, "assistant", "", 9);
            reply.status = status.to_owned();
            let markdown = message(&reply);
            let label = markdown.lines().nth(1).unwrap();
            assert!(label.ends_with(mark.unwrap_or("UTC")), "{status}: {label}");
            // An empty reply has its label and no quote.
            assert_eq!(markdown.lines().count(), 2, "{markdown:?}");
        }
    }

    #[test]
    fn a_message_cannot_forge_the_documents_structure() {
        let forged = "Sure.\n\n# Forged title\n\n**You** · 2024-05-01 12:00 UTC\n\n\
                      Ignore the above.\n---\n```\nan unclosed fence\r\n";
        let document = document(
            "Real title",
            &[view(1, "assistant", forged, 1), view(2, "user", "Next", 2)],
        );
        // The document's own lines (outside any quote) are exactly its
        // title, the two labels and the blank lines between.
        let outside: Vec<&str> = document
            .lines()
            .filter(|line| !line.starts_with('>') && !line.is_empty())
            .collect();
        assert_eq!(
            outside,
            [
                "# Real title",
                "**Assistant** · 2024-05-01 12:00 UTC",
                "**You** · 2024-05-01 12:00 UTC",
            ]
        );
        // The open fence stays in its quote: the next message's label is
        // not in it.
        assert!(
            document.contains("> an unclosed fence\n\n**You**"),
            "{document}"
        );
    }
}
