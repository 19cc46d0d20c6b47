//! The `chat."User"` row of the caller (recorded by the history page and
//! the user's turn statements).

use crate::ApiError;
use crate::identity::Identity;

/// `chat."User".email` is VARCHAR(64); Postgres counts characters, not bytes.
pub const MAX_EMAIL_CHARS: usize = 64;

/// Refuses (400) an identity that the seed's columns cannot hold: checked
/// before any database work, so it is a clear 400 rather than a database
/// error after some.
pub fn check_storable(identity: &Identity) -> Result<(), ApiError> {
    if identity.email.chars().count() > MAX_EMAIL_CHARS {
        return Err(ApiError::bad_request(format!(
            "Your email address is longer than {MAX_EMAIL_CHARS} characters, \
             so chat history cannot store it."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_with_email(email: &str) -> Identity {
        Identity {
            user_id: "user-1".into(),
            email: email.into(),
            name: None,
            authenticated: true,
            access_token: None,
        }
    }

    #[test]
    fn accepts_exactly_64_characters_counting_characters_not_bytes() {
        let email = format!("{}@x.io", "é".repeat(MAX_EMAIL_CHARS - 5));
        assert_eq!(email.chars().count(), MAX_EMAIL_CHARS);
        assert!(email.len() > MAX_EMAIL_CHARS);
        assert!(check_storable(&identity_with_email(&email)).is_ok());
    }

    #[test]
    fn rejects_an_email_the_column_cannot_hold() {
        let email = format!("{}@x.io", "a".repeat(MAX_EMAIL_CHARS - 4));
        let error = check_storable(&identity_with_email(&email)).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("64 characters"), "{}", error.message);
    }
}
