//! Image references pinned by digest: `[HOST[:PORT]/]NAME[:TAG]@sha256:HEX`,
//! normalised as Docker and containers/image do (a name with no host is on
//! Docker Hub; a one-part Hub name is under `library/`).
//!
//! Tags alone are refused: a tag can be moved to other content after it
//! was checked, a digest cannot.

/// A parsed, digest-pinned reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host as written (`127.0.0.1:5000`, `ghcr.io`), `docker.io`
    /// when none was.
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// The tag written before the digest, if any (informational only).
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: String,
}

/// Why a reference is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// No `@sha256:` digest.
    #[error(
        "{0:?} is not pinned by digest: write NAME@sha256:<64 hex digits> (a tag can be moved to other content; a digest cannot)"
    )]
    NotPinned(String),
    /// A digest that is not 64 lowercase hex digits.
    #[error("{0:?}: the digest must be sha256: and 64 lowercase hex digits")]
    BadDigest(String),
    /// A name that the distribution grammar does not allow.
    #[error("{reference:?}: {why}")]
    BadName {
        /// The reference.
        reference: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Docker Hub's name in references and the host its API is served from.
const HUB: &str = "docker.io";
const HUB_API: &str = "registry-1.docker.io";

impl Reference {
    /// Parse `s`; the digest is required.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let printable = crate::safeio::excerpt(s, 200);
        let Some((name, digest)) = s.rsplit_once('@') else {
            return Err(ReferenceError::NotPinned(printable));
        };
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| ReferenceError::BadDigest(printable.clone()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ReferenceError::BadDigest(printable));
        }
        let bad = |why| ReferenceError::BadName {
            reference: printable.clone(),
            why,
        };
        let (host, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (HUB.to_string(), name.to_string()),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(bad(
                "the registry host has characters a host name cannot have",
            ));
        }
        // A tag is after the last ':' of the last path component.
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p.to_string(), Some(t.to_string())),
            _ => (path, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let path = if host == HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.is_empty() || path.len() > 255 || !path.split('/').all(valid_component) {
            return Err(bad(
                "the repository must be lowercase letters and digits, separated by '/', '.', '_', '__' or '-'",
            ));
        }
        Ok(Reference {
            registry: host,
            repository: path,
            tag,
            digest: digest.to_string(),
        })
    }

    /// The host the registry API is served from (Docker Hub's differs from
    /// its name in references).
    pub fn api_host(&self) -> &str {
        if self.registry == HUB {
            HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository's name as users write it (`docker.io/library/x`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// One path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or dashes
/// (the distribution reference grammar).
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse(&format!("127.0.0.1:5000/team/vigil:1.0@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/vigil");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5000/team/vigil@sha256:{HEX}")
        );
        let r = Reference::parse(&format!("localhost/a__b.c-d@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn refuses_tags_bad_digests_and_bad_names() {
        assert!(matches!(
            Reference::parse("registry.example/vigil:1.0"),
            Err(ReferenceError::NotPinned(_))
        ));
        for d in [
            "sha256:abc",
            "sha512:00",
            &format!("sha256:{}", HEX.to_uppercase()),
        ] {
            assert!(matches!(
                Reference::parse(&format!("r.example/x@{d}")),
                Err(ReferenceError::BadDigest(_))
            ));
        }
        for name in [
            "r.example/Up",
            "r.example/a//b",
            "r.example/-a",
            "r.example/a..b",
            "r.example/a:",
            "r\u{1b}.x/a",
        ] {
            assert!(
                matches!(
                    Reference::parse(&format!("{name}@sha256:{HEX}")),
                    Err(ReferenceError::BadName { .. })
                ),
                "{name}"
            );
        }
        let e = Reference::parse("r.example/\u{1b}[2J")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{1b}'), "{e}");
    }
}
