//! A database error never opens a door: with the database unreachable, every
//! chat route answers 503, the empty mock or 204 — never data, never a
//! successful write — and identity and input are still checked first.

use crate::support::new_user;
use chat_tests::contract::target::Target;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn without_its_database_the_app_fails_closed() {
    let target = Target::with_database_down().await;
    let user = new_user("offline");
    let chat = Uuid::new_v4();
    let messages = format!("/api/messages/{chat}");
    let delete = format!("/api/chat/{chat}");
    let visibility = format!("/api/chat/{chat}/visibility");
    let public = json!({"visibility": "public"});

    // Needs no database.
    target
        .api
        .get("/api/session")
        .caller(&user)
        .send()
        .await
        .expect_status(200);

    // Ephemeral answers that reveal nothing.
    let reply = target.api.get("/api/history").caller(&user).send().await;
    reply.expect_status(204);
    let reply = target.api.get(&messages).caller(&user).send().await;
    reply.expect_status(200);
    assert_eq!(reply.json(), json!({"data": [], "source": "mock"}));

    // Writes and admin work refuse.
    let token = target.admin_token().to_owned();
    for request in [
        target.api.delete(&delete).caller(&user),
        target.api.patch(&visibility).caller(&user).json(&public),
        target.api.get("/admin/schema").bearer(&token),
        target.api.post("/admin/schema/migrate").bearer(&token),
    ] {
        request.send().await.expect_status(503);
    }

    // Identity and input come first: no database answer for them.
    for request in [
        target.api.get("/api/history"),
        target.api.get(&messages),
        target.api.delete(&delete),
        target.api.patch(&visibility).json(&public),
    ] {
        request.send().await.expect_status(401);
    }
    for request in [
        target.api.get("/api/messages/not-a-uuid").caller(&user),
        target.api.delete("/api/chat/not-a-uuid").caller(&user),
        target
            .api
            .patch(&visibility)
            .caller(&user)
            .json(&json!({"visibility": "all"})),
        target.api.get("/api/history?limit=ten").caller(&user),
    ] {
        request.send().await.expect_status(400);
    }
}
