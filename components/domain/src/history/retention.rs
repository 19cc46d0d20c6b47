//! Retention: with the deployment setting `retention_days`, chats with no
//! activity for that many days are deleted (pinned chats never), a small
//! batch at a time, by the app's background work (`crate::background`), so
//! a sweep never slows a request. Replicas sweeping at once take disjoint
//! batches (`SKIP LOCKED`). Deleting a chat deletes its messages and
//! ratings; ratings already delivered to MLflow stay there.

use crate::database::sql::{SqlParam, Statement};

/// The setting's name (a `spin.toml` variable).
pub const SETTING: &str = "retention_days";
/// The longest retention one may set: 100 years.
pub const MAX_DAYS: u32 = 36_500;
/// Chats one statement deletes at most.
pub const BATCH: i64 = 100;

/// One batch of the chats past retention, oldest activity first. The
/// partial index of migration 12 finds them without reading the others.
const DELETE_INACTIVE_BATCH: &str = r#"DELETE FROM chat."Chat" WHERE id IN (
  SELECT id FROM chat."Chat"
  WHERE "pinnedAt" IS NULL AND "lastActivityAt" < LOCALTIMESTAMP - make_interval(days => $1)
  ORDER BY "lastActivityAt"
  LIMIT $2
  FOR UPDATE SKIP LOCKED)"#;

/// The retention the setting asks for: `None` when it is empty (keep
/// everything), else whole days from 1 to [`MAX_DAYS`].
pub fn days_setting(value: Option<&str>) -> Result<Option<u32>, String> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    value
        .parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_DAYS).contains(days))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{SETTING} is {value:?}: give whole days from 1 to {MAX_DAYS}, or leave it empty to keep every chat"
            )
        })
}

/// Deletes one batch of the chats inactive for more than `days`; the
/// number of rows it deleted tells whether another batch may be due.
pub fn sweep_statement(days: u32) -> Statement {
    Statement::new(
        DELETE_INACTIVE_BATCH,
        vec![
            SqlParam::Int32(i32::try_from(days).expect("MAX_DAYS fits in INTEGER")),
            SqlParam::Int64(BATCH),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_empty_or_whole_days() {
        assert_eq!(days_setting(None), Ok(None));
        assert_eq!(days_setting(Some(" ")), Ok(None));
        assert_eq!(days_setting(Some("30")), Ok(Some(30)));
        assert_eq!(days_setting(Some("36500")), Ok(Some(MAX_DAYS)));
        for bad in ["0", "-1", "1.5", "thirty", "36501"] {
            let error = days_setting(Some(bad)).unwrap_err();
            assert!(error.starts_with("retention_days is"), "{error}");
        }
    }

    #[test]
    fn a_sweep_spares_pinned_chats_and_takes_a_bounded_batch() {
        let statement = sweep_statement(30);
        assert!(statement.sql.contains(r#""pinnedAt" IS NULL"#));
        assert!(statement.sql.contains("SKIP LOCKED"));
        assert_eq!(
            statement.params,
            [SqlParam::Int32(30), SqlParam::Int64(BATCH)]
        );
    }
}
