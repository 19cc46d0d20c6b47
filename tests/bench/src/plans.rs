//! The query plans of the hot statements, as chat-domain builds them, with
//! the values the benchmarks use. Each is shown twice: the custom plan the
//! first executions get, and the generic plan a cached prepared statement
//! may switch to after five runs (both chat-host and the native ceiling
//! cache their statements per connection).

use crate::native::bound;
use anyhow::{Context, Result};
use chat_domain::database::sql::Statement;
use chat_domain::history::HistoryQuery;
use chat_domain::identity::Identity;
use chat_domain::messages;
use tokio_postgres::Client;
use uuid::Uuid;

pub struct Plan {
    pub name: String,
    pub text: String,
}

impl Plan {
    pub fn has_seq_scan(&self) -> bool {
        self.text.contains("Seq Scan")
    }

    /// The indexes the plan reads.
    pub fn indexes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .text
            .lines()
            .filter_map(|line| {
                let (_, rest) = line
                    .split_once("Bitmap Index Scan on ")
                    .or_else(|| line.split_once(" Scan using "))
                    .or_else(|| line.split_once(" Scan Backward using "))?;
                rest.split_whitespace().next()
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

pub struct HotStatements {
    pub history_user: String,
    /// Whose history is searched for [`crate::seed::SEARCH_WORD`].
    pub search_user: String,
    pub deep_cursor: Uuid,
    pub conversation: Uuid,
}

pub async fn explain(db: &Client, hot: &HotStatements) -> Result<Vec<Plan>> {
    // Parsed as the component parses them, so the plans are of the very
    // statements it runs.
    let first = HistoryQuery::from_query("limit=20")?;
    let deep = HistoryQuery::from_query(&format!("limit=20&starting_after={}", hot.deep_cursor))?;
    // The caller exists already: recording them again changes nothing.
    let caller = Identity {
        user_id: hot.history_user.clone(),
        email: hot.history_user.clone(),
        name: None,
        authenticated: true,
        access_token: None,
    };
    let search = HistoryQuery::from_query(&format!("limit=20&q={}", crate::seed::SEARCH_WORD))?;
    let searcher = Identity {
        user_id: hot.search_user.clone(),
        email: hot.search_user.clone(),
        ..caller.clone()
    };
    let statements = [
        ("history first page", first.page_statement(&caller)?),
        ("history deep page", deep.page_statement(&caller)?),
        ("history search", search.page_statement(&searcher)?),
        (
            "chat messages",
            messages::MessagesQuery::from_query("")
                .expect("the default page")
                .chat_page_statement(hot.conversation),
        ),
    ];
    let mut plans = Vec::new();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        db.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await?;
        for (name, statement) in &statements {
            plans.push(Plan {
                name: format!(
                    "{name} ({})",
                    mode.trim_start_matches("force_").replace('_', " ")
                ),
                text: explain_one(db, statement).await?,
            });
        }
    }
    db.batch_execute("RESET plan_cache_mode").await?;
    Ok(plans)
}

async fn explain_one(db: &Client, statement: &Statement) -> Result<String> {
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", statement.sql);
    let params = bound(&statement.params);
    let rows = db
        .query(&sql, &params)
        .await
        .with_context(|| format!("explaining {}", statement.sql))?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}
