//! Refusing cross-site writes. A browser lets any page send a form or a
//! "simple" `fetch` to another site with the user's cookies, so when the
//! gateway authenticates with a cookie, a foreign page could create chats
//! and spend the user's tokens. Two rules close that door for every
//! state-changing method (POST, PUT, PATCH, DELETE):
//!
//! - the request must not come from another site: `Sec-Fetch-Site:
//!   cross-site` (sent by every current browser) or an `Origin` other than
//!   the app's own, as the client saw it through the gateway, is a 403.
//!   `Sec-Fetch-Site: same-origin` is the browser's own word that the page
//!   is the app's (no page can set that header), so it passes whatever the
//!   gateway forwarded. A gateway that forwards the host but not the scheme
//!   (Databricks Apps' proxy terminates TLS and sends `X-Forwarded-Host`
//!   alone) leaves the scheme unknown: then an `Origin` on the app's host
//!   matches under either scheme, since only the app serves its own host;
//! - a body must be `application/json`: a cross-site form can only send
//!   `text/plain`, `application/x-www-form-urlencoded` or
//!   `multipart/form-data` without a CORS preflight, which the app never
//!   grants, so this also stops browsers that send neither header (415).
//!   A file a route takes as it is (an import: a ZIP, JSON Lines) may have
//!   any media type but those three, for the same reason.
//!
//! Same-origin use from the web UI and clients that are not browsers (no
//! `Origin`, no `Sec-Fetch-Site`) are unaffected, and a write with no body
//! (a DELETE) needs no content type.

use crate::ApiError;
use crate::http::routes::BodyRule;

/// The request headers the rules read, lower-case.
pub mod headers {
    pub const SEC_FETCH_SITE: &str = "sec-fetch-site";
    pub const ORIGIN: &str = "origin";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const HOST: &str = "host";
    pub const FORWARDED_HOST: &str = "x-forwarded-host";
    pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
}

/// The only media type a state-changing request's JSON body may have.
const JSON: &str = "application/json";

/// The media types a page of another site may send without a CORS
/// preflight: never a write's body.
const FORM_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// Refuses a state-changing request that comes from another site (403) or
/// whose body is not what its route takes (415): JSON, or for a file any
/// type but a form's. `header` looks a header up by its lower-case name;
/// `has_body` says whether the request announced a body (a
/// `Content-Length` above zero or a `Transfer-Encoding`). Other methods
/// pass untouched.
pub fn check<'h>(
    method: &str,
    has_body: bool,
    rule: BodyRule,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<(), ApiError> {
    if !matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        return Ok(());
    }
    let site = header(headers::SEC_FETCH_SITE).map(str::trim);
    if site == Some("cross-site") {
        return Err(cross_site(method));
    }
    if let Some(origin) = header(headers::ORIGIN).filter(|_| site != Some("same-origin")) {
        let own = own_origin(&header);
        if own.is_none_or(|own| !own.matches(origin)) {
            return Err(cross_site(method));
        }
    }
    if !has_body {
        return Ok(());
    }
    let media_type = header(headers::CONTENT_TYPE).map(media_type);
    match rule {
        BodyRule::Json
            if media_type.is_none_or(|media_type| !media_type.eq_ignore_ascii_case(JSON)) =>
        {
            Err(ApiError::new(
                415,
                format!(
                    "A {method} request's body must be JSON: send it with `Content-Type: {JSON}`."
                ),
            ))
        }
        BodyRule::File
            if media_type.is_none_or(|media_type| {
                media_type.is_empty()
                    || FORM_TYPES
                        .iter()
                        .any(|form| media_type.eq_ignore_ascii_case(form))
            }) =>
        {
            Err(ApiError::new(
                415,
                format!(
                    "Send the file itself as the body, with its own `Content-Type` (such as \
                     application/zip, application/json or application/octet-stream); a form's \
                     ({}) is refused.",
                    FORM_TYPES.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn cross_site(method: &str) -> ApiError {
    ApiError::forbidden(format!(
        "Cross-site {method} requests are refused: this request comes from a page \
         of another site."
    ))
}

/// A `Content-Type`'s media type, without parameters such as `charset`.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// The app's origin as the client addressed it: the host the gateway
/// forwarded, else the `Host` the request names; and the scheme the gateway
/// forwarded, if it did.
struct OwnOrigin<'h> {
    scheme: Option<&'h str>,
    host: &'h str,
}

/// None when the request names no host at all.
fn own_origin<'h>(header: &impl Fn(&str) -> Option<&'h str>) -> Option<OwnOrigin<'h>> {
    let first = |name| {
        header(name)
            .and_then(|value| value.split(',').next())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let host = first(headers::FORWARDED_HOST).or_else(|| first(headers::HOST))?;
    Some(OwnOrigin {
        scheme: first(headers::FORWARDED_PROTO),
        host,
    })
}

impl OwnOrigin<'_> {
    /// Whether `origin` (`scheme://host[:port]`) is this one, ignoring case
    /// and a port that is the scheme's default; with no scheme forwarded,
    /// the origin's own scheme is taken. `null`, the origin of sandboxed
    /// frames and local files, matches nothing.
    fn matches(&self, origin: &str) -> bool {
        let Some(origin) = normalise(origin) else {
            return false;
        };
        let own = format!("{}://{}", self.scheme.unwrap_or(&origin.0), self.host);
        normalise(&own) == Some(origin)
    }
}

/// `(scheme, authority)` lower-case, without the scheme's default port.
fn normalise(origin: &str) -> Option<(String, String)> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if authority.is_empty() || authority.contains('/') {
        return None;
    }
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some((scheme.to_owned(), authority.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check_with(method: &str, has_body: bool, pairs: &[(&str, &'static str)]) -> Option<u16> {
        check_rule(method, has_body, BodyRule::Json, pairs)
    }

    fn check_rule(
        method: &str,
        has_body: bool,
        rule: BodyRule,
        pairs: &[(&str, &'static str)],
    ) -> Option<u16> {
        let map: HashMap<&str, &'static str> = pairs.iter().copied().collect();
        check(method, has_body, rule, |name| map.get(name).copied())
            .err()
            .map(|error| error.status)
    }

    const JSON_BODY: (&str, &str) = (headers::CONTENT_TYPE, "application/json");

    #[test]
    fn reads_are_never_checked() {
        for method in ["GET", "HEAD", "OPTIONS"] {
            let foreign = [
                (headers::SEC_FETCH_SITE, "cross-site"),
                (headers::ORIGIN, "https://evil.example"),
            ];
            assert_eq!(check_with(method, false, &foreign), None, "{method}");
        }
    }

    #[test]
    fn a_json_body_from_a_client_that_is_not_a_browser_passes() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(check_with(method, true, &[JSON_BODY]), None, "{method}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_415() {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            let pairs = [(headers::CONTENT_TYPE, content_type)];
            assert_eq!(
                check_with("POST", true, &pairs),
                Some(415),
                "{content_type:?}"
            );
        }
        assert_eq!(check_with("PATCH", true, &[]), Some(415), "no content type");
    }

    #[test]
    fn a_file_may_be_of_any_type_but_a_forms() {
        let file = |content_type: &'static str| {
            let pairs = [(headers::CONTENT_TYPE, content_type)];
            check_rule("POST", true, BodyRule::File, &pairs)
        };
        for content_type in [
            "application/zip",
            "application/json",
            "application/x-ndjson",
            "application/octet-stream",
        ] {
            assert_eq!(file(content_type), None, "{content_type}");
        }
        for content_type in [
            "text/plain;charset=UTF-8",
            "Application/X-WWW-Form-Urlencoded",
            "multipart/form-data; boundary=x",
            " ",
        ] {
            assert_eq!(file(content_type), Some(415), "{content_type:?}");
        }
        assert_eq!(check_rule("POST", true, BodyRule::File, &[]), Some(415));
        // From another site, a file is refused like any write.
        let foreign = [
            (headers::CONTENT_TYPE, "application/zip"),
            (headers::SEC_FETCH_SITE, "cross-site"),
        ];
        assert_eq!(
            check_rule("POST", true, BodyRule::File, &foreign),
            Some(403)
        );
    }

    #[test]
    fn json_with_parameters_or_other_case_is_json() {
        for content_type in [
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;charset=UTF-8",
        ] {
            let pairs = [(headers::CONTENT_TYPE, content_type)];
            assert_eq!(check_with("POST", true, &pairs), None, "{content_type:?}");
        }
    }

    #[test]
    fn a_write_without_a_body_needs_no_content_type() {
        assert_eq!(check_with("DELETE", false, &[]), None);
        assert_eq!(check_with("POST", false, &[]), None);
    }

    #[test]
    fn sec_fetch_site_cross_site_is_403_even_with_json() {
        let pairs = [JSON_BODY, (headers::SEC_FETCH_SITE, "cross-site")];
        assert_eq!(check_with("POST", true, &pairs), Some(403));
        assert_eq!(check_with("DELETE", false, &pairs[1..]), Some(403));
        for site in ["same-origin", "same-site", "none"] {
            let pairs = [JSON_BODY, (headers::SEC_FETCH_SITE, site)];
            assert_eq!(check_with("POST", true, &pairs), None, "{site}");
        }
    }

    #[test]
    fn an_origin_must_be_the_apps_own_as_seen_through_the_gateway() {
        let behind_gateway = [
            JSON_BODY,
            (headers::HOST, "10.0.0.7:8000"),
            (headers::FORWARDED_HOST, "chat.example.com"),
            (headers::FORWARDED_PROTO, "https"),
        ];
        let with_origin = |origin: &'static str| {
            let mut pairs = behind_gateway.to_vec();
            pairs.push((headers::ORIGIN, origin));
            check_with("POST", true, &pairs)
        };
        assert_eq!(with_origin("https://chat.example.com"), None);
        assert_eq!(with_origin("https://CHAT.example.com:443"), None);
        assert_eq!(
            with_origin("http://chat.example.com"),
            Some(403),
            "another scheme"
        );
        assert_eq!(with_origin("https://evil.example"), Some(403));
        assert_eq!(
            with_origin("https://chat.example.com.evil.example"),
            Some(403)
        );
        assert_eq!(
            with_origin("http://10.0.0.7:8000"),
            Some(403),
            "the internal address"
        );
        assert_eq!(with_origin("null"), Some(403));
    }

    /// What Databricks Apps' proxy sends ("Access HTTP headers passed to
    /// Databricks apps"): the host, the user, no scheme.
    const DATABRICKS_APPS: [(&str, &str); 7] = [
        JSON_BODY,
        (headers::HOST, "10.1.2.3:8000"),
        (headers::FORWARDED_HOST, "chat-123.aws.databricksapps.com"),
        ("x-forwarded-preferred-username", "ada"),
        ("x-forwarded-user", "4567@1234"),
        ("x-forwarded-email", "ada@example.com"),
        ("x-real-ip", "203.0.113.9"),
    ];

    #[test]
    fn a_browsers_same_origin_write_through_a_proxy_that_forwards_no_scheme_passes() {
        let with = |extra: &[(&str, &'static str)]| {
            let mut pairs = DATABRICKS_APPS.to_vec();
            pairs.extend_from_slice(extra);
            check_with("POST", true, &pairs)
        };
        let page = (headers::ORIGIN, "https://chat-123.aws.databricksapps.com");
        assert_eq!(
            with(&[page, (headers::SEC_FETCH_SITE, "same-origin")]),
            None
        );
        // A browser that sends no Sec-Fetch-Site: the Origin's host is ours.
        assert_eq!(with(&[page]), None);
        // Another app on the platform's domain is another site.
        let neighbour = (headers::ORIGIN, "https://evil-9.aws.databricksapps.com");
        assert_eq!(with(&[neighbour]), Some(403));
        assert_eq!(
            with(&[neighbour, (headers::SEC_FETCH_SITE, "same-site")]),
            Some(403)
        );
        assert_eq!(
            with(&[page, (headers::SEC_FETCH_SITE, "cross-site")]),
            Some(403)
        );
    }

    #[test]
    fn without_a_forwarded_scheme_the_origin_is_the_hosts_under_either_scheme() {
        let direct = |origin: &'static str| {
            check_with(
                "POST",
                true,
                &[
                    JSON_BODY,
                    (headers::HOST, "127.0.0.1:3000"),
                    (headers::ORIGIN, origin),
                ],
            )
        };
        assert_eq!(direct("http://127.0.0.1:3000"), None);
        assert_eq!(direct("https://127.0.0.1:3000"), None);
        assert_eq!(direct("http://127.0.0.1:3001"), Some(403));
        assert_eq!(direct("http://localhost:3000"), Some(403));
    }

    #[test]
    fn an_origin_with_no_host_to_compare_with_fails_closed() {
        let pairs = [JSON_BODY, (headers::ORIGIN, "http://127.0.0.1:3000")];
        assert_eq!(check_with("POST", true, &pairs), Some(403));
    }

    #[test]
    fn the_first_of_several_forwarded_values_counts() {
        let pairs = [
            JSON_BODY,
            (headers::FORWARDED_HOST, "chat.example.com, proxy.internal"),
            (headers::FORWARDED_PROTO, "https, http"),
            (headers::ORIGIN, "https://chat.example.com"),
        ];
        assert_eq!(check_with("PUT", true, &pairs), None);
    }
}
