//! The authorisation matrix: every chat route (feedback, pins, archive and
//! folders included) × {the owner, another user, no identity} × {a public
//! chat, a private chat, an unknown chat}. Each case
//! runs on a chat of its own and then checks the database (and, for a
//! refused case, re-reads the chat as its owner): nobody reads, changes or
//! deletes what is not theirs. Folders, and the pins and folders of a
//! shared chat, stay their owner's alone.

use crate::support::{
    expect_statuses, ids_of, message_ids_of, new_user, target_and_seeder, user_id,
};
use chat_tests::contract::client::{Caller, EMAIL_HEADER, NAME_HEADER, USER_HEADER};
use chat_tests::contract::seed::{ChatState, Placement, SeededChat, Seeder, Visibility};
use chat_tests::contract::target::Target;
use serde_json::{Value, json};
use uuid::Uuid;

/// The title the rename cases ask for.
const RENAMED: &str = "Renamed by the matrix";

#[derive(Debug, Clone, Copy)]
enum Who {
    Owner,
    Other,
    Nobody,
}

#[derive(Debug, Clone, Copy)]
enum Chat {
    Public,
    Private,
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Read,
    Delete,
    ChangeVisibility,
    Rename,
    Stop,
    Regenerate,
    /// Follow the reply being written (none is: 204).
    Follow,
    /// Rate the reply down (the seeded vote is up).
    Rate,
    Withdraw,
    ReadVotes,
    Pin,
    Archive,
    /// File it in the caller's own folder.
    File,
}

/// The status the product contract gives each case.
fn expected_status(who: Who, chat: Chat, action: Action) -> u16 {
    match (who, chat, action) {
        (Who::Nobody, _, _) => 401,
        (_, Chat::Unknown, _) => 404,
        (Who::Owner, _, Action::Stop) => 202,
        (Who::Owner, _, Action::Follow) => 204,
        (Who::Other, Chat::Public, Action::Follow) => 204,
        (Who::Other, Chat::Private, Action::Follow) => 403,
        (Who::Owner, _, _) => 200,
        (Who::Other, Chat::Public, Action::Read) => 200,
        (Who::Other, Chat::Private, Action::Read) => 403,
        // A refused delete looks like a missing chat: it reveals nothing.
        (Who::Other, _, Action::Delete) => 404,
        (
            Who::Other,
            _,
            Action::ChangeVisibility
            | Action::Rename
            | Action::Stop
            | Action::Regenerate
            | Action::Pin
            | Action::Archive
            | Action::File,
        ) => 403,
        // A chat's feedback is its owner's, public or not.
        (Who::Other, _, Action::Rate | Action::Withdraw | Action::ReadVotes) => 403,
    }
}

struct Case {
    who: Who,
    chat: Chat,
    action: Action,
}

impl Case {
    fn label(&self) -> String {
        format!("{:?} / {:?} chat / {:?}", self.who, self.chat, self.action)
    }
}

/// Each user's own folder, which their file cases ask for.
struct Folders {
    owners: Uuid,
    others: Uuid,
}

#[tokio::test]
async fn nobody_reads_changes_or_deletes_what_is_not_theirs() {
    let (target, seeder) = target_and_seeder().await;
    let owner = new_user("owner");
    let other = new_user("other");
    seeder.user(user_id(&other)).await;
    let folders = Folders {
        owners: seeder.folder(user_id(&owner), "Owner's").await,
        others: seeder.folder(user_id(&other), "Other's").await,
    };
    for who in [Who::Owner, Who::Other, Who::Nobody] {
        for chat in [Chat::Public, Chat::Private, Chat::Unknown] {
            for action in [
                Action::Read,
                Action::Delete,
                Action::ChangeVisibility,
                Action::Rename,
                Action::Stop,
                Action::Regenerate,
                Action::Follow,
                Action::Rate,
                Action::Withdraw,
                Action::ReadVotes,
                Action::Pin,
                Action::Archive,
                Action::File,
            ] {
                let case = Case { who, chat, action };
                let caller = match who {
                    Who::Owner => owner.clone(),
                    Who::Other => other.clone(),
                    Who::Nobody => Caller::Anonymous,
                };
                let folder = match who {
                    Who::Other => folders.others,
                    Who::Owner | Who::Nobody => folders.owners,
                };
                run_case(&target, &seeder, &owner, (&caller, folder), &case).await;
            }
        }
    }
}

/// `caller` comes with their own folder, which a file case asks for.
async fn run_case(
    target: &Target,
    seeder: &Seeder,
    owner: &Caller,
    (caller, folder): (&Caller, Uuid),
    case: &Case,
) {
    let seeded = match case.chat {
        Chat::Public => Some(seeder.chat(user_id(owner), Visibility::Public).await),
        Chat::Private => Some(seeder.chat(user_id(owner), Visibility::Private).await),
        Chat::Unknown => None,
    };
    let chat_id = seeded.as_ref().map_or_else(Uuid::new_v4, |chat| chat.id);
    // The assistant's reply, which the seeder voted up.
    let reply_id = seeded
        .as_ref()
        .map_or_else(Uuid::new_v4, |chat| chat.message_ids[1]);
    let before = seeder.chat_state(chat_id).await;
    let wanted = seeded
        .as_ref()
        .map_or(Visibility::Public, |chat| chat.visibility.other());

    let request = match case.action {
        Action::Read => target.api.get(&format!("/api/messages/{chat_id}")),
        Action::Delete => target.api.delete(&format!("/api/chat/{chat_id}")),
        Action::ChangeVisibility => target
            .api
            .patch(&format!("/api/chat/{chat_id}/visibility"))
            .json(&json!({"visibility": wanted.as_str()})),
        Action::Rename => target
            .api
            .patch(&format!("/api/chat/{chat_id}/title"))
            .json(&json!({"title": RENAMED})),
        Action::Stop => target.api.post(&format!("/api/chat/{chat_id}/stop")),
        Action::Regenerate => target.api.post(&format!("/api/chat/{chat_id}/regenerate")),
        Action::Follow => target.api.get(&format!("/api/chat/{chat_id}/stream")),
        Action::Rate => target.api.put("/api/feedback").json(&json!({
            "chatId": chat_id, "messageId": reply_id, "isUpvoted": false, "comment": "Wrong"
        })),
        Action::Withdraw => target
            .api
            .delete(&format!("/api/feedback/{chat_id}/{reply_id}")),
        Action::ReadVotes => target.api.get(&format!("/api/feedback/{chat_id}")),
        Action::Pin => target
            .api
            .patch(&format!("/api/chat/{chat_id}/pinned"))
            .json(&json!({"pinned": true})),
        Action::Archive => target
            .api
            .patch(&format!("/api/chat/{chat_id}/archived"))
            .json(&json!({"archived": true})),
        Action::File => target
            .api
            .patch(&format!("/api/chat/{chat_id}/folder"))
            .json(&json!({"folderId": folder})),
    };
    let reply = request.caller(caller).send().await;
    let expected = expected_status(case.who, case.chat, case.action);
    assert_eq!(
        reply.status.as_u16(),
        expected,
        "{}: {}",
        case.label(),
        String::from_utf8_lossy(&reply.body)
    );

    let after = seeder.chat_state(chat_id).await;
    match (case.action, expected) {
        (Action::Read, 200) => {
            let seeded = seeded.as_ref().expect("a readable chat exists");
            assert_eq!(reply.json()["source"], "live", "{}", case.label());
            assert_eq!(
                ids_of(&reply.json()),
                message_ids_of(seeded),
                "{}",
                case.label()
            );
            assert_eq!(after, before, "{}: reading changed the chat", case.label());
        }
        (Action::Delete, 200) => {
            assert_eq!(after, None, "{}", case.label());
            assert_eq!(seeder.orphans_of(chat_id).await, 0, "{}", case.label());
        }
        (Action::ChangeVisibility, 200) => {
            let (before, after) = (before.unwrap(), after.unwrap());
            assert_eq!(after.visibility, wanted.as_str(), "{}", case.label());
            assert_eq!((after.owner, after.title), (before.owner, before.title));
        }
        (Action::Rename, 200) => {
            let (before, after) = (before.unwrap(), after.unwrap());
            assert_eq!(after.title, RENAMED, "{}", case.label());
            assert_eq!(
                (after.owner, after.visibility),
                (before.owner, before.visibility)
            );
        }
        (Action::Regenerate, 200) => {
            // The reply is rewritten in place; its rating went with its text.
            let (before, after) = (before.unwrap(), after.unwrap());
            assert_eq!(after.messages, before.messages, "{}", case.label());
            assert_eq!(after.votes, "", "{}: {}", case.label(), after.votes);
        }
        (Action::Pin | Action::Archive | Action::File, 200) => {
            let before = before.unwrap();
            let placement = match case.action {
                Action::Pin => Placement {
                    pinned: true,
                    ..before.placement
                },
                Action::Archive => Placement {
                    archived: true,
                    ..before.placement
                },
                _ => Placement {
                    folder: Some(folder),
                    ..before.placement
                },
            };
            let wanted = ChatState {
                placement,
                ..before
            };
            assert_eq!(after, Some(wanted), "{}", case.label());
        }
        (Action::Stop, 202) | (Action::Follow, 204) => {
            assert_eq!(after, before, "{}: a stop changed the chat", case.label());
        }
        (Action::Rate | Action::Withdraw | Action::ReadVotes, 200) => {
            let expected_votes = match case.action {
                Action::Rate => json!([{"chatId": chat_id, "messageId": reply_id,
                    "isUpvoted": false, "comment": "Wrong"}]),
                Action::Withdraw => json!([]),
                _ => json!([{"chatId": chat_id, "messageId": reply_id,
                    "isUpvoted": true, "comment": null}]),
            };
            let votes = target
                .api
                .get(&format!("/api/feedback/{chat_id}"))
                .caller(owner)
                .send()
                .await;
            votes.expect_status(200);
            assert_eq!(votes.json()["data"], expected_votes, "{}", case.label());
            let (before, after) = (before.unwrap(), after.unwrap());
            assert_eq!(after.messages, before.messages, "{}", case.label());
        }
        _ => {
            assert_eq!(
                after,
                before,
                "{}: a refused request changed the chat",
                case.label()
            );
            if let Some(seeded) = &seeded {
                assert_owner_still_reads_everything(target, owner, seeded, case).await;
            }
        }
    }
}

async fn assert_owner_still_reads_everything(
    target: &Target,
    owner: &Caller,
    chat: &SeededChat,
    case: &Case,
) {
    let reply = target
        .api
        .get(&format!("/api/messages/{}", chat.id))
        .caller(owner)
        .send()
        .await;
    reply.expect_status(200);
    assert_eq!(
        ids_of(&reply.json()),
        message_ids_of(chat),
        "{}",
        case.label()
    );
}

/// The user id is the email; a name, or `x-forwarded-user` next to another
/// email, makes nobody the owner.
#[tokio::test]
async fn only_the_email_or_else_the_gateway_user_names_the_caller() {
    let (target, seeder) = target_and_seeder().await;
    let owner = new_user("owner");
    let owner_id = user_id(&owner).to_owned();
    let chat = seeder.chat(&owner_id, Visibility::Private).await;
    let path = format!("/api/messages/{}", chat.id);
    let other = new_user("other");

    let impostors = [
        // Someone else's email with the owner's id as the gateway user...
        [
            (EMAIL_HEADER, user_id(&other)),
            (USER_HEADER, owner_id.as_str()),
        ],
        // ...or as the preferred username.
        [
            (EMAIL_HEADER, user_id(&other)),
            (NAME_HEADER, owner_id.as_str()),
        ],
    ];
    for headers in impostors {
        let mut request = target.api.get(&path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.expect_status(403);
    }
    // A name or a token alone is no identity.
    for name in [
        NAME_HEADER,
        "x-forwarded-access-token",
        "x-forwarded-user-info",
    ] {
        let request = target.api.get(&path).header(name, &owner_id);
        request.send().await.expect_status(401);
    }
    // Without an email, the gateway user is the id: this is the owner.
    let request = target.api.get(&path).header(USER_HEADER, &owner_id);
    request.send().await.expect_status(200);
    assert_eq!(
        seeder.chat_state(chat.id).await.unwrap().visibility,
        "private"
    );
}

/// Another user's chats never appear in the caller's history, public or not.
#[tokio::test]
async fn history_lists_no_one_elses_chats() {
    let (target, seeder) = target_and_seeder().await;
    let owner = new_user("owner");
    seeder.chat(user_id(&owner), Visibility::Public).await;
    seeder.chat(user_id(&owner), Visibility::Private).await;
    let other = new_user("other");
    let reply = target.api.get("/api/history").caller(&other).send().await;
    reply.expect_status(200);
    assert_eq!(reply.json(), json!({"data": [], "hasMore": false}));
}

/// A user's folders are theirs alone: another user can neither file a chat
/// in one, nor rename, move, delete or list it; and a shared chat's reader
/// sees none of its owner's folders or pins, anywhere.
#[tokio::test]
async fn folders_and_pins_stay_their_owners() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("owner");
    let reader = new_user("reader");
    let folder = seeder.folder(user_id(&owner), "Owner's plans").await;
    let readers_folder = seeder.folder(user_id(&reader), "Reader's plans").await;
    let placement = Placement {
        pinned: true,
        folder: Some(folder),
        ..Placement::default()
    };
    let shared = seeder
        .placed_chat(user_id(&owner), Visibility::Public, placement)
        .await;
    let readers_chat = seeder.chat(user_id(&reader), Visibility::Private).await;
    let folder_before = seeder.folder_state(folder).await;
    let readers_chat_before = seeder.chat_state(readers_chat.id).await;

    // Another user's folder is no folder of theirs: 404, nothing changed.
    let in_folder = format!("/api/folders/{folder}");
    expect_statuses([
        (
            api.patch(&format!("/api/chat/{}/folder", readers_chat.id))
                .caller(&reader)
                .json(&json!({"folderId": folder})),
            404,
        ),
        (
            api.patch(&in_folder)
                .caller(&reader)
                .json(&json!({"name": "Mine now"})),
            404,
        ),
        (
            api.patch(&in_folder)
                .caller(&reader)
                .json(&json!({"position": 7})),
            404,
        ),
        (api.delete(&in_folder).caller(&reader), 404),
        (
            api.get(&format!("/api/history?folder={folder}"))
                .caller(&reader),
            404,
        ),
    ])
    .await;
    assert_eq!(seeder.folder_state(folder).await, folder_before);
    // Asking for it records no newcomer as a user either.
    let newcomer = new_user("newcomer");
    let reply = api
        .get(&format!("/api/history?folder={folder}"))
        .caller(&newcomer)
        .send()
        .await;
    reply.expect_status(404);
    assert!(!seeder.is_user(user_id(&newcomer)).await);
    assert_eq!(
        seeder.chat_state(readers_chat.id).await,
        readers_chat_before
    );
    assert_eq!(
        seeder.chat_state(shared.id).await.unwrap().placement,
        placement
    );

    // The reader's own lists hold their own chat and folder, nothing of
    // the owner's: not the shared chat, its pin or its folder.
    let owners_marks = [
        shared.id.to_string(),
        folder.to_string(),
        "Owner's plans".to_owned(),
    ];
    let title_word = shared.title.rsplit(' ').next().unwrap();
    let readers_own = vec![readers_chat.id.to_string()];
    for (query, listed) in [
        (String::new(), readers_own.clone()),
        ("?archived=include".to_owned(), readers_own),
        ("?archived=only".to_owned(), Vec::new()),
        (format!("?q={title_word}&archived=include"), Vec::new()),
    ] {
        let reply = api
            .get(&format!("/api/history{query}"))
            .caller(&reader)
            .send()
            .await;
        reply.expect_status(200);
        assert_eq!(ids_of(&reply.json()), listed, "{query}");
        assert_mentions_none(&reply.json(), &owners_marks, &query);
    }
    let reply = api.get("/api/folders").caller(&reader).send().await;
    reply.expect_status(200);
    assert_eq!(ids_of(&reply.json()), [readers_folder.to_string()]);
    assert_mentions_none(&reply.json(), &owners_marks, "GET /api/folders");

    // The shared chat reads as its messages alone: no pin, archive or
    // folder field, at any depth.
    let reply = api
        .get(&format!("/api/messages/{}", shared.id))
        .caller(&reader)
        .send()
        .await;
    reply.expect_status(200);
    assert_eq!(ids_of(&reply.json()), message_ids_of(&shared));
    assert_mentions_none(&reply.json(), &owners_marks[1..], "the messages");
    let organising = keys_of(&reply.json())
        .into_iter()
        .filter(|key| {
            let key = key.to_ascii_lowercase();
            ["pin", "archiv", "folder"]
                .iter()
                .any(|word| key.contains(word))
        })
        .collect::<Vec<_>>();
    assert!(organising.is_empty(), "the messages carry {organising:?}");
}

/// Panics if `answer` holds any of `marks` (ids, names) anywhere.
fn assert_mentions_none(answer: &Value, marks: &[String], what: &str) {
    let text = answer.to_string();
    for mark in marks {
        assert!(
            !text.contains(mark.as_str()),
            "{what} mentions {mark}: {text}"
        );
    }
}

/// Every object key in `value`, at any depth.
fn keys_of(value: &Value) -> Vec<String> {
    match value {
        Value::Object(object) => object
            .iter()
            .flat_map(|(key, value)| std::iter::once(key.clone()).chain(keys_of(value)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys_of).collect(),
        _ => Vec::new(),
    }
}
