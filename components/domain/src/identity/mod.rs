//! Who is calling, from the platform gateway's canonical `x-forwarded-*`
//! headers. (`x-forwarded-user-info` does not exist and is never read.)
//! The gateway's trust check (`gateway`), the `GET /api/session` answer
//! (`session_view`) and the caller's user row (`users`) live beside it.

pub mod gateway;
pub mod session_view;
pub mod users;

use crate::ApiError;
use std::fmt;

/// The canonical gateway headers, lower-case as HTTP/2 and `http` store them.
pub mod headers {
    pub const EMAIL: &str = "x-forwarded-email";
    pub const PREFERRED_USERNAME: &str = "x-forwarded-preferred-username";
    pub const USER: &str = "x-forwarded-user";
    pub const ACCESS_TOKEN: &str = "x-forwarded-access-token";
}

/// The email reported when the gateway names a user but not their address
/// (the seed's placeholder, kept for wire compatibility).
pub const UNKNOWN_EMAIL: &str = "unknown@local";

/// The caller. `user_id` owns chats; `authenticated` is false only for the
/// local-development identity.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub authenticated: bool,
    /// The gateway's on-behalf-of token, for calls made as the user.
    pub access_token: Option<String>,
}

/// Redacts the access token so an identity can be logged.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("authenticated", &self.authenticated)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Resolves the caller from `header` (a case-insensitive lookup of the request's
/// headers) and the `dev_user_email` setting. Empty or blank values count as
/// absent. Without `x-forwarded-email` and `x-forwarded-user` the caller gets the
/// development identity when `dev_user_email` is set, and a 401 otherwise.
pub fn resolve<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    dev_user_email: Option<&str>,
) -> Result<Identity, ApiError> {
    let present = |name: &str| {
        header(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let email = present(headers::EMAIL);
    let preferred_username = present(headers::PREFERRED_USERNAME);
    let gateway_user = present(headers::USER);

    let Some(user_id) = email.clone().or(gateway_user) else {
        return development_identity(dev_user_email);
    };
    Ok(Identity {
        user_id,
        email: email
            .or_else(|| preferred_username.clone())
            .unwrap_or_else(|| UNKNOWN_EMAIL.to_owned()),
        name: preferred_username,
        authenticated: true,
        access_token: present(headers::ACCESS_TOKEN),
    })
}

fn development_identity(dev_user_email: Option<&str>) -> Result<Identity, ApiError> {
    let dev_user_email = dev_user_email
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(format!(
                "Authentication required: the request carries neither {} nor {} \
                 (set by the platform gateway), and no dev_user_email is configured \
                 for local development.",
                headers::EMAIL,
                headers::USER
            ))
        })?;
    Ok(Identity {
        user_id: dev_user_email.to_owned(),
        email: dev_user_email.to_owned(),
        name: None,
        authenticated: false,
        access_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(
        pairs: &[(&str, &'static str)],
        dev_user_email: Option<&str>,
    ) -> Result<Identity, ApiError> {
        let map: HashMap<String, &'static str> =
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        resolve(|name| map.get(name).copied(), dev_user_email)
    }

    #[test]
    fn email_header_is_id_and_email() {
        let identity = resolve_with(
            &[
                (headers::EMAIL, "ada@example.com"),
                (headers::PREFERRED_USERNAME, "ada"),
                (headers::USER, "12345"),
                (headers::ACCESS_TOKEN, "token"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(identity.user_id, "ada@example.com");
        assert_eq!(identity.email, "ada@example.com");
        assert_eq!(identity.name.as_deref(), Some("ada"));
        assert!(identity.authenticated);
        assert_eq!(identity.access_token.as_deref(), Some("token"));
    }

    #[test]
    fn gateway_user_is_the_fallback_id_and_preferred_username_the_fallback_email() {
        let identity = resolve_with(
            &[
                (headers::USER, "12345"),
                (headers::PREFERRED_USERNAME, "ada@example.com"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(identity.user_id, "12345");
        assert_eq!(identity.email, "ada@example.com");
        assert!(identity.authenticated);
    }

    #[test]
    fn placeholder_email_when_only_the_gateway_user_is_known() {
        let identity = resolve_with(&[(headers::USER, "12345")], None).unwrap();
        assert_eq!(identity.email, UNKNOWN_EMAIL);
        assert_eq!(identity.name, None);
    }

    #[test]
    fn blank_headers_count_as_absent() {
        let identity = resolve_with(
            &[
                (headers::EMAIL, "   "),
                (headers::USER, "12345"),
                (headers::PREFERRED_USERNAME, ""),
            ],
            None,
        )
        .unwrap();
        assert_eq!(identity.user_id, "12345");
        assert_eq!(identity.email, UNKNOWN_EMAIL);
        assert_eq!(identity.name, None);
    }

    #[test]
    fn preferred_username_or_token_alone_is_not_an_identity() {
        let error = resolve_with(
            &[
                (headers::PREFERRED_USERNAME, "ada"),
                (headers::ACCESS_TOKEN, "token"),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(error.status, 401);
    }

    #[test]
    fn no_headers_and_no_dev_email_is_401() {
        for dev in [None, Some(""), Some("  ")] {
            let error = resolve_with(&[], dev).unwrap_err();
            assert_eq!(error.status, 401);
            assert!(
                error.message.starts_with("Authentication required: "),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn no_headers_with_dev_email_is_the_unauthenticated_dev_identity() {
        let identity = resolve_with(&[], Some("dev@example.com")).unwrap();
        assert_eq!(identity.user_id, "dev@example.com");
        assert_eq!(identity.email, "dev@example.com");
        assert_eq!(identity.name, None);
        assert!(!identity.authenticated);
        assert_eq!(identity.access_token, None);
    }

    #[test]
    fn gateway_headers_win_over_the_dev_email() {
        let identity = resolve_with(
            &[(headers::EMAIL, "ada@example.com")],
            Some("dev@example.com"),
        )
        .unwrap();
        assert_eq!(identity.user_id, "ada@example.com");
        assert!(identity.authenticated);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let identity = resolve_with(
            &[(headers::EMAIL, "a@b.c"), (headers::ACCESS_TOKEN, "secret")],
            None,
        )
        .unwrap();
        let debug = format!("{identity:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
