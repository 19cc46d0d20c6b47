//! The route table: every route the app serves, once, as method + path →
//! component → handler. `spin.toml` sends whole path prefixes to a
//! component (`/api/chat/...` reaches history whatever follows), so each
//! component finds the request's route here ([`find`]): a path of no known
//! shape is a 404, a known path with another method a 405 naming the ones
//! it takes, a malformed id a 400 naming the id. `tests/integration/routes.rs`
//! holds this table against `spin.toml` (each route reaches its component)
//! and `openapi.yaml` (the same methods and paths, no more, no fewer).
//!
//! A path is written as the API documents it: `{name}` is any one non-empty
//! segment, `{name:uuid}` one that must be a UUID, and `{name...}` the rest
//! of the path, one or more non-empty segments (an asset in a folder).
//!
//! Each route also says what body it takes ([`BodyRule`]): JSON of at most
//! 1 MiB, or (an import) a file of its own size limit. The body is refused
//! by that rule before the route is even looked for ([`body_rule`]), so an
//! oversized or cross-site body is a 413 or 403 wherever it is sent.

use crate::ApiError;
use crate::http::validate::{abbreviate, parse_uuid};
use uuid::Uuid;

/// One route: the method and path it answers and the handler that does.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: Handler,
    /// Served to the world (listed in `openapi.yaml`), or only to the app
    /// itself (reached by service chaining, never by a public route).
    pub public: bool,
    pub body: BodyRule,
}

/// The most bytes a JSON body may have: every route's limit but an
/// import's.
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

/// What body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// JSON of at most [`MAX_JSON_BODY_BYTES`] (a route that reads no body
    /// is held to it too, so the limit is the same everywhere).
    Json,
    /// A file as it is (`POST /api/import`), of at most
    /// [`crate::transfer::MAX_IMPORT_BYTES`] and of any media type a
    /// cross-site form cannot send (see `crate::http::csrf`).
    File,
}

impl BodyRule {
    pub const fn max_bytes(self) -> usize {
        match self {
            Self::Json => MAX_JSON_BODY_BYTES,
            Self::File => crate::transfer::MAX_IMPORT_BYTES,
        }
    }

    /// The 413 for a body over [`Self::max_bytes`].
    pub fn too_large(self) -> ApiError {
        match self {
            Self::Json => ApiError::payload_too_large(format!(
                "The request body is larger than the limit of {} MiB.",
                MAX_JSON_BODY_BYTES >> 20
            )),
            Self::File => crate::transfer::too_large("The file"),
        }
    }
}

/// Which component serves a route, and which of its handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    History(HistoryHandler),
    Messages(MessagesHandler),
    Chat(ChatHandler),
    Feedback(FeedbackHandler),
    Transfer(TransferHandler),
    Admin(AdminHandler),
    Ui(UiHandler),
}

/// The history component: the sidebar and the owner's changes to a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryHandler {
    Session,
    List,
    Delete,
    SetVisibility,
    Rename,
    DeleteMany,
    SetPinned,
    SetArchived,
    File,
    Folders,
    CreateFolder,
    ChangeFolder,
    DeleteFolder,
}

/// The messages component: a chat's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesHandler {
    Page,
}

/// The chat-stream component: sending a message and the reply it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatHandler {
    Send,
    Stop,
    Regenerate,
    Follow,
}

/// The feedback component: ratings, and delivering them to MLflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackHandler {
    Rate,
    List,
    Withdraw,
    /// `crate::background`'s runs, on the app's own request.
    BackgroundWork,
}

/// The transfer component: export and import of one's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferHandler {
    /// All of the caller's chats, as JSON Lines.
    Export,
    /// One chat as Markdown.
    ExportChat,
    Import,
}

/// The admin-schema component: the operator's schema routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminHandler {
    SchemaStatus,
    Migrate,
}

/// The ui component: the page (for a new chat or a chat's address) and its
/// assets; `HEAD` answers the same headers without the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiHandler {
    Page,
    Asset,
}

impl Handler {
    /// The component (its id in `spin.toml`) that serves the handler.
    pub fn component(self) -> &'static str {
        match self {
            Self::History(_) => "history",
            Self::Messages(_) => "messages",
            Self::Chat(_) => "chat-stream",
            Self::Feedback(_) => "feedback",
            Self::Transfer(_) => "transfer",
            Self::Admin(_) => "admin-schema",
            Self::Ui(_) => "ui",
        }
    }
}

const fn public(method: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
        public: true,
        body: BodyRule::Json,
    }
}

/// Every route, grouped by component.
pub const ROUTES: &[Route] = &[
    public(
        "GET",
        "/api/session",
        Handler::History(HistoryHandler::Session),
    ),
    public(
        "GET",
        "/api/history",
        Handler::History(HistoryHandler::List),
    ),
    public(
        "DELETE",
        "/api/chat/{chatId:uuid}",
        Handler::History(HistoryHandler::Delete),
    ),
    public(
        "PATCH",
        "/api/chat/{chatId:uuid}/visibility",
        Handler::History(HistoryHandler::SetVisibility),
    ),
    public(
        "PATCH",
        "/api/chat/{chatId:uuid}/title",
        Handler::History(HistoryHandler::Rename),
    ),
    public(
        "POST",
        "/api/history/delete",
        Handler::History(HistoryHandler::DeleteMany),
    ),
    public(
        "PATCH",
        "/api/chat/{chatId:uuid}/pinned",
        Handler::History(HistoryHandler::SetPinned),
    ),
    public(
        "PATCH",
        "/api/chat/{chatId:uuid}/archived",
        Handler::History(HistoryHandler::SetArchived),
    ),
    public(
        "PATCH",
        "/api/chat/{chatId:uuid}/folder",
        Handler::History(HistoryHandler::File),
    ),
    public(
        "GET",
        "/api/folders",
        Handler::History(HistoryHandler::Folders),
    ),
    public(
        "POST",
        "/api/folders",
        Handler::History(HistoryHandler::CreateFolder),
    ),
    public(
        "PATCH",
        "/api/folders/{folderId:uuid}",
        Handler::History(HistoryHandler::ChangeFolder),
    ),
    public(
        "DELETE",
        "/api/folders/{folderId:uuid}",
        Handler::History(HistoryHandler::DeleteFolder),
    ),
    public(
        "GET",
        "/api/messages/{chatId:uuid}",
        Handler::Messages(MessagesHandler::Page),
    ),
    public("POST", "/api/chat", Handler::Chat(ChatHandler::Send)),
    public(
        "POST",
        "/api/chat/{chatId:uuid}/stop",
        Handler::Chat(ChatHandler::Stop),
    ),
    public(
        "POST",
        "/api/chat/{chatId:uuid}/regenerate",
        Handler::Chat(ChatHandler::Regenerate),
    ),
    public(
        "GET",
        "/api/chat/{chatId:uuid}/stream",
        Handler::Chat(ChatHandler::Follow),
    ),
    public(
        "PUT",
        "/api/feedback",
        Handler::Feedback(FeedbackHandler::Rate),
    ),
    public(
        "GET",
        "/api/feedback/{chatId:uuid}",
        Handler::Feedback(FeedbackHandler::List),
    ),
    public(
        "DELETE",
        "/api/feedback/{chatId:uuid}/{messageId:uuid}",
        Handler::Feedback(FeedbackHandler::Withdraw),
    ),
    Route {
        method: "POST",
        path: crate::background::WORK_PATH,
        handler: Handler::Feedback(FeedbackHandler::BackgroundWork),
        public: false,
        body: BodyRule::Json,
    },
    public(
        "GET",
        "/api/export",
        Handler::Transfer(TransferHandler::Export),
    ),
    public(
        "GET",
        "/api/chat/{chatId:uuid}/export",
        Handler::Transfer(TransferHandler::ExportChat),
    ),
    Route {
        body: BodyRule::File,
        ..public(
            "POST",
            "/api/import",
            Handler::Transfer(TransferHandler::Import),
        )
    },
    public(
        "GET",
        "/admin/schema",
        Handler::Admin(AdminHandler::SchemaStatus),
    ),
    public(
        "POST",
        "/admin/schema/migrate",
        Handler::Admin(AdminHandler::Migrate),
    ),
    public("GET", "/", Handler::Ui(UiHandler::Page)),
    public("HEAD", "/", Handler::Ui(UiHandler::Page)),
    public("GET", "/chat/{chatId}", Handler::Ui(UiHandler::Page)),
    public("HEAD", "/chat/{chatId}", Handler::Ui(UiHandler::Page)),
    public("GET", "/assets/{asset...}", Handler::Ui(UiHandler::Asset)),
    public("HEAD", "/assets/{asset...}", Handler::Ui(UiHandler::Asset)),
];

/// The route a request takes, with its ids already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<H> {
    pub handler: H,
    ids: Ids,
}

/// The ids a route's path carries, each checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ids {
    chat: Option<Uuid>,
    message: Option<Uuid>,
    folder: Option<Uuid>,
}

impl<H> Found<H> {
    /// The path's `{chatId:uuid}`.
    pub fn chat_id(&self) -> Result<Uuid, ApiError> {
        self.ids.chat.ok_or_else(|| missing(CHAT_ID))
    }

    /// The path's `{messageId:uuid}`.
    pub fn message_id(&self) -> Result<Uuid, ApiError> {
        self.ids.message.ok_or_else(|| missing(MESSAGE_ID))
    }

    /// The path's `{folderId:uuid}`.
    pub fn folder_id(&self) -> Result<Uuid, ApiError> {
        self.ids.folder.ok_or_else(|| missing(FOLDER_ID))
    }
}

const CHAT_ID: &str = "chatId";
const MESSAGE_ID: &str = "messageId";
const FOLDER_ID: &str = "folderId";

/// A handler asked for an id its route's path does not carry: the table
/// and the handler disagree, which is the server's fault.
fn missing(name: &str) -> ApiError {
    ApiError::internal(format!("The route has no {name}."))
}

/// The route for `method` and `path` among those `own` keeps (a
/// component's own handlers, narrowed to their type): a route of another
/// component is no route here, so a path `spin.toml` sends elsewhere, or an
/// internal route asked for from outside, is a 404 that tells nothing of it.
/// Whole segments match exactly: a trailing slash, an empty segment or an
/// extra one is no route (404). The ids are checked before the method, so
/// a malformed id is a 400 whatever the method.
pub fn find<Own>(
    method: &str,
    path: &str,
    own: impl Fn(Handler) -> Option<Own>,
) -> Result<Found<Own>, ApiError> {
    let Some(segments) = request_segments(path) else {
        return Err(no_route(path));
    };
    let mut same_path = ROUTES
        .iter()
        .filter_map(|route| Some((route, own(route.handler)?)))
        .filter(|(route, _)| shape_matches(route.path, &segments))
        .peekable();
    let Some((first, _)) = same_path.peek() else {
        return Err(no_route(path));
    };
    let ids = ids(first.path, &segments)?;
    let mut allowed = Vec::new();
    for (route, handler) in same_path {
        if route.method == method {
            return Ok(Found { handler, ids });
        }
        allowed.push(route.method);
    }
    Err(ApiError::method_not_allowed(allowed.join(", ")))
}

/// The body rule of the route `method` and `path` name, whichever
/// component serves it; JSON's for a path or method no route serves.
pub fn body_rule(method: &str, path: &str) -> BodyRule {
    let segments = request_segments(path).unwrap_or_default();
    ROUTES
        .iter()
        .find(|route| route.method == method && shape_matches(route.path, &segments))
        .map_or(BodyRule::Json, |route| route.body)
}

/// A request's path as segments; `None` when it does not start with `/`.
fn request_segments(path: &str) -> Option<Vec<&str>> {
    match path.strip_prefix('/')? {
        "" => Some(Vec::new()),
        rest => Some(rest.split('/').collect()),
    }
}

/// The 404 for a path no route serves.
pub fn no_route(path: &str) -> ApiError {
    ApiError::not_found(format!("There is nothing at {}.", abbreviate(path)))
}

/// One segment of a route's path.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Literal(&'a str),
    /// `{name}`: any one non-empty segment.
    Any(&'a str),
    /// `{name:uuid}`.
    Uuid(&'a str),
    /// `{name...}`: the rest of the path, one or more non-empty segments.
    Rest(&'a str),
}

/// The segments of a route's path, as the table writes it.
pub fn segments(path: &'static str) -> impl Iterator<Item = Segment<'static>> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            match segment
                .strip_prefix('{')
                .and_then(|name| name.strip_suffix('}'))
            {
                Some(name) => {
                    if let Some(name) = name.strip_suffix(":uuid") {
                        Segment::Uuid(name)
                    } else if let Some(name) = name.strip_suffix("...") {
                        Segment::Rest(name)
                    } else {
                        Segment::Any(name)
                    }
                }
                None => Segment::Literal(segment),
            }
        })
}

fn shape_matches(path: &'static str, request: &[&str]) -> bool {
    let mut pattern = segments(path);
    let mut request = request.iter();
    loop {
        match (pattern.next(), request.next()) {
            (None, None) => return true,
            (Some(Segment::Literal(literal)), Some(segment)) if literal == *segment => {}
            (Some(Segment::Any(_) | Segment::Uuid(_)), Some(segment)) if !segment.is_empty() => {}
            (Some(Segment::Rest(_)), Some(segment)) if !segment.is_empty() => {
                return request.all(|segment| !segment.is_empty());
            }
            _ => return false,
        }
    }
}

fn ids(path: &'static str, request: &[&str]) -> Result<Ids, ApiError> {
    let mut ids = Ids::default();
    for (segment, value) in segments(path).zip(request) {
        if let Segment::Uuid(name) = segment {
            let id = Some(parse_uuid(name, value)?);
            match name {
                CHAT_ID => ids.chat = id,
                MESSAGE_ID => ids.message = id,
                FOLDER_ID => ids.folder = id,
                _ => return Err(missing(name)),
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";
    const OTHER: &str = "00000000-0000-4000-8000-000000000001";

    fn chat_id() -> Uuid {
        Uuid::parse_str(CHAT).unwrap()
    }

    #[test]
    fn every_route_is_found_by_its_own_method_and_path() {
        for route in ROUTES {
            let path = route
                .path
                .replace("{chatId:uuid}", CHAT)
                .replace("{messageId:uuid}", OTHER)
                .replace("{folderId:uuid}", OTHER)
                .replace("{chatId}", "anything")
                .replace("{asset...}", "vendor/marked.esm.js");
            let found = find(route.method, &path, Some).unwrap();
            assert_eq!(found.handler, route.handler, "{} {path}", route.method);
        }
    }

    #[test]
    fn only_the_import_takes_a_file_and_every_other_request_json() {
        for route in ROUTES {
            let expected = match route.handler {
                Handler::Transfer(TransferHandler::Import) => BodyRule::File,
                _ => BodyRule::Json,
            };
            assert_eq!(route.body, expected, "{} {}", route.method, route.path);
        }
        assert_eq!(body_rule("POST", "/api/import"), BodyRule::File);
        for (method, path) in [
            ("PUT", "/api/import"),
            ("POST", "/api/import/"),
            ("POST", "/api/chat"),
            ("POST", "/nowhere"),
            ("POST", "api/import"),
            ("GET", "/"),
        ] {
            assert_eq!(body_rule(method, path), BodyRule::Json, "{method} {path}");
        }
        assert_eq!(BodyRule::Json.max_bytes(), 1 << 20);
        assert_eq!(BodyRule::File.max_bytes(), 64 << 20);
        assert_eq!(
            BodyRule::Json.too_large().message,
            "The request body is larger than the limit of 1 MiB."
        );
        assert_eq!(BodyRule::File.too_large().status, 413);
    }

    #[test]
    fn ids_come_from_their_segments() {
        let found = find("DELETE", &format!("/api/feedback/{CHAT}/{OTHER}"), Some).unwrap();
        assert_eq!(found.chat_id().unwrap(), chat_id());
        assert_eq!(found.message_id().unwrap().to_string(), OTHER);
        let found = find("GET", "/api/history", Some).unwrap();
        assert_eq!(found.chat_id().unwrap_err().status, 500);
    }

    /// A path's literals, with every parameter alike.
    fn shape(path: &'static str) -> impl Iterator<Item = Option<&'static str>> {
        segments(path).map(|segment| match segment {
            Segment::Literal(literal) => Some(literal),
            Segment::Any(_) | Segment::Uuid(_) | Segment::Rest(_) => None,
        })
    }

    #[test]
    fn no_two_routes_share_a_method_and_a_shape() {
        for (i, route) in ROUTES.iter().enumerate() {
            for other in &ROUTES[i + 1..] {
                let same_shape = shape(route.path).eq(shape(other.path));
                assert!(
                    !(same_shape && route.method == other.method),
                    "{} {} and {}",
                    route.method,
                    route.path,
                    other.path
                );
            }
        }
    }

    #[test]
    fn ids_in_any_letter_case_name_the_same_chat() {
        let found = find(
            "GET",
            &format!("/api/messages/{}", CHAT.to_uppercase()),
            Some,
        )
        .unwrap();
        assert_eq!(found.chat_id().unwrap(), chat_id());
    }

    #[test]
    fn a_malformed_chat_id_is_400_naming_it_whatever_the_method() {
        for (method, path) in [
            ("DELETE", "/api/chat/not-a-uuid"),
            ("PATCH", "/api/chat/123/visibility"),
            ("POST", "/api/chat/123/visibility"),
            ("GET", "/api/messages/123e4567e89b12d3a456426614174000"),
            (
                "GET",
                "/api/messages/%7B123e4567-e89b-12d3-a456-426614174000%7D",
            ),
        ] {
            let error = find(method, path, Some).unwrap_err();
            assert_eq!(error.status, 400, "{path}");
            assert!(error.message.starts_with("chatId must be a UUID"), "{path}");
        }
    }

    #[test]
    fn a_malformed_message_id_is_400_naming_it() {
        let error = find("DELETE", &format!("/api/feedback/{CHAT}/not-a-uuid"), Some).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.starts_with("messageId must be a UUID"));
    }

    #[test]
    fn another_method_is_405_naming_every_method_the_path_takes() {
        let error = find("POST", "/api/history", Some).unwrap_err();
        assert_eq!((error.status, error.allow.as_deref()), (405, Some("GET")));
        let error = find("DELETE", "/", Some).unwrap_err();
        assert_eq!(
            (error.status, error.allow.as_deref()),
            (405, Some("GET, HEAD"))
        );
    }

    #[test]
    fn another_components_route_is_404_whatever_the_method() {
        let ui = |handler| matches!(handler, Handler::Ui(_)).then_some(handler);
        for method in ["GET", "POST"] {
            let error = find(method, crate::background::WORK_PATH, ui).unwrap_err();
            assert_eq!(
                error.status, 404,
                "{method}: an internal route stays hidden"
            );
            let error = find(method, "/api/history", ui).unwrap_err();
            assert_eq!(error.status, 404, "{method}: another component's route");
        }
    }

    #[test]
    fn other_shapes_are_404() {
        for path in [
            "",
            "/api",
            "/api/",
            "/api/chat/",
            "/api/chat//visibility",
            &format!("/api/chat/{CHAT}/"),
            &format!("/api/chat/{CHAT}/name"),
            &format!("/api/chat/{CHAT}/visibility/x"),
            "/api/messages",
            "/api/messages/",
            &format!("/api/messages/{CHAT}/extra"),
            "/api/feedback/",
            &format!("/api/feedback/{CHAT}/"),
            &format!("/api/feedback/{CHAT}/{CHAT}/x"),
            "/api/history/",
            "/api/sessions",
            "/admin",
            "/admin/schema/",
            "/chat/",
            "/chat/a/b",
            "/assets",
            "/assets/",
            "/assets/vendor/",
            "/assets//app.js",
        ] {
            let error = find("GET", path, Some).unwrap_err();
            assert_eq!(error.status, 404, "{path}");
        }
    }

    #[test]
    fn no_route_repeats_only_the_start_of_a_long_path() {
        let path = format!("/api/{}", "x".repeat(10_000));
        let error = no_route(&path);
        assert_eq!(error.status, 404);
        assert!(error.message.len() < 100, "{}", error.message);
    }
}
