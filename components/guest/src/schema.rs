//! Creates and migrates the `chat` schema, server-side and idempotently.
//!
//! Every run takes a transaction-scoped advisory lock first, so instances that
//! start together queue up and the later ones find nothing left to apply.

use crate::postgres::{Db, DbError};
use chat_domain::database::migrations::{self, MigrationReport, SchemaStatus};
use chat_domain::database::sql::{Row, Statement};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once this instance has seen the schema at the latest version; it only
/// spares later requests the version query. Request-independent by design.
static SCHEMA_IS_CURRENT: AtomicBool = AtomicBool::new(false);

/// Makes sure the schema is at the latest version, migrating when it is not.
/// After the first success in this instance it costs nothing.
pub async fn ensure_schema(db: &Db) -> Result<(), DbError> {
    if SCHEMA_IS_CURRENT.load(Ordering::Acquire) {
        return Ok(());
    }
    // A database ahead of this build (a newer instance migrated it) is fine:
    // migrations are additive.
    if current_version(db).await? < migrations::latest_version() {
        migrate(db).await?;
    }
    SCHEMA_IS_CURRENT.store(true, Ordering::Release);
    Ok(())
}

/// A connection to the `db_url` database with the schema current: what
/// every route that reads or writes chats starts with.
pub async fn connect_migrated() -> Result<Db, DbError> {
    let db = Db::connect().await?;
    ensure_schema(&db).await?;
    Ok(db)
}

/// Applies every pending migration in one transaction under the migration
/// lock. On failure the transaction is rolled back and nothing is applied.
pub async fn migrate(db: &Db) -> Result<MigrationReport, DbError> {
    let report = db.transaction(apply_pending).await?;
    SCHEMA_IS_CURRENT.store(true, Ordering::Release);
    Ok(report)
}

/// Which migrations the database has and which it still needs.
pub async fn schema_status(db: &Db) -> Result<SchemaStatus, DbError> {
    let applied = match applied_versions(db).await {
        Err(error) if is_schema_missing(&error) => Vec::new(),
        other => other?,
    };
    Ok(SchemaStatus::from_applied(&applied))
}

/// Called when a statement finds our schema missing, so the next request
/// migrates again instead of trusting the cached flag.
pub(crate) fn forget_schema_is_current() {
    SCHEMA_IS_CURRENT.store(false, Ordering::Release);
}

async fn apply_pending(db: &Db) -> Result<MigrationReport, DbError> {
    db.execute(&migrations::lock_statement())
        .await
        .map_err(|error| error.context("taking the migration lock"))?;
    db.execute(&Statement::without_params(migrations::CREATE_SCHEMA))
        .await?;
    db.execute(&Statement::without_params(
        migrations::CREATE_BOOKKEEPING_TABLE,
    ))
    .await?;
    let already_applied = applied_versions(db).await?;
    let mut applied_now = Vec::new();
    for migration in migrations::pending(&already_applied) {
        let doing = || {
            format!(
                "applying migration {} ({})",
                migration.version, migration.name
            )
        };
        for &sql in migration.statements {
            db.execute(&Statement::without_params(sql))
                .await
                .map_err(|error| error.context(doing()))?;
        }
        db.execute(&migrations::record_statement(migration))
            .await
            .map_err(|error| error.context(doing()))?;
        applied_now.push(migration.version);
    }
    let version = already_applied
        .iter()
        .chain(&applied_now)
        .copied()
        .max()
        .unwrap_or(0);
    Ok(MigrationReport {
        applied: applied_now,
        version,
    })
}

/// The newest applied version; 0 before the first migration.
async fn current_version(db: &Db) -> Result<u32, DbError> {
    let rows = match db
        .query(&Statement::without_params(
            migrations::SELECT_CURRENT_VERSION,
        ))
        .await
    {
        Err(error) if is_schema_missing(&error) => return Ok(0),
        other => other?,
    };
    let newest = match rows.first() {
        Some(row) => row.optional_int32(0)?,
        None => None,
    };
    newest.map_or(Ok(0), to_version)
}

async fn applied_versions(db: &Db) -> Result<Vec<u32>, DbError> {
    db.query(&Statement::without_params(
        migrations::SELECT_APPLIED_VERSIONS,
    ))
    .await?
    .iter()
    .map(|row| to_version(row.int32(0)?))
    .collect()
}

fn to_version(recorded: i32) -> Result<u32, DbError> {
    u32::try_from(recorded).map_err(|_| DbError::Decode {
        message: format!("chat.schema_migrations holds the negative version {recorded}"),
    })
}

fn is_schema_missing(error: &DbError) -> bool {
    error
        .sqlstate()
        .is_some_and(chat_contract::sqlstate::means_schema_missing)
}
