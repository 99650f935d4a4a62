//! Durations as policies write them: `90s`, `15m`, `1h`, `1h30m`.

use std::time::Duration;

/// Parse `[Nh][Nm][Ns]` (at least one part, in that order, each at most 9
/// digits, so no sum overflows). Returns `None` for anything else; the
/// schema's pattern accepts exactly the same strings (a test compares them
/// on generated inputs).
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut parts = 0;
    for (unit, secs) in [('h', 3600u64), ('m', 60), ('s', 1)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if (1..=9).contains(&digits) && rest[digits..].starts_with(unit) {
            let n: u64 = rest[..digits].parse().ok()?;
            total = total.checked_add(n.checked_mul(secs)?)?;
            rest = &rest[digits + 1..];
            parts += 1;
        }
    }
    (rest.is_empty() && parts > 0).then(|| Duration::from_secs(total))
}

/// A duration as a policy writes it, parsed once when the policy is read:
/// the words (`1h30m`, shown back in messages and plans) and their value.
/// The schema's pattern accepts exactly what [`parse`] reads, so a policy
/// that passed its schema always deserializes; a caller that skips the
/// schema gets a deserialization error, never a silent default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDuration {
    text: String,
    value: Duration,
}

impl PolicyDuration {
    /// The duration `text` says; `None` when it is not one.
    pub fn new(text: &str) -> Option<PolicyDuration> {
        Some(PolicyDuration {
            text: text.to_string(),
            value: parse(text)?,
        })
    }

    /// Its value.
    pub fn get(&self) -> Duration {
        self.value
    }
}

impl std::fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for PolicyDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for PolicyDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PolicyDuration, D::Error> {
        let text = String::deserialize(d)?;
        PolicyDuration::new(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{}` is not a duration: write hours, minutes and seconds in that order, as 90s, 15m or 1h30m",
                crate::safeio::excerpt(&text, 40)
            ))
        })
    }
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

    /// The schema's `duration` pattern (what a policy passes before it is
    /// deserialized) and `parse` accept exactly the same strings, compared on
    /// every string of up to 5 characters over digits, the units and a few
    /// others, and on generated long ones (digit counts around the 9-digit
    /// cap). A string the schema passes and `parse` refuses would surface
    /// as "schema and model disagree" instead of a policy error.
    #[test]
    fn the_schema_pattern_and_the_parser_agree() {
        let schema: serde_json::Value =
            serde_json::from_str(crate::policy::schema::POLICY_SCHEMA).unwrap();
        let pattern = schema["$defs"]["duration"]["pattern"]
            .as_str()
            .expect("the policy schema defines a duration pattern");
        let re = regex::Regex::new(pattern).unwrap();
        let check = |s: &str| {
            assert_eq!(re.is_match(s), parse(s).is_some(), "{s:?}");
        };
        let alphabet = ['0', '7', 'h', 'm', 's', 'x', ' ', '-'];
        let mut level = vec![String::new()];
        for _ in 0..5 {
            level = level
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for s in &level {
                check(s);
            }
        }
        check("");
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut s = String::new();
            for unit in ["h", "m", "s"] {
                if next() % 3 != 0 {
                    let digits = 1 + (next() % 22) as usize;
                    s.extend((0..digits).map(|_| char::from(b'0' + (next() % 10) as u8)));
                    s.push_str(unit);
                }
            }
            check(&s);
        }
        assert_eq!(
            parse("999999999h999999999m999999999s"),
            Some(Duration::from_secs(
                999_999_999 * 3600 + 999_999_999 * 60 + 999_999_999
            ))
        );
        assert_eq!(parse("1000000000s"), None, "ten digits");
    }

    /// A policy's duration is read once, as written: a model built without
    /// the schema refuses a bad one rather than running on a default.
    #[test]
    fn a_policy_duration_is_parsed_once_and_kept_as_written() {
        let limits: crate::policy::model::Limits =
            serde_json::from_value(serde_json::json!({"scanTimeout": "1h30m"})).unwrap();
        assert_eq!(limits.scan_timeout(), Duration::from_secs(5400));
        assert_eq!(
            limits.run_deadline(),
            Duration::from_secs(1800),
            "the default"
        );
        assert_eq!(
            serde_json::to_value(&limits).unwrap()["scanTimeout"],
            "1h30m",
            "written back as written"
        );
        for bad in ["15", "1m1h", "forever"] {
            let e = serde_json::from_value::<crate::policy::model::Limits>(
                serde_json::json!({"scanTimeout": bad}),
            )
            .unwrap_err();
            assert!(e.to_string().contains("is not a duration"), "{bad}: {e}");
        }
    }

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
