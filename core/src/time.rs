//! Time as an input. The model never reads a clock: callers pass `Millis` (milliseconds since
//! the UNIX epoch, UTC) and the model only compares and formats them.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::{datetime, format_description};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = u64;

/// `2024-05-01T10:00:00.123Z`: RFC 3339 in UTC, always three fraction digits, so every instant
/// has the same width and the text sorts as the instants do.
const RFC3339_MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The last instant with a four-digit year, which is all RFC 3339 can write.
const LAST: OffsetDateTime = datetime!(9999-12-31 23:59:59.999 UTC);

/// [`LAST`] in milliseconds since the epoch: the control API refuses to move a clock past it.
pub const LAST_MS: Millis = 253_402_300_799_999;

/// RFC 3339 UTC with milliseconds, for the model's own text (recovery-point names) and the
/// control API. The wire's datetimes and intervals, in XML Schema and DMTF notation, are
/// written by the protocol crate (`replica_wsman::xsd`), which core must not depend on.
///
/// An instant past the year 9999 (the simulator's control API refuses to move a clock there,
/// but a topology or a caller may still hand one in) is written as [`LAST`]: RFC 3339 has no
/// five-digit years and its readers refuse them.
pub fn rfc3339(t: Millis) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000).unwrap_or(LAST);
    // Every value of `at` is in the description's range (year 0..=9999, UTC), so formatting
    // cannot fail; the fallback only keeps a panic unreachable.
    at.format(RFC3339_MILLIS)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_557_600_123), "2024-05-01T10:00:00.123Z");
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01.000Z");
        assert_eq!(rfc3339(999), "1970-01-01T00:00:00.999Z");
    }

    #[test]
    fn calendar_edges() {
        // Leap days: a year divisible by 4, by 400, and not by 100.
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        // LAST_MS is LAST.
        assert_eq!(i128::from(LAST_MS) * 1_000_000, LAST.unix_timestamp_nanos());
        // The last instant of year 9999, and beyond it.
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
