//! Server-side error lines. The host (and `spin up`) shows guest stderr, so one
//! line per failure, with what was being done, is the log. No line carries a
//! URL's credentials (see [`chat_contract::redact`]); callers keep message text,
//! emails and tokens out of what they pass in.

use chat_contract::redact;
use std::fmt::Display;

/// Writes `[chat] <context>: <error>` as one line, whatever newlines the error
/// text (for example a Postgres message) contains.
pub fn failure(context: &str, error: &dyn Display) {
    let text = error.to_string().replace(['\r', '\n'], " ");
    write_line(&format!("{context}: {text}"));
}

/// A notable event that is not a failure, such as a change of mode.
pub fn note(message: &str) {
    write_line(message);
}

fn write_line(line: &str) {
    eprintln!("[chat] {}", redact::url_credentials(line));
}
