//! Timestamps as the seed's browser client sees them: JavaScript's
//! `Date.prototype.toISOString()` (UTC, milliseconds, `Z`).

use serde::{Serialize, Serializer};
use std::fmt;

/// A UTC instant at nanosecond precision. The seed's TIMESTAMP columns carry no
/// zone; like Spin's Postgres interface (its date-times "are always treated as
/// UTC") we read them as UTC, so no zone conversion happens here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcDateTime {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanosecond: u32,
}

impl UtcDateTime {
    /// Builds an instant from calendar parts; `None` when a part is out of range
    /// (such as 31 April), so a malformed driver value cannot reach the client.
    pub fn from_parts(
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        nanosecond: u32,
    ) -> Option<Self> {
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60
            && nanosecond < 1_000_000_000;
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanosecond,
        })
    }

    /// The instant `millis` milliseconds after the Unix epoch (days to
    /// calendar dates by the proleptic Gregorian calendar).
    pub fn from_unix_millis(millis: u64) -> Self {
        let seconds = millis / 1000;
        let days = (seconds / 86_400) as i64;
        let of_day = seconds % 86_400;
        // Days since 0000-03-01, counted in 400-year eras of 146,097 days.
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u8;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        } as u8;
        let year = (year_of_era + era * 400 + i64::from(month <= 2)) as i32;
        Self {
            year,
            month,
            day,
            hour: (of_day / 3600) as u8,
            minute: (of_day / 60 % 60) as u8,
            second: (of_day % 60) as u8,
            nanosecond: (millis % 1000) as u32 * 1_000_000,
        }
    }
}

impl UtcDateTime {
    /// Microseconds since the Unix epoch (negative before it): the
    /// instant's whole precision as PostgreSQL keeps a TIMESTAMP, for keys
    /// that must find the row again exactly (history cursors).
    pub fn unix_micros(&self) -> i64 {
        // Days since the epoch by the proleptic Gregorian calendar, counted
        // from 0000-03-01 in 400-year eras, the inverse of `from_unix_millis`.
        let year = i64::from(self.year) - i64::from(self.month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let month_from_march = (i64::from(self.month) + 9) % 12;
        let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era * 146_097 + day_of_era - 719_468;
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        seconds * 1_000_000 + i64::from(self.nanosecond / 1000)
    }
}

/// `2024-05-01T12:34:56.789Z`, truncated to milliseconds like a JavaScript
/// `Date`; years outside 0..=9999 use JavaScript's six-digit signed form.
impl fmt::Display for UtcDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (0..=9999).contains(&self.year) {
            write!(f, "{:04}", self.year)?;
        } else {
            let sign = if self.year < 0 { '-' } else { '+' };
            write!(f, "{sign}{:06}", self.year.unsigned_abs())?;
        }
        write!(
            f,
            "-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanosecond / 1_000_000
        )
    }
}

impl Serialize for UtcDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i32, month: u8, day: u8, nanosecond: u32) -> UtcDateTime {
        UtcDateTime::from_parts(year, month, day, 7, 8, 9, nanosecond).unwrap()
    }

    #[test]
    fn unix_micros_count_from_the_epoch() {
        assert_eq!(UtcDateTime::from_unix_millis(0).unix_micros(), 0);
        assert_eq!(at(1970, 1, 1, 1_000).unix_micros(), 25_689_000_001);
        assert_eq!(
            at(1969, 12, 31, 0).unix_micros(),
            (-86_400 + 25_689) * 1_000_000
        );
        for millis in [951_782_400_000, 1_709_164_800_123, 4_102_444_799_999] {
            assert_eq!(
                UtcDateTime::from_unix_millis(millis).unix_micros(),
                millis as i64 * 1000,
                "{millis}"
            );
        }
        assert_eq!(
            at(2024, 12, 31, 123_456_789).unix_micros(),
            1_735_628_889_123_456
        );
    }

    #[test]
    fn formats_like_to_iso_string() {
        assert_eq!(at(2024, 5, 1, 0).to_string(), "2024-05-01T07:08:09.000Z");
        assert_eq!(
            at(2024, 12, 31, 123_456_789).to_string(),
            "2024-12-31T07:08:09.123Z"
        );
    }

    #[test]
    fn truncates_rather_than_rounds_milliseconds() {
        assert_eq!(
            at(2024, 1, 1, 999_999_999).to_string(),
            "2024-01-01T07:08:09.999Z"
        );
    }

    #[test]
    fn formats_extreme_years_like_javascript() {
        assert_eq!(
            at(10000, 1, 1, 0).to_string(),
            "+010000-01-01T07:08:09.000Z"
        );
        assert_eq!(at(-1, 1, 1, 0).to_string(), "-000001-01-01T07:08:09.000Z");
        assert_eq!(at(5, 1, 1, 0).to_string(), "0005-01-01T07:08:09.000Z");
    }

    #[test]
    fn rejects_impossible_dates() {
        assert!(UtcDateTime::from_parts(2024, 2, 29, 0, 0, 0, 0).is_some());
        assert!(UtcDateTime::from_parts(2023, 2, 29, 0, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(1900, 2, 29, 0, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(2024, 4, 31, 0, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(2024, 13, 1, 0, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(2024, 1, 0, 0, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(2024, 1, 1, 24, 0, 0, 0).is_none());
        assert!(UtcDateTime::from_parts(2024, 1, 1, 0, 0, 0, 1_000_000_000).is_none());
    }

    #[test]
    fn unix_milliseconds_become_calendar_instants() {
        assert_eq!(
            UtcDateTime::from_unix_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            UtcDateTime::from_unix_millis(951_782_400_123).to_string(),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            UtcDateTime::from_unix_millis(1_798_761_599_999).to_string(),
            "2026-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn serialises_as_a_string() {
        let json = serde_json::to_value(at(2024, 5, 1, 5_000_000)).unwrap();
        assert_eq!(json, serde_json::json!("2024-05-01T07:08:09.005Z"));
    }
}
