//! The only reader of wall time.
//!
//! `LEDGER_TIMESTAMP` (RFC 3339, e.g. `2026-11-22T10:00:00Z`) pins the clock, so
//! tests and reproductions get the same run ids and record times.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The environment variable that turns on [`Phases`] output.
pub const TIMINGS_VAR: &str = "LEDGER_TIMINGS";

/// The environment variable that pins the clock.
pub const TIMESTAMP_VAR: &str = "LEDGER_TIMESTAMP";

/// The current time in UTC, truncated to whole seconds, or the pinned time.
#[allow(clippy::disallowed_methods)] // the one sanctioned reader of wall time
pub fn now() -> Result<OffsetDateTime, crate::Error> {
    match std::env::var(TIMESTAMP_VAR) {
        Ok(text) => parse(&text).ok_or_else(|| crate::Error::Input {
            what: TIMESTAMP_VAR.to_string(),
            message: format!("{text:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"),
        }),
        Err(_) => Ok(truncate(OffsetDateTime::now_utc())),
    }
}

fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .ok()
        .map(|t| truncate(t.to_offset(time::UtcOffset::UTC)))
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0)
        .expect("zero nanoseconds is always valid")
}

/// RFC 3339 in UTC with a `Z`, whole seconds: the only time format in records.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC time always formats as RFC 3339")
}

/// Parses the time format of [`rfc3339`].
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `yyyymmddThhmmssZ`, the prefix of run ids.
pub fn compact(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A stopwatch over the phases of one command, for benchmarks: with
/// `LEDGER_TIMINGS` set in the environment, each [`Phases::mark`] prints the
/// time since the previous mark on stderr. Nothing is recorded.
pub struct Phases {
    on: bool,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Phases {
    /// Starts the stopwatch; it prints only when `LEDGER_TIMINGS` is set.
    #[allow(clippy::disallowed_methods)] // diagnostics only, never recorded
    pub fn start() -> Phases {
        let now = std::time::Instant::now();
        Phases {
            on: std::env::var_os(TIMINGS_VAR).is_some(),
            start: now,
            last: now,
        }
    }

    /// Ends the phase called `name`.
    pub fn mark(&mut self, name: &str) {
        if !self.on {
            return;
        }
        #[allow(clippy::disallowed_methods)] // diagnostics only, never recorded
        let now = std::time::Instant::now();
        // Resident memory now and at its peak, as the kernel counts it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                .map_or(0, |kb| kb >> 10)
        };
        eprintln!(
            "timing: {name:<24} {:>9.1} ms  (total {:.1} ms, RSS {} MiB, peak {} MiB)",
            (now - self.last).as_secs_f64() * 1e3,
            (now - self.start).as_secs_f64() * 1e3,
            field("VmRSS:"),
            field("VmHWM:"),
        );
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_utc_and_whole_seconds() {
        let t = parse("2026-11-22T20:13:05.75+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-22T19:13:05Z");
        assert_eq!(compact(t), "20261122T191305Z");
    }
}
