//! Keeps pooled connections clean between guests.
//!
//! A guest may leave session state behind on the connection it borrowed: an
//! open transaction (it trapped between BEGIN and COMMIT), a `SET`, a
//! session advisory lock. Such a connection is reset before it goes back to
//! the pool, so the next request never inherits it; one left with state the
//! reset cannot undo (another role, prepared statements or cursors of its
//! own, temporary tables, settings changed through `set_config`) is closed
//! instead. Plain statements, the common case, cost nothing extra.
//!
//! Detection reads the statement's text. What the server reports would be
//! better, but is out of reach: tokio-postgres (0.7.18) drops the
//! transaction status of each ReadyForQuery and keeps only the row count of
//! each command tag; even that status would not show an advisory lock, a
//! `LISTEN` or most `SET`s, which the server does not report; and asking the
//! server costs a round trip, as much as resetting always (measured in
//! docs/resilience.md, which also says why the host keeps detection: it
//! decides whether a statement may be replayed on a new connection).

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

/// Statements whose state [`RESET_SESSION`] cannot undo (`RESET ALL` leaves
/// the role; deallocating every prepared statement would also drop the
/// host's own): the connection is closed instead of reused.
const UNRESETTABLE: &[&str] = &[
    "set role",
    "set session authorization",
    "set local role",
    "prepare",
    "declare",
    "create temp",
    "create temporary",
    "create local temp",
    "set_config(",
];

/// One round trip that undoes the session state a guest can leave, except
/// what [`UNRESETTABLE`] lists.
const RESET_SESSION: &str = "ROLLBACK; RESET ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *";

#[derive(Debug, Default)]
pub struct SessionState {
    needs_reset: bool,
    /// Seen state the reset cannot undo: close rather than reuse.
    must_close: bool,
}

impl SessionState {
    pub fn observe(&mut self, statement: &str) {
        self.needs_reset |= changes_session(statement);
        self.must_close |= cannot_be_reset(statement);
        self.needs_reset |= self.must_close;
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
        if self.must_close {
            close(client);
            return;
        }
        tokio::spawn(async move {
            if let Err(error) = client.batch_execute(RESET_SESSION).await {
                tracing::debug!("closing a connection that could not be reset: {error}");
                close(client);
            }
        });
    }
}

/// Takes the connection out of its pool and closes it.
fn close(client: Arc<deadpool_postgres::Object>) {
    if let Ok(client) = Arc::try_unwrap(client) {
        drop(deadpool_postgres::Object::take(client));
    }
}

fn cannot_be_reset(statement: &str) -> bool {
    let lowered = skip_comments(statement).to_ascii_lowercase();
    let words = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    UNRESETTABLE
        .iter()
        .any(|start| words.starts_with(start) || (start.ends_with('(') && words.contains(start)))
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
    use super::{SessionState, cannot_be_reset, changes_session};

    #[test]
    fn state_the_reset_cannot_undo_closes_the_connection() {
        for statement in [
            "SET ROLE reader",
            "set  session authorization other",
            "PREPARE mine AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "CREATE TEMP TABLE scratch (id int)",
            "/* x */ create temporary table t (id int)",
            "SELECT set_config('search_path', 'x', false)",
        ] {
            assert!(cannot_be_reset(statement), "{statement}");
            let mut session = SessionState::default();
            session.observe(statement);
            assert!(session.must_close && session.needs_reset(), "{statement}");
        }
        for statement in [
            "SET search_path = chat",
            "BEGIN",
            "SELECT pg_try_advisory_lock(7)",
        ] {
            assert!(!cannot_be_reset(statement), "{statement}");
        }
    }

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
