//! The ui component: the web UI, plain HTML, CSS and JavaScript modules
//! compiled into the component, so the page needs nothing but this app.
//!
//! `/` and the deep links `/chat/<id>` are the page itself (the script reads
//! the chat id from the address); `/assets/<name>` are its files. Every
//! answer carries an ETag and `no-cache`: browsers revalidate, and a
//! revalidation of an unchanged file is a bodiless 304.

use bytes::Bytes;
use chat_domain::http::routes::{Found, Handler, UiHandler, no_route};
use chat_guest::Failure;
use chat_guest::request::Request;
use chat_guest::response::HttpResponse;
use chat_guest::router;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{Empty, Full};
use spin_sdk::http::box_body;

/// A file of the UI, with its entity tag computed at compile time.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

impl Asset {
    const fn new(content_type: &'static str, body: &'static [u8]) -> Self {
        Self {
            content_type,
            body,
            etag: fnv1a(body),
        }
    }
}

const PAGE: Asset = Asset::new(HTML, include_bytes!("../assets/index.html"));

/// An entry of [`ASSETS`]: the file `assets/<name>`, served as `content_type`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            Asset::new($content_type, include_bytes!(concat!("../assets/", $name))),
        )
    };
}

/// The files under `/assets/`, by name.
const ASSETS: [(&str, Asset); 11] = [
    asset!("style.css", CSS),
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("sidebar.js", JAVASCRIPT),
    asset!("chat.js", JAVASCRIPT),
    asset!("transfer.js", JAVASCRIPT),
    asset!("dom.js", JAVASCRIPT),
    asset!("markdown.js", JAVASCRIPT),
    // Vendored, unchanged (assets/vendor/README.md).
    asset!("vendor/marked.esm.js", JAVASCRIPT),
    asset!("vendor/purify.es.mjs", JAVASCRIPT),
    asset!("icon.svg", SVG),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The page may load and call nothing but this app.
const POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'; object-src 'none'";

/// Every path no other component's route claims reaches this component
/// (`spin.toml`'s catch-all), so its 404 is the app's.
#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Ui(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, route).await
}

async fn route(request: Request, found: Found<UiHandler>) -> Result<HttpResponse, Failure> {
    let path = request.uri().path();
    let asset = match found.handler {
        UiHandler::Page => &PAGE,
        UiHandler::Asset => find_asset(path).ok_or_else(|| no_route(path))?,
    };
    Ok(answer(asset, &request, request.method() == Method::HEAD))
}

/// The asset `/assets/<name>` names.
fn find_asset(path: &str) -> Option<&'static Asset> {
    let name = path.strip_prefix("/assets/")?;
    ASSETS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, asset)| asset)
}

fn answer(asset: &'static Asset, request: &Request, head: bool) -> HttpResponse {
    let etag = format!("\"{:016x}\"", asset.etag);
    let unchanged = request
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate == etag);
    let (status, body) = match (unchanged, head) {
        (true, _) => (StatusCode::NOT_MODIFIED, None),
        (false, true) => (StatusCode::OK, None),
        (false, false) => (StatusCode::OK, Some(asset.body)),
    };
    let mut response = match body {
        Some(bytes) => Response::new(box_body(Full::new(Bytes::from_static(bytes)))),
        None => Response::new(box_body(Empty::new())),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        ETAG,
        HeaderValue::from_str(&etag).expect("hex digits in quotes"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if status == StatusCode::OK {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    }
    response
}

/// FNV-1a, 64 bits: a stable fingerprint of a file, cheap enough to compute
/// at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        index += 1;
    }
    hash
}
