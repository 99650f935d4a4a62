//! Durations as policies write them: `90s`, `15m`, `1h`, `1h30m`.

use std::time::Duration;

/// Parse `[Nh][Nm][Ns]` (at least one part, in that order). Returns `None`
/// for anything else; the schema's pattern accepts exactly the same strings.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut parts = 0;
    for (unit, secs) in [('h', 3600u64), ('m', 60), ('s', 1)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(unit) {
            let n: u64 = rest[..digits].parse().ok()?;
            total = total.checked_add(n.checked_mul(secs)?)?;
            rest = &rest[digits + 1..];
            parts += 1;
        }
    }
    (rest.is_empty() && parts > 0).then(|| Duration::from_secs(total))
}

/// Format a duration the way [`parse`] reads it (`1h30m`, `90s` → `1m30s`).
pub(crate) fn format(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h2m3s"), Some(Duration::from_secs(3723)));
        for bad in ["", "m", "15", "15x", "1m1h", "-1m", "1.5h"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }
}
