//! Checks on caller-supplied values, each failing with a 400 that names the
//! offending field.

use crate::ApiError;
use std::ops::RangeInclusive;
use uuid::Uuid;

/// The length of a UUID in its hyphenated form, the only form ids take on the
/// wire (JSON Schema's `format: uuid`).
const HYPHENATED_UUID_LEN: usize = 36;

/// The most characters of caller-supplied text an error message repeats.
const MAX_ECHOED_CHARS: usize = 40;

/// Parses a chat or message id in its hyphenated form (any letter case);
/// `field` names it in the error. The braced, URN and unhyphenated spellings
/// the `uuid` crate also reads are refused, so each id has one spelling.
pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Some(value)
        .filter(|value| value.len() == HYPHENATED_UUID_LEN)
        .and_then(|value| Uuid::try_parse(value).ok())
        .ok_or_else(|| not_a_uuid(field))
}

/// The 400 for a `field` that should hold a UUID and does not.
pub fn not_a_uuid(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{field} must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"
    ))
}

/// A page size, clamped into `range`: a number outside it (however far) is
/// the nearest end, anything else that is not a whole number is a 400.
pub fn parse_limit(raw: &str, range: RangeInclusive<u32>) -> Result<u32, ApiError> {
    use std::num::IntErrorKind;
    let (min, max) = (*range.start(), *range.end());
    let clamped = match raw.parse::<i64>() {
        Ok(limit) => limit.clamp(min.into(), max.into()),
        Err(error) if *error.kind() == IntErrorKind::PosOverflow => max.into(),
        Err(error) if *error.kind() == IntErrorKind::NegOverflow => min.into(),
        Err(_) => {
            return Err(ApiError::bad_request(format!(
                "limit must be a whole number from {min} to {max}, for example limit={max}"
            )));
        }
    };
    Ok(u32::try_from(clamped).expect("clamped into a u32 range"))
}

/// Caller-supplied text as an error message may repeat it: at most
/// [`MAX_ECHOED_CHARS`] characters, so a huge input cannot make a huge answer.
pub fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A parsed query string (`a=1&b=2`), decoded as browsers encode forms:
/// `+` is a space and `%XX` a byte.
#[derive(Debug, Default)]
pub struct QueryParams {
    /// Decoded names with their still-encoded values: a value is decoded only
    /// when asked for, so an odd value of an unknown parameter cannot fail a
    /// request that ignores it.
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    pub fn parse(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = String::from_utf8_lossy(&percent_decode(name)).into_owned();
                (name, value.to_owned())
            })
            .collect();
        Self { pairs }
    }

    /// The decoded value of `name`. An empty value counts as absent (the seed's
    /// client may send `starting_after=`); a name given twice is a 400, since
    /// silently picking one would hide a client bug.
    pub fn single(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        let Some(raw) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(format!(
                "{name} was given more than once; give it at most once"
            )));
        }
        let value = String::from_utf8(percent_decode(raw)).map_err(|_| {
            ApiError::bad_request(format!("{name} is not valid UTF-8 text once decoded"))
        })?;
        Ok(Some(value).filter(|value| !value.is_empty()))
    }
}

/// Decodes `+` and `%XX`; a `%` not followed by two hex digits stays as it is,
/// as in a browser's URLSearchParams.
fn percent_decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (hex_value(bytes.get(i + 1)), hex_value(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        i += 1;
    }
    decoded
}

fn hex_value(byte: Option<&u8>) -> Option<u8> {
    char::from(*byte?).to_digit(16).map(|digit| digit as u8)
}

/// A setting of whole seconds within `range`, or `default` when unset; the
/// error names the setting and says what is wrong.
pub fn seconds_setting(
    name: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<u64>,
    default: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(seconds) if range.contains(&seconds) => Ok(std::time::Duration::from_secs(seconds)),
        _ => Err(format!(
            "{name} must be a whole number of seconds from {} to {}, not {value:?}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_and_uppercase_uuids() {
        let id = parse_uuid("chatId", "123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(id.to_string(), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(
            parse_uuid("chatId", "123E4567-E89B-12D3-A456-426614174000").unwrap(),
            id
        );
    }

    #[test]
    fn a_bad_uuid_names_the_field() {
        for value in [
            "",
            "123",
            "not-a-uuid",
            "123e4567-e89b-12d3-a456-42661417400g",
            // Other spellings of a valid UUID.
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            " 123e4567-e89b-12d3-a456-426614174000",
        ] {
            let error = parse_uuid("starting_after", value).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(
                error.message.starts_with("starting_after must be a UUID"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn abbreviate_keeps_short_text_and_cuts_long_text_on_a_character() {
        assert_eq!(abbreviate("visibilty"), "visibilty");
        let exactly = "a".repeat(MAX_ECHOED_CHARS);
        assert_eq!(abbreviate(&exactly), exactly);
        let long = "é".repeat(1000);
        assert_eq!(
            abbreviate(&long),
            format!("{}…", "é".repeat(MAX_ECHOED_CHARS))
        );
    }

    #[test]
    fn reads_single_values_and_ignores_others() {
        let query = QueryParams::parse("limit=5&other=1&other=2&&flag");
        assert_eq!(query.single("limit").unwrap().as_deref(), Some("5"));
        assert_eq!(query.single("missing").unwrap(), None);
        assert_eq!(query.single("flag").unwrap(), None);
    }

    #[test]
    fn percent_decodes_names_and_values() {
        let query = QueryParams::parse("na%6De=a%20b+c%2B&x=%E2%9C%93");
        assert_eq!(query.single("name").unwrap().as_deref(), Some("a b c+"));
        assert_eq!(query.single("x").unwrap().as_deref(), Some("✓"));
    }

    #[test]
    fn keeps_malformed_escapes_literally() {
        let query = QueryParams::parse("a=100%&b=%zz&c=%4");
        assert_eq!(query.single("a").unwrap().as_deref(), Some("100%"));
        assert_eq!(query.single("b").unwrap().as_deref(), Some("%zz"));
        assert_eq!(query.single("c").unwrap().as_deref(), Some("%4"));
    }

    #[test]
    fn a_duplicate_is_rejected_by_name() {
        let error = QueryParams::parse("limit=1&limit=2")
            .single("limit")
            .unwrap_err();
        assert_eq!(error.status, 400);
        assert!(
            error.message.starts_with("limit was given more than once"),
            "{}",
            error.message
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_only_when_read() {
        let query = QueryParams::parse("bad=%FF&good=1");
        assert_eq!(query.single("good").unwrap().as_deref(), Some("1"));
        assert_eq!(query.single("bad").unwrap_err().status, 400);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let query = QueryParams::parse("starting_after=&limit");
        assert_eq!(query.single("starting_after").unwrap(), None);
        assert_eq!(query.single("limit").unwrap(), None);
    }
}
