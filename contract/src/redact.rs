//! Keeping credentials out of logs. A URL may carry `user:password@` (a
//! `db_url`, an endpoint URL); every log line, the host's and the
//! components', passes through [`url_credentials`] before it is written.

use std::borrow::Cow;

/// What replaces the user information of a URL.
pub const REDACTED: &str = "<redacted>";

/// `text` with the user information (`user:password@`) of every URL in it
/// replaced by [`REDACTED`]. Only the authority counts: an `@` after the
/// URL's path has begun is left alone.
pub fn url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let authority_start = start + 3;
        redacted.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let authority_len = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_len];
        match authority.rfind('@') {
            Some(at) => {
                redacted.push_str(REDACTED);
                redacted.push_str(&authority[at..]);
            }
            None => redacted.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    redacted.push_str(rest);
    Cow::Owned(redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_go() {
        assert_eq!(
            url_credentials("connecting to postgres://chat:s3cret@db.example:5432/chat failed"),
            "connecting to postgres://<redacted>@db.example:5432/chat failed"
        );
        assert_eq!(
            url_credentials("https://token@api.example/x?y=1"),
            "https://<redacted>@api.example/x?y=1"
        );
    }

    #[test]
    fn a_password_with_an_at_sign_goes_whole() {
        assert_eq!(
            url_credentials("postgres://u:p@ss@h/db"),
            "postgres://<redacted>@h/db"
        );
    }

    #[test]
    fn every_url_in_a_line_is_redacted() {
        assert_eq!(
            url_credentials("from http://a:b@one/ to http://c:d@two"),
            "from http://<redacted>@one/ to http://<redacted>@two"
        );
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "no url here, ada@example.com",
            "http://host:80/path/with@sign",
            "http://host?email=ada@example.com",
            "postgres://host/db and ada@example.com",
            "",
        ] {
            assert_eq!(url_credentials(text), text);
        }
    }
}
