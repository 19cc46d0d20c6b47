//! Rows written (through [`crate::seed`]) and read straight through SQL: a
//! test controls exactly which chats exist (POST /api/chat would also call a
//! model), and must check what a request really did to the database, not
//! what it answered.

use crate::seed::{Role, Seed, Vote, When};
use chat_host::postgres::{PoolSettings, Pools};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::seed::Visibility;

/// A chat the seeder wrote: two messages (a user's, then the assistant's
/// with a trace id) and a vote on the reply.
#[derive(Debug, Clone)]
pub struct SeededChat {
    pub id: Uuid,
    pub owner: String,
    pub title: String,
    pub visibility: Visibility,
    /// Oldest first.
    pub message_ids: Vec<Uuid>,
}

/// Where a seeded chat stands in its owner's sidebar: the owner's own
/// order, which no one else sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    pub pinned: bool,
    pub archived: bool,
    pub folder: Option<Uuid>,
}

/// What the database holds about one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    pub owner: String,
    pub title: String,
    pub visibility: String,
    pub messages: i64,
    /// The chat's votes, each row as JSON, by message id: a changed
    /// rating shows, not only a changed count.
    pub votes: String,
    pub placement: Placement,
}

/// Every row of the five tables, each as its JSON text, sorted; kept whole
/// rather than hashed so a difference can be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub users: BTreeSet<String>,
    pub chats: BTreeSet<String>,
    pub messages: BTreeSet<String>,
    pub votes: BTreeSet<String>,
    pub folders: BTreeSet<String>,
}

/// A connection to the app's database (TLS when the server offers it, as
/// chat-host connects, so a managed Postgres such as Lakebase works too).
pub struct Seeder {
    client: deadpool_postgres::Object,
    _pools: Arc<Pools>,
}

impl Seeder {
    pub async fn connect(db_url: &str) -> Self {
        let pools = Pools::new(PoolSettings::default());
        let checkout = async {
            pools
                .database(db_url, None)?
                .checkout()
                .await
                .map_err(|(e, _)| e)
        };
        let client = checkout.await.unwrap_or_else(|error| {
            panic!("connecting to the app's database for seeding: {error}")
        });
        Self {
            client: client.client,
            _pools: pools,
        }
    }

    fn seed(&self) -> Seed<'_> {
        Seed::on(&self.client)
    }

    pub async fn user(&self, id: &str) {
        self.seed().user(id).await;
    }

    /// A chat of `owner`, created now, with two messages and a vote.
    pub async fn chat(&self, owner: &str, visibility: Visibility) -> SeededChat {
        self.placed_chat(owner, visibility, Placement::default())
            .await
    }

    /// The same, pinned, archived or filed as `placement` says.
    pub async fn placed_chat(
        &self,
        owner: &str,
        visibility: Visibility,
        placement: Placement,
    ) -> SeededChat {
        let seed = self.seed();
        let id = Uuid::new_v4();
        let title = format!("contract chat {}", &id.simple().to_string()[..8]);
        let mut chat = seed.chat(owner, visibility).id(id).titled(&title);
        if placement.pinned {
            chat = chat.pinned();
        }
        if placement.archived {
            chat = chat.archived();
        }
        if let Some(folder) = placement.folder {
            chat = chat.in_folder(folder);
        }
        chat.await;
        let question = seed
            .message(id, Role::User, "What is 2 + 2?")
            .at(When::SecondsFromNow(0.0))
            .await;
        let answer = seed
            .message(id, Role::Assistant, "4")
            .traced("tr-contract")
            .at(When::SecondsFromNow(1.0))
            .await;
        seed.vote(id, answer, Vote::Up).await;
        SeededChat {
            id,
            owner: owner.to_owned(),
            title,
            visibility,
            message_ids: vec![question, answer],
        }
    }

    /// A folder of `owner`'s named `name`.
    pub async fn folder(&self, owner: &str, name: &str) -> Uuid {
        self.seed().folder(owner, name).await
    }

    /// The chat's row and how many messages and votes it has; `None` when
    /// the chat is gone.
    pub async fn chat_state(&self, id: Uuid) -> Option<ChatState> {
        let row = self
            .client
            .query_opt(
                r#"SELECT "userId", title, visibility::text,
                          (SELECT count(*) FROM chat."Message" WHERE "chatId" = c.id),
                          (SELECT coalesce(string_agg(row_to_json(v)::text, ' ' ORDER BY v."messageId"), '')
                           FROM chat."Vote" v WHERE "chatId" = c.id),
                          "pinnedAt" IS NOT NULL, "archivedAt" IS NOT NULL, "folderId"
                   FROM chat."Chat" c WHERE id = $1"#,
                &[&id],
            )
            .await
            .expect("reading a chat")?;
        Some(ChatState {
            owner: row.get(0),
            title: row.get(1),
            visibility: row.get(2),
            messages: row.get(3),
            votes: row.get(4),
            placement: Placement {
                pinned: row.get(5),
                archived: row.get(6),
                folder: row.get(7),
            },
        })
    }

    /// The folder's row as JSON (owner, name, position and all); `None`
    /// when it is gone.
    pub async fn folder_state(&self, id: Uuid) -> Option<String> {
        self.client
            .query_opt(
                r#"SELECT row_to_json(f)::text FROM chat."Folder" f WHERE id = $1"#,
                &[&id],
            )
            .await
            .expect("reading a folder")
            .map(|row| row.get(0))
    }

    /// Whether `id` is recorded as a user.
    pub async fn is_user(&self, id: &str) -> bool {
        self.client
            .query_one(
                r#"SELECT EXISTS (SELECT 1 FROM chat."User" WHERE id = $1)"#,
                &[&id],
            )
            .await
            .expect("looking a user up")
            .get(0)
    }

    /// Messages and votes left behind for a chat id (after a delete: none).
    pub async fn orphans_of(&self, id: Uuid) -> i64 {
        self.client
            .query_one(
                r#"SELECT (SELECT count(*) FROM chat."Message" WHERE "chatId" = $1)
                        + (SELECT count(*) FROM chat."Vote" WHERE "chatId" = $1)"#,
                &[&id],
            )
            .await
            .expect("counting a chat's rows")
            .get(0)
    }

    pub async fn snapshot(&self) -> Snapshot {
        Snapshot {
            users: self.rows_of("User").await,
            chats: self.rows_of("Chat").await,
            messages: self.rows_of("Message").await,
            votes: self.rows_of("Vote").await,
            folders: self.rows_of("Folder").await,
        }
    }

    async fn rows_of(&self, table: &str) -> BTreeSet<String> {
        // `table` is one of our five constant names, never input.
        let sql = format!(r#"SELECT row_to_json(t)::text FROM chat."{table}" t"#);
        self.client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|error| panic!("reading chat.{table}: {error}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}
