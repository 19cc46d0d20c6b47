//! Every route answering every status the description lists for it (503 and
//! the mock and 204 answers are in `database_down`), checked against what
//! the database holds afterwards.

use crate::support::{
    expect_statuses, ids_of, message_ids_of, new_user, target_and_seeder, user_id,
};
use chat_tests::contract::client::{EMAIL_HEADER, USER_HEADER};
use chat_tests::contract::seed::Visibility;
use chat_tests::contract::target::Target;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const ONE_MIB: usize = 1024 * 1024;

/// Ids that are not UUIDs, as a client might send them (already encoded).
const MALFORMED_IDS: [&str; 5] = [
    "not-a-uuid",
    "123",
    "123e4567e89b12d3a456426614174000x",
    "%7B123e4567-e89b-12d3-a456-426614174000%7D",
    "1%27%20OR%20%271%27%3D%271",
];

#[tokio::test]
async fn session_names_the_gateway_user_or_answers_401() {
    let target = Target::shared().await;
    let api = &target.api;
    let user = new_user("session");
    let email = user_id(&user);
    let reply = api.get("/api/session").caller(&user).send().await;
    reply.expect_status(200);
    let name = email.split('@').next().unwrap();
    assert_eq!(
        reply.json(),
        json!({"user": {"id": email, "email": email, "name": name}, "authenticated": true})
    );

    // Without an email the gateway user is the id.
    let gateway_user = api
        .get("/api/session")
        .header(USER_HEADER, "gateway-user-42");
    let reply = gateway_user.send().await;
    reply.expect_status(200);
    assert_eq!(reply.json()["user"]["id"], "gateway-user-42");

    api.get("/api/session").send().await.expect_status(401);
    let reply = api.post("/api/session").caller(&user).send().await;
    reply.expect_only_allowed("GET");
}

#[tokio::test]
async fn history_search_finds_only_the_callers_matching_chats() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("searcher");
    let first = seeder.chat(user_id(&owner), Visibility::Private).await;
    let second = seeder.chat(user_id(&owner), Visibility::Public).await;
    let theirs = seeder
        .chat(user_id(&new_user("else")), Visibility::Public)
        .await;
    let search = async |query: &str| {
        let reply = api
            .get(&format!("/api/history?{query}"))
            .caller(&owner)
            .send()
            .await;
        reply.expect_status(200);
        let mut ids = ids_of(&reply.json());
        ids.sort();
        ids
    };
    // Each seeded title ends with a token of its own id; every seeded
    // question asks "What is 2 + 2?".
    let token = |chat: &chat_tests::contract::seed::SeededChat| {
        chat.title.rsplit(' ').next().unwrap().to_owned()
    };
    assert_eq!(
        search(&format!("q={}", token(&first))).await,
        [first.id.to_string()]
    );
    assert_eq!(
        search(&format!("q={}", token(&theirs))).await,
        Vec::<String>::new()
    );
    let mut both = vec![first.id.to_string(), second.id.to_string()];
    both.sort();
    assert_eq!(search("q=contract+chats").await, both, "stems, in titles");
    assert_eq!(
        search("q=%222+%2B+2%22").await,
        both,
        "a phrase, in messages"
    );
    let reply = api
        .get(&format!("/api/history?q={}", "x".repeat(201)))
        .caller(&owner)
        .send()
        .await;
    reply.expect_status(400);
}

#[tokio::test]
async fn history_lists_only_the_callers_chats_and_refuses_bad_queries() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("history");
    let mut mine = Vec::new();
    for visibility in [Visibility::Private, Visibility::Public, Visibility::Private] {
        mine.push(
            seeder
                .chat(user_id(&owner), visibility)
                .await
                .id
                .to_string(),
        );
    }
    let someone_elses = seeder
        .chat(user_id(&new_user("else")), Visibility::Public)
        .await;

    let reply = api.get("/api/history").caller(&owner).send().await;
    reply.expect_status(200);
    let mut listed = ids_of(&reply.json());
    listed.sort();
    mine.sort();
    assert_eq!(listed, mine);

    let reply = api.get("/api/history?limit=2").caller(&owner).send().await;
    reply.expect_status(200);
    assert_eq!(ids_of(&reply.json()).len(), 2);
    assert_eq!(reply.json()["hasMore"], true);

    // The furthest times a cursor may name: every chat lies between them.
    for query in [
        format!("starting_after=253402300799999999.{}", mine[0]),
        format!("ending_before=-62135596800000000.{}", mine[0]),
    ] {
        let reply = api
            .get(&format!("/api/history?{query}"))
            .caller(&owner)
            .send()
            .await;
        reply.expect_status(200);
        let mut listed = ids_of(&reply.json());
        listed.sort();
        assert_eq!(listed, mine, "{query}");
    }

    let bad_queries = [
        "limit=ten".to_owned(),
        "limit=1&limit=2".to_owned(),
        "starting_after=not-a-uuid".to_owned(),
        "ending_before=%FF".to_owned(),
        format!("starting_after={0}&ending_before={0}", mine[0]),
        format!("starting_after={}", someone_elses.id),
        // Cursors a page never gave: times PostgreSQL cannot seek from.
        format!("starting_after={}.{}", i64::MAX, mine[0]),
        format!("ending_before={}.{}", i64::MIN, mine[0]),
        // No text can hold a NUL.
        "q=trip%00".to_owned(),
        "archived=all".to_owned(),
        "folder=not-a-uuid".to_owned(),
    ];
    expect_statuses(bad_queries.iter().map(|query| {
        let request = api.get(&format!("/api/history?{query}"));
        (request.caller(&owner), 400)
    }))
    .await;
    // An email the seed's VARCHAR(64) column cannot hold.
    let long_email = format!("{}@contract.test", "x".repeat(64));
    expect_statuses([
        (
            api.get("/api/history").header(EMAIL_HEADER, &long_email),
            400,
        ),
        (api.get("/api/history"), 401),
    ])
    .await;
    let reply = api.delete("/api/history").caller(&owner).send().await;
    reply.expect_only_allowed("GET");
}

#[tokio::test]
async fn messages_come_oldest_first_to_those_who_may_read_them() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("reader");
    let chat = seeder.chat(user_id(&owner), Visibility::Private).await;
    let path = format!("/api/messages/{}", chat.id);

    let reply = api.get(&path).caller(&owner).send().await;
    reply.expect_status(200);
    let page = reply.json();
    assert_eq!(page["source"], "live");
    assert_eq!(ids_of(&page), message_ids_of(&chat));
    assert_eq!(page["data"][0]["role"], "user");
    assert_eq!(page["data"][0]["traceId"], Value::Null);
    assert_eq!(page["data"][1]["traceId"], "tr-contract");
    let answer = json!([{"type": "text", "text": "4"}]);
    assert_eq!(page["data"][1]["parts"], answer);

    let malformed = MALFORMED_IDS.map(|id| {
        let request = api.get(&format!("/api/messages/{id}"));
        (request.caller(&owner), 400)
    });
    expect_statuses(malformed).await;
    // Any letter case names the same chat.
    let upper = format!("/api/messages/{}", chat.id.to_string().to_uppercase());
    let unknown = format!("/api/messages/{}", Uuid::new_v4());
    expect_statuses([
        (api.get(&upper).caller(&owner), 200),
        (api.get(&path), 401),
        (api.get(&path).caller(&new_user("stranger")), 403),
        (api.get(&unknown).caller(&owner), 404),
    ])
    .await;
    let reply = api.post(&path).caller(&owner).send().await;
    reply.expect_only_allowed("GET");
}

#[tokio::test]
async fn deleting_a_chat_takes_its_messages_and_votes_with_it() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("deleter");
    let chat = seeder.chat(user_id(&owner), Visibility::Public).await;
    let path = format!("/api/chat/{}", chat.id);

    // Refused requests change nothing.
    let reply = api.get(&path).caller(&owner).send().await;
    reply.expect_only_allowed("DELETE");
    let malformed = MALFORMED_IDS.map(|id| {
        let request = api.delete(&format!("/api/chat/{id}"));
        (request.caller(&owner), 400)
    });
    expect_statuses(malformed).await;
    api.delete(&path).send().await.expect_status(401);
    assert!(seeder.chat_state(chat.id).await.is_some());

    let reply = api.delete(&path).caller(&owner).send().await;
    reply.expect_status(200);
    assert_eq!(reply.json(), json!({"success": true}));
    assert_eq!(seeder.chat_state(chat.id).await, None);
    assert_eq!(seeder.orphans_of(chat.id).await, 0);

    api.delete(&path)
        .caller(&owner)
        .send()
        .await
        .expect_status(404);
}

#[tokio::test]
async fn visibility_changes_only_for_a_well_formed_body() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("sharer");
    let chat = seeder.chat(user_id(&owner), Visibility::Private).await;
    let path = format!("/api/chat/{}/visibility", chat.id);
    let before = seeder.chat_state(chat.id).await.unwrap();

    let refused: [&[u8]; 12] = [
        br#"{"visibility":"secret"}"#,
        br#"{"visibility":"PUBLIC"}"#,
        br#"{"visibility":1}"#,
        br#"{"visibility":null}"#,
        br#"{}"#,
        br#"{"visibility":"public","extra":1}"#,
        br#"{"visibility":"public","visibility":"public"}"#,
        br#"["public"]"#,
        br#"{"visibility":"public""#,
        b"",
        b"{\"visibility\":\"publ\xffic\"}",
        b"\xef\xbb\xbf{\"visibility\":\"public\"}",
    ];
    let json_patch = |path: &str| {
        api.patch(path)
            .caller(&owner)
            .header("content-type", "application/json")
    };
    expect_statuses(refused.map(|body| (json_patch(&path).body(body.to_vec()), 400))).await;
    let oversized = format!(r#"{{"visibility":"{}"}}"#, "p".repeat(ONE_MIB));
    json_patch(&path)
        .body(oversized)
        .send()
        .await
        .expect_status(413);

    let public = json!({"visibility": "public"});
    let malformed = MALFORMED_IDS.map(|id| {
        let request = json_patch(&format!("/api/chat/{id}/visibility"));
        (request.json(&public), 400)
    });
    expect_statuses(malformed).await;
    let unknown = format!("/api/chat/{}/visibility", Uuid::new_v4());
    expect_statuses([
        (api.patch(&path).json(&public), 401),
        (
            api.patch(&path).caller(&new_user("stranger")).json(&public),
            403,
        ),
        (json_patch(&unknown).json(&public), 404),
    ])
    .await;
    let reply = api.post(&path).caller(&owner).json(&public).send().await;
    reply.expect_only_allowed("PATCH");
    assert_eq!(seeder.chat_state(chat.id).await.unwrap(), before);

    for visibility in ["public", "private"] {
        let body = json!({"visibility": visibility});
        let reply = json_patch(&path).json(&body).send().await;
        reply.expect_status(200);
        let changed = json!({"success": true, "visibility": visibility});
        assert_eq!(reply.json(), changed);
        let state = seeder.chat_state(chat.id).await.unwrap();
        assert_eq!(state.visibility, visibility);
        assert_eq!((&state.owner, &state.title), (&before.owner, &before.title));
    }
}

#[tokio::test]
async fn a_rename_takes_only_a_well_formed_title() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("renamer");
    let chat = seeder.chat(user_id(&owner), Visibility::Public).await;
    let path = format!("/api/chat/{}/title", chat.id);
    let before = seeder.chat_state(chat.id).await.unwrap();

    let too_long = format!(r#"{{"title":"{}"}}"#, "t".repeat(201));
    let refused: [&[u8]; 13] = [
        br#"{"title":""}"#,
        br#"{"title":"   "}"#,
        br#"{"title":"two\nlines"}"#,
        br#"{"title":"tab\there"}"#,
        br#"{"title":"nul\u0000"}"#,
        too_long.as_bytes(),
        br#"{"title":1}"#,
        br#"{"title":null}"#,
        br#"{}"#,
        br#"{"title":"a","extra":1}"#,
        br#"{"title":"a","title":"b"}"#,
        br#"{"title":"a""#,
        b"{\"title\":\"bad \xff byte\"}",
    ];
    let json_patch = |path: &str| {
        api.patch(path)
            .caller(&owner)
            .header("content-type", "application/json")
    };
    expect_statuses(refused.map(|body| (json_patch(&path).body(body.to_vec()), 400))).await;
    let oversized = format!(r#"{{"title":"{}"}}"#, "t".repeat(ONE_MIB));
    json_patch(&path)
        .body(oversized)
        .send()
        .await
        .expect_status(413);
    let title = json!({"title": "Renamed"});
    let malformed = MALFORMED_IDS.map(|id| {
        let request = json_patch(&format!("/api/chat/{id}/title"));
        (request.json(&title), 400)
    });
    expect_statuses(malformed).await;
    let unknown = format!("/api/chat/{}/title", Uuid::new_v4());
    expect_statuses([
        (api.patch(&path).json(&title), 401),
        (
            api.patch(&path).caller(&new_user("stranger")).json(&title),
            403,
        ),
        (json_patch(&unknown).json(&title), 404),
    ])
    .await;
    let reply = api.post(&path).caller(&owner).json(&title).send().await;
    reply.expect_only_allowed("PATCH");
    assert_eq!(seeder.chat_state(chat.id).await.unwrap(), before);

    // Trimmed; 200 characters of any script, markup kept as text.
    let longest = "\u{e9}".repeat(200);
    for (asked, stored) in [
        ("  Trip <b>planning</b>\u{a0}", "Trip <b>planning</b>"),
        (longest.as_str(), longest.as_str()),
    ] {
        let reply = json_patch(&path)
            .json(&json!({"title": asked}))
            .send()
            .await;
        reply.expect_status(200);
        assert_eq!(reply.json(), json!({"success": true, "title": stored}));
        let state = seeder.chat_state(chat.id).await.unwrap();
        assert_eq!(state.title, stored);
        assert_eq!(
            (&state.owner, &state.visibility, &state.messages),
            (&before.owner, &before.visibility, &before.messages)
        );
        let history = api.get("/api/history").caller(&owner).send().await;
        assert_eq!(history.json()["data"][0]["title"], stored);
    }
}

#[tokio::test]
async fn a_stop_is_a_bodiless_post_that_changes_nothing_stored() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("stopper");
    let chat = seeder.chat(user_id(&owner), Visibility::Private).await;
    let path = format!("/api/chat/{}/stop", chat.id);
    let before = seeder.chat_state(chat.id).await.unwrap();

    let malformed = MALFORMED_IDS.map(|id| {
        let request = api.post(&format!("/api/chat/{id}/stop")).caller(&owner);
        (request, 400)
    });
    expect_statuses(malformed).await;
    expect_statuses([
        (api.post(&path), 401),
        (api.post(&path).caller(&new_user("stranger")), 403),
        (
            api.post(&format!("/api/chat/{}/stop", Uuid::new_v4()))
                .caller(&owner),
            404,
        ),
        // A browser form cannot ask for it: a body must be JSON.
        (
            api.post(&path)
                .caller(&owner)
                .header("content-type", "text/plain")
                .body("stop"),
            415,
        ),
    ])
    .await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let reply = api.request(method, &path).caller(&owner).send().await;
        reply.expect_only_allowed("POST");
    }
    api.post(&path)
        .caller(&owner)
        .body(vec![b' '; 2 * ONE_MIB])
        .send()
        .await
        .expect_status(413);

    // Nothing streams in the chat: the stop is accepted and changes nothing.
    let reply = api.post(&path).caller(&owner).send().await;
    reply.expect_status(202);
    assert_eq!(reply.json(), json!({"success": true}));
    assert_eq!(seeder.chat_state(chat.id).await.unwrap(), before);
}

#[tokio::test]
async fn feedback_rates_the_owners_replies_and_refuses_everything_else_unchanged() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("rater");
    let chat = seeder.chat(user_id(&owner), Visibility::Public).await;
    let [question, reply] = chat.message_ids[..] else {
        panic!("the seeder writes two messages");
    };
    let votes_path = format!("/api/feedback/{}", chat.id);
    let vote_path = format!("/api/feedback/{}/{reply}", chat.id);
    let before = seeder.chat_state(chat.id).await.unwrap();
    let put = || {
        api.put("/api/feedback")
            .caller(&owner)
            .header("content-type", "application/json")
    };
    let rating =
        |message: Uuid| json!({"chatId": chat.id, "messageId": message, "isUpvoted": false});

    let long_comment = format!(
        r#"{{"chatId":"{}","messageId":"{reply}","isUpvoted":true,"comment":"{}"}}"#,
        chat.id,
        "c".repeat(2001)
    );
    let refused: Vec<Vec<u8>> = vec![
        br#"{}"#.to_vec(),
        br#"[]"#.to_vec(),
        b"".to_vec(),
        format!(r#"{{"chatId":"{}","messageId":"{reply}"}}"#, chat.id).into_bytes(),
        format!(
            r#"{{"chatId":"{}","messageId":"{reply}","isUpvoted":"yes"}}"#,
            chat.id
        )
        .into_bytes(),
        format!(
            r#"{{"chatId":"{}","messageId":"{reply}","isUpvoted":true,"stars":5}}"#,
            chat.id
        )
        .into_bytes(),
        format!(
            r#"{{"chatId":"{}","messageId":"{reply}","isUpvoted":true,"comment":7}}"#,
            chat.id
        )
        .into_bytes(),
        format!(r#"{{"chatId":"nope","messageId":"{reply}","isUpvoted":true}}"#).into_bytes(),
        long_comment.into_bytes(),
    ];
    expect_statuses(refused.into_iter().map(|body| (put().body(body), 400))).await;
    let oversized = format!(r#"{{"comment":"{}"}}"#, "c".repeat(ONE_MIB));
    expect_statuses([
        (put().body(oversized), 413),
        (
            api.put("/api/feedback")
                .caller(&owner)
                .header("content-type", "text/plain")
                .body(rating(reply).to_string()),
            415,
        ),
        (api.put("/api/feedback").json(&rating(reply)), 401),
        (
            api.put("/api/feedback")
                .caller(&new_user("passer-by"))
                .json(&rating(reply)),
            403,
        ),
        (put().json(&rating(question)), 400),
        (put().json(&rating(Uuid::new_v4())), 404),
        (
            put().json(&json!({"chatId": Uuid::new_v4(), "messageId": reply, "isUpvoted": true})),
            404,
        ),
        (api.get(&votes_path), 401),
        (api.get(&votes_path).caller(&new_user("passer-by")), 403),
        (
            api.get(&format!("/api/feedback/{}", Uuid::new_v4()))
                .caller(&owner),
            404,
        ),
        (api.delete(&vote_path).caller(&new_user("passer-by")), 403),
        (
            api.delete(&format!("/api/feedback/{}/{question}", chat.id))
                .caller(&owner),
            400,
        ),
        (
            api.delete(&format!("/api/feedback/{}/not-a-uuid", chat.id))
                .caller(&owner),
            400,
        ),
    ])
    .await;
    let malformed =
        MALFORMED_IDS.map(|id| (api.get(&format!("/api/feedback/{id}")).caller(&owner), 400));
    expect_statuses(malformed).await;
    api.post("/api/feedback")
        .caller(&owner)
        .json(&rating(reply))
        .send()
        .await
        .expect_only_allowed("PUT");
    assert_eq!(seeder.chat_state(chat.id).await.unwrap(), before);

    // Rated down with a comment, then up: one vote, the last one.
    let down = json!({"chatId": chat.id, "messageId": reply, "isUpvoted": false, "comment": " Too vague. "});
    let answer = put().json(&down).send().await;
    answer.expect_status(200);
    let stored_down =
        json!({"chatId": chat.id, "messageId": reply, "isUpvoted": false, "comment": "Too vague."});
    assert_eq!(answer.json(), stored_down);
    let listed = api.get(&votes_path).caller(&owner).send().await;
    listed.expect_status(200);
    assert_eq!(listed.json(), json!({"data": [stored_down]}));
    let messages = api
        .get(&format!("/api/messages/{}", chat.id))
        .caller(&owner)
        .send()
        .await;
    assert_eq!(
        messages.json()["data"][1]["vote"],
        json!({"isUpvoted": false, "comment": "Too vague."})
    );
    assert_eq!(messages.json()["data"][0]["vote"], Value::Null);
    let up = json!({"chatId": chat.id, "messageId": reply, "isUpvoted": true});
    let answer = put().json(&up).send().await;
    answer.expect_status(200);
    let listed = api.get(&votes_path).caller(&owner).send().await;
    assert_eq!(
        listed.json(),
        json!({"data": [{"chatId": chat.id, "messageId": reply, "isUpvoted": true, "comment": null}]})
    );

    // Withdrawn, and withdrawing again finds nothing to withdraw.
    for withdrawn in [true, false] {
        let answer = api.delete(&vote_path).caller(&owner).send().await;
        answer.expect_status(200);
        assert_eq!(
            answer.json(),
            json!({"success": true, "withdrawn": withdrawn})
        );
    }
    let listed = api.get(&votes_path).caller(&owner).send().await;
    assert_eq!(listed.json(), json!({"data": []}));
    let after = seeder.chat_state(chat.id).await.unwrap();
    assert_eq!(
        (after.messages, after.votes.as_str()),
        (before.messages, "")
    );
}

#[tokio::test]
async fn admin_routes_answer_only_the_admin_token() {
    let target = Target::shared().await;
    let api = &target.api;
    let token = target.admin_token().to_owned();
    let reply = api.get("/admin/schema").bearer(&token).send().await;
    reply.expect_status(200);
    assert_eq!(reply.json()["pending"], json!([]));
    let reply = api
        .post("/admin/schema/migrate")
        .bearer(&token)
        .send()
        .await;
    reply.expect_status(200);
    assert_eq!(reply.json()["applied"], json!([]));

    // A gateway identity is no admin credential, nor is a token without "Bearer".
    expect_statuses([
        (api.get("/admin/schema"), 401),
        (api.get("/admin/schema").caller(&new_user("admin")), 401),
        (api.get("/admin/schema").bearer("wrong-token"), 401),
        (
            api.post("/admin/schema/migrate")
                .header("authorization", &token),
            401,
        ),
        (api.get("/admin/nothing").bearer(&token), 404),
    ])
    .await;
    let reply = api.post("/admin/schema").bearer(&token).send().await;
    reply.expect_only_allowed("GET");
    let reply = api.get("/admin/schema/migrate").bearer(&token).send().await;
    reply.expect_only_allowed("POST");

    let disabled = Target::with_admin_disabled().await;
    expect_statuses([
        (disabled.api.get("/admin/schema").bearer(&token), 403),
        (disabled.api.post("/admin/schema/migrate").bearer(""), 403),
    ])
    .await;
}

#[tokio::test]
async fn unlisted_paths_are_json_404s() {
    let target = Target::shared().await;
    let user = new_user("lost");
    let chat = Uuid::new_v4();
    let paths = [
        "/nope".to_owned(),
        "/api".to_owned(),
        "/api/history/".to_owned(),
        "/api/chat/".to_owned(),
        "/api/messages/".to_owned(),
        format!("/api/messages/{chat}/extra"),
        format!("/api/chat/{chat}/name"),
    ];
    expect_statuses(
        paths
            .iter()
            .map(|path| (target.api.get(path).caller(&user), 404)),
    )
    .await;
}

#[tokio::test]
async fn chat_refuses_before_streaming_what_it_cannot_take_and_streams_the_rest() {
    let (target, seeder) = target_and_seeder().await;
    let api = &target.api;
    let owner = new_user("chatter");
    let theirs = seeder
        .chat(user_id(&new_user("stranger")), Visibility::Public)
        .await;
    let theirs_before = seeder.chat_state(theirs.id).await;
    let chat = Uuid::new_v4();
    let hello = json!({"role": "user", "content": "Hello"});
    let valid = json!({"id": chat, "messages": [hello]});

    let refused: [&[u8]; 14] = [
        b"",
        b"{",
        b"[]",
        b"{}",
        br#"{"messages":[]}"#,
        br#"{"messages":"Hello"}"#,
        br#"{"id":"not-a-uuid","messages":[{"role":"user","content":"Hello"}]}"#,
        br#"{"messages":[{"role":"robot","content":"Hello"}]}"#,
        br#"{"messages":[{"role":"user","content":1}]}"#,
        br#"{"messages":[{"role":"user","content":"   "}]}"#,
        br#"{"messages":[{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi"}]}"#,
        br#"{"messages":[{"role":"user","content":"Hello","id":"nope"}]}"#,
        br#"{"messages":[{"role":"user","content":"Hello"}],"title":"x"}"#,
        br#"{"messages":[{"role":"user","content":"Hello"}],"messages":[]}"#,
    ];
    let json_post = || {
        api.post("/api/chat")
            .caller(&owner)
            .header("content-type", "application/json")
    };
    expect_statuses(refused.map(|body| (json_post().body(body.to_vec()), 400))).await;
    let long_email = format!("{}@contract.test", "x".repeat(64));
    let into_theirs = json!({"id": theirs.id, "messages": [hello]});
    let taken_id = json!({"id": chat, "messages": [
        {"role": "user", "content": "Hello", "id": theirs.message_ids[0]}
    ]});
    expect_statuses([
        (api.post("/api/chat").json(&valid), 401),
        (
            api.post("/api/chat")
                .header(EMAIL_HEADER, &long_email)
                .json(&valid),
            400,
        ),
        (api.post("/api/chat").caller(&owner).json(&into_theirs), 403),
        (api.post("/api/chat").caller(&owner).json(&taken_id), 409),
        (
            json_post().body(format!(r#"{{"messages":"{}"}}"#, "m".repeat(ONE_MIB))),
            413,
        ),
    ])
    .await;
    let reply = api.get("/api/chat").caller(&owner).send().await;
    reply.expect_only_allowed("POST");
    // Nothing refused left anything behind.
    assert_eq!(seeder.chat_state(chat).await, None);
    assert_eq!(seeder.chat_state(theirs.id).await, theirs_before);

    // A valid message streams the app's model's reply (the demo agent's,
    // unless configured otherwise) and ends with meta and [DONE].
    let reply = api
        .post("/api/chat")
        .caller(&owner)
        .json(&valid)
        .send()
        .await;
    reply.expect_status(200);
    let mut reader = chat_tests::sse::EventReader::new();
    let mut events = reader.push(&reply.body);
    events.extend(reader.finish().expect("the answer ends between events"));
    let [.., meta, done] = events.as_slice() else {
        panic!("no meta and [DONE] in {events:?}");
    };
    assert_eq!(done, "[DONE]");
    let meta: Value = serde_json::from_str(meta).expect("a JSON meta event");
    assert_eq!(meta["type"], "meta", "{meta}");
    let state = seeder.chat_state(chat).await.expect("the chat was created");
    assert_eq!((state.owner.as_str(), state.messages), (user_id(&owner), 2));
}
