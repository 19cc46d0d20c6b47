//! The key-value store the components keep their state in, and the keys
//! chat-host looks at from outside (its metrics count the journal).

/// The store's label: Spin always provides `default`, and chat-host's
/// runtime config defines it unless told otherwise.
pub const LABEL: &str = "default";

/// The prefix of every entry of the write-behind journal: a write the
/// database was not there to take.
pub const JOURNAL_PREFIX: &str = "journal/";
