//! Reading requests: headers, the caller's identity, methods and bodies.

use crate::config;
use crate::failure::Failure;
use bytes::Bytes;
use chat_domain::ApiError;
use chat_domain::identity::{self, Identity};
use http_body_util::BodyExt;
use spin_sdk::http::{HeaderMap, Method};
use spin_sdk::wasip3::http_compat::IncomingRequestBody;

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A header's first value as text. A value that is not UTF-8 counts as absent:
/// gateway headers always are, so such a value cannot come from the gateway.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
}

/// The caller, from the gateway headers or the `dev_user_email` variable.
pub async fn identify(headers: &HeaderMap) -> Result<Identity, Failure> {
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

/// The 404 for a path the component does not serve.
pub fn no_route(path: &str) -> ApiError {
    ApiError::not_found(format!("There is nothing at {path}."))
}

/// The whole body, refused with a 413 once it exceeds [`MAX_BODY_BYTES`]:
/// up front when `content-length` says so, otherwise as soon as the bytes
/// read pass the limit, so an oversized body is never buffered whole.
pub async fn read_body(
    headers: &HeaderMap,
    mut body: IncomingRequestBody,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::payload_too_large(format!(
            "The request body is larger than the limit of {} MiB.",
            MAX_BODY_BYTES / (1024 * 1024)
        ))
    };
    let declared = header_text(headers, http::header::CONTENT_LENGTH.as_str())
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            crate::log::failure("reading a request body", &format!("{error:?}"));
            ApiError::bad_request("The request body could not be read completely.")
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
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
        assert_eq!(error.allow, Some("GET"));
    }

    #[test]
    fn no_route_is_404() {
        assert_eq!(no_route("/api/nope").status, 404);
    }
}
