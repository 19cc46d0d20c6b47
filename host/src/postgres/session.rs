//! Keeps pooled connections clean between guests.
//!
//! A guest may leave session state behind on the connection it borrowed: an
//! open transaction (it trapped between BEGIN and COMMIT), a `SET`, a
//! session advisory lock. Such a connection is reset before it goes back to
//! the pool, so the next request never inherits it. Plain statements, the
//! common case, cost nothing extra.

use std::sync::Arc;

/// Statements after which a connection needs a reset before reuse.
const SESSION_KEYWORDS: &[&str] = &[
    "BEGIN",
    "START",
    "SET",
    "LISTEN",
    "DECLARE",
    "PREPARE",
    "LOCK",
    "SAVEPOINT",
];

/// One round trip that undoes every kind of session state a guest can leave.
const RESET_SESSION: &str = "ROLLBACK; RESET ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *";

#[derive(Debug, Default)]
pub struct SessionState {
    needs_reset: bool,
}

impl SessionState {
    pub fn observe(&mut self, statement: &str) {
        self.needs_reset |= changes_session(statement);
    }

    /// Whether the guest left (or may have left) state on the connection:
    /// an open transaction among others.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset
    }

    /// Returns the connection to its pool, after a reset when it needs one;
    /// a connection that cannot be reset is closed instead.
    pub fn release(self, client: Arc<deadpool_postgres::Object>) {
        if !self.needs_reset {
            return;
        }
        tokio::spawn(async move {
            if let Err(error) = client.batch_execute(RESET_SESSION).await {
                tracing::debug!("closing a connection that could not be reset: {error}");
                if let Ok(client) = Arc::try_unwrap(client) {
                    drop(deadpool_postgres::Object::take(client));
                }
            }
        });
    }
}

fn changes_session(statement: &str) -> bool {
    let first_word: String = skip_comments(statement)
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    SESSION_KEYWORDS.contains(&first_word.as_str())
        || statement.to_ascii_lowercase().contains("advisory_")
}

fn skip_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return sql;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::changes_session;

    #[test]
    fn spots_statements_that_leave_session_state() {
        for statement in [
            "BEGIN",
            "  begin isolation level serializable",
            "-- migrate\nSTART TRANSACTION",
            "/* x */ set search_path = chat",
            "SELECT pg_advisory_lock(42)",
            "select pg_advisory_xact_lock($1)",
            "SELECT pg_try_advisory_lock(7)",
        ] {
            assert!(changes_session(statement), "{statement}");
        }
    }

    #[test]
    fn plain_statements_need_no_reset() {
        for statement in [
            "SELECT id FROM chat.\"Chat\" WHERE \"userId\" = $1",
            "INSERT INTO chat.\"User\" (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            "UPDATE chat.\"Chat\" SET title = $1 WHERE id = $2",
            "COMMIT",
        ] {
            assert!(!changes_session(statement), "{statement}");
        }
    }
}
