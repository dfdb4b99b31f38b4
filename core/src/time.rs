//! Time as an input. The model never reads a clock: callers pass `Millis` (milliseconds since
//! the UNIX epoch, UTC) and the model only compares and formats them.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = u64;

/// Civil date from days since the epoch (Howard Hinnant's algorithm), valid for all u64 inputs
/// we can meet (year < 584 million).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

pub fn civil(t: Millis) -> Civil {
    let secs = t / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        millis: (t % 1000) as u32,
    }
}

/// RFC 3339 UTC with milliseconds, the form WS-Management's `cim:Datetime` carries.
pub fn rfc3339(t: Millis) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// DMTF CIM datetime `yyyymmddHHMMSS.mmmmmm+000` (DSP0004 2.2.1), the form inside CIM-XML.
pub fn cim_datetime(t: Millis) -> String {
    let c = civil(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{:06}+000",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.millis * 1000
    )
}

/// Parses a DMTF CIM datetime (`yyyymmddHHMMSS.mmmmmmsUUU`) into UTC millis. Returns `None` for
/// malformed text and for intervals (`:` as the sign character).
pub fn parse_cim_datetime(s: &str) -> Option<Millis> {
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
    let days = days_from_civil(y, mo as u32, d as u32);
    let local_ms = ((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + micro / 1000;
    let utc = local_ms - offset * 60_000;
    u64::try_from(utc).ok()
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`), the form a WS-Management
/// `cim:Datetime` carries, into UTC millis.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
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
        let scaled: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = scaled.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let r = rest.as_bytes();
            if r.len() != 6 || !matches!(r[0], b'+' | b'-') || r[3] != b':' {
                return None;
            }
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            (oh * 60 + om) * if r[0] == b'-' { -1 } else { 1 }
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let local = (days * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + millis;
    u64::try_from(local - offset_min * 60_000).ok()
}

/// A CIM interval `ddddddddhhmmss.mmmmmm:000`.
pub fn cim_interval(ms: Millis) -> String {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_557_600_123), "2024-05-01T10:00:00.123Z");
        assert_eq!(cim_datetime(1_714_557_600_123), "20240501100000.123000+000");
        assert_eq!(cim_interval(300_000), "00000000000500.000000:000");
    }

    #[test]
    fn offsets_shift_to_utc() {
        assert_eq!(
            parse_cim_datetime("20240501120000.000000+120"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_cim_datetime("00000000000500.000000:000"), None);
        assert_eq!(parse_cim_datetime("garbage"), None);
    }

    #[test]
    fn rfc3339_parses_with_and_without_offsets() {
        assert_eq!(
            parse_rfc3339("2024-05-01T10:00:00Z"),
            Some(1_714_557_600_000)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T10:00:00.123Z"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00"), None);
        assert_eq!(parse_rfc3339("2024-13-01T10:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    proptest! {
        #[test]
        fn cim_datetime_round_trips(t in 0u64..4_102_444_800_000) {
            prop_assert_eq!(parse_cim_datetime(&cim_datetime(t)), Some(t));
        }

        #[test]
        fn rfc3339_round_trips(t in 0u64..4_102_444_800_000) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
    }
}
