//! Timestamps as the IronWorker clients read them: RFC 3339 strings in UTC, with the year-1
//! value standing for "unset" (contract §2). Never integers.

use chrono::{DateTime, SecondsFormat, Utc};

/// The string every client reads as "not set".
pub const UNSET: &str = "0001-01-01T00:00:00Z";

/// Formats a time as the clients expect, e.g. `2016-06-08T17:52:09.689Z`.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats an optional time, using [`UNSET`] for `None`.
pub fn format_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(format).unwrap_or_else(|| UNSET.to_owned())
}

/// Parses an RFC 3339 time with any offset, as Python, Go and Ruby send it.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_forms_and_formats_utc() {
        let t = parse("2030-01-01T12:00:00.123456-05:00").unwrap();
        assert_eq!(format(t), "2030-01-01T17:00:00.123Z");
        assert!(parse("2030-01-01T12:00:00+00:00").is_some());
        assert!(parse("yesterday").is_none());
        assert_eq!(format_opt(None), UNSET);
    }
}
