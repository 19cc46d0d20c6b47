//! Malformed requests across every route, each made from its own PRNG
//! stream: odd methods, bad, encoded and over-long ids, junk and duplicate
//! query parameters, odd and over-long identity headers, and bodies that are
//! malformed, mistyped, deeply nested, huge, over 1 MiB or not UTF-8.
//!
//! The database must come out unchanged, so a request that could
//! legitimately delete or re-share a seeded chat — its owner, a write route
//! and (for PATCH) a body that might be valid — is never generated; such a
//! draw is turned into a harmless one instead.

use super::prng::Prng;
use reqwest::Method;
use uuid::Uuid;

/// The seeded rows requests aim at.
pub struct World {
    pub owner: String,
    pub stranger: String,
    /// The owner's public and private chats.
    pub owner_chats: [Uuid; 2],
    pub stranger_chat: Uuid,
    pub admin_token: Option<String>,
}

pub struct FuzzRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    /// Every identity header value sent, trimmed: the ids `GET /api/history`
    /// may legitimately record as users.
    pub identity_values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Session,
    History,
    Messages,
    DeleteChat,
    Visibility,
    AdminSchema,
    AdminMigrate,
    ChatStream,
    Elsewhere,
}

const ROUTES: [Route; 9] = [
    Route::Session,
    Route::History,
    Route::Messages,
    Route::DeleteChat,
    Route::Visibility,
    Route::AdminSchema,
    Route::AdminMigrate,
    Route::ChatStream,
    Route::Elsewhere,
];

impl Route {
    fn method(self) -> Method {
        match self {
            Route::DeleteChat => Method::DELETE,
            Route::Visibility => Method::PATCH,
            Route::AdminMigrate | Route::ChatStream => Method::POST,
            _ => Method::GET,
        }
    }

    fn takes_body(self) -> bool {
        matches!(
            self,
            Route::Visibility | Route::ChatStream | Route::AdminMigrate
        )
    }
}

/// Registered, odd and unregistered methods (HTTP methods are case-sensitive).
const METHODS: [&str; 12] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "PROPFIND", "get",
    "M-SEARCH",
];

const ELSEWHERE: [&str; 11] = [
    "/",
    "/nope",
    "/api",
    "/api/",
    "/api/chats",
    "/admin",
    "/admin/",
    "/api/messages",
    "/API/HISTORY",
    "/api%2Fhistory",
    "/api/history/x",
];

/// Segments appended to a path; `..` ones are resolved away by the client.
const EXTRA_SEGMENTS: [&str; 5] = ["x", "..", "%2e%2e", "visibility/x", "%2F"];

const ODD_IDS: [&str; 12] = [
    "",
    "..",
    ".",
    "%00",
    "%2F",
    "null",
    "undefined",
    "-1",
    "1%27%20OR%20%271%27%3D%271",
    "%C3%A9",
    "%FF%FE",
    "%E2%80%AE",
];

const LIMITS: [&str; 13] = [
    "0",
    "-1",
    "20",
    "100",
    "101",
    "99999999999999999999999",
    "ten",
    "1.5",
    "",
    "%20",
    "0x10",
    "1e2",
    "%2B7",
];

const RAW_QUERY_PARTS: [&str; 8] = [
    "&&",
    "=",
    "==",
    "%",
    "%G1",
    "limit",
    "starting_after=%FF",
    "a=%",
];

const CONTENT_TYPES: [&str; 8] = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "a/b/c;;",
    "application/json; charset=latin1",
    "*/*",
];

const EXTRA_HEADERS: [&str; 6] = [
    "x-forwarded-user-info",
    "x-forwarded-access-token",
    "accept",
    "x-junk",
    "cookie",
    "origin",
];

/// A chat id as sent, and who owns the chat it may name.
struct ChatId {
    text: String,
    owner: Option<String>,
}

pub fn generate(world: &World, seed: u64, index: u64) -> FuzzRequest {
    let mut prng = Prng::for_request(seed, index);
    let route = *prng.pick(&ROUTES);
    let method = if prng.percent(70) {
        route.method()
    } else {
        Method::from_bytes(prng.pick(&METHODS).as_bytes()).expect("a method token")
    };
    let mut chat = chat_id(&mut prng, world);
    let identity = identity(&mut prng, world);
    let mut body = (prng.percent(if route.takes_body() { 85 } else { 15 })
        && method != Method::HEAD
        && method != Method::TRACE)
        .then(|| body(&mut prng));

    // Never a request that could legitimately change a seeded chat.
    let owned_by_caller = chat
        .owner
        .as_ref()
        .is_some_and(|owner| identity.values.contains(owner));
    if owned_by_caller && route == Route::DeleteChat && method == Method::DELETE {
        chat = unknown_chat(&mut prng);
    }
    if owned_by_caller
        && route == Route::Visibility
        && method == Method::PATCH
        && body.as_ref().is_none_or(|body| body.might_apply)
    {
        body = Some(Body {
            bytes: br#"{"visibility":{"value":"public"}}"#.to_vec(),
            might_apply: false,
        });
    }

    let path = path(&mut prng, route, &chat.text);
    let query = query(&mut prng, world);
    let mut headers = identity.headers;
    headers.extend(other_headers(&mut prng, route, world, body.is_some()));
    FuzzRequest {
        method,
        path_and_query: format!("{path}{query}"),
        headers,
        body: body.map(|body| body.bytes),
        identity_values: identity.values,
    }
}

fn chat_id(prng: &mut Prng, world: &World) -> ChatId {
    let owned = |text: String, owner: &str| ChatId {
        text,
        owner: Some(owner.to_owned()),
    };
    let unowned = |text: String| ChatId { text, owner: None };
    let owners_chat = *prng.pick(&world.owner_chats);
    // Variants of a real id count as naming it, whatever the server makes
    // of them: the guard in `generate` stays on the safe side.
    match prng.below(11) {
        0 | 1 => owned(owners_chat.to_string(), &world.owner),
        2 => owned(world.stranger_chat.to_string(), &world.stranger),
        3 => owned(owners_chat.to_string().to_uppercase(), &world.owner),
        4 => owned(owners_chat.simple().to_string(), &world.owner),
        5 => owned(format!("%7B{owners_chat}%7D"), &world.owner),
        6 => owned(format!("{owners_chat}%20"), &world.owner),
        7 => unknown_chat(prng),
        8 => unowned("a".repeat(prng.between(37, 8000))),
        9 => {
            let len = prng.between(1, 64);
            unowned(percent_encode(&prng.bytes(len)))
        }
        _ => unowned((*prng.pick(&ODD_IDS)).to_owned()),
    }
}

fn unknown_chat(prng: &mut Prng) -> ChatId {
    ChatId {
        text: Uuid::from_u64_pair(prng.next_u64(), prng.next_u64()).to_string(),
        owner: None,
    }
}

fn path(prng: &mut Prng, route: Route, chat_id: &str) -> String {
    let path = match route {
        Route::Session => "/api/session".to_owned(),
        Route::History => "/api/history".to_owned(),
        Route::Messages => format!("/api/messages/{chat_id}"),
        Route::DeleteChat => format!("/api/chat/{chat_id}"),
        Route::Visibility => format!("/api/chat/{chat_id}/visibility"),
        Route::AdminSchema => "/admin/schema".to_owned(),
        Route::AdminMigrate => "/admin/schema/migrate".to_owned(),
        Route::ChatStream => "/api/chat".to_owned(),
        Route::Elsewhere => (*prng.pick(&ELSEWHERE)).to_owned(),
    };
    match prng.below(20) {
        0 => format!("{path}/"),
        1 => format!("{path}/{}", prng.pick(&EXTRA_SEGMENTS)),
        2 => format!("/{path}"),
        _ => path,
    }
}

fn query(prng: &mut Prng, world: &World) -> String {
    if prng.percent(50) {
        return String::new();
    }
    let parts: Vec<String> = (0..prng.between(1, 6))
        .map(|_| match prng.below(7) {
            0 => format!("limit={}", prng.pick(&LIMITS)),
            1 => {
                let name = prng.pick(&["starting_after", "ending_before"]);
                format!("{name}={}", chat_id(prng, world).text)
            }
            2 => "limit=1&limit=2".to_owned(),
            3 => format!("x={}", "a".repeat(prng.between(1000, 2000))),
            4 => (*prng.pick(&RAW_QUERY_PARTS)).to_owned(),
            _ => {
                let (name_len, value_len) = (prng.between(1, 10), prng.below(20));
                let name = percent_encode(&prng.bytes(name_len));
                format!("{name}={}", percent_encode(&prng.bytes(value_len)))
            }
        })
        .collect();
    format!("?{}", parts.join("&"))
}

struct Identity {
    headers: Vec<(&'static str, Vec<u8>)>,
    values: Vec<String>,
}

fn identity(prng: &mut Prng, world: &World) -> Identity {
    let email = "x-forwarded-email";
    let user = "x-forwarded-user";
    let name = "x-forwarded-preferred-username";
    let text = |value: &str| value.as_bytes().to_vec();
    let mut headers: Vec<(&'static str, Vec<u8>)> = match prng.below(12) {
        0..=3 => vec![(email, text(&world.owner)), (name, text("Owner"))],
        4 => vec![(email, text(&world.stranger))],
        5 => Vec::new(),
        6 => vec![(
            email,
            text(&format!("fuzz-{:x}@contract.test", prng.next_u64())),
        )],
        7 => vec![(email, text(&format!(" \t{} ", world.owner)))],
        8 => vec![(user, text(&world.owner))],
        9 => {
            let len = prng.between(1, 64);
            vec![
                (email, header_bytes(prng, len)),
                (user, header_bytes(prng, 8)),
            ]
        }
        10 => {
            let local = "x".repeat(prng.between(65, 16_000));
            vec![(email, text(&format!("{local}@contract.test")))]
        }
        // Blank, or a name alone: no identity.
        _ if prng.percent(50) => vec![(email, text("   "))],
        _ => vec![(name, text(&world.owner))],
    };
    if prng.percent(10) {
        // A second, junk value of a header already sent.
        if let Some(&(header, _)) = headers.first() {
            headers.push((
                header,
                text(&format!("dup-{:x}@contract.test", prng.next_u64())),
            ));
        }
    }
    let values = headers
        .iter()
        .filter(|(header, _)| *header != name)
        .map(|(_, value)| String::from_utf8_lossy(value).trim().to_owned())
        .collect();
    Identity { headers, values }
}

fn other_headers(
    prng: &mut Prng,
    route: Route,
    world: &World,
    has_body: bool,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut headers = Vec::new();
    if has_body && prng.percent(70) {
        headers.push((
            "content-type",
            prng.pick(&CONTENT_TYPES).as_bytes().to_vec(),
        ));
    }
    let admin = matches!(route, Route::AdminSchema | Route::AdminMigrate);
    if prng.percent(if admin { 60 } else { 5 }) {
        let token = world.admin_token.as_deref().unwrap_or("no-token");
        let authorization = match prng.below(6) {
            0 => format!("Bearer {token}"),
            1 => format!("bearer   {token}  "),
            2 => "Bearer wrong".to_owned(),
            3 => format!("Basic {token}"),
            4 => "Bearer".to_owned(),
            _ => String::from_utf8_lossy(&header_bytes(prng, 40)).into_owned(),
        };
        headers.push(("authorization", authorization.into_bytes()));
    }
    if prng.percent(10) {
        let len = if prng.percent(20) {
            prng.between(8_000, 16_000)
        } else {
            prng.between(1, 200)
        };
        headers.push((*prng.pick(&EXTRA_HEADERS), header_bytes(prng, len)));
    }
    headers
}

struct Body {
    bytes: Vec<u8>,
    /// Whether some server could read it as a valid visibility change.
    might_apply: bool,
}

fn body(prng: &mut Prng) -> Body {
    let visibility = prng.pick(&["public", "private"]);
    let valid = format!(r#"{{"visibility":"{visibility}"}}"#);
    let refused = |bytes: Vec<u8>| Body {
        bytes,
        might_apply: false,
    };
    let accepted = |bytes: Vec<u8>| Body {
        bytes,
        might_apply: true,
    };
    match prng.below(14) {
        0 => accepted(valid.into_bytes()),
        1 => accepted(format!("\n {{ \"visibility\" :\t\"{visibility}\" }} \n").into_bytes()),
        2 => accepted(format!("\u{feff}{valid}").into_bytes()),
        3 => accepted(
            format!(r#"{{"visibility":"{visibility}","visibility":"{visibility}"}}"#).into_bytes(),
        ),
        4 => {
            let value = prng.pick(&[
                "1",
                "null",
                "true",
                "[\"public\"]",
                "{}",
                "\"PUBLIC\"",
                "\"\"",
            ]);
            refused(format!(r#"{{"visibility":{value}}}"#).into_bytes())
        }
        5 => refused(format!(r#"{{"visibility":"{visibility}","extra":1}}"#).into_bytes()),
        6 => {
            let value = prng.pick(&[
                "null",
                "1",
                "\"public\"",
                "[]",
                "[{\"visibility\":\"public\"}]",
                "true",
                "{}",
            ]);
            refused(value.as_bytes().to_vec())
        }
        7 => {
            let cut = prng.below(valid.len());
            refused(valid.as_bytes()[..cut].to_vec())
        }
        8 => refused(deeply_nested(prng)),
        9 => {
            let huge = "a".repeat(prng.between(100_000, 1_000_000));
            refused(format!(r#"{{"visibility":"{huge}"}}"#).into_bytes())
        }
        10 => {
            let len = 1024 * 1024 + prng.between(1, 4096);
            refused(if prng.percent(50) {
                vec![b'{'; len]
            } else {
                prng.bytes(len)
            })
        }
        11 => refused(b"{\"visibility\":\"pub\xfflic\"}".to_vec()),
        12 => {
            let len = prng.between(1, 512);
            refused(prng.bytes(len))
        }
        _ => refused(Vec::new()),
    }
}

fn deeply_nested(prng: &mut Prng) -> Vec<u8> {
    // Up to about 1 MiB either way.
    let (open, close, depth) = if prng.percent(50) {
        ("[", "]", prng.between(1_000, 400_000))
    } else {
        ("{\"visibility\":", "}", prng.between(1_000, 70_000))
    };
    let closed = prng.percent(50);
    let mut text = format!("{{\"visibility\":{}", open.repeat(depth));
    if closed {
        text.push('1');
        text.push_str(&close.repeat(depth));
        text.push('}');
    }
    text.into_bytes()
}

/// Bytes a header value may hold: visible ASCII, spaces and tabs inside,
/// and obs-text (0x80–0xFF), which is not UTF-8 on its own.
fn header_bytes(prng: &mut Prng, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| match prng.below(4) {
            0 => 0x80 + prng.below(0x80) as u8,
            1 if len > 2 => *prng.pick(b" \t"),
            _ => 0x21 + prng.below(0x5e) as u8,
        })
        .collect();
    // The outermost bytes must not be whitespace.
    for end in [0, len - 1] {
        if bytes[end] == b' ' || bytes[end] == b'\t' {
            bytes[end] = b'x';
        }
    }
    bytes
}

/// Every byte but the URL-unreserved ones as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
