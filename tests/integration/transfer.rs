//! Export and import end to end (`GET /api/export`,
//! `GET /api/chat/:chatId/export`, `POST /api/import`), served from
//! spin.toml against a real PostgreSQL: what one user exports comes back
//! the same in another user's account, and a second import adds nothing;
//! a file that cannot be read changes nothing, and one with some bad chats
//! imports the good ones. Rows are seeded and counted with SQL.

use chat_tests::database::TestDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::seed::{Role, Seed, Status, Visibility, Vote, When};
use futures_util::stream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const IMPORTER: &str = "importer@example.com";
const STRANGER: &str = "stranger@example.com";
const JSON_LINES: &str = "application/x-ndjson";
/// The most an import takes (docs/export-format.md).
const MAX_IMPORT_BYTES: usize = 64 << 20;

struct Rig {
    db: TestDatabase,
    host: TestHost,
}

impl Rig {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let host = TestHost::launch(HostConfig::new(&db.url)).await;
        Self { db, host }
    }

    fn get(&self, path: &str, email: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(self.host.url(path))
            .header("x-forwarded-email", email)
    }

    /// The caller's export, checked to be a JSON Lines download, as its
    /// text and its lines.
    async fn export(&self, email: &str) -> (String, Vec<Value>) {
        let response = self.get("/api/export", email).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response.headers(), CONTENT_TYPE), JSON_LINES);
        let disposition = header(response.headers(), CONTENT_DISPOSITION);
        assert!(
            disposition.starts_with("attachment; filename=\"chat-history-"),
            "{disposition}"
        );
        let text = response.text().await.expect("the export");
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        (text, lines)
    }

    /// Posts `file` to the import as `email`: the status and the JSON answer.
    async fn import(
        &self,
        email: &str,
        content_type: &str,
        file: reqwest::Body,
    ) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(self.host.url("/api/import"))
            .header("x-forwarded-email", email)
            .header(CONTENT_TYPE, content_type)
            .body(file)
            .send()
            .await
            .expect("POST /api/import");
        let status = response.status();
        assert_eq!(header(response.headers(), CONTENT_TYPE), "application/json");
        (status, response.json().await.expect("a JSON answer"))
    }

    /// An import that must succeed: its report.
    async fn imported(
        &self,
        email: &str,
        content_type: &str,
        file: impl Into<reqwest::Body>,
    ) -> Value {
        let (status, report) = self.import(email, content_type, file.into()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report
    }

    /// An import that must be refused with `status` and change nothing:
    /// its error sentence.
    async fn refused(&self, status: StatusCode, content_type: &str, file: reqwest::Body) -> String {
        let before = self.rows_of(STRANGER).await;
        let (answered, body) = self.import(STRANGER, content_type, file).await;
        assert_eq!(answered, status, "{body}");
        assert_eq!(self.rows_of(STRANGER).await, before, "nothing is written");
        body["error"]
            .as_str()
            .expect("an error sentence")
            .to_owned()
    }

    /// How many chats, messages, votes and folders `user` has.
    async fn rows_of(&self, user: &str) -> [i64; 4] {
        let count = async |sql: &str| self.db.column::<i64>(sql, &[&user]).await[0];
        [
            count(r#"SELECT count(*) FROM chat."Chat" WHERE "userId" = $1"#).await,
            count(
                r#"SELECT count(*) FROM chat."Message" JOIN chat."Chat" AS chat ON chat.id = "chatId" WHERE chat."userId" = $1"#,
            )
            .await,
            count(
                r#"SELECT count(*) FROM chat."Vote" JOIN chat."Chat" AS chat ON chat.id = "chatId" WHERE chat."userId" = $1"#,
            )
            .await,
            count(r#"SELECT count(*) FROM chat."Folder" WHERE "userId" = $1"#).await,
        ]
    }
}

fn header<'h>(headers: &'h HeaderMap, name: impl reqwest::header::AsHeaderName) -> &'h str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

fn at(seconds: f64) -> When {
    When::SecondsInto2026(seconds)
}

/// The report of an import: counts, and the sources of the skipped chats.
fn outcome(report: &Value) -> (u64, u64, Vec<&str>) {
    let skipped = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|skipped| skipped["source"].as_str().expect("a source"))
        .collect();
    (
        report["chatsImported"].as_u64().expect("chatsImported"),
        report["chatsAlreadyThere"]
            .as_u64()
            .expect("chatsAlreadyThere"),
        skipped,
    )
}

/// An export's chats as what they hold, whoever holds them: without their
/// ids, their folder named, their visibility apart (an import into another
/// account makes every chat private).
fn chats_of(lines: &[Value]) -> Vec<Value> {
    let folders: BTreeMap<&str, &str> = lines
        .iter()
        .filter(|line| line["type"] == "folder")
        .map(|folder| {
            (
                folder["id"].as_str().unwrap(),
                folder["name"].as_str().unwrap(),
            )
        })
        .collect();
    lines
        .iter()
        .filter(|line| line["type"] == "chat")
        .map(|chat| {
            let mut chat = chat.clone();
            let object = chat.as_object_mut().unwrap();
            object.remove("id");
            object.remove("visibility");
            let folder = object["folderId"].as_str().map(|id| folders[id]);
            object.insert("folderId".to_owned(), json!(folder));
            for message in object["messages"].as_array_mut().unwrap() {
                message.as_object_mut().unwrap().remove("id");
            }
            chat
        })
        .collect()
}

#[tokio::test]
async fn an_export_imported_into_another_account_gives_the_same_chats_once() {
    let rig = Rig::start().await;
    let seed = Seed::connect(&rig.db).await;
    let folder = seed.folder(OWNER, "Geography").await;
    let capitals = seed
        .chat(OWNER, Visibility::Private)
        .titled("Capitals")
        .at(at(0.0))
        .active_at(at(100.0))
        .pinned()
        .in_folder(folder)
        .await;
    seed.message(capitals, Role::User, "Capital of France?")
        .at(at(1.0))
        .await;
    let paris = seed
        .message(capitals, Role::Assistant, "Paris.")
        .traced("tr-paris")
        .at(at(2.0))
        .await;
    seed.commented_vote(capitals, paris, Vote::Up, "Short and right")
        .await;
    seed.message(capitals, Role::User, "And of Spain?")
        .at(at(3.0))
        .await;
    let madrid = seed
        .message(capitals, Role::Assistant, "Mad")
        .status(Status::Stopped)
        .at(at(4.0))
        .await;
    seed.vote(capitals, madrid, Vote::Down).await;
    let trip = seed
        .chat(OWNER, Visibility::Public)
        .titled("Old trip")
        .at(at(10.0))
        .archived()
        .await;
    seed.message(trip, Role::User, "Where to?")
        .at(at(11.0))
        .await;
    seed.message(trip, Role::Assistant, "")
        .status(Status::Error)
        .at(at(12.0))
        .await;
    seed.chat(OWNER, Visibility::Private)
        .titled("Nothing yet")
        .at(at(20.0))
        .await;
    seed.chat(STRANGER, Visibility::Public)
        .titled("Someone else's")
        .await;

    let (file, lines) = rig.export(OWNER).await;
    assert_eq!(lines[0]["type"], "chat-history-export");
    assert_eq!(
        (&lines[0]["version"], &lines[0]["userId"]),
        (&json!(1), &json!(OWNER))
    );
    assert_eq!(
        lines.last().unwrap(),
        &json!({"type": "end", "chats": 3, "folders": 1})
    );
    let chats = chats_of(&lines);
    let titles: Vec<&str> = chats.iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        ["Capitals", "Old trip", "Nothing yet"],
        "oldest first, the owner's only"
    );
    assert_eq!(
        chats[0],
        json!({
            "type": "chat", "title": "Capitals",
            "createdAt": "2026-01-01T00:00:00.000Z", "lastActivityAt": "2026-01-01T00:01:40.000Z",
            "pinned": true, "archived": false, "folderId": "Geography",
            "messages": [
                {"role": "user", "parts": [{"type": "text", "text": "Capital of France?"}],
                 "createdAt": "2026-01-01T00:00:01.000Z", "status": "complete", "traceId": null, "vote": null},
                {"role": "assistant", "parts": [{"type": "text", "text": "Paris."}],
                 "createdAt": "2026-01-01T00:00:02.000Z", "status": "complete", "traceId": "tr-paris",
                 "vote": {"isUpvoted": true, "comment": "Short and right"}},
                {"role": "user", "parts": [{"type": "text", "text": "And of Spain?"}],
                 "createdAt": "2026-01-01T00:00:03.000Z", "status": "complete", "traceId": null, "vote": null},
                {"role": "assistant", "parts": [{"type": "text", "text": "Mad"}],
                 "createdAt": "2026-01-01T00:00:04.000Z", "status": "stopped", "traceId": null,
                 "vote": {"isUpvoted": false, "comment": null}},
            ],
        })
    );
    assert_eq!(
        (&chats[1]["archived"], &chats[1]["messages"][1]["status"]),
        (&json!(true), &json!("error"))
    );

    // Into another account: the same chats, each private, under new ids.
    let report = rig.imported(IMPORTER, JSON_LINES, file.clone()).await;
    assert_eq!(
        report,
        json!({"chatsImported": 3, "chatsAlreadyThere": 0, "skipped": [], "skippedParts": {}})
    );
    let (_, imported) = rig.export(IMPORTER).await;
    assert_eq!(chats_of(&imported), chats);
    assert!(
        imported
            .iter()
            .filter(|line| line["type"] == "chat")
            .all(|chat| chat["visibility"] == "private")
    );
    let ids = |lines: &[Value]| -> Vec<Value> {
        lines.iter().filter_map(|l| l.get("id").cloned()).collect()
    };
    assert!(
        ids(&imported).iter().all(|id| !ids(&lines).contains(id)),
        "new ids"
    );

    // Twice: nothing new; and the owner's own export restores nothing
    // that is still there.
    let rows = rig.rows_of(IMPORTER).await;
    assert_eq!(rows, [3, 6, 2, 1]);
    let again = rig.imported(IMPORTER, JSON_LINES, file.clone()).await;
    assert_eq!(outcome(&again), (0, 3, vec![]));
    assert_eq!(rig.rows_of(IMPORTER).await, rows);
    let restore = rig.imported(OWNER, JSON_LINES, file).await;
    assert_eq!(outcome(&restore), (0, 3, vec![]));
    assert_eq!(rig.rows_of(OWNER).await, [3, 6, 2, 1]);

    // One chat as Markdown: for whoever may read its messages, refused as
    // the messages route refuses.
    let markdown = rig
        .get(&format!("/api/chat/{capitals}/export"), OWNER)
        .send()
        .await
        .expect("GET");
    assert_eq!(markdown.status(), StatusCode::OK);
    assert_eq!(
        header(markdown.headers(), CONTENT_TYPE),
        "text/markdown; charset=utf-8"
    );
    assert!(header(markdown.headers(), CONTENT_DISPOSITION).contains("filename=\"Capitals.md\""));
    let document = markdown.text().await.expect("the document");
    assert!(document.starts_with("# Capitals\n"), "{document}");
    assert!(
        document.contains("**Assistant** · 2026-01-01 00:00 UTC · *stopped*\n\n> Mad\n"),
        "{document}"
    );
    let public = rig
        .get(&format!("/api/chat/{trip}/export"), IMPORTER)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        public.status(),
        StatusCode::OK,
        "anyone reads a public chat"
    );
    for chat in [capitals, Uuid::new_v4()] {
        let messages = rig
            .get(&format!("/api/messages/{chat}"), IMPORTER)
            .send()
            .await
            .expect("GET");
        let refused = rig
            .get(&format!("/api/chat/{chat}/export"), IMPORTER)
            .send()
            .await
            .expect("GET");
        assert!(matches!(
            refused.status(),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ));
        assert_eq!(refused.status(), messages.status(), "{chat}");
        let error: Value = refused.json().await.expect("a JSON error");
        assert!(error["error"].is_string());
    }
}

/// A ZIP of these files, as ChatGPT's data export is.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        writer.start_file(*name, options).expect("a ZIP entry");
        writer.write_all(content).expect("writing a ZIP entry");
    }
    writer.finish().expect("the ZIP").into_inner()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = chat_tests::repo_root()
        .join("components/domain/src/transfer/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[tokio::test]
async fn what_cannot_be_read_changes_nothing_and_good_chats_import_beside_bad_ones() {
    let rig = Rig::start().await;
    let seed = Seed::connect(&rig.db).await;
    // The last chat's reply is long: every file below is larger than the
    // 1 MiB the API's other routes take.
    let long_reply = "Long. ".repeat(300_000);
    for (title, second) in [("First", 0.0), ("Second", 10.0), ("Third", 20.0)] {
        let chat = seed
            .chat(OWNER, Visibility::Private)
            .titled(title)
            .at(at(second))
            .await;
        seed.message(chat, Role::User, title)
            .at(at(second + 1.0))
            .await;
        if title == "Third" {
            seed.message(chat, Role::Assistant, &long_reply)
                .at(at(second + 2.0))
                .await;
        }
    }
    let (file, _) = rig.export(OWNER).await;
    assert!(file.len() > 1 << 20);
    let lines: Vec<&str> = file.lines().collect();

    // Refused whole, saying where: a broken line, a file cut short.
    let mut broken = lines.clone();
    broken[2] = "{\"type\":\"chat\",";
    let error = rig
        .refused(
            StatusCode::BAD_REQUEST,
            JSON_LINES,
            broken.join("\n").into(),
        )
        .await;
    assert!(error.contains("line 3"), "{error}");
    let cut_short = lines[..lines.len() - 1].join("\n");
    let error = rig
        .refused(StatusCode::BAD_REQUEST, JSON_LINES, cut_short.into())
        .await;
    assert!(error.contains("truncated"), "{error}");
    // A form cannot send it; nor can anyone send more than the limit,
    // whether the length is announced or not.
    rig.refused(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "text/plain",
        file.clone().into(),
    )
    .await;
    let mut oversized = file.clone().into_bytes();
    oversized.resize(MAX_IMPORT_BYTES + 1, b'\n');
    let error = rig
        .refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            JSON_LINES,
            oversized.clone().into(),
        )
        .await;
    assert!(error.contains("64 MiB"), "{error}");
    let chunks = oversized
        .chunks(1 << 20)
        .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
        .collect::<Vec<_>>();
    let unannounced = reqwest::Body::wrap_stream(stream::iter(chunks));
    rig.refused(StatusCode::PAYLOAD_TOO_LARGE, JSON_LINES, unannounced)
        .await;

    // A chat line with a wrong field is skipped; the others import.
    let robot = lines[2].replacen("\"role\":\"user\"", "\"role\":\"robot\"", 1);
    let mut one_bad = lines.clone();
    one_bad[2] = &robot;
    let report = rig.imported(STRANGER, JSON_LINES, one_bad.join("\n")).await;
    assert_eq!(outcome(&report), (2, 0, vec!["line 3"]));
    assert!(
        report["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("robot"),
        "{report}"
    );
    assert_eq!(rig.rows_of(STRANGER).await, [2, 3, 0, 0]);

    // ChatGPT's conversations.json: the readable conversations import,
    // the rest is reported, what they left out counted; twice, nothing new.
    let conversations = fixture("chatgpt-current.json");
    let report = rig
        .imported(IMPORTER, "application/json", conversations.clone())
        .await;
    let (imported, there, skipped) = outcome(&report);
    assert_eq!((imported, there, skipped.len()), (2, 0, 3), "{report}");
    assert!(
        skipped[0].starts_with("conversation 2 of conversations.json"),
        "{report}"
    );
    assert_eq!(report["skippedParts"]["hidden message"], 2, "{report}");
    let again = rig
        .imported(IMPORTER, "application/json", conversations)
        .await;
    assert_eq!(outcome(&again).0, 0);
    assert_eq!(outcome(&again).1, 2);
    // Its ZIP, split into parts as newer exports are.
    let zip = zip_of(&[
        ("user.json", b"{}"),
        (
            "conversations-001.json",
            &fixture("chatgpt-split/conversations-001.json"),
        ),
        (
            "conversations-000.json",
            &fixture("chatgpt-split/conversations-000.json"),
        ),
    ]);
    let report = rig.imported(IMPORTER, "application/zip", zip).await;
    assert_eq!(outcome(&report), (3, 0, vec![]), "{report}");
    let titles: Vec<String> = rig
        .db
        .column(
            r#"SELECT title FROM chat."Chat" WHERE "userId" = $1 ORDER BY "createdAt""#,
            &[&IMPORTER],
        )
        .await;
    assert!(titles.iter().any(|title| title == "Part two"), "{titles:?}");
    assert_eq!(rig.rows_of(IMPORTER).await[0], 5);
}
