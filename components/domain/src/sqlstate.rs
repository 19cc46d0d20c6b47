//! Postgres SQLSTATE codes the product reacts to. Errors are classified by code,
//! never by message text (messages are localised and change between versions).

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

/// Whether the error means the database went away rather than that the
/// statement was wrong: class 08 (connection exception), the 57P0x shutdown and
/// start-up codes, and the synthetic codes a pooling host reports for a reset
/// socket, a closed pool or a database that stopped answering.
pub fn means_database_unreachable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "ECONNRESET" | "POOL_CLOSED" | TIMED_OUT
        )
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
    fn busy_codes() {
        assert!(means_database_busy("53300"));
        assert!(means_database_busy("53200"));
        assert!(!means_database_busy("57P01"));
    }
}
