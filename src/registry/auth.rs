//! Registry credentials and challenges.
//!
//! Credentials come from the file Docker, skopeo and podman write:
//! `REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, else `$XDG_RUNTIME_DIR/containers/auth.json`.
//! Only the static `auths.<host>.auth` form (base64 `user:password`) is
//! read; credential helpers (`credsStore`, `credHelpers`) run other
//! programs and are not used — a host configured only that way is pulled
//! anonymously, and vigil says so.
//!
//! A 401 carries a `WWW-Authenticate` challenge: `Bearer` (the token flow
//! of the distribution spec) or `Basic`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The auth file is a few KiB; anything bigger is refused.
const MAX_AUTH_FILE: u64 = 1 << 20;

/// A user name and password for one registry host. Never printed.
#[derive(Clone)]
pub(crate) struct Basic {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basic({}, <redacted>)", self.user)
    }
}

impl Basic {
    /// The `Authorization` header value.
    pub(crate) fn header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Credentials by registry host, as read from an auth file.
#[derive(Debug, Default, Clone)]
pub(crate) struct Credentials {
    by_host: BTreeMap<String, Basic>,
    /// Hosts configured with a credential helper only.
    helpers: Vec<String>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// Why an auth file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthFileError {
    /// Unreadable.
    #[error(transparent)]
    Read(#[from] crate::safeio::InputError),
    /// Not the JSON Docker writes.
    #[error(
        "{path}: not a Docker auth file ({why}); fix it or point REGISTRY_AUTH_FILE at another"
    )]
    Format {
        /// The file.
        path: String,
        /// The parser's complaint.
        why: String,
    },
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
}

impl Credentials {
    /// Read the first auth file that exists (see the module docs); none is
    /// no credentials.
    pub(crate) fn from_environment() -> Result<Credentials, AuthFileError> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = env("REGISTRY_AUTH_FILE") {
            // Named explicitly: it must exist.
            return Credentials::from_file(&p);
        }
        let candidates = [
            env("DOCKER_CONFIG").map(|d| d.join("config.json")),
            env("HOME").map(|h| h.join(".docker/config.json")),
            env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
        ];
        for p in candidates.into_iter().flatten() {
            if p.exists() {
                return Credentials::from_file(&p);
            }
        }
        Ok(Credentials::default())
    }

    /// Read `path`.
    pub(crate) fn from_file(path: &Path) -> Result<Credentials, AuthFileError> {
        let text = crate::safeio::read_to_string(path, MAX_AUTH_FILE, "registry auth file")?;
        let format = |why: String| AuthFileError::Format {
            path: crate::safeio::printable(&path.display().to_string()).into_owned(),
            why,
        };
        let file: AuthFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in file.auths {
            let Some(auth) = entry.auth.filter(|a| !a.is_empty()) else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    format(format!(
                        "the auth of {key:?} is not base64 of user:password"
                    ))
                })?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                format(format!(
                    "the auth of {key:?} is not base64 of user:password"
                ))
            })?;
            by_host.insert(
                normalise_host(&key),
                Basic {
                    user: user.to_string(),
                    password: password.to_string(),
                },
            );
        }
        Ok(Credentials {
            by_host,
            helpers: file
                .cred_helpers
                .into_keys()
                .map(|k| normalise_host(&k))
                .collect(),
            file: Some(path.to_path_buf()),
        })
    }

    /// The credentials for registry `host` (as written in the reference).
    pub(crate) fn for_host(&self, host: &str) -> Option<&Basic> {
        self.by_host.get(&normalise_host(host))
    }

    /// True when `host` has only a credential helper, which vigil does not run.
    pub(crate) fn helper_only(&self, host: &str) -> bool {
        let h = normalise_host(host);
        self.helpers.contains(&h) && !self.by_host.contains_key(&h)
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `HOST/` → `HOST`.
fn normalise_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        other => other.to_ascii_lowercase(),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// The token flow: fetch a token from `realm`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if given.
        service: Option<String>,
        /// `scope` parameter, if given.
        scope: Option<String>,
    },
    /// HTTP basic authentication.
    Basic,
}

/// Parse a challenge header (RFC 7235 auth-params, quoted or token values).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_challenges_registries_send() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="https://ghcr.io/token", service=ghcr.io"#),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_docker_auth_files_and_never_prints_passwords() {
        let dir = std::env::temp_dir().join(format!("vigil-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cret:with:colons");
        std::fs::write(
            &p,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{}}}},"credHelpers":{{"gcr.io":"gcloud"}}}}"#),
        )
        .unwrap();
        let c = Credentials::from_file(&p).unwrap();
        let b = c.for_host("docker.io").unwrap();
        assert_eq!(
            (b.user.as_str(), b.password.as_str()),
            ("robot", "s3cret:with:colons")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(c.for_host("127.0.0.1:5000").is_none());
        assert!(c.helper_only("gcr.io"));
        std::fs::write(&p, r#"{"auths":{"r.example":{"auth":"not base64!"}}}"#).unwrap();
        let e = Credentials::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("r.example") && e.contains("config.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
