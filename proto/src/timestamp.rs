//! Timestamps as Pipelock writes and reads them (spec §1.5).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats a UTC instant in Go's RFC3339Nano form: `Z`, fractional seconds
/// only when non-zero, trailing zeros removed.
pub fn format(t: OffsetDateTime) -> String {
    // `parse` refuses instants that have no UTC form in range; anything
    // else built by hand is shown in its own offset rather than panic.
    let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Now, in [`format()`]'s form.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Parses what pipelock-verify accepts:
/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, upper-case `T` and `Z`,
/// calendar-valid.
pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let mut i = 19;
    let mut ok = shape;
    if ok && b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        ok = (1..=9).contains(&(i - start));
    }
    if ok {
        ok = match b.get(i) {
            Some(b'Z') => i + 1 == b.len(),
            Some(b'+') | Some(b'-') => {
                i + 6 == b.len() && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
            }
            _ => false,
        };
    }
    if !ok {
        return Err(format!("{s:?} is not an RFC 3339 timestamp"));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not a valid time: {e}"))?;
    // 9999-12-31T23:59:59-00:01 is year 10000 in UTC: out of range for
    // comparisons and canonical formatting, so refused here.
    match t.checked_to_offset(time::UtcOffset::UTC) {
        Some(utc) if (1..=9999).contains(&utc.year()) => Ok(t),
        _ => Err(format!("{s:?} is out of range (years 1 to 9999 in UTC)")),
    }
}

/// True when `s` is exactly in [`format()`]'s canonical UTC form.
pub fn is_canonical(s: &str) -> bool {
    parse(s).is_ok_and(|t| format(t) == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_past_9999_in_utc_is_refused_not_a_panic() {
        // Found by fuzzing: parsing accepted it, formatting panicked.
        for s in ["9999-12-31T23:59:59-00:01", "9999-12-31T23:30:00-01:00"] {
            assert!(parse(s).unwrap_err().contains("out of range"), "{s}");
            assert!(!is_canonical(s));
        }
        assert!(parse("9999-12-31T23:59:59+00:01").is_ok());
        // Year 0 formatted as "-001-12-31...", which nothing parses.
        assert!(parse("0000-01-01T00:00:00+00:01").is_err());
        assert!(parse("0001-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn go_rfc3339nano_form() {
        let t = parse("2026-07-24T22:57:41.868192730Z").unwrap();
        assert_eq!(format(t), "2026-07-24T22:57:41.86819273Z");
        let t = parse("2026-04-15T14:00:00+02:00").unwrap();
        assert_eq!(format(t), "2026-04-15T12:00:00Z");
        assert!(is_canonical("2026-04-15T12:00:00.5Z"));
        assert!(!is_canonical("2026-04-15T12:00:00.500Z"));
        assert!(!is_canonical("2026-04-15T12:00:00+00:00"));
    }

    #[test]
    fn rejects_what_pipelock_rejects() {
        for bad in [
            "2026-04-15t12:00:00Z",
            "2026-04-15T12:00:00z",
            "2026-02-30T12:00:00Z",
            "2026-04-15T12:00:00.Z",
            "2026-04-15T12:00:00.1234567890Z",
            "2026-04-15 12:00:00Z",
            "2026-04-15T12:00:00",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
