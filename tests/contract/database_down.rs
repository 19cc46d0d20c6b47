//! A database error never opens a door: with the database unreachable, every
//! chat, folder and feedback route answers 503, the empty mock or 204 — never
//! data, never a successful write — and identity and input are still checked
//! first. Only the chat itself carries on: the reply streams without being
//! stored.

use crate::support::{expect_statuses, new_user};
use chat_tests::contract::target::Target;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn without_its_database_the_app_fails_closed() {
    let target = Target::with_database_down().await;
    let api = &target.api;
    let user = new_user("offline");
    let chat = Uuid::new_v4();
    let messages = format!("/api/messages/{chat}");
    let delete = format!("/api/chat/{chat}");
    let visibility = format!("/api/chat/{chat}/visibility");
    let public = json!({"visibility": "public"});
    let title = format!("/api/chat/{chat}/title");
    let stop = format!("/api/chat/{chat}/stop");
    let regenerate = format!("/api/chat/{chat}/regenerate");
    let follow = format!("/api/chat/{chat}/stream");
    let renamed = json!({"title": "Offline plans"});
    let hello = json!({"id": chat, "messages": [{"role": "user", "content": "Hello"}]});
    let votes = format!("/api/feedback/{chat}");
    let vote = format!("/api/feedback/{chat}/{}", Uuid::new_v4());
    let rating = json!({"chatId": chat, "messageId": Uuid::new_v4(), "isUpvoted": true});
    let token = target.admin_token().to_owned();
    let pinned = format!("/api/chat/{chat}/pinned");
    let pin = json!({"pinned": true});
    let archived = format!("/api/chat/{chat}/archived");
    let archive = json!({"archived": true});
    let filed = format!("/api/chat/{chat}/folder");
    let file = json!({"folderId": Uuid::new_v4()});
    let unfile = json!({"folderId": null});
    let folder = format!("/api/folders/{}", Uuid::new_v4());
    let named = json!({"name": "Offline plans"});
    let moved = json!({"position": 1});

    // No messages, whoever asks: nothing is known about the chat.
    let reply = api.get(&messages).caller(&user).send().await;
    reply.expect_status(200);
    assert_eq!(
        reply.json(),
        json!({"data": [], "source": "mock", "hasMore": false})
    );

    expect_statuses([
        // Needs no database.
        (api.get("/api/session").caller(&user), 200),
        // Ephemeral mode: no history, no folders, no body.
        (api.get("/api/history").caller(&user), 204),
        (api.get("/api/folders").caller(&user), 204),
        // The chat still streams (not stored: ephemeral mode).
        (api.post("/api/chat").caller(&user).json(&hello), 200),
        // Writes and admin work refuse.
        (api.delete(&delete).caller(&user), 503),
        (api.patch(&visibility).caller(&user).json(&public), 503),
        (api.patch(&title).caller(&user).json(&renamed), 503),
        (api.patch(&pinned).caller(&user).json(&pin), 503),
        (api.patch(&archived).caller(&user).json(&archive), 503),
        (api.patch(&filed).caller(&user).json(&file), 503),
        (api.patch(&filed).caller(&user).json(&unfile), 503),
        (api.post("/api/folders").caller(&user).json(&named), 503),
        (api.patch(&folder).caller(&user).json(&named), 503),
        (api.patch(&folder).caller(&user).json(&moved), 503),
        (api.delete(&folder).caller(&user), 503),
        (api.post(&stop).caller(&user), 503),
        // Without the stored conversation there is nothing to regenerate.
        (api.post(&regenerate).caller(&user), 503),
        // Whether the caller may read it cannot be told: nothing is followed.
        (api.get(&follow).caller(&user), 503),
        // Whose chat it is cannot be checked: no vote is written or shown.
        (api.put("/api/feedback").caller(&user).json(&rating), 503),
        (api.delete(&vote).caller(&user), 503),
        (api.get(&votes).caller(&user), 503),
        (api.get("/admin/schema").bearer(&token), 503),
        (api.post("/admin/schema/migrate").bearer(&token), 503),
        // Identity and input come first.
        (api.get("/api/history"), 401),
        (api.get(&messages), 401),
        (api.delete(&delete), 401),
        (api.patch(&visibility).json(&public), 401),
        (api.patch(&title).json(&renamed), 401),
        (api.patch(&pinned).json(&pin), 401),
        (api.patch(&archived).json(&archive), 401),
        (api.patch(&filed).json(&file), 401),
        (api.get("/api/folders"), 401),
        (api.post("/api/folders").json(&named), 401),
        (api.patch(&folder).json(&named), 401),
        (api.delete(&folder), 401),
        (api.post(&stop), 401),
        (api.post(&regenerate), 401),
        (api.get(&follow), 401),
        (api.post("/api/chat").json(&hello), 401),
        (api.put("/api/feedback").json(&rating), 401),
        (
            api.put("/api/feedback")
                .caller(&user)
                .json(&json!({"chatId": chat, "isUpvoted": true})),
            400,
        ),
        (
            api.post("/api/chat")
                .caller(&user)
                .json(&json!({"messages": []})),
            400,
        ),
        (api.get("/api/messages/not-a-uuid").caller(&user), 400),
        (api.delete("/api/chat/not-a-uuid").caller(&user), 400),
        (api.get("/api/history?limit=ten").caller(&user), 400),
        (
            api.patch(&visibility)
                .caller(&user)
                .json(&json!({"visibility": "all"})),
            400,
        ),
        (
            api.patch(&title).caller(&user).json(&json!({"title": " "})),
            400,
        ),
        (
            api.patch(&pinned)
                .caller(&user)
                .json(&json!({"pinned": "yes"})),
            400,
        ),
        (
            api.patch(&archived)
                .caller(&user)
                .json(&json!({"archived": null})),
            400,
        ),
        (
            api.patch(&filed)
                .caller(&user)
                .json(&json!({"folderId": "Work"})),
            400,
        ),
        (
            api.post("/api/folders")
                .caller(&user)
                .json(&json!({"name": ""})),
            400,
        ),
        (api.patch(&folder).caller(&user).json(&json!({})), 400),
        (api.delete("/api/folders/not-a-uuid").caller(&user), 400),
        (api.get("/api/history?archived=all").caller(&user), 400),
        (api.get("/api/history?folder=Work").caller(&user), 400),
    ])
    .await;
}
