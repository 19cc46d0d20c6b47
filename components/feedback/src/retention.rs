//! Retention's sweep on the app's background work: the chats inactive past
//! the deployment's `retention_days` go, a batch at a time (the rules are
//! in `chat_domain::history::retention`).

use chat_domain::background::Budget;
use chat_domain::history::retention::{self, BATCH};
use chat_guest::{config, database, log};
use std::time::Instant;

/// Deletes batches of the chats past retention until one is not full or
/// the run's time is up; answers how many chats went. Without the setting
/// it does nothing; a bad setting is logged at every run and deletes
/// nothing.
pub async fn sweep(budget: Budget) -> u64 {
    let setting = match config::variable(retention::SETTING).await {
        Ok(setting) => setting,
        Err(error) => {
            log::failure("background work: reading retention_days", &error.to_string());
            return 0;
        }
    };
    let days = match retention::days_setting(setting.as_deref()) {
        Ok(Some(days)) => days,
        Ok(None) => return 0,
        Err(problem) => {
            log::failure("background work: retention", &problem);
            return 0;
        }
    };
    let started = Instant::now();
    let sweep = retention::sweep_statement(days);
    let mut deleted = 0;
    loop {
        match database::for_background_work(async |db| Ok(db.execute(&sweep).await?)).await {
            Ok(batch) => {
                deleted += batch;
                if batch < BATCH as u64 || started.elapsed() >= budget.time {
                    return deleted;
                }
            }
            Err(failure) => {
                if !failure.is_unreachable() {
                    log::failure("background work: deleting chats past retention", &failure);
                }
                return deleted;
            }
        }
    }
}
