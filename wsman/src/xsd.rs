//! The one codec for times on the wire, in both notations WS-Management meets:
//!
//! - XML Schema lexical forms: `xs:duration` (OperationTimeout, `cim:Interval`) and
//!   `xs:dateTime` in UTC (`cim:Datetime`), as WinRM writes typed properties.
//! - DMTF CIM forms (DSP0004 2.2.1): the datetime `yyyymmddHHMMSS.mmmmmm+UUU` and the interval
//!   `ddddddddhhmmss.mmmmmm:000`, as they appear inside CIM-XML and in untyped string
//!   properties.
//!
//! Hand-written so the protocol layer carries no date crate. Times are milliseconds since the
//! UNIX epoch, UTC.

use std::fmt::Write as _;

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

/// Formats milliseconds since the UNIX epoch as `2024-05-01T10:00:00.123Z`.
pub fn format_datetime_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_datetime_ms(&mut out, ms);
    out
}

/// Appends `2024-05-01T10:00:00.123Z` without going through `fmt` (the job Get hot path
/// writes four of these per response).
pub fn write_datetime_ms(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) as u64;
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        let _ = write!(out, "{y:04}");
    }
    out.push('-');
    push_digits(out, u64::from(m), 2);
    out.push('-');
    push_digits(out, u64::from(d), 2);
    out.push('T');
    push_digits(out, in_day / 3_600_000, 2);
    out.push(':');
    push_digits(out, in_day / 60_000 % 60, 2);
    out.push(':');
    push_digits(out, in_day / 1_000 % 60, 2);
    out.push('.');
    push_digits(out, in_day % 1_000, 3);
    out.push('Z');
}

/// DMTF CIM datetime `yyyymmddHHMMSS.mmmmmm+000` (DSP0004 2.2.1) of a UTC instant, the form
/// inside CIM-XML. Always written in UTC (offset `+000`).
pub fn format_dmtf_datetime_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let in_day = secs % 86_400;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}.{:06}+000",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        (ms % 1000) * 1000
    )
}

/// Parses a DMTF CIM datetime (`yyyymmddHHMMSS.mmmmmmsUUU`, `s` a sign and `UUU` the offset in
/// minutes) into UTC milliseconds. `None` for malformed text, for instants before the epoch
/// and for intervals (`:` in the sign position).
pub fn parse_dmtf_datetime_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 25 || b[14] != b'.' || !matches!(b[21], b'+' | b'-') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<i64>().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec, micro) = (num(8..10)?, num(10..12)?, num(12..14)?, num(15..21)?);
    let offset = num(22..25)? * if b[21] == b'-' { -1 } else { 1 };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // mo and d were range-checked just above, so the casts cannot truncate.
    let days = days_from_civil(y, mo as u32, d as u32);
    let local_ms = ((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + micro / 1000;
    let utc = local_ms - offset * 60_000;
    u64::try_from(utc).ok()
}

/// Parses an `xs:dateTime` (`YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM]`, the text of a WS-Management
/// `cim:Datetime`) into UTC milliseconds. A time without a zone is refused: its instant is
/// unknown. `None` for malformed text and for instants before the epoch.
pub fn parse_datetime_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // The first three digits are the milliseconds; finer ones are dropped.
        let ms_digits = &frac[..digits.min(3)];
        millis = ms_digits.parse::<i64>().ok()? * 10_i64.pow(3 - ms_digits.len() as u32);
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let r = rest.as_bytes();
            if r.len() != 6 || !matches!(r[0], b'+' | b'-') || r[3] != b':' {
                return None;
            }
            let oh = num_in(rest, 1..3)?;
            let om = num_in(rest, 4..6)?;
            (oh * 60 + om) * if r[0] == b'-' { -1 } else { 1 }
        }
    };
    // mo and d were range-checked above, so the casts cannot truncate.
    let days = days_from_civil(y, mo as u32, d as u32);
    let local = (days * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + millis;
    u64::try_from(local - offset_min * 60_000).ok()
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(r)?;
    if t.bytes().all(|c| c.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
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

/// Day count since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`], same algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction, so the casts cannot truncate.
    (y, m as u32, d as u32)
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
        // Extremes must not panic.
        let _ = format_datetime_ms(i64::MIN);
        let _ = format_datetime_ms(i64::MAX);
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

    proptest::proptest! {
        #[test]
        fn dmtf_datetime_round_trips(t in 0u64..4_102_444_800_000) {
            proptest::prop_assert_eq!(parse_dmtf_datetime_ms(&format_dmtf_datetime_ms(t)), Some(t));
        }
    }
}
