//! Redaction of secrets from anything shown to a user: bearer tokens, JWTs
//! (ServiceAccount tokens are JWTs), PEM private key blocks, age secret
//! keys, and the patterns policies add (`spec.redact`). Applied to every log
//! line (the log writer passes each one through it), every error message
//! and every result error, as a last line of defence behind the types that
//! never display secrets in the first place.

use std::sync::{OnceLock, RwLock};

use regex::Regex;

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        [
            (
                r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
                "<redacted private key>",
            ),
            (r"AGE-SECRET-KEY-1[0-9A-Za-z]+", "<redacted age secret key>"),
            (r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*", "${1}<redacted>"),
            (
                r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
                "<redacted jwt>",
            ),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("redaction patterns compile"), r))
        .collect()
    })
}

fn extra() -> &'static RwLock<Vec<Regex>> {
    static E: OnceLock<RwLock<Vec<Regex>>> = OnceLock::new();
    E.get_or_init(|| RwLock::new(Vec::new()))
}

/// Also redact these patterns from now on (a policy's `spec.redact`,
/// validated when it was loaded; one that does not compile is skipped).
pub(crate) fn add_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) {
    let mut e = extra().write().unwrap_or_else(|e| e.into_inner());
    for p in patterns {
        if let Ok(re) = Regex::new(p)
            && !e.iter().any(|x| x.as_str() == p)
        {
            e.push(re);
        }
    }
}

/// `text` with every secret-looking part replaced.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in patterns() {
        out = re.replace_all(&out, *with).into_owned();
    }
    for re in extra().read().unwrap_or_else(|e| e.into_inner()).iter() {
        out = re.replace_all(&out, "<redacted>").into_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_what_must_never_be_shown() {
        let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl";
        let cases = [
            (
                format!("Authorization: Bearer {jwt}"),
                "Authorization: Bearer <redacted>",
            ),
            (
                format!("token {jwt} rejected"),
                "token <redacted jwt> rejected",
            ),
            (
                "key AGE-SECRET-KEY-1QQPXYZ0123 leaked".to_string(),
                "key <redacted age secret key> leaked",
            ),
            (
                "x -----BEGIN PRIVATE KEY-----\nMC4CAQAw\n-----END PRIVATE KEY----- y".to_string(),
                "x <redacted private key> y",
            ),
            ("bearer abc.def-ghi".to_string(), "bearer <redacted>"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input), want);
        }
        assert_eq!(
            redact("nothing secret here: pods/exec team-a/web-0"),
            "nothing secret here: pods/exec team-a/web-0"
        );
    }
}
