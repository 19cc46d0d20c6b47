//! What the contract tests share: fresh identities, and the target with a
//! connection to its database.

use chat_tests::contract::client::{ApiRequest, Caller};
use chat_tests::contract::seed::{SeededChat, Seeder};
use chat_tests::contract::target::Target;
use serde_json::Value;
use uuid::Uuid;

/// A user no other test (or earlier run against the same database) uses.
pub fn new_user(role: &str) -> Caller {
    Caller::User(format!(
        "{role}-{}@contract.test",
        &Uuid::new_v4().simple().to_string()[..12]
    ))
}

/// The user id a [`Caller::User`] stands for.
pub fn user_id(caller: &Caller) -> &str {
    match caller {
        Caller::User(email) => email,
        Caller::Anonymous => panic!("an anonymous caller has no user id"),
    }
}

/// The app under test and a connection to its database.
pub async fn target_and_seeder() -> (Target, Seeder) {
    let target = Target::shared().await;
    let seeder = Seeder::connect(&target.db_url).await;
    (target, seeder)
}

/// The `id`s of a page's `data`, in order.
pub fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A seeded chat's message ids, oldest first, as the API writes them.
pub fn message_ids_of(chat: &SeededChat) -> Vec<String> {
    chat.message_ids.iter().map(Uuid::to_string).collect()
}

/// Sends the requests all at once (none may depend on another) and checks
/// each got its status. At once, because a host without its database may
/// spend a retry budget on every request.
pub async fn expect_statuses(cases: impl IntoIterator<Item = (ApiRequest, u16)>) {
    let answers = cases.into_iter().map(|(request, status)| async move {
        request.send().await.expect_status(status);
    });
    futures_util::future::join_all(answers).await;
}
