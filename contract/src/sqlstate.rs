//! Postgres SQLSTATE codes the product reacts to, and the synthetic codes
//! (`ECONNRESET`, `POOL_CLOSED`, `ETIMEDOUT`) that stand for failures the
//! server could not report. Both travel where a SQLSTATE does; a synthetic
//! code is never five characters long, so [`is_sqlstate`] tells them apart,
//! and [`describe`] names each for what it is. Where each synthetic code is
//! produced, under chat-host and under Spin: docs/resilience.md. Errors are
//! classified by code, never by message text (messages are localised and
//! change between versions), with one documented exception,
//! [`code_for_driver_failure`].

/// `relation ... does not exist`: a table of ours has not been created yet.
pub const UNDEFINED_TABLE: &str = "42P01";
/// `schema ... does not exist`: the `chat` schema has not been created yet.
pub const INVALID_SCHEMA_NAME: &str = "3F000";

/// Whether the error means our schema (or part of it) is not there yet.
pub fn means_schema_missing(code: &str) -> bool {
    matches!(code, UNDEFINED_TABLE | INVALID_SCHEMA_NAME)
}

/// Synthetic: the database did not answer a statement within the host's
/// statement timeout (it is stuck, or the network is).
pub const TIMED_OUT: &str = "ETIMEDOUT";

/// Synthetic: the host's pool was closed (the host is shutting down).
pub const POOL_CLOSED: &str = "POOL_CLOSED";

/// Whether `code` has a SQLSTATE's shape (five digits or upper-case
/// letters), as opposed to one of the synthetic codes.
pub fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// `SQLSTATE 23505`, or `ECONNRESET, no SQLSTATE` for a synthetic code: for
/// error messages and logs, so a reader never takes one for the other.
pub fn describe(code: &str) -> String {
    if is_sqlstate(code) {
        format!("SQLSTATE {code}")
    } else {
        format!("{code}, no SQLSTATE")
    }
}

/// Whether the error means the database went away rather than that the
/// statement was wrong: class 08 (connection exception), the 57P0x shutdown and
/// start-up codes, and the synthetic codes a pooling host reports for a reset
/// socket, a closed pool or a database that stopped answering.
pub fn means_database_unreachable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | CONNECTION_RESET | POOL_CLOSED | TIMED_OUT
        )
}

/// Synthetic: the connection was reset or closed under a statement.
pub const CONNECTION_RESET: &str = "ECONNRESET";

/// The code for a statement failure that carries no SQLSTATE because the
/// server never answered it: under Spin that is `query-error::text` holding
/// the Postgres driver's (tokio-postgres) rendering of its error, whose
/// `kind` tells a lost connection (`Closed`: the session ended under the
/// statement; `Io`: the socket failed) from a fault of the statement (a value
/// that did not convert, a result over the size limit). Only a lost
/// connection gets a code: [`CONNECTION_RESET`], which the retry policy
/// retries. The caller passes only that variant's text, never a server
/// error's message.
pub fn code_for_driver_failure(text: &str) -> Option<&'static str> {
    const LOST_CONNECTION_KINDS: [&str; 2] = ["Error { kind: Closed", "Error { kind: Io"];
    LOST_CONNECTION_KINDS
        .iter()
        .any(|kind| text.contains(kind))
        .then_some(CONNECTION_RESET)
}

/// Class 53, insufficient resources: the database (or the host's pool of
/// connections to it, `53300` too_many_connections) is busy, not gone. Worth
/// a "try again shortly", never a switch to ephemeral mode.
pub fn means_database_busy(code: &str) -> bool {
    code.starts_with("53")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_codes_never_look_like_sqlstates() {
        for code in ["23505", "57P01", "08006", "42P01", "53300"] {
            assert!(is_sqlstate(code), "{code}");
            assert_eq!(describe(code), format!("SQLSTATE {code}"));
        }
        for code in [CONNECTION_RESET, POOL_CLOSED, TIMED_OUT] {
            assert!(!is_sqlstate(code), "{code}");
            assert_eq!(describe(code), format!("{code}, no SQLSTATE"));
        }
    }

    #[test]
    fn missing_schema_codes() {
        assert!(means_schema_missing("42P01"));
        assert!(means_schema_missing("3F000"));
        assert!(!means_schema_missing("42601"));
    }

    #[test]
    fn unreachable_codes() {
        for code in [
            "08006",
            "08001",
            "57P01",
            "57P03",
            "ECONNRESET",
            "POOL_CLOSED",
            "ETIMEDOUT",
        ] {
            assert!(means_database_unreachable(code), "{code}");
        }
        for code in ["42P01", "23505", "40001", "57014", "53300"] {
            assert!(!means_database_unreachable(code), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_reported_as_driver_text_is_a_connection_reset() {
        // What Spin 4.1's spin:postgres puts in `query-error::text` for a
        // statement on a session the server ended, or a broken socket.
        for text in [
            "Error { kind: Closed, cause: None }",
            "Error { kind: Io, cause: Some(Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" }) }",
        ] {
            assert_eq!(
                code_for_driver_failure(text),
                Some(CONNECTION_RESET),
                "{text}"
            );
        }
        for text in [
            "Error { kind: ToSql(0), cause: Some(WrongType) }",
            "query result exceeds limit of 1048576 bytes",
            "async error: channel closed",
        ] {
            assert_eq!(code_for_driver_failure(text), None, "{text}");
        }
        assert!(means_database_unreachable(CONNECTION_RESET));
    }

    #[test]
    fn busy_codes() {
        assert!(means_database_busy("53300"));
        assert!(means_database_busy("53200"));
        assert!(!means_database_busy("57P01"));
    }
}
