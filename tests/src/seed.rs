//! Seeding the app's database for a test: users, chats, messages and votes,
//! each written as one parameterised INSERT and named in the test as what
//! it is, so a test's setup reads like the product it drives:
//!
//! ```ignore
//! let seed = Seed::connect(&db).await;
//! let chat = seed.chat(OWNER, Visibility::Private).titled("Trip").await;
//! let question = seed.message(chat, Role::User, "Where to?").await;
//! let answer = seed.message(chat, Role::Assistant, "Lisbon.").traced("tr-1").await;
//! seed.vote(chat, answer, Vote::Up).await;
//! ```
//!
//! A chat or a message is a builder: what a test leaves unsaid gets the
//! schema's default, as a row the app writes does; `.await` writes it and
//! answers its id. Values always travel as statement parameters, never in
//! the SQL text. A failed write fails the test, naming what was seeded.
//!
//! The enums are the tests' own spelling of the values the schema holds,
//! not the app's types: what a test seeds does not follow the code under
//! test.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::future::IntoFuture;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// A chat's visibility as the app stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Visibility::Public => Visibility::Private,
            Visibility::Private => Visibility::Public,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// How much of a reply a message holds (`chat."Message".status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Complete,
    Incomplete,
    Error,
    Stopped,
    /// Still being written: seeded with a fresh heartbeat, as its writer
    /// keeps it, so it reads as streaming until a test ages it.
    Streaming,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Complete,
        Status::Incomplete,
        Status::Error,
        Status::Stopped,
        Status::Streaming,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Incomplete => "incomplete",
            Status::Error => "error",
            Status::Stopped => "stopped",
            Status::Streaming => "streaming",
        }
    }
}

/// A rating of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Up,
    Down,
}

/// When a seeded chat or message was created (`"createdAt"`, a TIMESTAMP
/// without time zone). Unsaid, it is the column's default: the statement's
/// CURRENT_TIMESTAMP on the session's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Seconds after 2026-01-01 00:00: a fixed calendar, for an order or
    /// an exact `createdAt` in an answer.
    SecondsInto2026(f64),
    /// Seconds from now (negative: ago) on the session's clock
    /// (LOCALTIMESTAMP), the one the app writes on and judges "recent" by.
    SecondsFromNow(f64),
    /// Seconds from now (negative: ago) on the UTC clock, the one the web
    /// UI reads `createdAt` on.
    SecondsFromNowUtc(f64),
}

impl When {
    /// The SQL expression, its one parameter being `$placeholder`.
    fn expression(self, placeholder: usize) -> (String, f64) {
        let (base, seconds) = match self {
            When::SecondsInto2026(seconds) => ("TIMESTAMP '2026-01-01'", seconds),
            When::SecondsFromNow(seconds) => ("LOCALTIMESTAMP", seconds),
            When::SecondsFromNowUtc(seconds) => ("(now() AT TIME ZONE 'UTC')", seconds),
        };
        (
            format!("{base} + make_interval(secs => ${placeholder})"),
            seconds,
        )
    }
}

/// Where the rows go: a connection of the seeder's own, one a test lends
/// it, or a transaction the test keeps open (to race the app) and ends.
enum Connection<'c> {
    Own(tokio_postgres::Client),
    Client(&'c tokio_postgres::Client),
    Transaction(&'c tokio_postgres::Transaction<'c>),
}

/// Writes rows into the app's database; see the module's documentation.
pub struct Seed<'c> {
    connection: Connection<'c>,
}

impl Seed<'static> {
    /// A seeder with a connection of its own to the test's database.
    pub async fn connect(db: &crate::database::TestDatabase) -> Self {
        Self {
            connection: Connection::Own(db.connect().await),
        }
    }
}

impl<'c> Seed<'c> {
    /// Seeds through `client` (any connection, TLS or not).
    pub fn on(client: &'c tokio_postgres::Client) -> Self {
        Self {
            connection: Connection::Client(client),
        }
    }

    /// Seeds inside `transaction`: nobody else sees the rows until the test
    /// commits it.
    pub fn in_transaction(transaction: &'c tokio_postgres::Transaction<'c>) -> Self {
        Self {
            connection: Connection::Transaction(transaction),
        }
    }

    /// The escape hatch: one statement as the test writes it, for a row the
    /// app itself could never write (to test what the schema or the app
    /// does with it) or for a volume no row-by-row seeding would reach in
    /// time. Answers the statement's outcome, so a test may expect a refusal.
    pub async fn raw(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        match &self.connection {
            Connection::Own(client) => client.execute(sql, params).await,
            Connection::Client(client) => client.execute(sql, params).await,
            Connection::Transaction(transaction) => transaction.execute(sql, params).await,
        }
    }

    async fn write(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        if let Err(error) = self.raw(sql, params).await {
            panic!("seeding {what}: {error}");
        }
    }

    /// Records `email` as a user (`chat."User"`, id and email alike), as the
    /// app does on a history page or a chat turn; again is no change.
    pub async fn user(&self, email: &str) {
        self.write(
            &format!("the user {email}"),
            r#"INSERT INTO chat."User" (id, email) VALUES ($1, $1::text) ON CONFLICT (id) DO NOTHING"#,
            &[&email],
        )
        .await;
    }

    /// A chat of `owner`'s (recorded as a user too, as the app does when it
    /// creates a chat), titled by the schema's default unless
    /// [`titled`](ChatSeed::titled); `.await` answers its id.
    pub fn chat(&self, owner: &str, visibility: Visibility) -> ChatSeed<'_> {
        ChatSeed {
            seed: self.reborrow(),
            id: Uuid::new_v4(),
            owner: owner.to_owned(),
            visibility,
            title: None,
            created: None,
            active: None,
            pinned: false,
            archived: false,
            folder: None,
            user_row: true,
        }
    }

    /// A folder of `owner`'s named `name`, at position 0; `.await` answers
    /// its id.
    pub async fn folder(&self, owner: &str, name: &str) -> Uuid {
        let id = Uuid::new_v4();
        self.write(
            &format!("the folder {name}"),
            r#"INSERT INTO chat."Folder" (id, "userId", name) VALUES ($1, $2, $3)"#,
            &[&id, &owner, &name],
        )
        .await;
        id
    }

    /// A message of `role` in `chat`, its one text part `text`, complete and
    /// untraced unless said otherwise; `.await` answers its id. Each is
    /// written by a statement of its own, so messages keep the order they
    /// are seeded in.
    pub fn message(&self, chat: Uuid, role: Role, text: &str) -> MessageSeed<'_> {
        MessageSeed {
            seed: self.reborrow(),
            id: Uuid::new_v4(),
            chat,
            role,
            parts: json!([{"type": "text", "text": text}]),
            trace_id: None,
            status: None,
            created: None,
        }
    }

    /// `message`'s rating in `chat`, without a comment.
    pub async fn vote(&self, chat: Uuid, message: Uuid, vote: Vote) {
        self.rate(chat, message, vote, None).await;
    }

    /// `message`'s rating in `chat`, with the rater's comment.
    pub async fn commented_vote(&self, chat: Uuid, message: Uuid, vote: Vote, comment: &str) {
        self.rate(chat, message, vote, Some(comment)).await;
    }

    async fn rate(&self, chat: Uuid, message: Uuid, vote: Vote, comment: Option<&str>) {
        self.write(
            "a vote",
            r#"INSERT INTO chat."Vote" ("chatId", "messageId", "isUpvoted", comment) VALUES ($1, $2, $3, $4)"#,
            &[&chat, &message, &(vote == Vote::Up), &comment],
        )
        .await;
    }

    /// `&Seed<'c>` as `&Seed<'s>` for a shorter `'s` (the type is covariant).
    fn reborrow(&self) -> &Seed<'_> {
        self
    }
}

/// One INSERT of some of a table's columns, each value a parameter.
struct Insert {
    table: &'static str,
    columns: Vec<&'static str>,
    values: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Insert {
    fn into(table: &'static str) -> Self {
        Self {
            table,
            columns: Vec::new(),
            values: Vec::new(),
            params: Vec::new(),
        }
    }

    /// `column` set to the next parameter, `value`.
    fn value(mut self, column: &'static str, value: impl ToSql + Sync + Send + 'static) -> Self {
        self.params.push(Box::new(value));
        self.columns.push(column);
        self.values.push(format!("${}", self.params.len()));
        self
    }

    /// `column` set to an SQL expression of no parameter.
    fn expression(mut self, column: &'static str, expression: &str) -> Self {
        self.columns.push(column);
        self.values.push(expression.to_owned());
        self
    }

    fn created(self, when: Option<When>) -> Self {
        self.timestamp(r#""createdAt""#, when)
    }

    /// `column` set to `when`, or left to its default.
    fn timestamp(mut self, column: &'static str, when: Option<When>) -> Self {
        if let Some(when) = when {
            let (expression, seconds) = when.expression(self.params.len() + 1);
            self.params.push(Box::new(seconds));
            self.columns.push(column);
            self.values.push(expression);
        }
        self
    }

    async fn run(self, seed: &Seed<'_>, what: &str) {
        let sql = format!(
            r#"INSERT INTO chat."{}" ({}) VALUES ({})"#,
            self.table,
            self.columns.join(", "),
            self.values.join(", ")
        );
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|param| param.as_ref() as &(dyn ToSql + Sync))
            .collect();
        seed.write(what, &sql, &params).await;
    }
}

/// A chat to seed; see [`Seed::chat`].
#[must_use = "a chat is written when awaited"]
pub struct ChatSeed<'s> {
    seed: &'s Seed<'s>,
    id: Uuid,
    owner: String,
    visibility: Visibility,
    title: Option<String>,
    created: Option<When>,
    active: Option<When>,
    pinned: bool,
    archived: bool,
    folder: Option<Uuid>,
    user_row: bool,
}

impl ChatSeed<'_> {
    /// This id rather than a new one (a test that must name the chat
    /// before it exists).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    pub fn titled(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// Created then, and last active then unless [`active_at`](Self::active_at)
    /// says otherwise (as if its last message were its first).
    pub fn at(mut self, when: When) -> Self {
        self.created = Some(when);
        self
    }

    /// Last active then (`"lastActivityAt"`, which orders the history).
    pub fn active_at(mut self, when: When) -> Self {
        self.active = Some(when);
        self
    }

    pub fn pinned(mut self) -> Self {
        self.pinned = true;
        self
    }

    pub fn archived(mut self) -> Self {
        self.archived = true;
        self
    }

    pub fn in_folder(mut self, folder: Uuid) -> Self {
        self.folder = Some(folder);
        self
    }

    /// The chat's row only, no `chat."User"` row for its owner: for a test
    /// that holds the chat's creation open in a transaction and must not
    /// hold the owner's user row as well.
    pub fn without_user_row(mut self) -> Self {
        self.user_row = false;
        self
    }

    async fn write(self) -> Uuid {
        if self.user_row {
            self.seed.user(&self.owner).await;
        }
        let mut insert = Insert::into("Chat")
            .value("id", self.id)
            .value(r#""userId""#, self.owner)
            .value("visibility", self.visibility.as_str());
        if let Some(title) = self.title {
            insert = insert.value("title", title);
        }
        if self.pinned {
            insert = insert.expression(r#""pinnedAt""#, "CURRENT_TIMESTAMP");
        }
        if self.archived {
            insert = insert.expression(r#""archivedAt""#, "CURRENT_TIMESTAMP");
        }
        if let Some(folder) = self.folder {
            insert = insert.value(r#""folderId""#, folder);
        }
        insert
            .created(self.created)
            .timestamp(r#""lastActivityAt""#, self.active.or(self.created))
            .run(self.seed, "a chat")
            .await;
        self.id
    }
}

impl<'s> IntoFuture for ChatSeed<'s> {
    type Output = Uuid;
    type IntoFuture = BoxFuture<'s, Uuid>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.write())
    }
}

/// A message to seed; see [`Seed::message`].
#[must_use = "a message is written when awaited"]
pub struct MessageSeed<'s> {
    seed: &'s Seed<'s>,
    id: Uuid,
    chat: Uuid,
    role: Role,
    parts: Value,
    trace_id: Option<String>,
    status: Option<Status>,
    created: Option<When>,
}

impl MessageSeed<'_> {
    /// This id rather than a new one.
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// The id of the trace the agent's endpoint reported for this reply
    /// (`None`: it reported none, as when unsaid).
    pub fn traced<'t>(mut self, trace_id: impl Into<Option<&'t str>>) -> Self {
        self.trace_id = trace_id.into().map(str::to_owned);
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// These parts (`chat."Message".parts`) instead of the one text part.
    pub fn parts(mut self, parts: Value) -> Self {
        self.parts = parts;
        self
    }

    pub fn at(mut self, when: When) -> Self {
        self.created = Some(when);
        self
    }

    async fn write(self) -> Uuid {
        let mut insert = Insert::into("Message")
            .value("id", self.id)
            .value(r#""chatId""#, self.chat)
            .value("role", self.role.as_str())
            .value("parts", self.parts);
        if let Some(trace_id) = self.trace_id {
            insert = insert.value(r#""traceId""#, trace_id);
        }
        if let Some(status) = self.status {
            insert = insert.value("status", status.as_str());
            if status == Status::Streaming {
                insert = insert.expression(r#""heartbeatAt""#, "LOCALTIMESTAMP");
            }
        }
        insert
            .created(self.created)
            .run(self.seed, "a message")
            .await;
        self.id
    }
}

impl<'s> IntoFuture for MessageSeed<'s> {
    type Output = Uuid;
    type IntoFuture = BoxFuture<'s, Uuid>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.write())
    }
}
