//! Versioned schema migrations for the `chat` schema, and the bookkeeping that
//! records which ones a database has.
//!
//! Version 1 is the seed's Step 1 schema verbatim, with `IF NOT EXISTS`
//! throughout, so a database created by the seed's app is adopted unchanged.
//! Later versions are additive only. The runner (in the guest) applies pending
//! migrations in one transaction under [`ADVISORY_LOCK_KEY`].

use crate::database::sql::{SqlParam, Statement};
use serde::Serialize;

/// One schema version: statements applied in order, in one transaction.
#[derive(Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "seed schema: User, Chat, Message, Vote",
        statements: &[
            CREATE_SCHEMA,
            r#"CREATE TABLE IF NOT EXISTS chat."User" (
  id TEXT PRIMARY KEY NOT NULL,
  email VARCHAR(64) NOT NULL
)"#,
            r#"CREATE TABLE IF NOT EXISTS chat."Chat" (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  "createdAt" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  title TEXT NOT NULL DEFAULT 'New chat',
  "userId" TEXT NOT NULL,
  visibility VARCHAR(10) NOT NULL DEFAULT 'private',
  "lastContext" JSONB
)"#,
            r#"CREATE TABLE IF NOT EXISTS chat."Message" (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  "chatId" UUID NOT NULL REFERENCES chat."Chat"(id) ON DELETE CASCADE,
  role VARCHAR(20) NOT NULL,
  parts JSON NOT NULL DEFAULT '[]',
  attachments JSON NOT NULL DEFAULT '[]',
  "createdAt" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "traceId" TEXT
)"#,
            r#"CREATE TABLE IF NOT EXISTS chat."Vote" (
  "chatId" UUID NOT NULL REFERENCES chat."Chat"(id) ON DELETE CASCADE,
  "messageId" UUID NOT NULL REFERENCES chat."Message"(id) ON DELETE CASCADE,
  "isUpvoted" BOOLEAN NOT NULL,
  PRIMARY KEY ("chatId", "messageId")
)"#,
            r#"CREATE INDEX IF NOT EXISTS idx_chat_user ON chat."Chat" ("userId", "createdAt" DESC)"#,
            r#"CREATE INDEX IF NOT EXISTS idx_message_chat ON chat."Message" ("chatId", "createdAt" ASC)"#,
        ],
    },
    Migration {
        version: 2,
        name: "keyset index for history pages",
        // History pages order by ("createdAt", id) and seek with a row
        // comparison on both columns. idx_chat_user lacks `id`, so deep pages
        // would scan and filter every newer chat of the user; this index makes
        // each page a bounded index range. (Plain CREATE INDEX: CONCURRENTLY
        // cannot run inside the migration transaction.)
        statements: &[
            r#"CREATE INDEX IF NOT EXISTS idx_chat_user_keyset ON chat."Chat" ("userId", "createdAt" DESC, id DESC)"#,
        ],
    },
    Migration {
        version: 3,
        name: "insertion order for messages",
        // Messages written in one transaction share CURRENT_TIMESTAMP as
        // "createdAt"; this orders them as written (see messages.rs). Writers
        // never set it, so the seed's INSERTs work unchanged. Existing rows are
        // numbered once, in the order the table is scanned. Adding an identity
        // column rewrites the table, once, inside the migration transaction.
        statements: &[
            r#"ALTER TABLE chat."Message" ADD COLUMN IF NOT EXISTS "insertionOrder" BIGINT GENERATED ALWAYS AS IDENTITY"#,
        ],
    },
    Migration {
        version: 4,
        name: "message status: complete, incomplete or error",
        // How much of a reply a message holds (conversation.rs). Existing
        // rows and the seed's INSERTs get 'complete'; a constant default
        // adds the column without rewriting the table.
        statements: &[
            r#"ALTER TABLE chat."Message" ADD COLUMN IF NOT EXISTS status VARCHAR(10) NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'incomplete', 'error'))"#,
        ],
    },
    Migration {
        version: 5,
        name: "keyset index for message pages",
        // A messages page is the newest rows of a chat by ("createdAt",
        // "insertionOrder"), and deeper pages seek with a row comparison on
        // both (messages.rs). idx_message_chat lacks "insertionOrder", so
        // each page would sort every message of the chat; this index makes
        // each page a bounded backward index range.
        statements: &[
            r#"CREATE INDEX IF NOT EXISTS idx_message_chat_keyset ON chat."Message" ("chatId", "createdAt", "insertionOrder")"#,
        ],
    },
    Migration {
        version: 6,
        name: "message status: also stopped and streaming",
        // The one set of statuses a reply can have, for stopping a reply
        // and following one that is still being written as well
        // (conversation.rs). Migration 4's CHECK got Postgres' default name;
        // the wider one replaces it under that name, and checking it reads
        // the table once.
        statements: &[
            r#"ALTER TABLE chat."Message" DROP CONSTRAINT IF EXISTS "Message_status_check""#,
            r#"ALTER TABLE chat."Message" ADD CONSTRAINT "Message_status_check" CHECK (status IN ('complete', 'incomplete', 'error', 'stopped', 'streaming'))"#,
        ],
    },
    Migration {
        version: 7,
        name: "a comment with each vote",
        // The optional comment of a rating (feedback.rs); the seed's Vote
        // rows have none.
        statements: &[r#"ALTER TABLE chat."Vote" ADD COLUMN IF NOT EXISTS comment TEXT"#],
    },
    Migration {
        version: 8,
        name: "feedback outbox for MLflow",
        // What MLflow should hold for each rated reply with a trace id, until
        // it does (assessment.rs). It goes with the message (and so with the
        // chat); an assessment already in MLflow stays there.
        statements: &[
            r#"CREATE TABLE IF NOT EXISTS chat."FeedbackOutbox" (
  "messageId" UUID PRIMARY KEY REFERENCES chat."Message"(id) ON DELETE CASCADE,
  "traceId" TEXT NOT NULL,
  "userEmail" VARCHAR(64) NOT NULL,
  "isUpvoted" BOOLEAN,
  comment TEXT,
  "assessmentId" TEXT,
  revision BIGINT NOT NULL DEFAULT 1,
  pending BOOLEAN NOT NULL DEFAULT true,
  attempts INTEGER NOT NULL DEFAULT 0,
  "nextAttemptAt" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "leasedUntil" TIMESTAMP,
  "lastError" TEXT,
  "failedAt" TIMESTAMP
)"#,
            r#"CREATE INDEX IF NOT EXISTS idx_feedback_outbox_due ON chat."FeedbackOutbox" ("nextAttemptAt") WHERE pending"#,
        ],
    },
    Migration {
        version: 9,
        name: "when the owner renamed a chat",
        // Set by a rename (chat.rs), so a generated title that arrives later
        // does not replace the one the owner chose.
        statements: &[r#"ALTER TABLE chat."Chat" ADD COLUMN IF NOT EXISTS "renamedAt" TIMESTAMP"#],
    },
    Migration {
        version: 10,
        name: "full-text search of titles and messages",
        // `GET /api/history?q=` (history.rs): English stems of each chat's
        // title and of each message's text parts, in GIN indexes. A
        // message's text is its `parts`' text items joined, by a function
        // (immutable, so an index may use it). Building the message index
        // reads the whole table once, under a lock that holds writes back
        // while it runs.
        statements: &[
            r#"CREATE OR REPLACE FUNCTION chat.message_text(parts json) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $body$
  SELECT coalesce(string_agg(part->>'text', ' '), '')
  FROM json_array_elements(CASE WHEN json_typeof(parts) = 'array' THEN parts ELSE '[]'::json END) AS part
  WHERE json_typeof(part) = 'object' AND part->>'type' = 'text'
$body$"#,
            concat!(
                "CREATE INDEX IF NOT EXISTS idx_chat_title_search ON chat.\"Chat\" USING gin (",
                search_index_expression!(title),
                ")"
            ),
            concat!(
                "CREATE INDEX IF NOT EXISTS idx_message_text_search ON chat.\"Message\" USING gin (",
                search_index_expression!(message),
                ")"
            ),
        ],
    },
    Migration {
        version: 11,
        name: "heartbeat of a reply being written",
        // Refreshed with each checkpoint of a `streaming` reply; one whose
        // heartbeat is old lost its writer and reads as incomplete
        // (conversation.rs).
        statements: &[
            r#"ALTER TABLE chat."Message" ADD COLUMN IF NOT EXISTS "heartbeatAt" TIMESTAMP"#,
        ],
    },
    Migration {
        version: 12,
        name: "history by recent activity, pins, archive and folders",
        // The sidebar lists chats by their last user message
        // ("lastActivityAt", set by the turn's own statement,
        // conversation.rs), paged by ("lastActivityAt", id) on the new
        // index; existing chats start at their newest message. Migration 2's
        // index served the order by "createdAt", which no page uses any
        // more, so it goes. Pins, archive and folders are the owner's
        // (history/changes.rs, history/folders.rs); a folder's deletion
        // leaves its chats in the main list.
        statements: &[
            r#"ALTER TABLE chat."Chat" ADD COLUMN IF NOT EXISTS "lastActivityAt" TIMESTAMP"#,
            BACKFILL_LAST_ACTIVITY,
            r#"ALTER TABLE chat."Chat" ALTER COLUMN "lastActivityAt" SET DEFAULT CURRENT_TIMESTAMP"#,
            r#"ALTER TABLE chat."Chat" ALTER COLUMN "lastActivityAt" SET NOT NULL"#,
            r#"CREATE INDEX IF NOT EXISTS idx_chat_user_activity ON chat."Chat" ("userId", "lastActivityAt" DESC, id DESC)"#,
            r#"DROP INDEX IF EXISTS chat.idx_chat_user_keyset"#,
            r#"CREATE TABLE IF NOT EXISTS chat."Folder" (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  "userId" TEXT NOT NULL,
  name TEXT NOT NULL,
  position INTEGER NOT NULL DEFAULT 0,
  "createdAt" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)"#,
            r#"CREATE INDEX IF NOT EXISTS idx_folder_user ON chat."Folder" ("userId", position)"#,
            r#"ALTER TABLE chat."Chat" ADD COLUMN IF NOT EXISTS "pinnedAt" TIMESTAMP"#,
            r#"ALTER TABLE chat."Chat" ADD COLUMN IF NOT EXISTS "archivedAt" TIMESTAMP"#,
            r#"ALTER TABLE chat."Chat" ADD COLUMN IF NOT EXISTS "folderId" UUID REFERENCES chat."Folder"(id) ON DELETE SET NULL"#,
            r#"CREATE INDEX IF NOT EXISTS idx_chat_folder ON chat."Chat" ("folderId") WHERE "folderId" IS NOT NULL"#,
            // Retention's sweeps (history/retention.rs) across every user.
            r#"CREATE INDEX IF NOT EXISTS idx_chat_inactive ON chat."Chat" ("lastActivityAt") WHERE "pinnedAt" IS NULL"#,
        ],
    },
];

/// Each chat's last activity is its newest user message (or its creation,
/// without one). Fills only what is not set, so running it again changes
/// nothing.
const BACKFILL_LAST_ACTIVITY: &str = r#"UPDATE chat."Chat" AS c SET "lastActivityAt" = greatest(c."createdAt",
  (SELECT max(m."createdAt") FROM chat."Message" AS m WHERE m."chatId" = c.id AND m.role = 'user'))
WHERE c."lastActivityAt" IS NULL"#;

/// The expressions the search indexes hold, which the search's statements
/// must repeat exactly for PostgreSQL to use them.
macro_rules! search_index_expression {
    (title) => {
        "to_tsvector('english', title)"
    };
    (message) => {
        "to_tsvector('english', chat.message_text(parts))"
    };
}
use search_index_expression;

pub const SEARCH_INDEX_EXPRESSIONS: [&str; 2] = [
    search_index_expression!(title),
    search_index_expression!(message),
];

/// The key of the transaction-scoped advisory lock that serialises migration
/// runs across instances: the ASCII bytes of "chathist".
pub const ADVISORY_LOCK_KEY: i64 = 0x6368_6174_6869_7374;

/// Created before anything else: the bookkeeping table lives in the schema.
pub const CREATE_SCHEMA: &str = "CREATE SCHEMA IF NOT EXISTS chat";

pub const CREATE_BOOKKEEPING_TABLE: &str = "CREATE TABLE IF NOT EXISTS chat.schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// One row, one INTEGER column: the newest applied version, NULL when none.
pub const SELECT_CURRENT_VERSION: &str = "SELECT max(version) FROM chat.schema_migrations";

/// One INTEGER column: every applied version, ascending.
pub const SELECT_APPLIED_VERSIONS: &str =
    "SELECT version FROM chat.schema_migrations ORDER BY version";

const TAKE_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

const RECORD_APPLIED: &str = "INSERT INTO chat.schema_migrations (version, name) VALUES ($1, $2)";

/// Blocks until no other transaction holds the migration lock; the lock is
/// released by COMMIT or ROLLBACK.
pub fn lock_statement() -> Statement {
    Statement::new(TAKE_LOCK, vec![SqlParam::Int64(ADVISORY_LOCK_KEY)])
}

/// Records `migration` as applied, inside the transaction that applied it.
pub fn record_statement(migration: &Migration) -> Statement {
    let version = i32::try_from(migration.version).expect("migration versions fit in INTEGER");
    Statement::new(
        RECORD_APPLIED,
        vec![
            SqlParam::Int32(version),
            SqlParam::Text(migration.name.to_owned()),
        ],
    )
}

/// The migrations not in `applied`, in version order.
pub fn pending(applied: &[u32]) -> Vec<&'static Migration> {
    MIGRATIONS
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .collect()
}

/// The version a fully migrated database is at.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// The `GET /admin/schema` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    /// The newest applied version; 0 for a database without our bookkeeping.
    pub version: u32,
    pub latest: u32,
    pub pending: Vec<u32>,
}

impl SchemaStatus {
    pub fn from_applied(applied: &[u32]) -> Self {
        Self {
            version: applied.iter().copied().max().unwrap_or(0),
            latest: latest_version(),
            pending: pending(applied)
                .iter()
                .map(|migration| migration.version)
                .collect(),
        }
    }
}

/// The `POST /admin/schema/migrate` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Versions this run applied; empty when another run got there first.
    pub applied: Vec<u32>,
    /// The version the database is at after this run.
    pub version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
            assert!(!migration.statements.is_empty(), "{}", migration.name);
        }
        assert_eq!(latest_version() as usize, MIGRATIONS.len());
    }

    /// A constraint has no `ADD … IF NOT EXISTS`: adding one is idempotent
    /// when an earlier statement of its migration drops it if it exists.
    fn replaces_a_dropped_constraint(statement: &str, earlier: &[&str]) -> bool {
        let Some((_, rest)) = statement.split_once("ADD CONSTRAINT ") else {
            return false;
        };
        let name = rest.split_whitespace().next().unwrap_or_default();
        earlier
            .iter()
            .any(|drop| drop.contains(&format!("DROP CONSTRAINT IF EXISTS {name}")))
    }

    #[test]
    fn every_statement_is_idempotent_and_single() {
        for migration in MIGRATIONS {
            for (index, statement) in migration.statements.iter().enumerate() {
                assert!(
                    statement.contains("IF NOT EXISTS")
                        || statement.starts_with("CREATE OR REPLACE FUNCTION")
                        || *statement == BACKFILL_LAST_ACTIVITY
                        || (statement.contains(" ALTER COLUMN ")
                            && (statement.ends_with(" SET NOT NULL")
                                || statement.contains(" SET DEFAULT ")))
                        || statement.contains("DROP CONSTRAINT IF EXISTS")
                        || statement.starts_with("DROP INDEX IF EXISTS ")
                        || replaces_a_dropped_constraint(statement, &migration.statements[..index]),
                    "{statement}"
                );
                assert!(
                    !statement.contains(';'),
                    "one statement per entry: {statement}"
                );
            }
        }
    }

    #[test]
    fn version_one_is_the_seed_schema() {
        let v1 = MIGRATIONS[0].statements.join("\n");
        for expected in [
            r#"CREATE TABLE IF NOT EXISTS chat."User""#,
            "email VARCHAR(64) NOT NULL",
            r#"CREATE TABLE IF NOT EXISTS chat."Chat""#,
            r#""createdAt" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"#,
            "title TEXT NOT NULL DEFAULT 'New chat'",
            "visibility VARCHAR(10) NOT NULL DEFAULT 'private'",
            r#""lastContext" JSONB"#,
            r#"REFERENCES chat."Chat"(id) ON DELETE CASCADE"#,
            "parts JSON NOT NULL DEFAULT '[]'",
            r#""traceId" TEXT"#,
            r#"PRIMARY KEY ("chatId", "messageId")"#,
            r#"idx_chat_user ON chat."Chat" ("userId", "createdAt" DESC)"#,
            r#"idx_message_chat ON chat."Message" ("chatId", "createdAt" ASC)"#,
        ] {
            assert!(v1.contains(expected), "missing {expected}");
        }
    }

    #[test]
    fn pending_skips_applied_versions() {
        assert_eq!(pending(&[]).len(), MIGRATIONS.len());
        assert_eq!(pending(&[1]).first().map(|m| m.version), Some(2));
        assert!(pending(&(1..=latest_version()).collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn status_of_fresh_partial_and_current_databases() {
        let latest = latest_version();
        assert_eq!(
            SchemaStatus::from_applied(&[]),
            SchemaStatus {
                version: 0,
                latest,
                pending: (1..=latest).collect()
            }
        );
        assert_eq!(
            SchemaStatus::from_applied(&[1]),
            SchemaStatus {
                version: 1,
                latest,
                pending: (2..=latest).collect()
            }
        );
        let all: Vec<u32> = (1..=latest).collect();
        assert_eq!(
            SchemaStatus::from_applied(&all),
            SchemaStatus {
                version: latest,
                latest,
                pending: vec![]
            }
        );
    }

    #[test]
    fn lock_and_record_statements() {
        assert_eq!(
            lock_statement().params,
            vec![SqlParam::Int64(ADVISORY_LOCK_KEY)]
        );
        let record = record_statement(&MIGRATIONS[0]);
        assert_eq!(
            record.params,
            vec![
                SqlParam::Int32(1),
                SqlParam::Text(MIGRATIONS[0].name.into())
            ]
        );
    }

    #[test]
    fn reports_serialise_as_documented() {
        assert_eq!(
            serde_json::to_value(SchemaStatus {
                version: 1,
                latest: 2,
                pending: vec![2]
            })
            .unwrap(),
            serde_json::json!({"version": 1, "latest": 2, "pending": [2]})
        );
        assert_eq!(
            serde_json::to_value(MigrationReport {
                applied: vec![2],
                version: 2
            })
            .unwrap(),
            serde_json::json!({"applied": [2], "version": 2})
        );
    }
}
