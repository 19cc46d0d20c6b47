//! Answers must reach the client: also when the server answers before it has
//! read the body it was sent, and on connections kept alive for more requests
//! (as browsers and HTTP client libraries keep them).

use crate::support::new_user;
use chat_tests::contract::target::Target;
use futures_util::StreamExt;
use uuid::Uuid;

const KIB: usize = 1024;

/// A path no route claims is answered 404, and a method a route does not
/// take 405, without the body being of any use; the requests that follow on
/// the same kept-alive connection must still be answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_to_no_route_costs_no_later_request_its_answer() {
    let target = Target::shared().await;
    let user = new_user("neighbour");
    let unanswered: Vec<String> = futures_util::stream::iter(0..600)
        .map(|index| {
            let request = match index % 10 {
                0 => target.api.post("/nothing-here").body(vec![b'{'; 200 * KIB]),
                5 => target
                    .api
                    .post("/api/history")
                    .caller(&user)
                    .body(vec![b'{'; 200 * KIB]),
                _ => target.api.get("/api/session").caller(&user),
            };
            let api = target.api.clone();
            async move { api.try_execute(request.build()).await.err() }
        })
        .buffer_unordered(12)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        unanswered.is_empty(),
        "{} of 600 requests got no valid answer; the first: {}",
        unanswered.len(),
        unanswered[0].chars().take(400).collect::<String>()
    );
}

/// A body over 1 MiB gets a clear 4xx — also when it is far over,
/// and the server answers before the client has finished sending it.
#[tokio::test]
async fn a_body_far_over_the_limit_gets_its_413() {
    let target = Target::shared().await;
    let user = new_user("uploader");
    let path = format!("/api/chat/{}/visibility", Uuid::new_v4());
    let mut unanswered = Vec::new();
    for _ in 0..20 {
        let request = target
            .api
            .patch(&path)
            .caller(&user)
            .body(vec![b'{'; 4096 * KIB]);
        match target.api.try_execute(request.build()).await {
            Ok(reply) => {
                reply.expect_status(413);
            }
            Err(failure) => unanswered.push(failure),
        }
    }
    assert!(
        unanswered.is_empty(),
        "{} of 20 PATCHes with a 4 MiB body got no answer; the first: {}",
        unanswered.len(),
        unanswered[0].chars().take(400).collect::<String>()
    );
}
