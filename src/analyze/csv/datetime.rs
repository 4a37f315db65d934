//! ISO 8601 dates and date-times in CSV fields: which forms are read, the instant each names,
//! and how the earliest and latest are written back.
//!
//! Accepted (README "csv"): `YYYY-MM-DD`, optionally followed by `T` or a space and
//! `hh:mm`, `hh:mm:ss` or `hh:mm:ss.f` (1 to 9 fraction digits), then optionally a zone: `Z`,
//! `±hh`, `±hhmm` or `±hh:mm`. A value without a zone is taken as UTC.

/// A moment: seconds since 1970-01-01T00:00:00 UTC and nanoseconds, ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    pub seconds: i64,
    pub nanos: u32,
}

/// The instant `value` names, and whether it had a zone; `None` when it is not one of the
/// accepted forms or names no real date or time (`2026-02-30`, `24:00`).
pub fn parse(value: &[u8]) -> Option<(Instant, bool)> {
    let digits = |at: usize, n: usize| -> Option<u32> {
        let part = value.get(at..at + n)?;
        part.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    if value.len() < 10 || value[4] != b'-' || value[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut seconds_of_day = 0u32;
    let mut nanos = 0u32;
    let mut zone_seconds = 0i64;
    let mut zoned = false;
    let mut at = 10;
    if at < value.len() {
        if !matches!(value[at], b'T' | b' ') || value.get(at + 3) != Some(&b':') {
            return None;
        }
        let (hour, minute) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
        let mut second = 0;
        at += 6;
        if value.get(at) == Some(&b':') {
            second = digits(at + 1, 2)?;
            at += 3;
            if value.get(at) == Some(&b'.') {
                let fraction = value[at + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if !(1..=9).contains(&fraction) {
                    return None;
                }
                nanos = digits(at + 1, fraction)? * 10u32.pow(9 - fraction as u32);
                at += 1 + fraction;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
        if at < value.len() {
            zone_seconds = zone(&value[at..])?;
            zoned = true;
        }
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(seconds_of_day) - zone_seconds;
    Some((Instant { seconds, nanos }, zoned))
}

/// `Z`, `±hh`, `±hhmm`, `±hh:mm`: the offset east of UTC in seconds.
fn zone(text: &[u8]) -> Option<i64> {
    if text == b"Z" {
        return Some(0);
    }
    let sign = match text.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let number = |part: &[u8]| -> Option<i64> {
        (part.len() == 2 && part.iter().all(u8::is_ascii_digit))
            .then(|| i64::from(part[0] - b'0') * 10 + i64::from(part[1] - b'0'))
    };
    let (hours, minutes) = match text.len() {
        3 => (number(&text[1..3])?, 0),
        5 => (number(&text[1..3])?, number(&text[3..5])?),
        6 if text[3] == b':' => (number(&text[1..3])?, number(&text[4..6])?),
        _ => return None,
    };
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDThh:mm:ss`, with the fraction when there is one (trailing zeros dropped) and
/// `Z` when `utc` (the column had zones): how spreadsheets write their dates.
pub fn format(instant: Instant, utc: bool) -> String {
    let (year, month, day) = civil_from_days(instant.seconds.div_euclid(86_400));
    let of_day = instant.seconds.rem_euclid(86_400);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if instant.nanos > 0 {
        let fraction = format!("{:09}", instant.nanos);
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    if utc {
        text.push('Z');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: &str) -> Option<String> {
        parse(value.as_bytes()).map(|(instant, zoned)| format(instant, zoned))
    }

    #[test]
    fn accepted_forms_name_their_instant() {
        let cases = [
            ("2026-11-23", "2026-11-23T00:00:00"),
            ("2026-11-23T08:00", "2026-11-23T08:00:00"),
            ("2026-11-23 08:00:05", "2026-11-23T08:00:05"),
            ("2026-11-23T08:00:05.120", "2026-11-23T08:00:05.12"),
            (
                "2026-11-23T08:00:05.123456789",
                "2026-11-23T08:00:05.123456789",
            ),
            ("2026-11-23T08:00:00Z", "2026-11-23T08:00:00Z"),
            ("2026-11-23T08:00:00+01:00", "2026-11-23T07:00:00Z"),
            ("2026-11-23T00:30:00+0100", "2026-11-22T23:30:00Z"),
            ("2026-12-31T23:00:00-02", "2027-01-01T01:00:00Z"),
            ("2024-02-29", "2024-02-29T00:00:00"),
            ("1969-12-31T23:59:59", "1969-12-31T23:59:59"),
            ("0001-01-01", "0001-01-01T00:00:00"),
        ];
        for (value, want) in cases {
            assert_eq!(at(value).as_deref(), Some(want), "{value}");
        }
    }

    #[test]
    fn other_forms_and_impossible_dates_are_not_dates() {
        for value in [
            "2026-11-23T",
            "2026-11-23T08",
            "2026-02-29",
            "2026-13-01",
            "2026-11-31",
            "2026-11-23T24:00",
            "2026-11-23T08:60",
            "2026-11-23T08:00:00.",
            "26-11-23",
            "2026/11/23",
            "20261123",
            "2026-11-23T08:00:00+1",
            "2026-11-23T08:00:00 Z",
            "2026-11-23Z",
            "2026-11-23T08:00:00.1234567890",
            "x2026-11-23",
            "2026-11-23x",
        ] {
            assert_eq!(at(value), None, "{value}");
        }
    }

    #[test]
    fn day_numbers_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
