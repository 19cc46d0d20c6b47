//! The one error type every route answers with: a status and a sentence for a
//! human, answered as `{"error": "<sentence>"}` (`chat_contract::error_body`).

/// An error to show the caller. The message is a complete sentence; it never
/// carries SQL, stack traces or other server internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// The `Allow` header of a 405 answer.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }

    /// `allow` lists the methods the route accepts, as in an `Allow` header.
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let allow = allow.into();
        let message = format!("This route only accepts {allow} requests.");
        Self {
            allow: Some(allow),
            ..Self::new(405, message)
        }
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_their_status() {
        let cases = [
            (ApiError::bad_request("x"), 400),
            (ApiError::unauthorized("x"), 401),
            (ApiError::forbidden("x"), 403),
            (ApiError::not_found("x"), 404),
            (ApiError::method_not_allowed("GET"), 405),
            (ApiError::conflict("x"), 409),
            (ApiError::payload_too_large("x"), 413),
            (ApiError::internal("x"), 500),
            (ApiError::service_unavailable("x"), 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status, status, "{error:?}");
        }
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let error = ApiError::method_not_allowed("GET");
        assert_eq!(error.allow.as_deref(), Some("GET"));
        assert_eq!(error.message, "This route only accepts GET requests.");
        assert_eq!(ApiError::bad_request("x").allow, None);
    }
}
