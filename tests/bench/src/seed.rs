//! The data set, generated server-side with `INSERT ... SELECT
//! generate_series` (orders of magnitude faster than rows sent one by one).

use anyhow::{Context, Result};
use std::time::Instant;
use tokio_postgres::Client;
use uuid::Uuid;

/// The owner of the 50-message chat the messages route reads.
pub const READER: &str = "reader@bench.example";
/// The user whose sidebar the history benchmarks page through.
pub const THOUSAND_CHATS_USER: &str = "thousand@bench.example";
/// The scaling case: one user with a very long history.
pub const HUGE_HISTORY_USER: &str = "huge@bench.example";

pub const CONVERSATION_MESSAGES: i32 = 50;
pub const THOUSAND_CHATS: i64 = 1_000;
/// Messages in each chat of [`THOUSAND_CHATS_USER`], whose history is searched.
pub const SEARCHED_MESSAGES_PER_CHAT: i64 = 20;
/// A word of [`WORD_LIST`], searched for: like every word of the list, it is
/// in about 1 % of the messages.
pub const SEARCH_WORD: &str = "rusavo";

/// 1,000 made-up words (three of ten syllables each) from which every
/// seeded message draws [`WORDS_PER_MESSAGE`], so that texts vary and each
/// word is in about 1 % of the messages (1 - (1 - 1/1000)^10).
const WORD_LIST: &str = "ARRAY(SELECT a || b || c FROM \
    unnest(ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','we','zu']) AS a, \
    unnest(ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','we','zu']) AS b, \
    unnest(ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','we','zu']) AS c)";
const WORDS_PER_MESSAGE: i64 = 10;

/// Messages `1..=$1` for every chat `chats` selects (as `c`), each with
/// [`WORDS_PER_MESSAGE`] words of [`WORD_LIST`] picked by a hash of the
/// chat, the message and the word's place: varied, and the same in every
/// run.
pub fn messages_of_random_words(chats: &str) -> String {
    format!(
        r#"WITH list AS (SELECT {WORD_LIST} AS words)
INSERT INTO chat."Message" ("chatId", role, parts, "createdAt")
SELECT c.id, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
       json_build_array(json_build_object('type', 'text', 'text',
           (SELECT string_agg(list.words[1 + abs(hashtext(c.id || ':' || m || ':' || w)) % 1000], ' ')
            FROM generate_series(1, {WORDS_PER_MESSAGE}) AS w))),
       c."createdAt" + m * interval '1 second'
FROM ({chats}) AS c CROSS JOIN generate_series(1, $1::bigint) AS m CROSS JOIN list"#
    )
}

/// How much to generate.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub users: i64,
    pub chats_per_user: i64,
    pub messages_per_chat: i64,
    pub huge_history_chats: i64,
}

impl Scale {
    /// 10,000 users, 100,000 chats, 1,000,000 messages, and one user with
    /// 1,000,000 chats.
    pub const FULL: Scale = Scale {
        users: 10_000,
        chats_per_user: 10,
        messages_per_chat: 10,
        huge_history_chats: 1_000_000,
    };

    /// A tenth of everything, for working on the benchmark itself.
    pub const QUICK: Scale = Scale {
        users: 1_000,
        chats_per_user: 10,
        messages_per_chat: 10,
        huge_history_chats: 100_000,
    };
}

/// Ids the benchmarks request.
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    /// The 50-message chat, owned by [`READER`].
    pub conversation: Uuid,
}

/// Fills the migrated (empty) schema, then vacuums and analyses it so the
/// planner knows the tables' sizes and index-only scans can skip the heap.
pub async fn seed(db: &Client, scale: Scale) -> Result<Seeded> {
    let started = Instant::now();
    let users = scale.users;
    let chats = users * scale.chats_per_user;
    step(
        db,
        &format!("{users} users"),
        r#"INSERT INTO chat."User" (id, email)
           SELECT 'user' || g || '@bench.example', 'user' || g || '@bench.example'
           FROM generate_series(1, $1::bigint) AS g"#,
        &[&users],
    )
    .await?;
    step(
        db,
        &format!("{chats} chats, {} per user", scale.chats_per_user),
        r#"INSERT INTO chat."Chat" ("createdAt", "lastActivityAt", title, "userId", visibility)
           SELECT timestamp '2024-01-01' + g * interval '1 minute', timestamp '2024-01-01' + g * interval '1 minute',
                  'Chat ' || g, 'user' || (g % $1::bigint + 1) || '@bench.example', 'private'
           FROM generate_series(1, $2::bigint) AS g"#,
        &[&users, &chats],
    )
    .await?;
    step(
        db,
        &format!(
            "{} messages, {} per chat",
            chats * scale.messages_per_chat,
            scale.messages_per_chat
        ),
        &messages_of_random_words(r#"SELECT id, "createdAt" FROM chat."Chat""#),
        &[&scale.messages_per_chat],
    )
    .await?;
    let conversation = seed_conversation(db).await?;
    for (user, count) in [
        (THOUSAND_CHATS_USER, THOUSAND_CHATS),
        (HUGE_HISTORY_USER, scale.huge_history_chats),
    ] {
        // Two chats per second, so pages cross ties on "createdAt" and the
        // keyset's id tie-break is exercised.
        step(
            db,
            &format!("{count} chats of {user}"),
            r#"INSERT INTO chat."Chat" ("createdAt", "lastActivityAt", title, "userId", visibility)
               SELECT timestamp '2023-01-01' + (g / 2) * interval '1 second',
                      timestamp '2023-01-01' + (g / 2) * interval '1 second', 'Chat ' || g, $1, 'private'
               FROM generate_series(1, $2::bigint) AS g"#,
            &[&user, &count],
        )
        .await?;
    }
    step(
        db,
        &format!("{SEARCHED_MESSAGES_PER_CHAT} messages in each chat of {THOUSAND_CHATS_USER}"),
        &messages_of_random_words(&format!(
            r#"SELECT id, "createdAt" FROM chat."Chat" WHERE "userId" = '{THOUSAND_CHATS_USER}'"#
        )),
        &[&SEARCHED_MESSAGES_PER_CHAT],
    )
    .await?;
    let vacuum = Instant::now();
    db.batch_execute(r#"VACUUM ANALYZE chat."User", chat."Chat", chat."Message""#)
        .await
        .context("VACUUM ANALYZE")?;
    println!("  vacuum analyze: {:.1} s", vacuum.elapsed().as_secs_f64());
    println!("  seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Seeded { conversation })
}

/// One chat of [`READER`] with [`CONVERSATION_MESSAGES`] messages.
async fn seed_conversation(db: &Client) -> Result<Uuid> {
    db.execute(
        r#"INSERT INTO chat."User" (id, email) VALUES ($1::text, $1::text)"#,
        &[&READER],
    )
    .await?;
    let chat: Uuid = db
        .query_one(
            r#"INSERT INTO chat."Chat" ("createdAt", "lastActivityAt", title, "userId") VALUES (timestamp '2024-06-01', timestamp '2024-06-01', 'A long conversation', $1) RETURNING id"#,
            &[&READER],
        )
        .await?
        .get(0);
    step(
        db,
        &format!("a chat of {CONVERSATION_MESSAGES} messages"),
        r#"INSERT INTO chat."Message" ("chatId", role, parts, "createdAt", "traceId")
           SELECT $1, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
                  json_build_array(json_build_object('type', 'text',
                      'text', 'Turn ' || m || ' of a long conversation, with a reply of a few sentences.')),
                  timestamp '2024-06-01' + m * interval '1 second', 'trace-' || m
           FROM generate_series(1, $2) AS m"#,
        &[&chat, &CONVERSATION_MESSAGES],
    )
    .await?;
    Ok(chat)
}

/// How many messages hold [`SEARCH_WORD`], and how many there are.
pub async fn search_word_share(db: &Client) -> Result<(i64, i64)> {
    let row = db
        .query_one(
            r#"SELECT count(*) FILTER (WHERE to_tsvector('english', chat.message_text(parts)) @@ to_tsquery('english', $1)),
                      count(*)
               FROM chat."Message""#,
            &[&SEARCH_WORD],
        )
        .await
        .context("counting the searched word")?;
    Ok((row.get(0), row.get(1)))
}

async fn step(
    db: &Client,
    what: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<()> {
    let started = Instant::now();
    db.execute(sql, params)
        .await
        .with_context(|| format!("seeding {what}"))?;
    println!("  {what}: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The id of the chat `offset` places from the newest in `user`'s history:
/// a cursor whose `starting_after` page lies that deep.
pub async fn chat_at(db: &Client, user: &str, offset: i64) -> Result<Uuid> {
    let row = db
        .query_one(
            r#"SELECT id FROM chat."Chat" WHERE "userId" = $1
               ORDER BY "createdAt" DESC, id DESC OFFSET $2 LIMIT 1"#,
            &[&user, &offset],
        )
        .await
        .with_context(|| format!("finding chat {offset} of {user}"))?;
    Ok(row.get(0))
}

/// How many assistant replies to chats of users `…@domain` are stored complete.
pub async fn complete_replies(db: &Client, domain: &str) -> Result<i64> {
    let row = db
        .query_one(
            r#"SELECT count(*) FROM chat."Message" AS m JOIN chat."Chat" AS c ON c.id = m."chatId"
               WHERE c."userId" LIKE '%@' || $1 AND m.role = 'assistant' AND m.status = 'complete'"#,
            &[&domain],
        )
        .await
        .context("counting stored replies")?;
    Ok(row.get(0))
}
