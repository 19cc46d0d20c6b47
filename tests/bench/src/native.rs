//! The native ceiling: `GET /api/history` and `GET /api/messages/:chatId`
//! served by axum + tokio-postgres with no WebAssembly in between. It runs the
//! statements chat-domain builds and applies its rules (identity, validation,
//! access) exactly as the history and messages components do, on a pool of
//! the size chat-host uses, with prepared statements cached per connection as
//! chat-host caches them. Whatever chat-host spends beyond this is the price
//! of the components.

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chat_domain::ApiError;
use chat_domain::access::{self, ChatAction};
use chat_domain::database::sql::{SqlParam, Statement};
use chat_domain::database::timestamp::UtcDateTime;
use chat_domain::history::{self, Cursor, HistoryQuery, finish_page};
use chat_domain::http::routes::{self, Handler};
use chat_domain::identity::{self, Identity};
use chat_domain::messages::{self, MessagesPage, MessagesQuery};
use chrono::{Datelike, NaiveDateTime, Timelike};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use serde_json::value::RawValue;
use std::net::SocketAddr;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Serves until the process is killed.
pub async fn serve(db_url: &str, listen: SocketAddr) -> Result<()> {
    let pool = pool(db_url)?;
    let app = Router::new()
        .route("/api/history", get(history))
        .route("/api/messages/{*chat_id}", get(messages))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    axum::serve(listener, app).await.context("serving")
}

/// The same size and recycling as chat-host's pools (host/src/postgres/pool.rs).
fn pool(db_url: &str) -> Result<Pool> {
    let config: tokio_postgres::Config = db_url.parse().context("parsing the database URL")?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(chat_host::postgres::PoolSettings::default().max_connections)
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the pool")
}

/// What a handler fails with: a rule's answer, or a database failure (500).
enum Failure {
    Api(ApiError),
    Database(anyhow::Error),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Database(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let error = match self {
            Failure::Api(error) => error,
            Failure::Database(error) => {
                eprintln!("native ceiling: {error:#}");
                ApiError::internal("The database failed.")
            }
        };
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_bytes(
            status,
            chat_contract::error_body::json(&error.message).into_bytes(),
        )
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    json_bytes(
        status,
        serde_json::to_vec(body).expect("API answers serialise"),
    )
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

/// The caller, as the components resolve it (no `dev_user_email` is set in
/// the benchmark, for either server).
fn identify(headers: &HeaderMap) -> Result<Identity, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
    };
    identity::resolve(header, None)
}

/// `components/history`: `history` and `load_page`.
async fn history(
    State(pool): State<Pool>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let query = HistoryQuery::from_query(uri.query().unwrap_or(""))?;
    let identity = identify(&headers)?;
    let page = query.page_statement(&identity)?;
    let db = pool.get().await.context("checking out a connection")?;
    let rows = query_rows(&db, &page).await?;
    if let Some(cursor) = query.cursor.filter(|_| rows.is_empty())
        && let Some(chat) = cursor.named_chat()
    {
        let existence =
            query_rows(&db, &Cursor::existence_statement(chat, &identity.user_id)).await?;
        let known = existence.first().is_some_and(|row| row.get::<_, bool>(0));
        if !known {
            return Err(cursor.unknown_error().into());
        }
    }
    let summaries = rows
        .iter()
        .map(|row| history::chat_summary(&NativeRow(row)))
        .collect::<Result<Vec<_>>>()?;
    Ok(json(StatusCode::OK, &finish_page(summaries, &query)))
}

/// `components/messages`: `route` and `load_messages`.
async fn messages(
    State(pool): State<Pool>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let messages = |handler| matches!(handler, Handler::Messages(_)).then_some(handler);
    let chat_id = routes::find("GET", uri.path(), messages)?.chat_id()?;
    let query = MessagesQuery::from_query(uri.query().unwrap_or(""))?;
    let identity = identify(&headers)?;
    let db = pool.get().await.context("checking out a connection")?;
    let rows = query_rows(&db, &query.chat_page_statement(chat_id)).await?;
    let rows: Vec<NativeRow> = rows.iter().map(NativeRow).collect();
    let (chat, views) = messages::chat_page(&rows)?;
    access::decide(chat.as_ref(), &identity.user_id, ChatAction::ReadMessages)?;
    if let Some(check) = query.cursor_statement(chat_id).filter(|_| views.is_empty()) {
        let known = query_rows(&db, &check)
            .await?
            .first()
            .is_some_and(|row| row.get::<_, bool>(0));
        if !known {
            return Err(MessagesQuery::unknown_cursor_error().into());
        }
    }
    let (data, has_more) = messages::finish_page(views, &query);
    Ok(json(StatusCode::OK, &MessagesPage::live(data, has_more)))
}

/// A tokio-postgres row read through the domain's decoders, the same ones
/// the components use.
struct NativeRow<'r>(&'r Row);

impl chat_domain::database::sql::Row for NativeRow<'_> {
    type Error = anyhow::Error;

    fn text(&self, column: usize) -> Result<String> {
        Ok(self.0.try_get(column)?)
    }

    fn optional_text(&self, column: usize) -> Result<Option<String>> {
        Ok(self.0.try_get(column)?)
    }

    fn json_text(&self, column: usize) -> Result<Box<RawValue>> {
        RawValue::from_string(self.text(column)?).context("stored parts are JSON")
    }

    fn uuid(&self, column: usize) -> Result<uuid::Uuid> {
        Ok(self.0.try_get(column)?)
    }

    fn optional_uuid(&self, column: usize) -> Result<Option<uuid::Uuid>> {
        Ok(self.0.try_get(column)?)
    }

    fn timestamp(&self, column: usize) -> Result<UtcDateTime> {
        utc(self.0.try_get(column)?)
    }

    fn boolean(&self, column: usize) -> Result<bool> {
        Ok(self.0.try_get(column)?)
    }

    fn optional_boolean(&self, column: usize) -> Result<Option<bool>> {
        Ok(self.0.try_get(column)?)
    }

    fn int64(&self, column: usize) -> Result<i64> {
        Ok(self.0.try_get(column)?)
    }

    fn int32(&self, column: usize) -> Result<i32> {
        Ok(self.0.try_get(column)?)
    }
}

/// TIMESTAMP columns hold UTC without a zone, as the components read them.
fn utc(stored: NaiveDateTime) -> Result<UtcDateTime> {
    let part = |value: u32| u8::try_from(value).expect("calendar parts fit in u8");
    UtcDateTime::from_parts(
        stored.year(),
        part(stored.month()),
        part(stored.day()),
        part(stored.hour()),
        part(stored.minute()),
        part(stored.second()),
        stored.nanosecond(),
    )
    .with_context(|| format!("timestamp {stored} out of range"))
}

async fn query_rows(db: &deadpool_postgres::Client, statement: &Statement) -> Result<Vec<Row>> {
    let prepared = db
        .prepare_cached(statement.sql.as_ref())
        .await
        .context("preparing a statement")?;
    db.query(&prepared, &bound(&statement.params))
        .await
        .context("running a query")
}

/// The parameters as tokio-postgres binds them.
pub fn bound(params: &[SqlParam]) -> Vec<&(dyn ToSql + Sync)> {
    const NULL: Option<&str> = None;
    params
        .iter()
        .map(|param| -> &(dyn ToSql + Sync) {
            match param {
                SqlParam::Text(text) => text,
                SqlParam::Uuid(id) => id,
                SqlParam::Int32(value) => value,
                SqlParam::Int64(value) => value,
                SqlParam::Null => &NULL,
            }
        })
        .collect()
}
