//! Route patterns with the matching and precedence rules of `routefinder`
//! 0.5, the crate Spin's router is built on. Spin's behaviour is whatever
//! routefinder does, so this follows it closely, quirks included:
//!
//! * A pattern is a sequence of segments split at `/` and `.`: literal text,
//!   `:name` parameters, a trailing `*` wildcard, and the separators.
//! * Leading and trailing slashes of both pattern and path are ignored, so
//!   `/api/history/` matches `/api/history`.
//! * A parameter captures up to the next `/` (or up to the next `.` when the
//!   pattern has a `.` there, as in `/:file.json`).
//! * Precedence compares two patterns segment by segment: at the first
//!   difference a literal beats a parameter, which beats a wildcard, which
//!   beats a separator. If one is a prefix of the other, more `.` separators
//!   win, then fewer segments. Equally ranked patterns keep manifest order.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Slash,
    Dot,
    Literal(String),
    Param(String),
    Wildcard,
}

/// A compiled route pattern.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    segments: Vec<Segment>,
}

/// What a successful match captured.
pub(super) struct Captures<'a> {
    pub(super) params: Vec<(&'a str, &'a str)>,
    /// The text the trailing wildcard matched, without surrounding slashes.
    pub(super) wildcard: Option<&'a str>,
}

impl Pattern {
    pub(super) fn parse(pattern: &str) -> Result<Self, String> {
        let trimmed = pattern.trim_matches('/');
        let mut segments = Vec::new();
        let mut section_start = 0;
        let mut separator_before: Option<char> = None;
        let boundaries = trimmed
            .char_indices()
            .filter(|(_, c)| matches!(c, '/' | '.'))
            .map(|(index, c)| (index, Some(c)))
            .chain(std::iter::once((trimmed.len(), None)));

        for (section_end, separator_after) in boundaries {
            let section = &trimmed[section_start..section_end];
            let segment = match section {
                "" => None,
                "*" => Some(Segment::Wildcard),
                ":" => return Err("parameters must be named (`:name`)".to_owned()),
                _ if section.starts_with('*') => {
                    return Err(format!(
                        "there can only be one wildcard, so it takes no name: replace `{section}` with `*` or `...`"
                    ));
                }
                _ => Some(match section.strip_prefix(':') {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(section.to_owned()),
                }),
            };
            // A `.` right after literal text simply belongs to that text.
            if separator_before == Some('.') {
                match segments.last_mut() {
                    Some(Segment::Literal(text)) => text.push('.'),
                    _ => segments.push(Segment::Dot),
                }
            }
            if let Some(segment) = segment {
                if separator_before == Some('/') {
                    segments.push(Segment::Slash);
                }
                segments.push(segment);
            }
            section_start = section_end + 1;
            separator_before = separator_after;
        }

        // routefinder would panic on these when a request reaches them.
        if let Some(position) = segments.iter().position(|s| *s == Segment::Wildcard)
            && position + 1 != segments.len()
        {
            return Err("a wildcard (`*` or `...`) must be the last part of a route".to_owned());
        }
        Ok(Self { segments })
    }

    /// Matches a request path (no query string).
    pub(super) fn matches<'a>(&'a self, path: &'a str) -> Option<Captures<'a>> {
        let mut rest = path.trim_matches('/');
        let mut captures = Captures {
            params: Vec::new(),
            wildcard: None,
        };
        let mut segments = self.segments.iter().peekable();
        while let Some(segment) = segments.next() {
            rest = match segment {
                Segment::Literal(text) => rest.strip_prefix(text.as_str())?,
                Segment::Param(name) => {
                    if rest.is_empty() {
                        return None;
                    }
                    let end = if segments.peek() == Some(&&Segment::Dot) {
                        // Capture up to a `.`; hitting a `/` first is no match.
                        let index = rest.find(['.', '/'])?;
                        if !rest[index..].starts_with('.') {
                            return None;
                        }
                        index
                    } else {
                        rest.find('/').unwrap_or(rest.len())
                    };
                    captures.params.push((name.as_str(), &rest[..end]));
                    &rest[end..]
                }
                Segment::Wildcard => {
                    captures.wildcard = Some(rest);
                    ""
                }
                Segment::Slash => match (rest.strip_prefix('/'), segments.peek()) {
                    (Some(after), Some(_)) => after,
                    // `/foo/*` also matches `/foo` itself.
                    (None, Some(Segment::Wildcard)) if rest.is_empty() => rest,
                    _ => return None,
                },
                Segment::Dot => rest.strip_prefix('.')?,
            };
        }
        (rest.is_empty() || rest == "/").then_some(captures)
    }

    /// True when `self` must be tried before `other`.
    pub(super) fn outranks(&self, other: &Self) -> bool {
        let first_difference = self
            .segments
            .iter()
            .zip(&other.segments)
            .map(|(mine, theirs)| segment_rank(mine, theirs))
            .find(|ordering| ordering.is_ne());
        let ordering = first_difference
            .unwrap_or_else(|| self.dots().cmp(&other.dots()))
            .then_with(|| other.segments.len().cmp(&self.segments.len()));
        ordering == Ordering::Greater
    }

    fn dots(&self) -> usize {
        self.segments.iter().filter(|s| **s == Segment::Dot).count()
    }
}

/// routefinder's segment comparison, `Greater` meaning "more specific". It is
/// not symmetric for `.` (a `.` claims to beat anything that is not a
/// separator, and vice versa); together with insertion order that decides
/// which of two such routes Spin tries first, so it is kept as is.
fn segment_rank(mine: &Segment, theirs: &Segment) -> Ordering {
    use Segment::*;
    match (mine, theirs) {
        (Literal(_), Literal(_))
        | (Param(_), Param(_))
        | (Wildcard, Wildcard)
        | (Slash | Dot, Slash | Dot) => Ordering::Equal,
        (Dot | Literal(_), _) => Ordering::Greater,
        (Param(_), Literal(_)) => Ordering::Less,
        (Param(_), _) => Ordering::Greater,
        (Wildcard, Literal(_) | Param(_)) => Ordering::Less,
        (Wildcard, _) => Ordering::Greater,
        (Slash, _) => Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let pattern = Pattern::parse(pattern).unwrap();
        let captures = pattern.matches(path)?;
        Some(
            captures
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn matches(pattern: &str, path: &str) -> bool {
        params(pattern, path).is_some()
    }

    #[test]
    fn literal_patterns_ignore_outer_slashes() {
        assert!(matches("/api/history", "/api/history"));
        assert!(matches("/api/history", "/api/history/"));
        assert!(matches("/api/history/", "/api/history"));
        assert!(matches("/api/history", "//api/history//"));
        assert!(!matches("/api/history", "/api/historyx"));
        assert!(!matches("/api/history", "/api//history"));
        assert!(!matches("/api/history", "/api/history/x"));
        assert!(!matches("/api/history", "/API/history"));
        assert!(matches("", "/"));
        assert!(!matches("", "/x"));
    }

    #[test]
    fn parameters_capture_one_segment() {
        assert_eq!(
            params("/api/chat/:chatId/visibility", "/api/chat/42/visibility"),
            Some(vec![("chatId".into(), "42".into())])
        );
        assert_eq!(params("/api/chat/:chatId", "/api/chat/42/x"), None);
        assert_eq!(params("/api/chat/:chatId", "/api/chat/"), None);
        assert_eq!(
            params("/files/:name", "/files/report.pdf"),
            Some(vec![("name".into(), "report.pdf".into())])
        );
        assert_eq!(
            params("/files/:name.json", "/files/report.json"),
            Some(vec![("name".into(), "report".into())])
        );
        assert_eq!(params("/files/:name.json", "/files/report.xml"), None);
        assert_eq!(params("/files/:name.json", "/files/a/b.json"), None);
    }

    #[test]
    fn wildcards_capture_the_rest() {
        let pattern = Pattern::parse("/admin/*").unwrap();
        assert_eq!(pattern.matches("/admin/a/b").unwrap().wildcard, Some("a/b"));
        assert_eq!(pattern.matches("/admin").unwrap().wildcard, Some(""));
        assert_eq!(pattern.matches("/admin/").unwrap().wildcard, Some(""));
        assert!(pattern.matches("/administrator").is_none());
        let root = Pattern::parse("/*").unwrap();
        assert_eq!(root.matches("/").unwrap().wildcard, Some(""));
        assert_eq!(root.matches("/x/y").unwrap().wildcard, Some("x/y"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in ["/:", "/a/*rest", "/a/*/b", "/*.json"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_follows_routefinder() {
        let rank = |a: &str, b: &str| {
            Pattern::parse(a)
                .unwrap()
                .outranks(&Pattern::parse(b).unwrap())
        };
        assert!(rank("/hello", "/:greeting"));
        assert!(rank("/:greeting", "/*"));
        assert!(rank("/one/two/*", "/one/*"));
        assert!(rank("/foo", "/foo/*"));
        assert!(rank("/a/:b", "/:a/b"));
        // A literal segment outranks a parameter at the same position even
        // when the literal route ends in a wildcard.
        assert!(rank("/foo/bar/*", "/foo/:id"));
        assert!(rank("/files/:name.json", "/files/:name"));
        assert!(!rank("/:a", "/:b") && !rank("/:b", "/:a"));
    }
}
