//! The web UI (components/ui) in a real headless Chromium, against chat-host
//! serving spin.toml with a real PostgreSQL and a scripted model endpoint:
//! what a person does with the page, checked on the screen and in the
//! database. Plus the component's HTTP answers, without a browser.

use chat_tests::browser::{Browser, PATIENCE, keys};
use chat_tests::database::TestDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::seed::{Role, Seed, Visibility, When};
use chat_tests::upstream::{Script, ScriptedUpstream, Step};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::{Duration, Instant};
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const OTHER: &str = "other@example.com";
const UPSTREAM_DONE: &str = "data: [DONE]\n\n";

/// The page's parts, as the tests find them.
const SIDEBAR_READY: &str = r#"#history[aria-busy="false"]"#;
const REPLY: &str = ".message.assistant .text";
const QUESTION: &str = ".message.user .text";

fn chunk(text: &str) -> Step {
    let chunk = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]});
    Step::Send(format!("data: {chunk}\n\n"))
}

fn title_answer(title: &str) -> Script {
    Script::json_after(
        Vec::new(),
        &json!({"choices": [{"message": {"role": "assistant", "content": title}}]}),
    )
}

/// The chat the page's address names (`/chat/<id>`).
async fn chat_in_address(browser: &Browser) -> Uuid {
    let path = browser.path().await;
    path.strip_prefix("/chat/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the address names the chat: {path}"))
}

fn chat_row(chat_id: impl std::fmt::Display) -> String {
    format!(r#".chat[data-chat-id="{chat_id}"]"#)
}

/// A database, the scripted endpoint and a host wired to both, whose callers
/// without gateway headers (the browser) are `identity`.
struct Rig {
    db: TestDatabase,
    upstream: ScriptedUpstream,
    host: TestHost,
}

impl Rig {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let upstream = ScriptedUpstream::start().await;
        let host = TestHost::launch(Self::config(&db.url, &upstream, OWNER)).await;
        Self { db, upstream, host }
    }

    fn config(db_url: &str, upstream: &ScriptedUpstream, identity: &str) -> HostConfig {
        HostConfig::new(db_url)
            .variable("dev_user_email", identity)
            .variable("serving_endpoint_url", &upstream.url)
            .variable("serving_endpoint_origin", &upstream.origin)
    }

    /// Another host on the same database and endpoint, whose browser callers
    /// are `identity`.
    async fn host_for(&self, identity: &str) -> TestHost {
        TestHost::launch(Self::config(&self.db.url, &self.upstream, identity)).await
    }

    /// A chat of `owner` created `hours_ago`, with a question and an answer.
    async fn seed_chat(&self, owner: &str, title: &str, hours_ago: i32) -> Uuid {
        self.seed_traced_chat(owner, title, hours_ago, None).await
    }

    /// The same, its answer traced as `trace_id` when given. The times are
    /// on the UTC clock, which the page reads them on.
    async fn seed_traced_chat(
        &self,
        owner: &str,
        title: &str,
        hours_ago: i32,
        trace_id: Option<&str>,
    ) -> Uuid {
        let seed = Seed::connect(&self.db).await;
        let now = When::SecondsFromNowUtc(0.0);
        let chat = seed
            .chat(owner, Visibility::Private)
            .titled(title)
            .at(When::SecondsFromNowUtc(-3600.0 * f64::from(hours_ago)))
            .await;
        seed.message(chat, Role::User, &format!("Question of {title}"))
            .at(now)
            .await;
        seed.message(chat, Role::Assistant, &format!("Answer of {title}"))
            .traced(trace_id)
            .at(now)
            .await;
        chat
    }

    /// The chat's stored replies as `(status, text)`, oldest first.
    async fn replies(&self, chat_id: Uuid) -> Vec<(String, String)> {
        self.db
            .stored_messages(chat_id)
            .await
            .into_iter()
            .filter(|message| message.role == "assistant")
            .map(|message| (message.status, message.text))
            .collect()
    }

    async fn title(&self, chat_id: Uuid) -> String {
        self.db
            .column::<String>(
                r#"SELECT title FROM chat."Chat" WHERE id = $1"#,
                &[&chat_id],
            )
            .await
            .remove(0)
    }

    async fn chat_count(&self, chat_id: Uuid) -> i64 {
        self.db
            .column::<i64>(
                r#"SELECT count(*) FROM chat."Chat" WHERE id = $1"#,
                &[&chat_id],
            )
            .await[0]
    }

    async fn visibility(&self, chat_id: Uuid) -> String {
        self.db
            .column::<String>(
                r#"SELECT visibility FROM chat."Chat" WHERE id = $1"#,
                &[&chat_id],
            )
            .await
            .pop()
            .expect("the chat exists")
    }
}

/// Polls the database until `check` holds.
async fn wait_for_row<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JavaScript expression: whether the only `css` element's text is `text`.
fn text_is(css: &str, text: &str) -> String {
    format!(
        "(() => {{ const found = [...document.querySelectorAll({css})].map((e) => e.textContent); \
         return found.length === 1 && found[0] === {text}; }})()",
        css = json!(css),
        text = json!(text),
    )
}

/// A script (function body) answering whether the only `css` element's
/// text is `text`.
fn shows_text(css: &str, text: &str) -> String {
    format!("return {};", text_is(css, text))
}

/// Waits until the reply on the page reads `text` and has ended.
async fn wait_for_whole_reply(browser: &Browser, text: &str) {
    browser
        .wait_for("the whole reply", &shows_text(REPLY, text))
        .await;
    browser
        .wait_for(
            "the reply to end",
            "return document.querySelector('.message.pending') === null;",
        )
        .await;
}

#[tokio::test]
async fn a_reply_streams_in_and_the_chat_is_kept_in_the_sidebar() {
    let rig = Rig::start().await;
    rig.upstream
        .expect_title(title_answer("Greetings from the browser"));
    // Each later piece waits until the test saw the earlier one on screen,
    // which proves the page renders the reply as it arrives.
    rig.upstream.expect_reply(Script::stream(vec![
        chunk("Hello"),
        Step::AwaitAck(1),
        chunk(", browser"),
        Step::AwaitAck(2),
        chunk("!"),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for("the empty sidebar", &format!(
        "return document.querySelector({}) !== null && document.body.innerText.includes('No conversations yet');",
        json!(SIDEBAR_READY)
    )).await;

    // Shift+Enter is a new line, Enter sends.
    let typed = format!(
        "Hi there{shift}{enter}{release}second line{enter}",
        shift = keys::SHIFT,
        enter = keys::ENTER,
        release = keys::RELEASE
    );
    browser.type_into("#input", &typed).await;
    browser
        .wait_for(
            "the first piece of the reply",
            &format!(
                "return document.querySelector('.message.assistant.pending') !== null && {};",
                text_is(REPLY, "Hello")
            ),
        )
        .await;
    assert_eq!(browser.texts(QUESTION).await, ["Hi there\nsecond line"]);
    assert_eq!(
        browser
            .eval("return document.querySelector('#input').value;")
            .await,
        ""
    );
    rig.upstream.acknowledge(1);
    browser
        .wait_for("the second piece", &shows_text(REPLY, "Hello, browser"))
        .await;
    rig.upstream.acknowledge(2);
    wait_for_whole_reply(&browser, "Hello, browser!").await;

    // The model got the text as typed; the address names the new chat.
    let asked = rig
        .upstream
        .received()
        .into_iter()
        .find(|r| r.is_streaming())
        .expect("a reply request");
    assert_eq!(
        asked.body["messages"].as_array().unwrap().last().unwrap()["content"],
        "Hi there\nsecond line"
    );
    let chat_id = chat_in_address(&browser).await;

    // After its first exchange the chat is in the sidebar, highlighted.
    let row = chat_row(chat_id);
    browser.wait_for_visible(&row).await;
    assert_eq!(
        browser
            .eval(&format!(
                "return document.querySelector({}).getAttribute('aria-current');",
                json!(format!("{row} a"))
            ))
            .await,
        "page"
    );
    wait_for_row("the generated title to be stored", || async {
        rig.db
            .column::<String>(
                r#"SELECT title FROM chat."Chat" WHERE id = $1"#,
                &[&chat_id],
            )
            .await
            == ["Greetings from the browser"]
    })
    .await;
    let stored = rig
        .db
        .column::<String>(
            r#"SELECT role FROM chat."Message" WHERE "chatId" = $1 ORDER BY "createdAt""#,
            &[&chat_id],
        )
        .await;
    assert_eq!(stored, ["user", "assistant"]);

    // The deep link survives a reload: the conversation and its title.
    browser.reload().await;
    browser
        .wait_for(
            "the title in the sidebar",
            &shows_text(&format!("{row} .chat-link"), "Greetings from the browser"),
        )
        .await;
    browser
        .wait_for(
            "the reply after the reload",
            &shows_text(REPLY, "Hello, browser!"),
        )
        .await;
    assert_eq!(browser.texts(QUESTION).await, ["Hi there\nsecond line"]);
    assert_eq!(
        browser.texts("#chat-title").await,
        ["Greetings from the browser"]
    );
    let screenshot = browser.screenshot("ui-main").await;
    println!("screenshot of the main view: {}", screenshot.display());

    // A new chat empties the page; opening the chat from the sidebar loads it again.
    browser.click("#new-chat").await;
    browser
        .wait_for(
            "an empty chat",
            "return document.querySelectorAll('.message').length === 0;",
        )
        .await;
    assert_eq!(browser.path().await, "/");
    browser.click(&format!("{row} .chat-link")).await;
    browser
        .wait_for("the reopened reply", &shows_text(REPLY, "Hello, browser!"))
        .await;
    assert_eq!(browser.texts(QUESTION).await, ["Hi there\nsecond line"]);
    assert_eq!(browser.path().await, format!("/chat/{chat_id}"));
    // Back goes to the new chat again.
    browser.back().await;
    browser
        .wait_for(
            "the empty chat again",
            "return document.querySelectorAll('.message').length === 0;",
        )
        .await;

    // Everything the page loaded came from the app itself.
    let origin = rig.host.url("");
    let loaded = browser
        .eval("return performance.getEntriesByType('resource').map((e) => e.name);")
        .await;
    for url in loaded.as_array().unwrap() {
        assert!(
            url.as_str().unwrap().starts_with(&origin),
            "the page requested {url}"
        );
    }
    browser.quit().await;
}

#[tokio::test]
async fn stop_ends_a_streaming_reply_and_keeps_what_came() {
    let rig = Rig::start().await;
    rig.upstream.expect_title(title_answer("Endless"));
    rig.upstream
        .expect_reply(Script::stream(vec![chunk("On and on"), Step::Stall]));
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;
    browser
        .type_into("#input", &format!("Talk forever{}", keys::ENTER))
        .await;
    browser
        .wait_for("the reply streaming", &shows_text(REPLY, "On and on"))
        .await;
    assert!(
        !browser.is_visible("#send").await,
        "Stop takes Send's place"
    );

    browser.click("#stop").await;
    browser
        .wait_for(
            "the reply marked stopped",
            "return document.querySelector('.message.assistant:not(.pending) .message-stopped') !== null;",
        )
        .await;
    browser.wait_for_visible("#send").await;
    assert!(!browser.is_visible("#stop").await);
    assert_eq!(browser.texts(REPLY).await, ["On and on"]);
    let chat_id = chat_in_address(&browser).await;
    let replies = rig.replies(chat_id).await;
    assert_eq!(replies, [("stopped".to_owned(), "On and on".to_owned())]);
    chat_tests::eventually("the model's request closed", PATIENCE, async || {
        (rig.upstream.hung_up() == 1).then_some(())
    })
    .await;

    // A reload shows it stopped, as stored.
    browser.reload().await;
    browser
        .wait_for(
            "the stored reply, marked stopped",
            &format!(
                "return {} && document.querySelector('.message-stopped') !== null;",
                text_is(REPLY, "On and on")
            ),
        )
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn a_temporary_chat_is_kept_nowhere_and_leaving_it_discards_it() {
    let rig = Rig::start().await;
    for text in ["Lisbon.", "Then Porto."] {
        rig.upstream.expect_reply(Script::stream(vec![
            chunk(text),
            Step::Send(UPSTREAM_DONE.to_owned()),
        ]));
    }
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;
    // Reading the history records the caller (as the seed does); the
    // temporary chat adds nothing to that.
    let rows = rig.db.conversation_rows().await;
    let switch =
        |property: &str| format!("return document.querySelector('#temporary').{property};");
    let pressed = switch("getAttribute('aria-pressed')");
    assert_eq!(browser.eval(&pressed).await, "false");
    assert!(!browser.is_visible("#temporary-note").await);

    // Switched on, the page says plainly what that means.
    browser.click("#temporary").await;
    assert_eq!(browser.eval(&pressed).await, "true");
    browser.wait_for_visible("#temporary-note").await;
    let note = browser.texts("#temporary-note").await.concat();
    for words in ["Not saved in your history", "may still keep its own logs"] {
        assert!(note.contains(words), "{note}");
    }
    browser
        .type_into("#input", &format!("Plan a trip{}", keys::ENTER))
        .await;
    wait_for_whole_reply(&browser, "Lisbon.").await;
    browser
        .type_into("#input", &format!("And then?{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the second reply",
            &format!(
                "return document.querySelectorAll({}).length === 2 \
                 && document.querySelector('.message.pending') === null;",
                json!(REPLY)
            ),
        )
        .await;
    assert_eq!(browser.texts(REPLY).await, ["Lisbon.", "Then Porto."]);

    // The model heard the first exchange from the page, and no title was asked for.
    let asked = rig.upstream.received();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        asked[1].body["messages"],
        json!([
            {"role": "user", "content": "Plan a trip"},
            {"role": "assistant", "content": "Lisbon."},
            {"role": "user", "content": "And then?"}
        ])
    );
    // Nothing to rate, regenerate or share; the address and the sidebar
    // never learn of it; the switch stays on, and cannot be turned off.
    assert_eq!(browser.path().await, "/");
    assert!(
        browser
            .texts(".feedback, .regenerate, .chat")
            .await
            .is_empty()
    );
    assert!(!browser.is_visible("#visibility").await);
    assert_eq!(browser.eval(&switch("disabled")).await, true);
    assert_eq!(rig.db.conversation_rows().await, rows);

    // Leaving it discards it; new chats stay temporary until switched off.
    browser.click("#new-chat").await;
    browser
        .wait_for(
            "an empty chat",
            "return document.querySelectorAll('.message').length === 0;",
        )
        .await;
    assert_eq!(browser.eval(&pressed).await, "true");
    assert_eq!(browser.eval(&switch("disabled")).await, false);
    // A reload starts afresh, with an empty history.
    browser.reload().await;
    browser
        .wait_for(
            "the empty history",
            &format!(
                "return document.querySelector({}) !== null && document.body.innerText.includes('No conversations yet');",
                json!(SIDEBAR_READY)
            ),
        )
        .await;
    assert_eq!(browser.eval(&pressed).await, "false");
    browser.quit().await;
}

/// Hostile and ordinary Markdown, cut mid-token between chunks.
const MARKDOWN_REPLY: [&str; 3] = [
    "# Plan\n\nHere is **bo",
    "ld** text and `co",
    concat!(
        "de`.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n",
        "```rust\nfn main() {}\n```\n\n",
        "[site](https://example.com/page) and [bad](javascript:window.pwned=1)\n\n",
        "<script>window.pwned=2</script>\n\n",
        "<img src=x onerror=\"window.pwned=3\">\n\n",
        "Text with <b onclick=\"window.pwned=4\">raw</b> html."
    ),
];

#[tokio::test]
async fn replies_render_as_safe_markdown_while_they_stream() {
    let rig = Rig::start().await;
    rig.upstream.expect_title(title_answer("Markdown"));
    let huge_table: String = std::iter::once("| n | square |\n|---|---|\n".to_owned())
        .chain((0..2000).map(|n| format!("| {n} | {} |\n", n * n)))
        .collect();
    rig.upstream.expect_reply(Script::stream(vec![
        chunk(MARKDOWN_REPLY[0]),
        Step::AwaitAck(1),
        chunk(MARKDOWN_REPLY[1]),
        chunk(MARKDOWN_REPLY[2]),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    rig.upstream.expect_reply(Script::stream(vec![
        chunk(&huge_table),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;
    browser
        .type_into("#input", &format!("Show me markdown{}", keys::ENTER))
        .await;

    // Half a bold mark is text until its other half comes.
    browser
        .wait_for(
            "the first piece",
            "return document.querySelector('.message.assistant .text')?.textContent === 'PlanHere is **bo';",
        )
        .await;
    rig.upstream.acknowledge(1);
    browser
        .wait_for(
            "the whole reply",
            "return document.querySelector('.message.assistant:not(.pending) .copy-message') !== null;",
        )
        .await;
    let reply = ".message.assistant .markdown";
    let facts = browser
        .eval(&format!(
            r#"const reply = document.querySelector({reply});
            const link = reply.querySelector('a[href="https://example.com/page"]');
            return {{
              heading: reply.querySelector('h1')?.textContent,
              bold: reply.querySelector('strong')?.textContent,
              code: reply.querySelector('p code')?.textContent,
              items: reply.querySelectorAll('ul li').length,
              cells: [...reply.querySelectorAll('.table-scroll table th, .table-scroll table td')].map((c) => c.textContent),
              block: reply.querySelector('.code-block pre code')?.textContent,
              codeCopy: reply.querySelectorAll('.code-block .copy-code').length,
              target: link?.getAttribute('target'),
              rel: link?.getAttribute('rel'),
              hrefs: [...reply.querySelectorAll('a')].map((a) => a.getAttribute('href')),
              dangerous: reply.querySelectorAll('script, img, iframe, style, [onclick], [onerror], b').length,
              text: reply.textContent,
              pwned: window.pwned === undefined ? null : window.pwned,
            }};"#,
            reply = json!(reply)
        ))
        .await;
    assert_eq!(facts["heading"], "Plan", "{facts}");
    assert_eq!(facts["bold"], "bold", "{facts}");
    assert_eq!(facts["code"], "code", "{facts}");
    assert_eq!(facts["items"], 2, "{facts}");
    assert_eq!(facts["cells"], json!(["a", "b", "1", "2"]), "{facts}");
    assert_eq!(facts["block"], "fn main() {}\n", "{facts}");
    assert_eq!(facts["codeCopy"], 1, "{facts}");
    assert_eq!(facts["target"], "_blank", "{facts}");
    assert_eq!(facts["rel"], "noopener noreferrer", "{facts}");
    // The javascript: link keeps its text and loses its address.
    assert_eq!(
        facts["hrefs"],
        json!(["https://example.com/page", null]),
        "{facts}"
    );
    assert_eq!(facts["dangerous"], 0, "{facts}");
    assert_eq!(facts["pwned"], Value::Null, "{facts}");
    let text = facts["text"].as_str().unwrap();
    for shown in [
        "<script>window.pwned=2</script>",
        "<img src=x onerror=\"window.pwned=3\">",
        "<b onclick=\"window.pwned=4\">",
    ] {
        assert!(
            text.contains(shown),
            "raw HTML is shown as text: {shown} in {text}"
        );
    }

    // A huge table scrolls inside the message instead of widening the page.
    browser
        .type_into("#input", &format!("A big table{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the table",
            "const tables = document.querySelectorAll('.message.assistant .table-scroll table'); \
             return tables.length === 2 && tables[1].querySelectorAll('tbody tr').length === 2000;",
        )
        .await;
    let overflow = browser
        .eval("const list = document.querySelector('#messages'); return list.scrollWidth <= list.clientWidth;")
        .await;
    assert_eq!(overflow, true, "the page does not scroll sideways");
    browser.quit().await;
}

/// A page whose new chat (titled `title`) has a reply streaming: "Once upon
/// a time" is on the page and stored as the reply's first checkpoint (what a
/// page loading the chat sees); the rest, ", the end.", waits for the test's
/// first acknowledgement.
async fn a_story_half_told(title: &str) -> (Rig, Browser, Uuid) {
    let rig = Rig::start().await;
    rig.upstream.expect_title(title_answer(title));
    rig.upstream.expect_reply(Script::stream(vec![
        chunk("Once upon a time"),
        Step::AwaitAck(1),
        chunk(", the end."),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;
    browser
        .type_into("#input", &format!("Tell me a story{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the reply streaming",
            &shows_text(REPLY, "Once upon a time"),
        )
        .await;
    let chat_id = chat_in_address(&browser).await;
    chat_tests::eventually("the first checkpoint", PATIENCE, async || {
        let replies = rig.replies(chat_id).await;
        (replies.len() == 1 && replies[0].0 == "streaming").then_some(())
    })
    .await;
    (rig, browser, chat_id)
}

#[tokio::test]
async fn a_reload_mid_reply_shows_what_came_and_follows_it_to_the_end() {
    let (rig, browser, chat_id) = a_story_half_told("Long story").await;

    browser.reload().await;
    browser
        .wait_for(
            "the reply so far, still coming",
            &format!(
                "return document.querySelector('.message.assistant.pending') !== null && {};",
                text_is(REPLY, "Once upon a time")
            ),
        )
        .await;
    rig.upstream.acknowledge(1);
    wait_for_whole_reply(&browser, "Once upon a time, the end.").await;
    assert_eq!(
        rig.replies(chat_id).await,
        [(
            "complete".to_owned(),
            "Once upon a time, the end.".to_owned()
        )]
    );
    browser.quit().await;
}

/// Makes the page's request to follow a reply wait until
/// `window.releaseFollow()` is called.
const HOLD_FOLLOW: &str = r#"
const send = window.fetch;
window.fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  if (!url.endsWith("/stream")) return send(input, init);
  return new Promise((release) => { window.releaseFollow = release; })
    .then(() => send(input, init));
};
return null;"#;

#[tokio::test]
async fn a_reply_that_ends_before_the_page_follows_it_is_shown_whole() {
    let (rig, browser, chat_id) = a_story_half_told("Short story").await;
    // Away and back: the page loads the reply as streaming and asks to
    // follow it, and the reply ends before that request arrives.
    browser.click("#new-chat").await;
    browser
        .wait_for(
            "an empty chat",
            "return document.querySelectorAll('.message').length === 0;",
        )
        .await;
    browser.eval(HOLD_FOLLOW).await;
    browser
        .click(&format!("{} .chat-link", chat_row(chat_id)))
        .await;
    browser
        .wait_for(
            "the page asking to follow the reply",
            "return typeof window.releaseFollow === 'function';",
        )
        .await;
    rig.upstream.acknowledge(1);
    chat_tests::eventually("the reply stored whole", PATIENCE, async || {
        let replies = rig.replies(chat_id).await;
        (replies.len() == 1 && replies[0].0 == "complete").then_some(())
    })
    .await;
    browser.eval("window.releaseFollow(); return null;").await;
    wait_for_whole_reply(&browser, "Once upon a time, the end.").await;
    browser.quit().await;
}

#[tokio::test]
async fn the_last_reply_can_be_regenerated_in_place() {
    let rig = Rig::start().await;
    let chat_id = rig.seed_chat(OWNER, "Jokes", 1).await;
    rig.upstream.expect_reply(Script::stream(vec![
        chunk("A better answer"),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    let browser = Browser::start().await;
    browser
        .goto(&rig.host.url(&format!("/chat/{chat_id}")))
        .await;
    browser
        .wait_for("the stored reply", &shows_text(REPLY, "Answer of Jokes"))
        .await;
    browser.click(".message.assistant .regenerate").await;
    wait_for_whole_reply(&browser, "A better answer").await;
    assert_eq!(
        rig.replies(chat_id).await,
        [("complete".to_owned(), "A better answer".to_owned())]
    );
    let asked = &rig.upstream.received()[0].body["messages"];
    assert_eq!(
        asked,
        &json!([{"role": "user", "content": "Question of Jokes"}])
    );
    // Only the last reply offers it.
    assert_eq!(browser.texts(".regenerate").await.len(), 1);
    browser.quit().await;
}

#[tokio::test]
async fn failures_are_shown_inline_and_keep_what_was_typed() {
    let rig = Rig::start().await;
    rig.upstream.expect_title(title_answer("Unlucky"));
    rig.upstream
        .expect_reply(Script::failing(500, r#"{"error":"the model is down"}"#));
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;

    // The model fails once the stream started: the question stays, the reply says so.
    browser
        .type_into("#input", &format!("Will this work?{}", keys::ENTER))
        .await;
    browser
        .wait_for_visible(".message.assistant .message-error")
        .await;
    assert_eq!(browser.texts(QUESTION).await, ["Will this work?"]);
    let error = browser.texts(".message-error").await.concat();
    assert!(error.starts_with("The reply failed:"), "{error}");
    assert!(
        !browser
            .eval("return document.querySelector('#send').disabled;")
            .await
            .as_bool()
            .unwrap()
    );

    // Refused before streaming (over 1 MiB): the text goes back to the composer.
    let huge = "x".repeat(1024 * 1024 + 1);
    browser
        .eval(&format!(
            "document.querySelector('#input').value = {}; return true;",
            json!(huge)
        ))
        .await;
    browser.type_into("#input", &keys::ENTER.to_string()).await;
    browser.wait_for_visible("#notice").await;
    let notice = browser.texts("#notice").await.concat();
    assert!(notice.starts_with("Your message was not sent:"), "{notice}");
    assert_eq!(
        browser
            .eval("return document.querySelector('#input').value.length;")
            .await,
        huge.len()
    );
    // Only the first question is on the page.
    assert_eq!(browser.texts(QUESTION).await, ["Will this work?"]);
    browser.quit().await;
}

#[tokio::test]
async fn load_more_pages_through_older_chats_grouped_by_age() {
    let rig = Rig::start().await;
    // 25 chats, 11 hours apart: from now back to 11 days ago.
    let mut newest_first = Vec::new();
    for index in 0..25 {
        newest_first.push(
            rig.seed_chat(OWNER, &format!("Chat number {index}"), index * 11)
                .await,
        );
    }
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;

    let shown =
        |count: usize| format!("return document.querySelectorAll('.chat').length === {count};");
    browser.wait_for("the first page", &shown(20)).await;
    let first_page = browser.texts(".chat-link").await;
    let expected: Vec<String> = (0..25)
        .map(|index| format!("Chat number {index}"))
        .collect();
    assert_eq!(first_page, expected[..20]);
    let groups = browser.texts(".group h2").await;
    assert_eq!(groups.first().map(String::as_str), Some("Today"));
    assert!(groups.len() >= 3, "{groups:?}");

    browser.click(".load-more").await;
    browser.wait_for("the second page", &shown(25)).await;
    assert_eq!(browser.texts(".chat-link").await, expected);
    assert_eq!(
        browser.texts(".group h2").await.last().map(String::as_str),
        Some("Older")
    );
    assert!(!browser.is_visible(".load-more").await, "no more pages");
    let ids: Vec<String> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('.chat')].map((e) => e.dataset.chatId);")
            .await,
    )
    .unwrap();
    let seeded: Vec<String> = newest_first.iter().map(Uuid::to_string).collect();
    assert_eq!(ids, seeded);
    browser.quit().await;
}

#[tokio::test]
async fn a_chat_is_renamed_in_place_and_escape_keeps_its_title() {
    let rig = Rig::start().await;
    let chat_id = rig.seed_chat(OWNER, "Old name", 1).await;
    let browser = Browser::start().await;
    browser
        .goto(&rig.host.url(&format!("/chat/{chat_id}")))
        .await;
    browser
        .wait_for("the chat", &shows_text(REPLY, "Answer of Old name"))
        .await;
    let row = chat_row(chat_id);
    let rename = format!("{row} .rename");
    let input = format!("{row} .rename-input");
    let link_shows = |title: &str| {
        format!(
            "return document.querySelector({})?.textContent === {};",
            json!(format!("{row} .chat-link")),
            json!(title)
        )
    };

    // Escape leaves the title as it was.
    browser.click(&rename).await;
    browser
        .type_into(&input, &format!("Discarded{}", keys::ESCAPE))
        .await;
    browser
        .wait_for("the old title back", &link_shows("Old name"))
        .await;
    assert_eq!(rig.title(chat_id).await, "Old name");

    // The field starts selected, so typing replaces the title; Enter saves it.
    browser.click(&rename).await;
    browser
        .type_into(&input, &format!("  Trip to Lisbon {}", keys::ENTER))
        .await;
    browser
        .wait_for("the new title", &link_shows("Trip to Lisbon"))
        .await;
    assert_eq!(rig.title(chat_id).await, "Trip to Lisbon");
    browser
        .wait_for(
            "the header to follow",
            "return document.querySelector('#chat-title').textContent === 'Trip to Lisbon';",
        )
        .await;
    // And it stays after a reload.
    browser.reload().await;
    browser
        .wait_for("the title after a reload", &link_shows("Trip to Lisbon"))
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn the_sidebar_search_finds_chats_by_title_and_message_text() {
    let rig = Rig::start().await;
    let trip = rig.seed_chat(OWNER, "Trip to Lisbon", 3).await;
    let groceries = rig.seed_chat(OWNER, "Groceries", 2).await;
    let work = rig.seed_chat(OWNER, "Work notes", 1).await;
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(&chat_row(work)).await;
    let listed = |ids: &[Uuid]| {
        format!(
            "return JSON.stringify([...document.querySelectorAll('.chat')].map((e) => e.dataset.chatId)) === {};",
            json!(json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()).to_string())
        )
    };

    // By title, by a word of a message ("Answer of Groceries"), stemmed.
    browser.type_into("#search", "lisbon").await;
    browser.wait_for("only the trip", &listed(&[trip])).await;
    browser
        .eval("document.querySelector('#search').value = '';")
        .await;
    browser.type_into("#search", "answers").await;
    browser
        .wait_for(
            "every chat, newest first",
            &listed(&[work, groceries, trip]),
        )
        .await;
    browser
        .eval("document.querySelector('#search').value = '';")
        .await;
    browser.type_into("#search", "submarine").await;
    browser
        .wait_for(
            "the empty result",
            "return document.querySelector('#history').textContent.includes('No chats match “submarine”');",
        )
        .await;
    // Cleared, the whole list is back.
    browser
        .eval("document.querySelector('#search').value = '';")
        .await;
    browser.type_into("#search", " ").await;
    browser
        .wait_for("every chat again", &listed(&[work, groceries, trip]))
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn deleting_asks_first_then_removes_the_chat() {
    let rig = Rig::start().await;
    let kept = rig.seed_chat(OWNER, "Keep me", 2).await;
    let doomed = rig.seed_chat(OWNER, "Delete me", 1).await;
    let browser = Browser::start().await;
    browser
        .goto(&rig.host.url(&format!("/chat/{doomed}")))
        .await;
    browser
        .wait_for("the chat", &shows_text(REPLY, "Answer of Delete me"))
        .await;

    let delete = format!("{} .delete", chat_row(doomed));
    browser.click(&delete).await;
    browser.wait_for_visible("#confirm-delete").await;
    assert!(
        browser
            .texts("#confirm-delete-text")
            .await
            .concat()
            .contains("Delete me")
    );
    browser
        .click(r#"#confirm-delete button[value="cancel"]"#)
        .await;
    browser
        .wait_for(
            "the dialog to close",
            "return !document.querySelector('#confirm-delete').open;",
        )
        .await;
    assert!(browser.is_visible(&chat_row(doomed)).await);
    assert_eq!(rig.chat_count(doomed).await, 1);

    browser.click(&delete).await;
    browser
        .click(r#"#confirm-delete button[value="delete"]"#)
        .await;
    browser
        .wait_for(
            "the row to go",
            &format!(
                "return document.querySelector({}) === null;",
                json!(chat_row(doomed))
            ),
        )
        .await;
    assert_eq!(rig.chat_count(doomed).await, 0);
    let orphans = rig
        .db
        .column::<i64>(
            r#"SELECT count(*) FROM chat."Message" WHERE "chatId" = $1"#,
            &[&doomed],
        )
        .await;
    assert_eq!(orphans, [0]);
    assert_eq!(rig.chat_count(kept).await, 1);
    assert!(browser.is_visible(&chat_row(kept)).await);
    // The open chat was the deleted one: the page starts a new chat.
    browser
        .wait_for("a new chat", "return location.pathname === '/';")
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn the_owner_shares_a_chat_and_another_user_reads_it_without_replying() {
    let rig = Rig::start().await;
    let chat_id = rig.seed_chat(OWNER, "Shared wisdom", 1).await;
    let other_host = rig.host_for(OTHER).await;
    let browser = Browser::start().await;
    let chat_path = format!("/chat/{chat_id}");

    // Private: another user is told so.
    browser.goto(&other_host.url(&chat_path)).await;
    browser.wait_for_visible("#notice").await;
    assert!(browser.texts("#notice").await.concat().contains("private"));
    assert!(!browser.is_visible("#composer").await);

    // The owner makes it public.
    browser.goto(&rig.host.url(&chat_path)).await;
    browser
        .wait_for("the toggle", &shows_text("#visibility", "Private"))
        .await;
    assert!(browser.is_visible("#composer").await);
    browser.click("#visibility").await;
    browser
        .wait_for("the toggle to flip", &shows_text("#visibility", "Public"))
        .await;
    assert_eq!(rig.visibility(chat_id).await, "public");
    browser
        .wait_for_visible(&format!("{} .public-mark", chat_row(chat_id)))
        .await;

    // Another user reads it, and cannot reply or change it.
    browser.goto(&other_host.url(&chat_path)).await;
    browser
        .wait_for(
            "the shared chat",
            &shows_text(REPLY, "Answer of Shared wisdom"),
        )
        .await;
    browser.wait_for_visible("#read-only").await;
    assert!(!browser.is_visible("#composer").await);
    assert!(!browser.is_visible("#visibility").await);
    assert!(
        !browser.is_visible(&chat_row(chat_id)).await,
        "not in their sidebar"
    );

    // Back to private.
    browser.goto(&rig.host.url(&chat_path)).await;
    browser.click("#visibility").await;
    browser
        .wait_for(
            "the toggle to flip back",
            &shows_text("#visibility", "Private"),
        )
        .await;
    assert_eq!(rig.visibility(chat_id).await, "private");
    browser.quit().await;
}

/// The only vote of the chat as (isUpvoted, comment), or `None`.
async fn vote_of(rig: &Rig, chat_id: Uuid) -> Option<(bool, Option<String>)> {
    let rows = rig
        .db
        .connect()
        .await
        .query(
            r#"SELECT "isUpvoted", comment FROM chat."Vote" WHERE "chatId" = $1"#,
            &[&chat_id],
        )
        .await
        .expect("reading the chat's votes");
    assert!(rows.len() <= 1, "one vote per message: {rows:?}");
    rows.first().map(|row| (row.get(0), row.get(1)))
}

/// A script (function body): whether the reply's thumbs show `up` and
/// `down` as pressed or not, and the quiet note reads `note`.
fn thumbs_are(up: bool, down: bool, note: &str) -> String {
    format!(
        "const pressed = (css) => document.querySelector(css)?.getAttribute('aria-pressed');          return pressed('.message.assistant .thumb-up') === {up:?}              && pressed('.message.assistant .thumb-down') === {down:?}              && document.querySelector('.message.assistant .feedback-note')?.textContent === {note};",
        up = up.to_string(),
        down = down.to_string(),
        note = json!(note),
    )
}

#[tokio::test]
async fn the_owner_rates_a_reply_changes_and_comments_it_and_the_rating_survives_a_reload() {
    let rig = Rig::start().await;
    // A traced reply, so its rating goes to MLflow (the stand-in) too.
    let chat_id = rig
        .seed_traced_chat(OWNER, "Rated answer", 1, Some("tr-rated"))
        .await;
    rig.upstream.mlflow.log_trace("tr-rated");
    let chat_path = format!("/chat/{chat_id}");
    let browser = Browser::start().await;
    browser.goto(&rig.host.url(&chat_path)).await;
    browser
        .wait_for("the reply", &shows_text(REPLY, "Answer of Rated answer"))
        .await;
    assert!(
        !browser.is_visible(".message.user .feedback").await,
        "only replies are rated"
    );
    // The thumbs are drawn (inline SVG), not emoji that a machine without
    // an emoji font shows as empty boxes, and are named for screen readers.
    let thumbs = browser
        .eval(
            "return [...document.querySelectorAll('.message.assistant .thumb')].map((thumb) => ({ \
               label: thumb.getAttribute('aria-label'), text: thumb.textContent, \
               width: thumb.querySelector('svg')?.getBoundingClientRect().width ?? 0 }));",
        )
        .await;
    assert_eq!(
        thumbs
            .as_array()
            .unwrap()
            .iter()
            .map(|thumb| (
                thumb["label"].as_str().unwrap(),
                thumb["text"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("Good reply", ""), ("Bad reply", "")],
        "{thumbs}"
    );
    assert!(
        thumbs
            .as_array()
            .unwrap()
            .iter()
            .all(|thumb| thumb["width"].as_f64().unwrap() > 8.0),
        "each thumb's icon is drawn: {thumbs}"
    );

    browser.click(".message.assistant .thumb-down").await;
    browser
        .wait_for(
            "thumbs down",
            &thumbs_are(false, true, "Thanks for the feedback."),
        )
        .await;
    assert_eq!(vote_of(&rig, chat_id).await, Some((false, None)));

    browser.click(".message.assistant .thumb-up").await;
    browser
        .wait_for(
            "thumbs up instead",
            &thumbs_are(true, false, "Thanks for the feedback."),
        )
        .await;
    assert_eq!(vote_of(&rig, chat_id).await, Some((true, None)));

    browser.click(".message.assistant .comment-toggle").await;
    browser
        .type_into(".message.assistant .comment-input", "Short and right")
        .await;
    browser.click(".message.assistant .comment-save").await;
    browser
        .wait_for(
            "the comment saved",
            &shows_text(".message.assistant .comment-toggle", "Edit comment"),
        )
        .await;
    assert_eq!(
        vote_of(&rig, chat_id).await,
        Some((true, Some("Short and right".to_owned())))
    );

    // After a reload the page shows the rating as stored.
    browser.reload().await;
    browser
        .wait_for(
            "the stored rating",
            "return document.querySelector('.message.assistant .thumb-up')?.getAttribute('aria-pressed') === 'true';",
        )
        .await;
    assert_eq!(
        browser.texts(".message.assistant .comment-toggle").await,
        ["Edit comment"]
    );
    // MLflow got one assessment, with the final rating.
    let final_value = json!({"value": true});
    let mlflow = &rig.upstream.mlflow;
    wait_for_row("MLflow to hold the final rating", || async {
        let assessments = mlflow.assessments();
        assessments.len() == 1
            && assessments[0]["feedback"] == final_value
            && assessments[0]["rationale"] == "Short and right"
    })
    .await;

    // Pressing the pressed thumb withdraws the rating.
    browser.click(".message.assistant .thumb-up").await;
    browser
        .wait_for(
            "the rating withdrawn",
            &thumbs_are(false, false, "Rating withdrawn."),
        )
        .await;
    assert_eq!(vote_of(&rig, chat_id).await, None);
    wait_for_row("MLflow to drop the assessment", || async {
        rig.upstream.mlflow.assessments().is_empty()
    })
    .await;

    // Someone reading the shared chat sees no thumbs.
    rig.db
        .connect()
        .await
        .execute(
            r#"UPDATE chat."Chat" SET visibility = 'public' WHERE id = $1"#,
            &[&chat_id],
        )
        .await
        .expect("sharing the chat");
    let other_host = rig.host_for(OTHER).await;
    browser.goto(&other_host.url(&chat_path)).await;
    browser.wait_for_visible("#read-only").await;
    browser
        .wait_for(
            "the shared reply",
            &shows_text(REPLY, "Answer of Rated answer"),
        )
        .await;
    assert!(
        !browser.is_visible(".feedback").await,
        "no thumbs for readers"
    );
    browser.quit().await;
}

#[tokio::test]
async fn without_a_database_the_page_says_ephemeral_and_still_chats() {
    let upstream = ScriptedUpstream::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let db_url = format!("postgres://chat:chat@{closed}/chat");
    let host = TestHost::launch(Rig::config(&db_url, &upstream, OWNER)).await;
    upstream.expect_reply(Script::stream(vec![
        chunk("Still here."),
        Step::Send(UPSTREAM_DONE.to_owned()),
    ]));
    let browser = Browser::start().await;
    browser.goto(&host.url("/")).await;
    browser.wait_for_visible("#ephemeral").await;
    assert_eq!(
        browser.texts("#ephemeral").await,
        ["Ephemeral — no history"]
    );
    assert!(browser.texts(".chat").await.is_empty());

    browser
        .type_into("#input", &format!("Anyone there?{}", keys::ENTER))
        .await;
    wait_for_whole_reply(&browser, "Still here.").await;
    assert!(browser.is_visible("#composer").await);
    browser.quit().await;
}

#[tokio::test]
async fn without_an_identity_the_page_says_how_to_sign_in() {
    let db = TestDatabase::create().await;
    let host = TestHost::launch(HostConfig::new(&db.url)).await;
    let browser = Browser::start().await;
    browser.goto(&host.url("/")).await;
    browser
        .wait_for(
            "the signed-out message",
            "return document.body.innerText.includes('You are not signed in');",
        )
        .await;
    assert!(browser.visible_text().await.contains("dev_user_email"));
    browser.quit().await;
}

#[tokio::test]
async fn on_a_narrow_screen_the_sidebar_opens_on_demand() {
    let rig = Rig::start().await;
    rig.seed_chat(OWNER, "Pocket chat", 1).await;
    let browser = Browser::with_window(390, 800).await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible("#toggle-sidebar").await;
    assert!(!browser.is_visible("#sidebar").await);
    assert!(browser.is_visible("#composer").await);

    browser.click("#toggle-sidebar").await;
    browser.wait_for_visible("#sidebar").await;
    // It slides in: a click while it moves can land beside the link (on
    // the scrim, which closes it), so wait until it is in place.
    browser
        .wait_for(
            "the sidebar in place",
            "return getComputedStyle(document.querySelector('#sidebar')).transform === 'none';",
        )
        .await;
    browser.click(".chat-link").await;
    browser
        .wait_for("the chat", &shows_text(REPLY, "Answer of Pocket chat"))
        .await;
    browser
        .wait_for(
            "the sidebar to close",
            "return !document.querySelector('#sidebar').checkVisibility({ visibilityProperty: true });",
        )
        .await;
    browser.quit().await;
}

/// The component's answers, without a browser: what the page and its files
/// are served as, and what it refuses.
#[tokio::test]
async fn the_ui_component_serves_the_page_and_its_files_and_refuses_the_rest() {
    let db = TestDatabase::create().await;
    let host = TestHost::launch(HostConfig::new(&db.url).variable("dev_user_email", OWNER)).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(host.url(path)).send();

    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"src="/assets/app.js""#));

    let deep_link = get(&format!("/chat/{}", Uuid::new_v4())).await.unwrap();
    assert_eq!(deep_link.status(), 200);
    assert_eq!(deep_link.text().await.unwrap(), html);

    let revalidated = client
        .get(host.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert!(revalidated.bytes().await.unwrap().is_empty());

    let head = client.head(host.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], etag.as_str());

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("chat.js", "text/javascript; charset=utf-8"),
        ("sidebar.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("markdown.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let answer = get(&format!("/assets/{asset}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert_eq!(answer.headers()["content-type"], content_type, "{asset}");
        assert!(answer.headers().contains_key("etag"), "{asset}");
        // SVG's namespace is a name, never fetched; any other URL would be
        // a request to another site.
        let text = answer
            .text()
            .await
            .unwrap()
            .replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} names another site"
        );
    }
    // The vendored libraries are served as pinned (assets/vendor/README.md).
    for (asset, sha256) in [
        (
            "vendor/marked.esm.js",
            "5371fea86fd0656b4fc7bea7c94c663109d82789b69433eeee78d42895aa44de",
        ),
        (
            "vendor/purify.es.mjs",
            "5e8c53cd086a012531fc754ee6a7ad7a02e8a06fc4dadd805b912e128c3f6c58",
        ),
    ] {
        let answer = get(&format!("/assets/{asset}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert_eq!(
            answer.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        let digest = sha2::Sha256::digest(answer.bytes().await.unwrap());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, sha256, "{asset}");
    }
    let icon = get("/assets/icon.svg").await.unwrap();
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    for path in [
        "/assets/missing.js",
        "/assets/",
        "/chat/a/b",
        "/chat/",
        "/nope",
    ] {
        let answer = get(path).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let posted = client.post(host.url("/")).send().await.unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["allow"], "GET, HEAD");
    let body: Value = posted.json().await.unwrap();
    assert!(body["error"].is_string());

    // The API keeps its routes.
    let session: Value = get("/api/session").await.unwrap().json().await.unwrap();
    assert_eq!(session["user"]["email"], OWNER);
}

/// Opens the menu of the chat's row and picks `action` (a folder's id for
/// "file").
async fn pick_from_menu(browser: &Browser, chat_id: Uuid, action: &str) {
    let row = chat_row(chat_id);
    browser.click(&format!("{row} .more")).await;
    browser
        .click(&format!(r#"{row} .menu-item[data-action="{action}"]"#))
        .await;
}

#[tokio::test]
async fn chats_are_pinned_filed_in_folders_archived_and_restored_from_their_menu() {
    let rig = Rig::start().await;
    let alpha = rig.seed_chat(OWNER, "Alpha", 3).await;
    let beta = rig.seed_chat(OWNER, "Beta", 2).await;
    let gamma = rig.seed_chat(OWNER, "Gamma", 1).await;
    let browser = Browser::start().await;
    browser.goto(&rig.host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;

    pick_from_menu(&browser, beta, "pin").await;
    browser
        .wait_for_visible(&format!(".group.pinned {}", chat_row(beta)))
        .await;

    browser.click(".new-folder").await;
    browser
        .type_into(".folder-name-input", &format!("Work{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the new folder",
            &shows_text(".folder .folder-toggle", "▸ Work"),
        )
        .await;
    let folder: Uuid = rig.db.column(r#"SELECT id FROM chat."Folder""#, &[]).await[0];
    pick_from_menu(&browser, gamma, "file").await;
    // Filing opens the folder, which shows the chat, out of the main list.
    browser
        .wait_for_visible(&format!(
            r#".folder[data-folder-id="{folder}"] {}"#,
            chat_row(gamma)
        ))
        .await;

    pick_from_menu(&browser, alpha, "archive").await;
    browser
        .wait_for(
            "the archived chat gone from the list",
            &format!(
                "return document.querySelector('{}') === null;",
                chat_row(alpha).replace('\'', "\\'")
            ),
        )
        .await;
    browser.click(".show-archive").await;
    browser
        .wait_for_visible(&format!(".history {}", chat_row(alpha)))
        .await;
    assert_eq!(browser.texts(".history .chat-link").await, ["Alpha"]);
    pick_from_menu(&browser, alpha, "restore").await;
    browser
        .wait_for(
            "the archive empty",
            "return document.querySelector('.history .chat') === null;",
        )
        .await;
    browser.click(".archive-back").await;
    browser
        .wait_for_visible(&format!(".group:not(.pinned) {}", chat_row(alpha)))
        .await;

    let state: Vec<(bool, Option<Uuid>, bool)> = {
        let client = rig.db.connect().await;
        let rows = client
            .query(
                r#"SELECT "pinnedAt" IS NOT NULL, "folderId", "archivedAt" IS NOT NULL
                   FROM chat."Chat" WHERE id = ANY($1) ORDER BY title"#,
                &[&vec![alpha, beta, gamma]],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    };
    assert_eq!(
        state,
        [
            (false, None, false),
            (true, None, false),
            (false, Some(folder), false)
        ]
    );

    // Deleting them all asks first, then leaves the folder and no chat.
    browser.click(".delete-all").await;
    browser.wait_for_visible("#confirm-delete[open]").await;
    browser
        .click(r#"#confirm-delete button[value="delete"]"#)
        .await;
    browser
        .wait_for(
            "no chat left",
            "return document.querySelector('#history .chat') === null \
             && document.querySelector('.folder') !== null;",
        )
        .await;
    let chats: Vec<i64> = rig
        .db
        .column(r#"SELECT count(*) FROM chat."Chat""#, &[])
        .await;
    assert_eq!(chats, [0]);
    browser.quit().await;
}

#[tokio::test]
async fn an_export_its_owner_downloads_imports_into_another_account() {
    let rig = Rig::start().await;
    let chat_id = rig.seed_chat(OWNER, "Moving house", 2).await;
    let other_host = rig.host_for(OTHER).await;
    let browser = Browser::start().await;

    // The owner saves the chat as Markdown, then everything.
    browser
        .goto(&rig.host.url(&format!("/chat/{chat_id}")))
        .await;
    browser
        .wait_for("the chat", &shows_text(REPLY, "Answer of Moving house"))
        .await;
    browser.click("#export-markdown").await;
    let markdown = browser.downloaded("Moving house.md").await;
    let document = std::fs::read_to_string(&markdown).expect("the Markdown");
    assert!(document.starts_with("# Moving house\n"), "{document}");
    assert!(
        document.contains("> Answer of Moving house\n"),
        "{document}"
    );
    std::fs::remove_file(&markdown).expect("removing the first download");
    browser.click(".export-all").await;
    let export = browser.downloaded("chat-history-").await;

    // Another user imports the file: the report says what came in, and
    // the chat is theirs, listed and read as it was.
    browser.goto(&other_host.url("/")).await;
    browser.wait_for_visible(SIDEBAR_READY).await;
    browser
        .choose_file("#transfer input[type=file]", &export)
        .await;
    browser
        .wait_for(
            "the import's report",
            &shows_text(".import-report .imported", "1 chat imported."),
        )
        .await;
    browser.click(".import-report button").await;
    let imported: Vec<Uuid> = rig
        .db
        .column(
            r#"SELECT id FROM chat."Chat" WHERE "userId" = $1"#,
            &[&OTHER],
        )
        .await;
    let [imported] = imported[..] else {
        panic!("one chat imported: {imported:?}");
    };
    assert_ne!(imported, chat_id, "a chat of its own");
    browser.click(&chat_row(imported)).await;
    browser
        .wait_for(
            "the imported chat",
            &shows_text(REPLY, "Answer of Moving house"),
        )
        .await;
    assert_eq!(browser.texts(QUESTION).await, ["Question of Moving house"]);
    browser.quit().await;
}
