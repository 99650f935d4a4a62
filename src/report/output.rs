//! Where a run's files go.
//!
//! A run writes named files (`targets/<id>.hdf.json`, `summary.json`)
//! through a [`RunOutput`]. The plain implementation writes them into a
//! directory atomically (temp file + rename, so a reader or a crash never
//! sees half a file). Sealing plugs in as another implementation that
//! encrypts each file and records its digest, without the runner changing.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// A file written by a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// Path relative to the run directory.
    pub name: String,
    /// sha256 of the plaintext, hex.
    pub sha256: String,
    /// Plaintext size in bytes.
    pub size: u64,
}

/// A sink for a run's files.
pub trait RunOutput: Send + Sync {
    /// Write `bytes` as `name` (relative, `/`-separated, no `..`).
    fn write(&self, name: &str, bytes: &[u8]) -> io::Result<Written>;
    /// Write what `produce` writes as `name`. A large file (the summary of
    /// a big run) then streams to its place without being held whole;
    /// this default holds it and calls [`RunOutput::write`].
    fn write_from(
        &self,
        name: &str,
        produce: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Written> {
        let mut bytes = Vec::new();
        produce(&mut bytes)?;
        self.write(name, &bytes)
    }
    /// The directory the run's files land in (for messages).
    fn location(&self) -> &Path;
    /// Make everything written so far durable. Called once, before the
    /// run's last file (summary, later the signed statement), so that the
    /// last file never reaches the disk before the files it describes.
    fn sync(&self) -> io::Result<()>;
}

/// Write `value` as indented JSON to `w`, through a buffer (the
/// serializer writes token by token).
pub(crate) fn write_json_pretty(
    w: &mut dyn Write,
    value: &impl serde::Serialize,
) -> io::Result<()> {
    let mut b = io::BufWriter::with_capacity(64 * 1024, w);
    serde_json::to_writer_pretty(&mut b, value)?;
    b.flush()
}

/// Text formatted straight into a byte sink (stdout), through a buffer:
/// `fmt::Write` for code that builds text, with the sink's first I/O error
/// kept, since `fmt::Error` carries none.
pub(crate) struct TextTo<W: Write> {
    sink: io::BufWriter<W>,
    failed: Option<io::Error>,
}

impl<W: Write> TextTo<W> {
    /// Text into `sink`.
    pub(crate) fn new(sink: W) -> TextTo<W> {
        TextTo {
            sink: io::BufWriter::with_capacity(64 * 1024, sink),
            failed: None,
        }
    }

    /// Flush; the first error writing met, if any.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => self.sink.flush(),
        }
    }
}

impl<W: Write> std::fmt::Write for TextTo<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.sink.write_all(s.as_bytes()).map_err(|e| {
            self.failed.get_or_insert(e);
            std::fmt::Error
        })
    }
}

/// Plain files in `<dir>/<policy>/<run-id>/`.
#[derive(Debug)]
pub struct PlainDir {
    root: PathBuf,
}

impl PlainDir {
    /// Create the run directory (it must not exist yet: runs never overwrite).
    pub fn create(out: &Path, policy: &str, run_id: &str) -> io::Result<PlainDir> {
        let root = out.join(policy).join(run_id);
        fs::create_dir_all(out.join(policy))?;
        fs::create_dir(&root)?;
        Ok(PlainDir { root })
    }
}

/// Refuse names that could leave the run directory.
pub fn check_name(name: &str) -> io::Result<()> {
    let p = Path::new(name);
    let ok = !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid output name {name:?}"),
        ))
    }
}

/// Write `bytes` to `path` atomically: a temp file in the same directory,
/// then a rename, so no reader ever sees half a file. Durability is
/// [`RunOutput::sync`]'s job: one filesystem sync per run instead of one
/// fsync per file (which doubled the cost of a 200-target run).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let result = f.write_all(bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl RunOutput for PlainDir {
    fn write(&self, name: &str, bytes: &[u8]) -> io::Result<Written> {
        check_name(name)?;
        write_atomic(&self.root.join(name), bytes)?;
        Ok(Written {
            name: name.to_string(),
            sha256: crate::encoding::hex(&Sha256::digest(bytes)),
            size: bytes.len() as u64,
        })
    }

    fn location(&self) -> &Path {
        &self.root
    }

    fn sync(&self) -> io::Result<()> {
        let dir = fs::File::open(&self.root)?;
        rustix::fs::syncfs(&dir).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "./a"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("targets/a.hdf.json").is_ok());
    }

    #[test]
    fn writes_atomically_and_never_reuses_a_run_dir() {
        let base = std::env::temp_dir().join(format!("vigil-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let out = PlainDir::create(&base, "p", "run1").unwrap();
        let w = out.write("targets/t.hdf.json", b"{}").unwrap();
        assert_eq!(
            w.sha256,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            fs::read(base.join("p/run1/targets/t.hdf.json")).unwrap(),
            b"{}"
        );
        assert!(PlainDir::create(&base, "p", "run1").is_err());
        let leftovers: Vec<_> = fs::read_dir(base.join("p/run1/targets")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left");
        fs::remove_dir_all(&base).unwrap();
    }
}
