//! Finding and reading policy files.
//!
//! Inputs are files or directories; directories are walked recursively for
//! `*.yaml` / `*.yml` (sorted, so diagnostics come out in a stable order).
//! Symlinked directories are not followed, so a link cycle cannot make the
//! walk loop; symlinked files are followed only inside the directory, and
//! kubelet ConfigMap internals (`..data`, `..<timestamp>`) are skipped. Files are read with a size cap and must be UTF-8.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::policy::yaml::Position;

/// Policy files larger than this are refused: real policies are a few KiB,
/// and a cap keeps a mistaken `vigil validate /` from reading gigabytes.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A policy file's path and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as found under a given directory).
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

/// Returns true if and only if `path` has a YAML extension.
fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

/// Expand inputs into the list of files to read. Problems (missing path,
/// unreadable directory, a directory with no YAML) become diagnostics.
///
/// Inside a given directory:
/// - entries whose names start with `..` are skipped: the kubelet lays a
///   ConfigMap volume out as `..<timestamp>/` plus a `..data` symlink to it
///   and one symlink per key, so each key would otherwise be read twice
///   (kubernetes/kubernetes `pkg/volume/util/atomic_writer.go`);
/// - a symlink is followed only when it stays inside that directory (a
///   policy repository's pull request cannot point vigil at `/proc/self/…`
///   or at the CI runner's files); a path named on the command line is
///   taken as given, as the user chose it;
/// - each file is loaded once, by its canonical path, however many links
///   lead to it.
pub(crate) fn collect_paths(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for input in inputs {
        match fs::metadata(input) {
            Err(e) => diags.push(
                Diagnostic::error(
                    Code::ReadFailed,
                    format!("cannot read path: {}", io_reason(&e)),
                )
                .in_file(input)
                .with_hint("check the path exists and is readable"),
            ),
            Ok(meta) if meta.is_dir() => {
                let before = files.len();
                let top = fs::canonicalize(input).unwrap_or_else(|_| input.clone());
                walk(input, &top, &mut files, &mut seen, &mut diags);
                if files.len() == before {
                    diags.push(
                        Diagnostic::error(
                            Code::NoPolicyFiles,
                            "directory holds no policy files (*.yaml, *.yml)",
                        )
                        .in_file(input)
                        .with_hint(
                            "point vigil at a directory of policies or at the files themselves",
                        ),
                    );
                }
            }
            Ok(meta) if meta.is_file() => {
                if seen.insert(fs::canonicalize(input).unwrap_or_else(|_| input.clone())) {
                    files.push(input.clone());
                }
            }
            // FIFOs, sockets and devices: reading could block or never end.
            Ok(_) => diags.push(
                Diagnostic::error(Code::ReadFailed, "not a regular file")
                    .in_file(input)
                    .with_hint("pass policy files or directories"),
            ),
        }
    }
    (files, diags)
}

fn walk(
    dir: &Path,
    top: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut std::collections::BTreeSet<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    Code::ReadFailed,
                    format!("cannot list directory: {}", io_reason(&e)),
                )
                .in_file(dir),
            );
            return;
        }
    };
    let mut children = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) if e.file_name().as_encoded_bytes().starts_with(b"..") => {}
            Ok(e) => children.push(e.path()),
            Err(e) => diags.push(
                Diagnostic::error(
                    Code::ReadFailed,
                    format!("cannot list directory: {}", io_reason(&e)),
                )
                .in_file(dir),
            ),
        }
    }
    children.sort();
    for child in children {
        // symlink_metadata: do not follow links into directories (cycles).
        let Ok(meta) = fs::symlink_metadata(&child) else {
            continue;
        };
        if meta.is_dir() {
            walk(&child, top, files, seen, diags);
            continue;
        }
        if !is_yaml(&child) {
            continue;
        }
        let Ok(real) = fs::canonicalize(&child) else {
            continue; // a dangling link names no file
        };
        if meta.file_type().is_symlink() && !real.starts_with(top) {
            diags.push(
                Diagnostic::error(
                    Code::ReadFailed,
                    "symlink leads out of the policy directory; refusing to follow it",
                )
                .in_file(&child)
                .with_hint("name the file on the command line if it really is a policy"),
            );
            continue;
        }
        if fs::metadata(&real).is_ok_and(|m| m.is_file()) && seen.insert(real) {
            files.push(child);
        }
    }
}

/// Read one file with the size cap and the UTF-8 check. Special files and
/// files on pseudo filesystems are refused ([`crate::safeio`]).
pub(crate) fn read(path: &Path) -> Result<SourceFile, Diagnostic> {
    let bytes =
        crate::safeio::read(path, MAX_FILE_BYTES, "policy file").map_err(|e| match e.problem {
            crate::safeio::Problem::TooLarge(_) => Diagnostic::error(
                Code::FileTooLarge,
                format!(
                    "file is larger than the {} KiB limit for policy files",
                    MAX_FILE_BYTES / 1024
                ),
            )
            .in_file(path)
            .with_hint(
                "split the policy into several files, or check that this is the file you meant",
            ),
            crate::safeio::Problem::Io(reason) => {
                Diagnostic::error(Code::ReadFailed, format!("cannot read file: {reason}"))
                    .in_file(path)
                    .with_hint("check the file exists and is readable")
            }
            crate::safeio::Problem::NotRegular(kind)
            | crate::safeio::Problem::NotStreamable(kind) => {
                Diagnostic::error(Code::ReadFailed, format!("not a regular file ({kind})"))
                    .in_file(path)
                    .with_hint("pass policy files or directories")
            }
            crate::safeio::Problem::Pseudo(fs) => Diagnostic::error(
                Code::ReadFailed,
                format!("file is on a pseudo filesystem ({fs}); refusing to read it"),
            )
            .in_file(path)
            .with_hint("policies are ordinary files; check where this path points"),
            crate::safeio::Problem::Silent => Diagnostic::error(Code::ReadFailed, e.to_string())
                .in_file(path)
                .with_hint("pass policy files or directories"),
        })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let text = String::from_utf8_lossy(valid).into_owned();
            let line = text.matches('\n').count() as u32 + 1;
            let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            return Err(Diagnostic::error(
                Code::NotUtf8,
                format!("file is not valid UTF-8 (byte offset {})", valid.len()),
            )
            .at(path, &text, Position { line, column })
            .with_hint("policy files must be UTF-8 text; re-save the file as UTF-8"));
        }
    };
    if text.trim().is_empty() {
        return Err(Diagnostic::error(Code::EmptyFile, "file is empty")
            .in_file(path)
            .with_hint("add a Profile or ScanPolicy document, or remove the file"));
    }
    Ok(SourceFile {
        path: path.to_path_buf(),
        text,
    })
}

use crate::safeio::io_reason;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_yaml_only_and_reports_empty_dirs() {
        let dir = std::env::temp_dir().join(format!("vigil-src-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("b/empty")).unwrap();
        fs::write(dir.join("b/z.yml"), "a: 1").unwrap();
        fs::write(dir.join("a.yaml"), "a: 1").unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();
        let (files, diags) = collect_paths(std::slice::from_ref(&dir));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(files, vec![dir.join("a.yaml"), dir.join("b/z.yml")]);
        let (files, diags) = collect_paths(&[dir.join("b/empty")]);
        assert!(files.is_empty());
        assert_eq!(diags[0].code, "no-policy-files");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_utf8_points_at_the_bad_byte() {
        let path = std::env::temp_dir().join(format!("vigil-utf8-{}.yaml", std::process::id()));
        fs::write(&path, b"a: 1\nbb: \xff\n").unwrap();
        let d = read(&path).unwrap_err();
        assert_eq!((d.code, d.line, d.column), ("not-utf8", 2, 5));
        fs::remove_file(&path).unwrap();
    }
    #[test]
    fn configmap_volume_layout_loads_each_key_once_and_follows_a_swap() {
        // The kubelet's atomic writer: ..<ts>/ holds the files, ..data
        // points at it, and each key is a symlink through ..data.
        let dir = std::env::temp_dir().join(format!("vigil-cm-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("..2026_11_30_10_00_00.1")).unwrap();
        fs::write(dir.join("..2026_11_30_10_00_00.1/policy.yaml"), "a: 1").unwrap();
        fs::write(dir.join("..2026_11_30_10_00_00.1/profile.yaml"), "b: 1").unwrap();
        std::os::unix::fs::symlink("..2026_11_30_10_00_00.1", dir.join("..data")).unwrap();
        for key in ["policy.yaml", "profile.yaml"] {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        let (files, diags) = collect_paths(std::slice::from_ref(&dir));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            files,
            vec![dir.join("policy.yaml"), dir.join("profile.yaml")]
        );
        // An update: a new timestamped dir, ..data swapped, the old one gone.
        fs::create_dir_all(dir.join("..2026_11_30_11_00_00.2")).unwrap();
        fs::write(dir.join("..2026_11_30_11_00_00.2/policy.yaml"), "a: 2").unwrap();
        fs::write(dir.join("..2026_11_30_11_00_00.2/profile.yaml"), "b: 2").unwrap();
        std::os::unix::fs::symlink("..2026_11_30_11_00_00.2", dir.join("..data_tmp")).unwrap();
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        fs::remove_dir_all(dir.join("..2026_11_30_10_00_00.1")).unwrap();
        let (files, diags) = collect_paths(std::slice::from_ref(&dir));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(files.len(), 2);
        assert_eq!(read(&files[0]).unwrap().text, "a: 2");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_out_of_the_directory_and_pseudo_files_are_refused_without_echo() {
        let dir = std::env::temp_dir().join(format!("vigil-evil-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ok.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", dir.join("evil.yaml")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("host.yaml")).unwrap();
        let (files, diags) = collect_paths(std::slice::from_ref(&dir));
        assert_eq!(files, vec![dir.join("ok.yaml")]);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(
            diags
                .iter()
                .all(|d| d.code == "read-failed" && d.snippet.is_none())
        );
        // Named explicitly, the pseudo file is still refused, and nothing of
        // it is echoed.
        let d = read(&dir.join("evil.yaml")).unwrap_err();
        assert!(d.message.contains("pseudo filesystem"), "{}", d.message);
        assert!(!d.render().contains("PATH="));
        let d = read(Path::new("/dev/zero")).unwrap_err();
        assert!(d.message.contains("character device"), "{}", d.message);
        fs::remove_dir_all(&dir).unwrap();
    }
}
