//! Package version ordering, as the package managers themselves order
//! versions: dpkg (Debian policy §5.6.12) and apk (Alpine's `apk version`).
//! A generic string ordering would say `1.10 < 1.9` and `1.0~rc1 > 1.0`.

use std::cmp::Ordering;

/// Which ordering rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// dpkg: `[epoch:]upstream[-revision]`, `~` sorts before everything.
    Dpkg,
    /// apk: `1.2.3[letter][_suffix[N]]...[-rN]`.
    Apk,
}

/// Compare two versions under a scheme.
pub(crate) fn compare(scheme: Scheme, a: &str, b: &str) -> Ordering {
    match scheme {
        Scheme::Dpkg => dpkg_compare(a, b),
        Scheme::Apk => apk_compare(a, b),
    }
}

/// A parsed constraint such as `>= 1.2.3-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Constraint {
    /// Operator as written (`<<`, `<=`, `<`, `>>`, `>=`, `>`, `=`, `==`, `!=`).
    pub op: String,
    /// The version to compare against.
    pub version: String,
}

impl Constraint {
    /// Parse `OP VERSION`. `<`/`>` are strict (unlike dpkg's deprecated
    /// meaning of `<=`/`>=`), `<<`/`>>` are their dpkg spellings.
    pub(crate) fn parse(text: &str) -> Option<Constraint> {
        let text = text.trim();
        let op_len = text.bytes().take_while(|b| b"<>=!".contains(b)).count();
        let (op, version) = text.split_at(op_len);
        let version = version.trim();
        let ok = matches!(
            op,
            "<<" | "<=" | "<" | ">>" | ">=" | ">" | "=" | "==" | "!="
        ) && !version.is_empty()
            && !version.contains(char::is_whitespace);
        ok.then(|| Constraint {
            op: op.to_string(),
            version: version.to_string(),
        })
    }

    /// Returns true if and only if `installed` satisfies the constraint.
    pub(crate) fn matches(&self, scheme: Scheme, installed: &str) -> bool {
        let ord = compare(scheme, installed, &self.version);
        match self.op.as_str() {
            "<<" | "<" => ord == Ordering::Less,
            "<=" => ord != Ordering::Greater,
            ">>" | ">" => ord == Ordering::Greater,
            ">=" => ord != Ordering::Less,
            "=" | "==" => ord == Ordering::Equal,
            "!=" => ord != Ordering::Equal,
            _ => false,
        }
    }
}

// ---- dpkg -----------------------------------------------------------------

fn dpkg_split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((up, rev)) => (epoch, up, rev),
        None => (epoch, rest, ""),
    }
}

fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a);
    let (eb, ub, rb) = dpkg_split(b);
    ea.cmp(&eb)
        .then_with(|| dpkg_part(ua, ub))
        .then_with(|| dpkg_part(ra, rb))
}

/// dpkg's character order: `~` first, then end of string, then letters,
/// then everything else.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn dpkg_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = dpkg_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let cb = dpkg_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit run, compared numerically (leading zeros ignored).
        let si = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let ord = numeric(&a[si..i], &b[sj..j]);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

fn numeric(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> Vec<u8> { s.iter().skip_while(|&&c| c == b'0').copied().collect() };
    let (a, b) = (trim(a), trim(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

// ---- apk ------------------------------------------------------------------

/// apk suffixes in order: pre-release ones sort before the plain version.
fn apk_suffix_rank(s: &str) -> Option<i32> {
    Some(match s {
        "alpha" => -4,
        "beta" => -3,
        "pre" => -2,
        "rc" => -1,
        "cvs" => 1,
        "svn" => 2,
        "git" => 3,
        "hg" => 4,
        "p" => 5,
        _ => return None,
    })
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ApkToken {
    // Order matters for the derived comparison of unlike tokens.
    Suffix(i32, Vec<u8>),
    End,
    Letter(u8),
    Number(Vec<u8>),
}

fn apk_tokens(v: &str) -> (Vec<ApkToken>, u64) {
    let (main, rev) = match v.rsplit_once("-r") {
        Some((m, r)) if r.bytes().all(|b| b.is_ascii_digit()) && !r.is_empty() => {
            (m, r.parse().unwrap_or(0))
        }
        _ => (v, 0),
    };
    let mut out = Vec::new();
    for (k, part) in main.split('_').enumerate() {
        if k == 0 {
            for comp in part.split('.') {
                let digits: Vec<u8> = comp.bytes().take_while(u8::is_ascii_digit).collect();
                out.push(ApkToken::Number(
                    digits.iter().skip_while(|&&c| c == b'0').copied().collect(),
                ));
                if let Some(l) = comp.bytes().find(u8::is_ascii_alphabetic) {
                    out.push(ApkToken::Letter(l));
                }
            }
        } else {
            let name: String = part.chars().take_while(char::is_ascii_alphabetic).collect();
            let num: Vec<u8> = part
                .bytes()
                .skip(name.len())
                .filter(u8::is_ascii_digit)
                .skip_while(|&c| c == b'0')
                .collect();
            out.push(ApkToken::Suffix(apk_suffix_rank(&name).unwrap_or(0), num));
        }
    }
    (out, rev)
}

fn apk_compare(a: &str, b: &str) -> Ordering {
    let (ta, ra) = apk_tokens(a);
    let (tb, rb) = apk_tokens(b);
    let n = ta.len().max(tb.len());
    for k in 0..n {
        let x = ta.get(k).unwrap_or(&ApkToken::End);
        let y = tb.get(k).unwrap_or(&ApkToken::End);
        let ord = match (x, y) {
            (ApkToken::Number(p), ApkToken::Number(q)) => {
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            (ApkToken::Suffix(p, pn), ApkToken::Suffix(q, qn)) => p
                .cmp(q)
                .then_with(|| pn.len().cmp(&qn.len()).then_with(|| pn.cmp(qn))),
            // A pre-release suffix sorts before the end; a post-release one after.
            (ApkToken::Suffix(p, _), ApkToken::End) => {
                if *p < 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (ApkToken::End, ApkToken::Suffix(q, _)) => {
                if *q < 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (x, y) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ra.cmp(&rb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_ordering() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.9", "2.0", Greater),
            ("2.0-1", "2.0-10", Less),
            ("5.2.15-2+b2", "5.2.15-2", Greater),
            ("1.0a", "1.0+", Less),
            ("0001.0", "1.0", Equal),
            ("7.4p1-10+deb9u7", "7.4p1-10+deb9u10", Less),
        ] {
            assert_eq!(compare(Scheme::Dpkg, a, b), want, "{a} vs {b}");
            assert_eq!(compare(Scheme::Dpkg, b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn apk_ordering() {
        for (a, b, want) in [
            ("1.36.1-r5", "1.36.1-r15", Less),
            ("1.2.4-r2", "1.2.4", Greater),
            ("1.2.10", "1.2.9", Greater),
            ("1.0_rc1", "1.0", Less),
            ("1.0_alpha2", "1.0_beta1", Less),
            ("1.0_p1", "1.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0b", Less),
            ("3.0.13-r0", "3.0.8-r3", Greater),
        ] {
            assert_eq!(compare(Scheme::Apk, a, b), want, "{a} vs {b}");
            assert_eq!(compare(Scheme::Apk, b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn constraints() {
        let c = Constraint::parse(">= 1.2.3-1").unwrap();
        assert!(c.matches(Scheme::Dpkg, "1.2.3-1"));
        assert!(c.matches(Scheme::Dpkg, "1.2.10-1"));
        assert!(!c.matches(Scheme::Dpkg, "1.2.3~rc1-1"));
        assert!(
            Constraint::parse("<< 2")
                .unwrap()
                .matches(Scheme::Dpkg, "1.9")
        );
        assert!(
            Constraint::parse("!=1.0")
                .unwrap()
                .matches(Scheme::Apk, "1.0-r1")
        );
        assert!(Constraint::parse("~ 1").is_none());
        assert!(Constraint::parse(">=").is_none());
    }
}
