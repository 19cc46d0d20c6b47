//! Reading requests: headers, the caller's identity, methods and bodies.

use crate::config;
use crate::failure::Failure;
use bytes::Bytes;
use chat_domain::ApiError;
use chat_domain::http::csrf;
use chat_domain::http::routes::{self, BodyRule, MAX_JSON_BODY_BYTES};
use chat_domain::identity::gateway::{self, GatewaySecret};
use chat_domain::identity::{self, Identity};
use futures::future::select;
use http_body_util::BodyExt;
use spin_sdk::http::{HeaderMap, Method};
use spin_sdk::wasip3::http_compat::IncomingRequestBody;
use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

/// A request as the routes see it: its body is a [`RequestBody`].
pub type Request = http::Request<RequestBody>;

/// A request's body, which a route reads at most once with [`read_body`].
/// What the route leaves unread is received and discarded (see
/// [`UnreadBody::discard`]) before the answer goes out: a runtime whose
/// component drops a body the client is still sending closes the connection
/// (Spin does), and the client then sees a broken pipe instead of the answer,
/// or loses the next request on that connection.
pub struct RequestBody {
    body: Rc<RefCell<Option<IncomingRequestBody>>>,
    /// What the request's route takes (`routes::body_rule`).
    rule: BodyRule,
    /// Why a body is refused if one turns up although the request announced
    /// none: a chunked body. Runtimes keep `Transfer-Encoding` from
    /// components, so [`admit`] cannot see such a body coming.
    refused_if_present: Option<ApiError>,
}

/// The serving side's hold on a [`RequestBody`], to discard what is left.
pub struct UnreadBody {
    body: Rc<RefCell<Option<IncomingRequestBody>>>,
    /// Whether the request said it has a body at all: a bodiless request
    /// (most GETs) costs no read.
    announced: bool,
    rule: BodyRule,
}

/// How much more than its route takes at most of a body nobody read is
/// still received and discarded, and for how long, before the connection
/// is given up.
const UNREAD_BODY_BEYOND_LIMIT: usize = 16 * MAX_JSON_BODY_BYTES;
const UNREAD_BODY_PATIENCE: Duration = Duration::from_secs(10);

/// The request with its body behind a [`RequestBody`], and the hold that
/// discards whatever the route does not read.
pub fn split_body(request: spin_sdk::http::Request) -> (Request, UnreadBody) {
    let rule = routes::body_rule(request.method().as_str(), request.uri().path());
    let headers = request.headers();
    let declared_length = header_text(headers, http::header::CONTENT_LENGTH.as_str());
    let announced = headers.contains_key(http::header::TRANSFER_ENCODING)
        || declared_length.is_some_and(|length| length.trim() != "0");
    let refused_if_present = match declared_length {
        None if !announced => refuse_cross_site_write(&request, true, rule).err(),
        _ => None,
    };
    let shared = Rc::new(RefCell::new(None));
    let request = request.map(|body| {
        *shared.borrow_mut() = Some(body);
        RequestBody {
            body: Rc::clone(&shared),
            rule,
            refused_if_present,
        }
    });
    let unread = UnreadBody {
        body: shared,
        announced,
        rule,
    };
    (request, unread)
}

impl UnreadBody {
    /// Whether the request announced a body (a `Content-Length` above zero or
    /// a `Transfer-Encoding`).
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Receives and drops what is left of the body, up to a limit.
    pub async fn discard(self) {
        let Some(mut body) = self.body.borrow_mut().take() else {
            return;
        };
        if !self.announced {
            return;
        }
        let drain = async {
            let mut received = 0;
            while let Some(Ok(frame)) = body.frame().await {
                received += frame.data_ref().map_or(0, Bytes::len);
                if received > self.rule.max_bytes() + UNREAD_BODY_BEYOND_LIMIT {
                    return;
                }
            }
        };
        let _ = select(
            pin!(drain),
            pin!(spin_sdk::time::sleep(UNREAD_BODY_PATIENCE)),
        )
        .await;
    }
}

/// A header's first value as text. A value that is not UTF-8 counts as absent:
/// gateway headers always are, so such a value cannot come from the gateway.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
}

/// The caller, from the gateway headers or the `dev_user_email` variable,
/// once the request has shown the gateway's shared secret when one is
/// configured (see [`gateway`]).
pub async fn identify(headers: &HeaderMap) -> Result<Identity, Failure> {
    let secret_header = config::variable(gateway::variables::HEADER).await?;
    let secret = config::variable(gateway::variables::SECRET).await?;
    if let Some(check) = GatewaySecret::from_settings(secret_header.as_deref(), secret.as_deref())?
    {
        check.verify(header_text(headers, check.header()))?;
    }
    let dev_user_email = config::variable(config::DEV_USER_EMAIL).await?;
    Ok(identity::resolve(
        |name| header_text(headers, name),
        dev_user_email.as_deref(),
    )?)
}

/// A 405 naming `allowed` unless the request used that method.
pub fn allow_only(method: &Method, allowed: &'static str) -> Result<(), ApiError> {
    if method.as_str() == allowed {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allowed))
    }
}

/// The length `content-length` announces, if it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header_text(headers, http::header::CONTENT_LENGTH.as_str())
        .and_then(|length| length.trim().parse::<u64>().ok())
}

/// A 413 when `content-length` announces a body over what `rule` allows.
/// Every request is checked, also on routes that never read their body, so
/// the limit is the same everywhere and costs nothing to enforce.
pub fn refuse_declared_oversized_body(headers: &HeaderMap, rule: BodyRule) -> Result<(), ApiError> {
    if declared_length(headers).is_some_and(|length| length > rule.max_bytes() as u64) {
        return Err(rule.too_large());
    }
    Ok(())
}

/// What every route refuses before it runs: a declared oversized body (413),
/// and a cross-site write or a body of a type its route does not take (403,
/// 415; see [`csrf`]).
pub fn admit(request: &Request, unread: &UnreadBody) -> Result<(), ApiError> {
    refuse_declared_oversized_body(request.headers(), unread.rule)?;
    refuse_cross_site_write(request, unread.announced(), unread.rule)
}

/// [`csrf::check`] on a request.
fn refuse_cross_site_write<B>(
    request: &http::Request<B>,
    has_body: bool,
    rule: BodyRule,
) -> Result<(), ApiError> {
    let headers = request.headers();
    // wasi:http hands a component the `Host` as the URI's authority only.
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str());
    csrf::check(
        request.method().as_str(),
        has_body,
        rule,
        |name| match header_text(headers, name) {
            None if name == csrf::headers::HOST => authority,
            value => value,
        },
    )
}

/// The whole body, refused with a 413 once it exceeds what its route takes
/// ([`BodyRule::max_bytes`]): up front when `content-length` says so,
/// otherwise as soon as the bytes read pass the limit, so an oversized body
/// is never buffered whole (the rest is discarded before the answer goes
/// out). A body nobody announced is refused if [`admit`] would have refused
/// it (see [`RequestBody::refused_if_present`]).
pub async fn read_body(headers: &HeaderMap, request_body: RequestBody) -> Result<Bytes, ApiError> {
    let rule = request_body.rule;
    let max_bytes = rule.max_bytes();
    refuse_declared_oversized_body(headers, rule)?;
    let mut slot = request_body.body.borrow_mut();
    let Some(body) = slot.as_mut() else {
        return Ok(Bytes::new());
    };
    // Room for what was announced, so a large file (an import) is not
    // copied over and over as it grows.
    let announced = declared_length(headers).map_or(0, |length| length as usize);
    let mut collected = Vec::with_capacity(announced);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            crate::log::failure("reading a request body", &format!("{error:?}"));
            ApiError::bad_request("The request body could not be read completely.")
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > max_bytes {
                return Err(rule.too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    *slot = None;
    match request_body.refused_if_present {
        Some(refusal) if !collected.is_empty() => Err(refusal),
        _ => Ok(Bytes::from(collected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_sdk::http::HeaderValue;

    #[test]
    fn header_text_reads_utf8_and_skips_other_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-email",
            HeaderValue::from_static("ada@example.com"),
        );
        headers.insert(
            "x-forwarded-user",
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        assert_eq!(
            header_text(&headers, "X-Forwarded-Email"),
            Some("ada@example.com")
        );
        assert_eq!(header_text(&headers, "x-forwarded-user"), None);
        assert_eq!(header_text(&headers, "x-missing"), None);
    }

    #[test]
    fn allow_only_names_the_allowed_method() {
        assert!(allow_only(&Method::GET, "GET").is_ok());
        let error = allow_only(&Method::POST, "GET").unwrap_err();
        assert_eq!(error.status, 405);
        assert_eq!(error.allow.as_deref(), Some("GET"));
    }

    #[test]
    fn a_declared_body_over_the_limit_is_413() {
        let with_length = |length: usize, rule| {
            let mut headers = HeaderMap::new();
            headers.insert("content-length", HeaderValue::from(length));
            refuse_declared_oversized_body(&headers, rule)
        };
        assert!(refuse_declared_oversized_body(&HeaderMap::new(), BodyRule::Json).is_ok());
        assert!(with_length(0, BodyRule::Json).is_ok());
        assert!(with_length(MAX_JSON_BODY_BYTES, BodyRule::Json).is_ok());
        let error = with_length(MAX_JSON_BODY_BYTES + 1, BodyRule::Json).unwrap_err();
        assert_eq!(error.status, 413);
        assert_eq!(
            error.message,
            "The request body is larger than the limit of 1 MiB."
        );
        // A file (an import) has a limit of its own.
        let file_limit = BodyRule::File.max_bytes();
        assert!(with_length(file_limit, BodyRule::File).is_ok());
        let error = with_length(file_limit + 1, BodyRule::File).unwrap_err();
        assert_eq!(error.status, 413);
        assert!(error.message.contains("64 MiB"), "{}", error.message);
    }
}
