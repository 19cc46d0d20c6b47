//! Malformed requests across every public route of the app's route table
//! (`chat_domain::http::routes::ROUTES`: a route added there is fuzzed once
//! [`classify`] says what it takes to change data through it, and
//! `every_public_route_is_fuzzed` fails until then) and paths no public
//! route serves, each made from its own
//! PRNG stream: odd methods, bad, encoded and over-long ids, junk and
//! duplicate query parameters, odd and over-long identity headers, and
//! bodies shaped like the route's own that are malformed, mistyped, deeply
//! nested, huge, over 1 MiB or not UTF-8.
//!
//! The database must come out unchanged, so a request that could
//! legitimately change data (see [`Power`]: the owner of the chat or folder
//! it names, or anyone for what creates rows, on a write route with, where
//! the route reads one, a body that might be valid) is never generated;
//! such a draw is turned into a harmless one instead.

use super::prng::Prng;
use chat_domain::http::routes::{
    AdminHandler, ChatHandler, FeedbackHandler, Handler, HistoryHandler, MessagesHandler, ROUTES,
    Route, Segment, TransferHandler, UiHandler, segments,
};
use chat_tests::contract::seed::SeededChat;
use reqwest::Method;
use uuid::Uuid;

/// The seeded rows requests aim at.
pub struct World {
    pub owner: String,
    pub stranger: String,
    /// The owner's public and private chats.
    pub owner_chats: [SeededChat; 2],
    pub stranger_chat: SeededChat,
    pub owner_folder: Uuid,
    pub stranger_folder: Uuid,
    pub admin_token: Option<String>,
}

impl World {
    fn chats(&self) -> [(Uuid, &str); 3] {
        [
            (self.owner_chats[0].id, &self.owner),
            (self.owner_chats[1].id, &self.owner),
            (self.stranger_chat.id, &self.stranger),
        ]
    }

    fn folders(&self) -> [(Uuid, &str); 2] {
        [
            (self.owner_folder, &self.owner),
            (self.stranger_folder, &self.stranger),
        ]
    }

    /// Every seeded message, with the owner of its chat.
    fn messages(&self) -> Vec<(Uuid, &str)> {
        let chats = [
            &self.owner_chats[0],
            &self.owner_chats[1],
            &self.stranger_chat,
        ];
        chats
            .into_iter()
            .flat_map(|chat| chat.message_ids.iter().map(|id| (*id, chat.owner.as_str())))
            .collect()
    }
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

/// What a request is aimed at: a public route of the table, or a path no
/// public route serves.
#[derive(Clone, Copy)]
enum Aim {
    Route(&'static Route),
    Elsewhere,
}

/// The public routes the fuzzer knows how to keep harmless, each drawn as
/// often as any other.
fn fuzzed_routes() -> Vec<&'static Route> {
    ROUTES
        .iter()
        .filter(|route| route.public && classify(route.handler).is_some())
        .collect()
}

/// Registered, odd and unregistered methods (HTTP methods are case-sensitive).
const METHODS: [&str; 12] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "PROPFIND", "get",
    "M-SEARCH",
];

const ELSEWHERE: [&str; 13] = [
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
    "/api/folders/",
    "/api/folder",
    "/internal",
];

/// What `{asset...}` stands for: files that exist, in a folder or not,
/// and names that climb out or do not exist.
const ASSETS: [&str; 9] = [
    "app.js",
    "style.css",
    "vendor/marked.esm.js",
    "nope.js",
    "vendor/nope/deeper.js",
    "..%2Fspin.toml",
    "%2e%2e/%2e%2e/Cargo.toml",
    "app.js%00",
    "index.html%20",
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

const ARCHIVED: [&str; 8] = ["exclude", "only", "include", "ONLY", "", "none", "1", "%00"];

/// The microseconds of a page's cursor (`<micros>.<chat id>`): ordinary,
/// extreme, and not numbers.
const CURSOR_MICROS: [&str; 10] = [
    "1735628889123456",
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "%2B5",
    "",
    "1e6",
    "x",
];

/// Searches: words, the web-search syntax and its misuse.
const SEARCHES: [&str; 9] = [
    "contract",
    "%22unclosed",
    "or%20or%20-",
    "-",
    "!(a%20%26%20b)",
    "a%3A*",
    "%20%20",
    "%00",
    "%E2%80%AE2%20%2B%202",
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

const EXTRA_HEADERS: [&str; 7] = [
    "x-forwarded-user-info",
    "x-forwarded-access-token",
    "accept",
    "x-junk",
    "cookie",
    "origin",
    "if-none-match",
];

/// An id as sent, and who owns the row it may name.
struct Named {
    text: String,
    owner: Option<String>,
}

/// What it takes for a request that reaches a handler to change data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    /// It changes nothing, whoever asks (`GET /api/history` records its
    /// caller as a user, which the fuzz test allows for).
    None,
    /// The owner of the chat it names.
    ChatOwner,
    /// The owner of the chat it names, with a body that might be valid.
    ChatOwnerWithBody,
    /// The owner of the folder it names.
    FolderOwner,
    /// The owner of the folder it names, with a body that might be valid.
    FolderOwnerWithBody,
    /// Anyone, with a body that might be valid: it creates rows.
    AnyoneWithBody,
}

/// The body a handler reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    None,
    Visibility,
    Title,
    Pinned,
    Archived,
    /// `{"folderId": ...}` for a chat.
    File,
    NewFolder,
    FolderChange,
    Rating,
    Turn,
    BulkDelete,
}

/// What it takes to change data through `handler`, and the body it reads;
/// `None` for a handler not placed here yet, whose routes are then left
/// out of the run and named by `every_public_route_is_fuzzed`.
fn classify(handler: Handler) -> Option<(Power, Shape)> {
    let classified = match handler {
        Handler::History(
            HistoryHandler::Session | HistoryHandler::List | HistoryHandler::Folders,
        ) => (Power::None, Shape::None),
        Handler::History(HistoryHandler::Delete) => (Power::ChatOwner, Shape::None),
        // It deletes only the caller's chats, but any caller's: a new
        // identity's `{"all":true}` would delete nothing, yet stay on the
        // safe side.
        Handler::History(HistoryHandler::DeleteMany) => (Power::AnyoneWithBody, Shape::BulkDelete),
        Handler::History(HistoryHandler::SetVisibility) => {
            (Power::ChatOwnerWithBody, Shape::Visibility)
        }
        Handler::History(HistoryHandler::Rename) => (Power::ChatOwnerWithBody, Shape::Title),
        Handler::History(HistoryHandler::SetPinned) => (Power::ChatOwnerWithBody, Shape::Pinned),
        Handler::History(HistoryHandler::SetArchived) => {
            (Power::ChatOwnerWithBody, Shape::Archived)
        }
        Handler::History(HistoryHandler::File) => (Power::ChatOwnerWithBody, Shape::File),
        Handler::History(HistoryHandler::CreateFolder) => (Power::AnyoneWithBody, Shape::NewFolder),
        Handler::History(HistoryHandler::ChangeFolder) => {
            (Power::FolderOwnerWithBody, Shape::FolderChange)
        }
        Handler::History(HistoryHandler::DeleteFolder) => (Power::FolderOwner, Shape::None),
        Handler::Messages(MessagesHandler::Page) => (Power::None, Shape::None),
        Handler::Chat(ChatHandler::Send) => (Power::AnyoneWithBody, Shape::Turn),
        // A stop leaves a signal in the key-value store and a regeneration
        // rewrites the reply; neither reads a body.
        Handler::Chat(ChatHandler::Stop | ChatHandler::Regenerate) => {
            (Power::ChatOwner, Shape::None)
        }
        Handler::Chat(ChatHandler::Follow) => (Power::None, Shape::None),
        // The rating's body names the drawn chat.
        Handler::Feedback(FeedbackHandler::Rate) => (Power::ChatOwnerWithBody, Shape::Rating),
        Handler::Feedback(FeedbackHandler::Withdraw) => (Power::ChatOwner, Shape::None),
        Handler::Feedback(FeedbackHandler::List) => (Power::None, Shape::None),
        Handler::Transfer(TransferHandler::Export | TransferHandler::ExportChat) => {
            (Power::None, Shape::None)
        }
        // An import creates chats and folders from a file; the fuzzer's
        // bodies hold no conversation it could import.
        Handler::Transfer(TransferHandler::Import) => (Power::AnyoneWithBody, Shape::None),
        // The suite's database is migrated already: a migration finds
        // nothing to do.
        Handler::Admin(AdminHandler::SchemaStatus | AdminHandler::Migrate) => {
            (Power::None, Shape::None)
        }
        Handler::Ui(UiHandler::Page | UiHandler::Asset) => (Power::None, Shape::None),
        _ => return None,
    };
    Some(classified)
}

/// The handler a request aimed at `route` reaches with `method`: the route
/// of the same path that takes that method (`GET /api/folders` drawn with
/// `POST` creates a folder). Methods are compared regardless of case, on
/// the safe side.
fn reached(route: &Route, method: &Method) -> Option<Handler> {
    ROUTES
        .iter()
        .find(|other| {
            other.path == route.path && other.method.eq_ignore_ascii_case(method.as_str())
        })
        .map(|other| other.handler)
}

pub fn generate(world: &World, seed: u64, index: u64) -> FuzzRequest {
    let mut prng = Prng::for_request(seed, index);
    let routes = fuzzed_routes();
    let aim = match prng.below(routes.len() + 1) {
        drawn if drawn < routes.len() => Aim::Route(routes[drawn]),
        _ => Aim::Elsewhere,
    };
    let method = match aim {
        Aim::Route(route) if prng.percent(70) => route.method,
        _ => prng.pick(&METHODS),
    };
    let method = Method::from_bytes(method.as_bytes()).expect("a method token");
    // A method the path does not take is a 405: judged as the drawn route.
    let handler = match aim {
        Aim::Route(route) => Some(reached(route, &method).unwrap_or(route.handler)),
        Aim::Elsewhere => None,
    };
    let (power, shape) = handler
        .and_then(classify)
        .unwrap_or((Power::None, Shape::None));
    let mut chat = some_id(&mut prng, &world.chats());
    let mut folder = some_id(&mut prng, &world.folders());
    let message = some_id(&mut prng, &world.messages()).text;
    let identity = identity(&mut prng, world);
    let mut body = (prng.percent(if shape == Shape::None { 15 } else { 85 })
        && method != Method::HEAD
        && method != Method::TRACE)
        .then(|| body(&mut prng, shape, world, &chat));

    // Never a request that could legitimately change data.
    let owns = |named: &Named| {
        named
            .owner
            .as_ref()
            .is_some_and(|owner| identity.values.contains(owner))
    };
    // A route that reads a body refuses a request without one.
    let body_might_apply = body
        .as_ref()
        .is_some_and(|body| body.might_apply(&identity.values));
    match power {
        Power::ChatOwner if owns(&chat) => chat = unknown_id(&mut prng),
        Power::FolderOwner if owns(&folder) => folder = unknown_id(&mut prng),
        Power::ChatOwnerWithBody if owns(&chat) && body_might_apply => {
            body = Some(refused(shape));
        }
        Power::FolderOwnerWithBody if owns(&folder) && body_might_apply => {
            body = Some(refused(shape));
        }
        Power::AnyoneWithBody if body_might_apply => body = Some(refused(shape)),
        _ => {}
    }

    let path = match aim {
        Aim::Route(route) => route_path(&mut prng, route, &chat.text, &message, &folder.text),
        Aim::Elsewhere => elsewhere(&mut prng),
    };
    let path = mangled(&mut prng, path);
    let query = query(&mut prng, world);
    let mut headers = identity.headers;
    headers.extend(other_headers(&mut prng, handler, world, body.is_some()));
    FuzzRequest {
        method,
        path_and_query: format!("{path}{query}"),
        headers,
        body: body.map(|body| body.bytes),
        identity_values: identity.values,
    }
}

/// One of `known` (an id with the owner of its row) as sent, or a variant
/// of it, or an id that names nothing.
fn some_id(prng: &mut Prng, known: &[(Uuid, &str)]) -> Named {
    let (id, owner) = *prng.pick(known);
    // Variants of a real id count as naming it, whatever the server makes
    // of them: the guard in `generate` stays on the safe side.
    let named = |text: String| Named {
        text,
        owner: Some(owner.to_owned()),
    };
    let nothing = |text: String| Named { text, owner: None };
    match prng.below(11) {
        0..=2 => named(id.to_string()),
        3 => named(id.to_string().to_uppercase()),
        4 => named(id.simple().to_string()),
        5 => named(format!("%7B{id}%7D")),
        6 => named(format!("{id}%20")),
        7 => unknown_id(prng),
        8 => nothing("a".repeat(prng.between(37, 8000))),
        9 => {
            let len = prng.between(1, 64);
            nothing(percent_encode(&prng.bytes(len)))
        }
        _ => nothing((*prng.pick(&ODD_IDS)).to_owned()),
    }
}

fn unknown_id(prng: &mut Prng) -> Named {
    Named {
        text: Uuid::from_u64_pair(prng.next_u64(), prng.next_u64()).to_string(),
        owner: None,
    }
}

/// The route's path with its parameters filled in.
fn route_path(prng: &mut Prng, route: &Route, chat: &str, message: &str, folder: &str) -> String {
    let filled: Vec<String> = segments(route.path)
        .map(|segment| match segment {
            Segment::Literal(literal) => literal.to_owned(),
            Segment::Uuid("chatId") | Segment::Any("chatId") => chat.to_owned(),
            Segment::Uuid("messageId") => message.to_owned(),
            Segment::Uuid("folderId") => folder.to_owned(),
            Segment::Rest("asset") => (*prng.pick(&ASSETS)).to_owned(),
            Segment::Uuid(name) | Segment::Any(name) | Segment::Rest(name) => {
                panic!(
                    "{} {}: the fuzzer draws no {name}",
                    route.method, route.path
                )
            }
        })
        .collect();
    format!("/{}", filled.join("/"))
}

/// A path no public route serves: the internal routes, near misses and
/// unknown ones.
fn elsewhere(prng: &mut Prng) -> String {
    let internal: Vec<&str> = ROUTES
        .iter()
        .filter(|route| !route.public)
        .map(|route| route.path)
        .collect();
    if prng.percent(20) {
        (*prng.pick(&internal)).to_owned()
    } else {
        (*prng.pick(&ELSEWHERE)).to_owned()
    }
}

fn mangled(prng: &mut Prng, path: String) -> String {
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
        .map(|_| match prng.below(11) {
            0 => format!("limit={}", prng.pick(&LIMITS)),
            1 => {
                let name = prng.pick(&["starting_after", "ending_before"]);
                format!("{name}={}", some_id(prng, &world.chats()).text)
            }
            2 => {
                // A listed chat's cursor: its sort key, then its id.
                let name = prng.pick(&["starting_after", "ending_before"]);
                let micros = prng.pick(&CURSOR_MICROS);
                format!("{name}={micros}.{}", some_id(prng, &world.chats()).text)
            }
            3 => format!("folder={}", some_id(prng, &world.folders()).text),
            4 => format!("archived={}", prng.pick(&ARCHIVED)),
            5 => format!("q={}", prng.pick(&SEARCHES)),
            6 => "limit=1&limit=2".to_owned(),
            7 => format!("x={}", "a".repeat(prng.between(1000, 2000))),
            8 => (*prng.pick(&RAW_QUERY_PARTS)).to_owned(),
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
    handler: Option<Handler>,
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
    let admin = matches!(handler, Some(Handler::Admin(_)));
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

/// Whom a body could be applied for, if its route lets the caller.
enum Applies {
    /// Its shape or values are refused whoever sends it.
    Never,
    Perhaps,
    /// It names a folder, so it applies only for that folder's owner.
    IfCallerOwns(String),
}

struct Body {
    bytes: Vec<u8>,
    applies: Applies,
}

impl Body {
    fn might_apply(&self, identity_values: &[String]) -> bool {
        match &self.applies {
            Applies::Never => false,
            Applies::Perhaps => true,
            Applies::IfCallerOwns(owner) => identity_values.contains(owner),
        }
    }
}

/// A valid body of a shape, as its fields (name, JSON text), the first
/// being the one mutations aim at.
struct Valid {
    fields: Vec<(&'static str, String)>,
    applies: Applies,
}

/// JSON texts a field of a valid body never takes.
fn wrong_values(field: &str) -> &'static [&'static str] {
    match field {
        "visibility" => &[
            "1",
            "null",
            "true",
            r#"["public"]"#,
            "{}",
            r#""PUBLIC""#,
            r#""""#,
            r#""shared""#,
        ],
        "title" | "name" => &[
            "1",
            "null",
            "true",
            r#"["a"]"#,
            "{}",
            r#""""#,
            r#""  ""#,
            r#""a\nb""#,
            r#""a\u0000b""#,
        ],
        "position" => &["-1", "1.5", r#""2""#, "1000001", "true", "[]"],
        "pinned" | "archived" => &["1", "0", "null", r#""true""#, "[]", "{}"],
        "folderId" => &["1", "true", r#""""#, r#""not-a-uuid""#, "[]", "{}"],
        "chatId" => &["1", "null", r#""x""#, "[]", "true"],
        "chatIds" => &["[]", "{}", "null", "[1]", r#"["not-a-uuid"]"#, r#""x""#],
        "all" => &["false", r#""yes""#, "1", "null", "[]"],
        "messages" => &[
            "[]",
            "{}",
            r#""Hello""#,
            "null",
            "1",
            "[1]",
            r#"[{"role":"user"}]"#,
            r#"[{"role":"assistant","content":"Hi"}]"#,
        ],
        // The stand-in field of a route that reads no body.
        "x" => &["1"],
        other => panic!("the fuzzer knows no wrong values for {other}"),
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn valid(prng: &mut Prng, shape: Shape, world: &World, chat: &Named) -> Valid {
    let perhaps = |fields| Valid {
        fields,
        applies: Applies::Perhaps,
    };
    let flag = |prng: &mut Prng| prng.pick(&["true", "false"]).to_string();
    match shape {
        Shape::None => Valid {
            fields: vec![("x", "1".to_owned())],
            applies: Applies::Never,
        },
        Shape::Visibility => {
            let visibility = prng.pick(&["public", "private"]);
            perhaps(vec![("visibility", json_string(visibility))])
        }
        Shape::Title => perhaps(vec![("title", json_string("  Fuzzed title "))]),
        Shape::Pinned => perhaps(vec![("pinned", flag(prng))]),
        Shape::Archived => perhaps(vec![("archived", flag(prng))]),
        Shape::File => {
            if prng.percent(20) {
                return perhaps(vec![("folderId", "null".to_owned())]);
            }
            let folder = some_id(prng, &world.folders());
            Valid {
                fields: vec![("folderId", json_string(&folder.text))],
                applies: match folder.owner {
                    Some(owner) => Applies::IfCallerOwns(owner),
                    // Names no folder (or no UUID at all): 404 or 400.
                    None => Applies::Never,
                },
            }
        }
        Shape::NewFolder => perhaps(vec![("name", json_string("Fuzzed folder"))]),
        Shape::FolderChange => {
            let name = ("name", json_string("Renamed folder"));
            let position = ("position", prng.between(0, 3).to_string());
            perhaps(match prng.below(3) {
                0 => vec![name],
                1 => vec![position],
                _ => vec![name, position],
            })
        }
        Shape::Rating => {
            let message = some_id(prng, &world.messages()).text;
            let mut fields = vec![
                ("chatId", json_string(&chat.text)),
                ("messageId", json_string(&message)),
                ("isUpvoted", flag(prng)),
            ];
            if prng.percent(50) {
                fields.push(("comment", json_string("Fuzzed comment")));
            }
            perhaps(fields)
        }
        Shape::Turn => {
            let mut fields = vec![(
                "messages",
                r#"[{"role":"user","content":"What is 2 + 2?"}]"#.to_owned(),
            )];
            if prng.percent(50) {
                fields.push(("id", json_string(&chat.text)));
            }
            if prng.percent(30) {
                fields.push(("temporary", flag(prng)));
            }
            perhaps(fields)
        }
        Shape::BulkDelete => perhaps(if prng.percent(70) {
            let ids = [chat.text.as_str(), &some_id(prng, &world.chats()).text];
            let ids = &ids[..prng.between(1, 2)];
            let ids: Vec<String> = ids.iter().map(|id| json_string(id)).collect();
            vec![("chatIds", format!("[{}]", ids.join(",")))]
        } else {
            vec![("all", "true".to_owned())]
        }),
    }
}

/// `{"name": value, ...}`, spaced out when `spaced`.
fn render(fields: &[(&str, String)], spaced: bool) -> String {
    let (colon, comma) = if spaced {
        (" :\t", " ,\n ")
    } else {
        (":", ",")
    };
    let inner: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}{colon}{value}", json_string(name)))
        .collect();
    if spaced {
        format!("\n {{ {} }} \n", inner.join(comma))
    } else {
        format!("{{{}}}", inner.join(comma))
    }
}

/// The harmless body a draw that might change data is given instead: the
/// first field of the shape's valid body with a value it never takes.
fn refused(shape: Shape) -> Body {
    let field = match shape {
        Shape::None => "x",
        Shape::Visibility => "visibility",
        Shape::Title => "title",
        Shape::Pinned => "pinned",
        Shape::Archived => "archived",
        Shape::File => "folderId",
        Shape::NewFolder | Shape::FolderChange => "name",
        Shape::Rating => "chatId",
        Shape::Turn => "messages",
        Shape::BulkDelete => "chatIds",
    };
    Body {
        bytes: render(&[(field, wrong_values(field)[0].to_owned())], false).into_bytes(),
        applies: Applies::Never,
    }
}

fn body(prng: &mut Prng, shape: Shape, world: &World, chat: &Named) -> Body {
    let Valid { fields, applies } = valid(prng, shape, world, chat);
    let (field, _) = fields[0];
    let never = |bytes: Vec<u8>| Body {
        bytes,
        applies: Applies::Never,
    };
    match prng.below(14) {
        0 => Body {
            bytes: render(&fields, false).into_bytes(),
            applies,
        },
        1 => Body {
            bytes: render(&fields, true).into_bytes(),
            applies,
        },
        2 => Body {
            bytes: format!("\u{feff}{}", render(&fields, false)).into_bytes(),
            applies,
        },
        3 => {
            let mut twice = fields.clone();
            twice.push(fields[0].clone());
            Body {
                bytes: render(&twice, false).into_bytes(),
                applies,
            }
        }
        4 => {
            let mut mistyped = fields.clone();
            mistyped[0].1 = (*prng.pick(wrong_values(field))).to_owned();
            never(render(&mistyped, false).into_bytes())
        }
        5 => {
            let mut extra = fields.clone();
            extra.push(("extra", "1".to_owned()));
            never(render(&extra, false).into_bytes())
        }
        6 => {
            let whole = render(&fields, false);
            let value = prng
                .pick(&["null", "1", r#""public""#, "[]", "true", "{}", "[WHOLE]"])
                .replace("WHOLE", &whole);
            never(value.into_bytes())
        }
        7 => {
            let whole = render(&fields, false);
            let cut = prng.below(whole.len());
            never(whole.as_bytes()[..cut].to_vec())
        }
        8 => never(deeply_nested(prng, field)),
        9 => {
            let huge = "a".repeat(prng.between(100_000, 1_000_000));
            never(render(&[(field, json_string(&huge))], false).into_bytes())
        }
        10 => {
            let len = 1024 * 1024 + prng.between(1, 4096);
            never(if prng.percent(50) {
                vec![b'{'; len]
            } else {
                prng.bytes(len)
            })
        }
        11 => {
            let mut bytes = format!("{{{}:\"pub", json_string(field)).into_bytes();
            bytes.extend_from_slice(b"\xfflic\"}");
            never(bytes)
        }
        12 => {
            let len = prng.between(1, 512);
            never(prng.bytes(len))
        }
        _ => never(Vec::new()),
    }
}

fn deeply_nested(prng: &mut Prng, field: &str) -> Vec<u8> {
    // Up to about 1 MiB either way.
    let key = format!("{{{}:", json_string(field));
    let (open, close, depth) = if prng.percent(50) {
        ("[", "]", prng.between(1_000, 400_000))
    } else {
        (
            key.as_str(),
            "}",
            prng.between(1_000, 1_000_000 / key.len()),
        )
    };
    let closed = prng.percent(50);
    let mut text = format!("{key}{}", open.repeat(depth));
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

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::http::routes::find;
    use chat_tests::contract::seed::Visibility;

    fn chat(owner: &str) -> SeededChat {
        SeededChat {
            id: Uuid::new_v4(),
            owner: owner.to_owned(),
            title: "a chat".to_owned(),
            visibility: Visibility::Private,
            message_ids: vec![Uuid::new_v4(), Uuid::new_v4()],
        }
    }

    /// Each public route of the table is placed in [`classify`] and gets
    /// requests that the product's own routing sends to it.
    #[test]
    fn every_public_route_is_fuzzed() {
        let unplaced: Vec<String> = ROUTES
            .iter()
            .filter(|route| route.public && classify(route.handler).is_none())
            .map(|route| format!("{} {}", route.method, route.path))
            .collect();
        assert!(
            unplaced.is_empty(),
            "not fuzzed: {unplaced:?}; say in `classify` what it takes for them to \
             change data and which body they read"
        );
        let world = World {
            owner: "owner@contract.test".to_owned(),
            stranger: "stranger@contract.test".to_owned(),
            owner_chats: [chat("owner@contract.test"), chat("owner@contract.test")],
            stranger_chat: chat("stranger@contract.test"),
            owner_folder: Uuid::new_v4(),
            stranger_folder: Uuid::new_v4(),
            admin_token: None,
        };
        let mut reached: Vec<(String, Handler)> = Vec::new();
        for index in 0..3_000 {
            let request = generate(&world, 1, index);
            let path = request.path_and_query.split('?').next().unwrap_or("");
            if let Ok(found) = find(request.method.as_str(), path, Some) {
                reached.push((request.method.to_string(), found.handler));
            }
        }
        for route in ROUTES.iter().filter(|route| route.public) {
            assert!(
                reached.contains(&(route.method.to_owned(), route.handler)),
                "no request reached {} {}",
                route.method,
                route.path
            );
        }
    }
}
