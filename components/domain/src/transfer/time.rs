//! Times as imports read them and as the import's statements bind them.

use crate::database::timestamp::UtcDateTime;

/// The first instant after the years a TIMESTAMP parameter is written in
/// (1 to 9999): 10000-01-01T00:00:00Z in seconds since the Unix epoch.
const END_OF_YEAR_9999: f64 = 253_402_300_800.0;

/// Reads a UTC time as our export writes it, `2024-05-01T12:34:56.789Z`
/// (any number of fraction digits, or none). Other zones are refused rather
/// than converted: the export only ever writes `Z`.
pub fn parse_utc(text: &str) -> Option<UtcDateTime> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(at, c)| bytes.get(at) != Some(&c)) {
        return None;
    }
    let rest = text.get(19..)?.strip_suffix('Z')?;
    let nanosecond = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(fraction) if (1..=9).contains(&fraction.len()) => {
            let value = digits(20..20 + fraction.len())?;
            value * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let year = digits(0..4)?;
    if year == 0 {
        return None;
    }
    UtcDateTime::from_parts(
        year as i32,
        digits(5..7)? as u8,
        digits(8..10)? as u8,
        digits(11..13)? as u8,
        digits(14..16)? as u8,
        digits(17..19)? as u8,
        nanosecond,
    )
}

/// A time in seconds since the Unix epoch, as ChatGPT's export writes them
/// (with a fraction); `None` for one that is not a time from 1970 to 9999.
pub fn from_unix_seconds(seconds: f64) -> Option<UtcDateTime> {
    (seconds.is_finite() && (0.0..END_OF_YEAR_9999).contains(&seconds))
        .then(|| UtcDateTime::from_unix_millis((seconds * 1000.0).floor() as u64))
}

/// A time as a statement's text parameter, cast with `::timestamp`: the
/// zone letter is ignored by a TIMESTAMP, which holds UTC here. Only times
/// read by this module reach it, so the year has four digits.
pub fn sql_text(at: UtcDateTime) -> String {
    at.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_the_export_writes() {
        let at = UtcDateTime::from_parts(2024, 5, 1, 12, 34, 56, 789_000_000).unwrap();
        assert_eq!(parse_utc(&at.to_string()), Some(at));
        assert_eq!(
            parse_utc("2024-05-01T12:34:56Z"),
            UtcDateTime::from_parts(2024, 5, 1, 12, 34, 56, 0)
        );
        assert_eq!(
            parse_utc("2024-05-01T12:34:56.123456789Z"),
            UtcDateTime::from_parts(2024, 5, 1, 12, 34, 56, 123_456_789)
        );
        assert_eq!(
            parse_utc("2024-05-01T12:34:56.5Z"),
            UtcDateTime::from_parts(2024, 5, 1, 12, 34, 56, 500_000_000)
        );
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56+02:00",
            "2024-05-01 12:34:56Z",
            "2024-02-30T12:34:56Z",
            "2024-05-01T24:00:00Z",
            "0000-05-01T12:34:56Z",
            "+10000-05-01T12:34:56Z",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56.1234567890Z",
            "2024-05-01T12:34:5xZ",
            "２０２４-05-01T12:34:56Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn unix_seconds_keep_their_milliseconds() {
        assert_eq!(
            from_unix_seconds(1_714_564_800.123_9).map(|at| at.to_string()),
            Some("2024-05-01T12:00:00.123Z".to_owned())
        );
        for bad in [f64::NAN, f64::INFINITY, -1.0, END_OF_YEAR_9999] {
            assert_eq!(from_unix_seconds(bad), None, "{bad}");
        }
    }
}
