//! Reading requests: headers, the caller's identity, methods and bodies.

use crate::config;
use crate::failure::Failure;
use bytes::Bytes;
use chat_domain::ApiError;
use chat_domain::http::csrf;
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

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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
}

/// How much of a body nobody read is still received and discarded, and for
/// how long, before the connection is given up.
const UNREAD_BODY_LIMIT: usize = 16 * MAX_BODY_BYTES;
const UNREAD_BODY_PATIENCE: Duration = Duration::from_secs(10);

/// The request with its body behind a [`RequestBody`], and the hold that
/// discards whatever the route does not read.
pub fn split_body(request: spin_sdk::http::Request) -> (Request, UnreadBody) {
    let headers = request.headers();
    let declared_length = header_text(headers, http::header::CONTENT_LENGTH.as_str());
    let announced = headers.contains_key(http::header::TRANSFER_ENCODING)
        || declared_length.is_some_and(|length| length.trim() != "0");
    let refused_if_present = match declared_length {
        None if !announced => refuse_cross_site_write(&request, true).err(),
        _ => None,
    };
    let shared = Rc::new(RefCell::new(None));
    let request = request.map(|body| {
        *shared.borrow_mut() = Some(body);
        RequestBody {
            body: Rc::clone(&shared),
            refused_if_present,
        }
    });
    let unread = UnreadBody {
        body: shared,
        announced,
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
                if received > UNREAD_BODY_LIMIT {
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

/// A 413 when `content-length` announces a body over [`MAX_BODY_BYTES`].
/// Every request is checked, also on routes that never read their body, so
/// the limit is the same everywhere and costs nothing to enforce.
pub fn refuse_declared_oversized_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = header_text(headers, http::header::CONTENT_LENGTH.as_str())
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(body_too_large());
    }
    Ok(())
}

/// What every route refuses before it runs: a declared oversized body (413),
/// and a cross-site or non-JSON write (403, 415; see [`csrf`]).
pub fn admit(request: &Request, unread: &UnreadBody) -> Result<(), ApiError> {
    refuse_declared_oversized_body(request.headers())?;
    refuse_cross_site_write(request, unread.announced())
}

/// [`csrf::check`] on a request.
fn refuse_cross_site_write<B>(request: &http::Request<B>, has_body: bool) -> Result<(), ApiError> {
    let headers = request.headers();
    // wasi:http hands a component the `Host` as the URI's authority only.
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str());
    csrf::check(
        request.method().as_str(),
        has_body,
        |name| match header_text(headers, name) {
            None if name == csrf::headers::HOST => authority,
            value => value,
        },
    )
}

fn body_too_large() -> ApiError {
    ApiError::payload_too_large(format!(
        "The request body is larger than the limit of {} MiB.",
        MAX_BODY_BYTES / (1024 * 1024)
    ))
}

/// The whole body, refused with a 413 once it exceeds [`MAX_BODY_BYTES`]:
/// up front when `content-length` says so, otherwise as soon as the bytes
/// read pass the limit, so an oversized body is never buffered whole (the
/// rest is discarded before the answer goes out). A body nobody announced
/// is refused if [`admit`] would have refused it (see
/// [`RequestBody::refused_if_present`]).
pub async fn read_body(headers: &HeaderMap, request_body: RequestBody) -> Result<Bytes, ApiError> {
    refuse_declared_oversized_body(headers)?;
    let mut slot = request_body.body.borrow_mut();
    let Some(body) = slot.as_mut() else {
        return Ok(Bytes::new());
    };
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            crate::log::failure("reading a request body", &format!("{error:?}"));
            ApiError::bad_request("The request body could not be read completely.")
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(body_too_large());
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
        let with_length = |length: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("content-length", HeaderValue::from_str(length).unwrap());
            refuse_declared_oversized_body(&headers)
        };
        assert!(refuse_declared_oversized_body(&HeaderMap::new()).is_ok());
        assert!(with_length("0").is_ok());
        assert!(with_length(&MAX_BODY_BYTES.to_string()).is_ok());
        let error = with_length(&(MAX_BODY_BYTES + 1).to_string()).unwrap_err();
        assert_eq!(error.status, 413);
        assert_eq!(
            error.message,
            "The request body is larger than the limit of 1 MiB."
        );
    }
}
