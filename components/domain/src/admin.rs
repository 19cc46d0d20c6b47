//! Access to the `/admin` routes: `Authorization: Bearer <admin_token>`.

use crate::ApiError;

/// Admits the caller when `authorization` carries the configured token.
/// An unset (or blank) token disables the admin routes for everyone (403);
/// a missing, malformed or wrong header is a 401. The token comparison takes
/// the same time wherever the first difference is.
pub fn authorize(authorization: Option<&str>, admin_token: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = admin_token.map(str::trim).filter(|token| !token.is_empty()) else {
        return Err(ApiError::forbidden(
            "admin routes are disabled: set the admin_token variable",
        ));
    };
    let presented = authorization.and_then(bearer_token).ok_or_else(|| {
        ApiError::unauthorized("Admin routes need an `Authorization: Bearer <admin_token>` header.")
    })?;
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("The admin token is not valid."))
    }
}

/// The token of a `Bearer` credential; the scheme is case-insensitive.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares every byte position up to the longer length, so the time taken
/// reveals nothing about where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_token_is_admitted() {
        assert!(authorize(Some("Bearer s3cret"), Some("s3cret")).is_ok());
        assert!(authorize(Some("bearer s3cret"), Some("s3cret")).is_ok());
        assert!(authorize(Some("  BEARER   s3cret "), Some("s3cret")).is_ok());
    }

    #[test]
    fn unset_token_disables_admin_routes() {
        for token in [None, Some(""), Some("   ")] {
            let error = authorize(Some("Bearer anything"), token).unwrap_err();
            assert_eq!(error.status, 403);
            assert_eq!(
                error.message,
                "admin routes are disabled: set the admin_token variable"
            );
        }
    }

    #[test]
    fn missing_malformed_or_wrong_credentials_are_401() {
        for header in [
            None,
            Some(""),
            Some("s3cret"),
            Some("Basic s3cret"),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Bearer S3CRET"),
        ] {
            let error = authorize(header, Some("s3cret")).unwrap_err();
            assert_eq!(error.status, 401, "{header:?}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab\0", b"ab"));
    }
}
