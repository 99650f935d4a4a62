//! Image sources as users write them, named as skopeo and syft name them:
//! `oci-dir:PATH[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`,
//! `registry:REF@sha256:…`. Parsing only (a leaf: policies validate
//! sources without the image reader); `image` reads them.

use std::path::{Path, PathBuf};

/// Why a source is refused.
#[derive(Debug, thiserror::Error)]
#[error("image source {source_text:?}: {why}")]
pub struct SourceError {
    /// As written.
    pub source_text: String,
    /// What is wrong.
    pub why: String,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci-dir:PATH[:TAG]`: an OCI image layout directory.
    OciDir {
        /// The layout directory.
        path: PathBuf,
        /// `org.opencontainers.image.ref.name` to pick, when several.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive.
        path: PathBuf,
        /// Reference name to pick.
        tag: Option<String>,
    },
    /// `docker-archive:FILE`: `docker save` output.
    DockerArchive {
        /// The archive.
        path: PathBuf,
    },
    /// `registry:REF@sha256:…`.
    Registry(crate::registry::Reference),
}

impl Source {
    /// Parse `s`; relative paths are taken from `base` (and made absolute,
    /// so that the source means the same file wherever it is used later).
    pub fn parse(s: &str, base: &Path) -> Result<Source, SourceError> {
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let base = &std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let bad = |why: &str| SourceError {
            source_text: crate::safeio::excerpt(s, 200),
            why: why.to_string(),
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            bad("name the kind of source: oci-dir:PATH[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or registry:REF@sha256:…")
        })?;
        if rest.is_empty() {
            return Err(bad("the path or reference is empty"));
        }
        // `PATH:TAG`: the part after the last ':' is a tag when it looks
        // like one (paths keep their colons otherwise).
        let path_tag = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.rsplit_once(':') {
                Some((p, t))
                    if !p.is_empty()
                        && !t.is_empty()
                        && t.len() <= 128
                        && t.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
                        }) =>
                {
                    (base.join(p), Some(t.to_string()))
                }
                _ => (base.join(rest), None),
            }
        };
        match kind {
            "oci-dir" | "oci" => {
                let (path, tag) = path_tag(rest);
                Ok(Source::OciDir { path, tag })
            }
            "oci-archive" => {
                let (path, tag) = path_tag(rest);
                Ok(Source::OciArchive { path, tag })
            }
            "docker-archive" => Ok(Source::DockerArchive {
                path: base.join(rest),
            }),
            "registry" | "docker" => {
                let r = rest.trim_start_matches("//");
                crate::registry::Reference::parse(r)
                    .map(Source::Registry)
                    .map_err(|e| bad(&e.to_string()))
            }
            _ => Err(bad(
                "unknown kind; use oci-dir:, oci-archive:, docker-archive: or registry:",
            )),
        }
    }

    /// The source as text `parse` reads back (paths absolute, unescaped).
    pub fn spec(&self) -> String {
        let tag = |t: &Option<String>| t.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            Source::OciDir { path, tag: t } => format!("oci-dir:{}{}", path.display(), tag(t)),
            Source::OciArchive { path, tag: t } => {
                format!("oci-archive:{}{}", path.display(), tag(t))
            }
            Source::DockerArchive { path } => format!("docker-archive:{}", path.display()),
            Source::Registry(r) => format!("registry:{r}"),
        }
    }

    /// A short name for target ids: the directory, file stem or repository.
    pub fn short_name(&self) -> String {
        let stem = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .map(|n| n.trim_end_matches(".tar").to_string())
                .unwrap_or_else(|| "image".into())
        };
        match self {
            Source::OciDir { path, tag } | Source::OciArchive { path, tag } => match tag {
                Some(t) => format!("{}-{t}", stem(path)),
                None => stem(path),
            },
            Source::DockerArchive { path } => stem(path),
            Source::Registry(r) => r
                .repository
                .rsplit('/')
                .next()
                .unwrap_or("image")
                .to_string(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = |p: &Path| crate::safeio::printable(&p.display().to_string()).into_owned();
        match self {
            Source::OciDir { path, tag } => write!(
                f,
                "oci-dir:{}{}",
                p(path),
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
            ),
            Source::OciArchive { path, tag } => write!(
                f,
                "oci-archive:{}{}",
                p(path),
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
            ),
            Source::DockerArchive { path } => write!(f, "docker-archive:{}", p(path)),
            Source::Registry(r) => write!(f, "registry:{r}"),
        }
    }
}
