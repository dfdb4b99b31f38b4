//! The one codec for times on the wire, in both notations WS-Management meets:
//!
//! - XML Schema lexical forms: `xs:duration` (OperationTimeout, `cim:Interval`) and
//!   `xs:dateTime` in UTC (`cim:Datetime`), as WinRM writes typed properties.
//! - DMTF CIM forms (DSP0004 2.2.1): the datetime `yyyymmddHHMMSS.mmmmmm+UUU` and the interval
//!   `ddddddddhhmmss.mmmmmm:000`, as they appear inside CIM-XML and in untyped string
//!   properties.
//!
//! Times are milliseconds since the UNIX epoch, UTC. Instants (both datetime forms) go through
//! the `time` crate's calendar, reader and formatter; durations and intervals are plain
//! arithmetic on milliseconds, which is not a calendar question, so they are written here.

use std::fmt::Write as _;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// Why an `xs:duration` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid xs:duration `{value}`: {reason}")]
pub struct DurationError {
    /// The text refused.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

/// Parses a non-negative `xs:duration` (`PT60.000S`, `PT20S`, `P1DT2H`) into milliseconds.
///
/// Fractions of a millisecond are truncated. Years and months have no fixed length; they are
/// counted as 365 and 30 days, which only matters for absurd timeouts. A negative duration
/// (`-PT1S`) is refused because every caller here uses durations as timeouts, and WinRM
/// answers `PT-1S` with a fault (docs/facts.md#faults).
pub fn parse_duration_ms(value: &str) -> Result<u64, DurationError> {
    let err = |reason| DurationError {
        value: value.to_owned(),
        reason,
    };
    let s = value.trim_matches(crate::xml::is_xml_space);
    if s.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    let Some(mut rest) = s.strip_prefix('P') else {
        return Err(err("must start with 'P'"));
    };
    const DAY: u128 = 86_400_000;
    let mut total: u128 = 0;
    let mut in_time = false;
    let mut any = false;
    let mut any_after_t = false;
    // Designators must appear in this order; `last` is the index of the last one seen.
    let date_order = ['Y', 'M', 'D'];
    let time_order = ['H', 'M', 'S'];
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            if in_time {
                return Err(err("'T' appears twice"));
            }
            in_time = true;
            last = None;
            rest = r;
            continue;
        }
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| err("number without a designator"))?;
        if digits_end == 0 {
            return Err(err("expected a number"));
        }
        let (int_part, after) = rest.split_at(digits_end);
        let int: u128 = int_part.parse().map_err(|_| err("number too large"))?;
        let (frac_ms, after) = match after.strip_prefix('.') {
            Some(f) => {
                let end = f
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or_else(|| err("fraction without a designator"))?;
                if end == 0 {
                    return Err(err("empty fraction"));
                }
                let (frac, after) = f.split_at(end);
                let ms = frac
                    .bytes()
                    .chain(std::iter::repeat(b'0'))
                    .take(3)
                    .fold(0u128, |acc, b| acc * 10 + u128::from(b - b'0'));
                (Some(ms), after)
            }
            None => (None, after),
        };
        let mut chars = after.chars();
        let designator = chars.next().ok_or_else(|| err("missing designator"))?;
        rest = chars.as_str();
        let order: &[char] = if in_time { &time_order } else { &date_order };
        let idx = order
            .iter()
            .position(|&d| d == designator)
            .ok_or_else(|| err("unknown or misplaced designator"))?;
        if last.is_some_and(|l| idx <= l) {
            return Err(err("designators out of order or repeated"));
        }
        last = Some(idx);
        if frac_ms.is_some() && !(in_time && designator == 'S') {
            return Err(err("only seconds may have a fraction"));
        }
        let unit: u128 = match (in_time, designator) {
            (false, 'Y') => 365 * DAY,
            (false, 'M') => 30 * DAY,
            (false, _) => DAY,
            (true, 'H') => 3_600_000,
            (true, 'M') => 60_000,
            (true, _) => 1_000,
        };
        total = int
            .checked_mul(unit)
            .and_then(|v| v.checked_add(total))
            .and_then(|v| v.checked_add(frac_ms.unwrap_or(0)))
            .ok_or_else(|| err("duration too large"))?;
        any = true;
        any_after_t |= in_time;
    }
    if !any {
        return Err(err("no component"));
    }
    if in_time && !any_after_t {
        return Err(err("'T' must be followed by a time component"));
    }
    u64::try_from(total).map_err(|_| err("duration too large"))
}

/// The `xs:duration` winrm.exe writes as OperationTimeout: seconds with three decimals,
/// `PT60.000S` (the form [`parse_duration_ms`] reads back).
pub fn format_timeout(d: std::time::Duration) -> String {
    format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
}

/// Formats milliseconds as the `xs:duration` WinRM writes in `cim:Interval`:
/// `P0DT0H1M40S` (real WinRM output, docs/facts.md#values), with a `.mmm` fraction only when the
/// value is not a whole number of seconds.
pub fn format_interval_ms(ms: u64) -> String {
    let mut out = String::with_capacity(24);
    write_interval_ms(&mut out, ms);
    out
}

/// Appends an xs:duration; the writer's hot path, so no temporary string.
pub fn write_interval_ms(out: &mut String, ms: u64) {
    let days = ms / 86_400_000;
    let hours = ms / 3_600_000 % 24;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1_000 % 60;
    let frac = ms % 1_000;
    let _ = write!(out, "P{days}DT{hours}H{minutes}M{seconds}");
    if frac != 0 {
        out.push('.');
        push_digits(out, frac, 3);
    }
    out.push('S');
}

/// Appends `value` as exactly `width` decimal digits (zero-padded, truncated to width).
fn push_digits(out: &mut String, value: u64, width: u32) {
    let mut div = 10u64.pow(width.saturating_sub(1));
    while div > 0 {
        out.push(char::from(b'0' + ((value / div) % 10) as u8));
        div /= 10;
    }
}

/// `2024-05-01T10:00:00.123Z`: the `xs:dateTime` WinRM writes in a `cim:Datetime`, UTC with
/// milliseconds. [`write_datetime_ms`] writes it by hand for speed; the tests compare.
#[cfg(test)]
const XS_DATETIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `20240501100000.123000+000` without its offset: the DMTF datetime's fixed-width fields
/// (DSP0004 2.2.1), read and written; the offset is minutes, which no format description has.
const DMTF_DATETIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day][hour][minute][second].[subsecond digits:6]");

/// The first and last instants a four-digit year can write (the `time` crate's range without
/// its `large-dates` feature, and all that RFC 3339 and DSP0004 allow). Instants outside are
/// written as these: the simulator's clock can be pushed to `u64::MAX` ms, year 584 million.
const FIRST: OffsetDateTime = datetime!(-9999-01-01 0:00 UTC);
const LAST: OffsetDateTime = datetime!(9999-12-31 23:59:59.999 UTC);

/// The instant `ms` milliseconds after the epoch, held to [`FIRST`]..=[`LAST`].
fn instant(ms: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(if ms < 0 {
        FIRST
    } else {
        LAST
    })
}

/// Milliseconds since the epoch of an instant, the fraction truncated; `None` before the epoch.
fn unix_ms(at: OffsetDateTime) -> Option<u64> {
    u64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// Writes `at` with `format` into `out` through a stack buffer, without a temporary string.
fn push_formatted(out: &mut String, at: OffsetDateTime, format: &[BorrowedFormatItem<'_>]) {
    let mut buf = [0u8; 32];
    let mut w = &mut buf[..];
    // Both descriptions write at most 26 bytes of ASCII for any year in FIRST..=LAST, so
    // neither the write nor the UTF-8 check can fail.
    if let Ok(n) = at.format_into(&mut w, format) {
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
    }
}

/// Formats milliseconds since the UNIX epoch as `2024-05-01T10:00:00.123Z`. Instants outside
/// the years -9999..=9999 are written as the nearest end of that range.
pub fn format_datetime_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_datetime_ms(&mut out, ms);
    out
}

/// Appends `2024-05-01T10:00:00.123Z` (as [`format_datetime_ms`]) without a temporary string.
///
/// The job Get hot path writes four of these per response: the crate gives the calendar
/// fields and the digits are pushed here: ~70 ns a datetime, against ~150-200 ns through its
/// formatter walking a format description (and ~45 ns for the home-made calendar this
/// replaced), release build on a loaded 2-core machine. The text is the one [`XS_DATETIME`]
/// describes; the tests hold the two together.
pub fn write_datetime_ms(out: &mut String, ms: i64) {
    let at = instant(i128::from(ms));
    let (year, month, day) = at.to_calendar_date();
    let (hour, minute, second, milli) = at.to_hms_milli();
    if year < 0 {
        out.push('-');
    }
    push_digits(out, u64::from(year.unsigned_abs()), 4);
    out.push('-');
    push_digits(out, u64::from(u8::from(month)), 2);
    out.push('-');
    push_digits(out, u64::from(day), 2);
    out.push('T');
    push_digits(out, u64::from(hour), 2);
    out.push(':');
    push_digits(out, u64::from(minute), 2);
    out.push(':');
    push_digits(out, u64::from(second), 2);
    out.push('.');
    push_digits(out, u64::from(milli), 3);
    out.push('Z');
}

/// DMTF CIM datetime `yyyymmddHHMMSS.mmmmmm+000` (DSP0004 2.2.1) of a UTC instant, the form
/// inside CIM-XML. Always written in UTC (offset `+000`); instants past the year 9999 as its
/// last millisecond.
pub fn format_dmtf_datetime_ms(ms: u64) -> String {
    let mut out = String::with_capacity(25);
    push_formatted(&mut out, instant(i128::from(ms)), DMTF_DATETIME);
    out.push_str("+000");
    out
}

/// Parses a DMTF CIM datetime (`yyyymmddHHMMSS.mmmmmmsUUU`, `s` a sign and `UUU` the offset in
/// minutes) into UTC milliseconds. `None` for malformed text (fields that are not digits, a
/// date or time that does not exist), for instants before the epoch and for intervals (`:` in
/// the sign position).
pub fn parse_dmtf_datetime_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() != 25
        || b[14] != b'.'
        || !matches!(b[21], b'+' | b'-')
        || !(digits(0..14) && digits(15..21) && digits(22..25))
    {
        return None;
    }
    let local = PrimitiveDateTime::parse(&s[..21], DMTF_DATETIME).ok()?;
    let minutes: i64 = s[22..].parse().ok()?;
    let offset = Duration::minutes(if b[21] == b'-' { -minutes } else { minutes });
    unix_ms(local.assume_utc().checked_sub(offset)?)
}

/// Parses an `xs:dateTime` (`YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM]`, the text of a WS-Management
/// `cim:Datetime`) into UTC milliseconds, fractions past the millisecond truncated. A time
/// without a zone is refused: its instant is unknown. `None` for malformed text, dates and
/// times that do not exist, and instants before the epoch.
///
/// This is RFC 3339's form (the `time` crate's reader) with `T` as the only separator, as XML
/// Schema has it. A leap second (`:60`) is read as RFC 3339 allows it, at the end of a month
/// in UTC only, as the last millisecond before the next second.
pub fn parse_datetime_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    // RFC 3339 lets any character separate date and time; xs:dateTime has only `T` (lower
    // case was always accepted here, as RFC 3339 allows).
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    unix_ms(OffsetDateTime::parse(s, &Rfc3339).ok()?)
}
/// DMTF CIM interval `ddddddddhhmmss.mmmmmm:000` (DSP0004 2.2.1) of a duration.
pub fn format_dmtf_interval_ms(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:08}{:02}{:02}{:02}.{:06}:000",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
        (ms % 1000) * 1000
    )
}

#[cfg(test)]
mod datetime_tests {
    use super::parse_datetime_ms;

    #[test]
    fn xs_datetimes_parse_with_zones_and_fractions() {
        assert_eq!(
            parse_datetime_ms("2024-05-01T10:00:00Z"),
            Some(1_714_557_600_000)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T10:00:00.123Z"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T10:00:00.1234567Z"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T10:00:00.5Z"),
            Some(1_714_557_600_500)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_datetime_ms("2024-05-01T10:00:00"), None);
        assert_eq!(parse_datetime_ms("2024-13-01T10:00:00Z"), None);
        assert_eq!(parse_datetime_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_datetime_ms("garbage"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_clients_send() {
        assert_eq!(parse_duration_ms("PT60.000S"), Ok(60_000));
        assert_eq!(parse_duration_ms("PT20S"), Ok(20_000));
        assert_eq!(parse_duration_ms("PT0.5S"), Ok(500));
        assert_eq!(parse_duration_ms("PT1.23456S"), Ok(1_234));
        assert_eq!(parse_duration_ms("P1DT2H3M4S"), Ok(93_784_000));
        assert_eq!(parse_duration_ms(" PT1M "), Ok(60_000));
        assert_eq!(parse_duration_ms("P1M"), Ok(30 * 86_400_000));
    }

    #[test]
    fn durations_refused() {
        for bad in [
            "",
            "P",
            "PT",
            "PT-1S",
            "-PT1S",
            "T1S",
            "PT1",
            "PTS",
            "P1S",
            "PT1.S",
            "P1.5D",
            "PT1S2M",
            "PT1H1H",
            "P1DT",
            "PT99999999999999999999999999999999999999999S",
            "PT1STT",
            "PT١S",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(format_interval_ms(100_000), "P0DT0H1M40S");
        assert_eq!(format_interval_ms(2_000), "P0DT0H0M2S");
        assert_eq!(format_interval_ms(2_005), "P0DT0H0M2.005S");
        assert_eq!(format_interval_ms(90_061_001), "P1DT1H1M1.001S");
        for ms in [0, 1, 999, 1_000, 86_399_999, 90_061_001] {
            assert_eq!(parse_duration_ms(&format_interval_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn datetimes() {
        assert_eq!(format_datetime_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_datetime_ms(1_714_557_600_123),
            "2024-05-01T10:00:00.123Z"
        );
        assert_eq!(
            format_datetime_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(format_datetime_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_datetime_ms(4_107_542_399_999),
            "2100-02-28T23:59:59.999Z",
            "2100 is no leap year"
        );
        assert_eq!(
            format_datetime_ms(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
        // Past the four-digit years: held to the ends of the range, never a panic.
        assert_eq!(
            format_datetime_ms(253_402_300_800_000),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_datetime_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_datetime_ms(i64::MIN), "-9999-01-01T00:00:00.000Z");
        let mut out = String::from("<t>");
        write_datetime_ms(&mut out, 1_714_557_600_123);
        assert_eq!(out, "<t>2024-05-01T10:00:00.123Z");
    }

    /// The hand-written hot path and the crate's formatter give the same text everywhere,
    /// the ends of the range included.
    #[test]
    fn xs_datetime_writer_matches_the_format_description() {
        let crate_text = |ms: i64| {
            instant(i128::from(ms))
                .format(XS_DATETIME)
                .expect("in range")
        };
        for ms in [
            0,
            -1,
            1,
            999,
            951_782_400_000,
            1_714_557_600_123,
            253_402_300_799_999,
            i64::MAX,
            i64::MIN,
            -62_167_219_200_001,
        ] {
            assert_eq!(format_datetime_ms(ms), crate_text(ms), "{ms}");
        }
    }

    proptest::proptest! {
        #[test]
        fn xs_datetime_writer_matches_everywhere(ms in proptest::num::i64::ANY) {
            let want = instant(i128::from(ms)).format(XS_DATETIME).expect("in range");
            proptest::prop_assert_eq!(format_datetime_ms(ms), want);
        }

        #[test]
        fn xs_datetime_round_trips(t in 0u64..253_402_300_800_000) {
            let text = format_datetime_ms(i64::try_from(t).expect("small"));
            proptest::prop_assert_eq!(parse_datetime_ms(&text), Some(t));
        }
    }

    #[test]
    fn xs_datetime_edges() {
        let ok = |s: &str, ms: u64| assert_eq!(parse_datetime_ms(s), Some(ms), "{s}");
        ok("2000-02-29T00:00:00Z", 951_782_400_000);
        ok("2024-02-29T00:00:00Z", 1_709_164_800_000);
        ok("9999-12-31T23:59:59.999Z", 253_402_300_799_999);
        ok("1970-01-01T00:00:00Z", 0);
        ok("1970-01-01t00:00:00.001z", 1);
        ok("  2024-05-01T10:00:00Z\n", 1_714_557_600_000);
        ok("2024-05-01T05:30:00-04:30", 1_714_557_600_000);
        // Fraction digits: one to many, truncated (not rounded) to the millisecond.
        ok("2024-05-01T10:00:00.9Z", 1_714_557_600_900);
        ok("2024-05-01T10:00:00.1239Z", 1_714_557_600_123);
        ok("2024-05-01T10:00:00.123999999999Z", 1_714_557_600_123);
        // A leap second at a month's end in UTC is the last millisecond before the next second.
        ok("2016-12-31T23:59:60Z", 1_483_228_799_999);
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-05-00T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:60:00Z",
            "2024-05-01T10:00:60Z",
            "2024-05-01T10:00:00+24:00",
            "2024-05-01T10:00:00+02:60",
            "2024-05-01T10:00:00+0200",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00ZZ",
            "10000-01-01T00:00:00Z",
            "+2024-05-01T10:00:00Z",
            "-0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59.9999Z",
            "1970-01-01T00:30:00+01:00",
            "",
        ] {
            assert_eq!(parse_datetime_ms(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(format_timeout(Duration::from_secs(60)), "PT60.000S");
        assert_eq!(format_timeout(Duration::from_millis(1500)), "PT1.500S");
        assert_eq!(
            parse_duration_ms(&format_timeout(Duration::from_millis(1500))),
            Ok(1500)
        );
    }

    #[test]
    fn dmtf_forms() {
        assert_eq!(
            format_dmtf_datetime_ms(1_714_557_600_123),
            "20240501100000.123000+000"
        );
        assert_eq!(
            format_dmtf_interval_ms(300_000),
            "00000000000500.000000:000"
        );
        assert_eq!(
            parse_dmtf_datetime_ms("20240501120000.000000+120"),
            Some(1_714_557_600_000),
            "offsets shift to UTC"
        );
        assert_eq!(parse_dmtf_datetime_ms("00000000000500.000000:000"), None);
        assert_eq!(parse_dmtf_datetime_ms("garbage"), None);
    }

    #[test]
    fn dmtf_datetime_edges() {
        assert_eq!(
            format_dmtf_datetime_ms(951_782_400_000),
            "20000229000000.000000+000"
        );
        assert_eq!(format_dmtf_datetime_ms(0), "19700101000000.000000+000");
        assert_eq!(
            format_dmtf_datetime_ms(253_402_300_799_999),
            "99991231235959.999000+000"
        );
        assert_eq!(
            format_dmtf_datetime_ms(u64::MAX),
            "99991231235959.999000+000",
            "held to the last four-digit year"
        );
        let ok = |s: &str, ms: u64| assert_eq!(parse_dmtf_datetime_ms(s), Some(ms), "{s}");
        ok("20240229000000.000000+000", 1_709_164_800_000);
        ok("99991231235959.999999+000", 253_402_300_799_999);
        ok("20240501073000.000999-150", 1_714_557_600_000);
        ok("19700101000000.000000+000", 0);
        for bad in [
            "20230229000000.000000+000",
            "20240431000000.000000+000",
            "20241301000000.000000+000",
            "20240501240000.000000+000",
            "20240501235960.000000+000",
            "2024+501000000.000000+000",
            "2024050100000 .000000+000",
            "20240501000000.00000a+000",
            "20240501000000.000000+0a0",
            "20240501000000.000000*000",
            "19700101000000.000000+001",
            "19691231235959.999999+000",
            "20240501000000.000000+000 ",
            "202405010000.00000000+000",
        ] {
            assert_eq!(
                parse_dmtf_datetime_ms(bad),
                None,
                "{bad:?} should be refused"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn dmtf_datetime_round_trips(t in 0u64..4_102_444_800_000) {
            proptest::prop_assert_eq!(parse_dmtf_datetime_ms(&format_dmtf_datetime_ms(t)), Some(t));
        }
    }
}
