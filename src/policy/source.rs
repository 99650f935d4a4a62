//! Finding and reading policy files.
//!
//! Inputs are files or directories; directories are walked recursively for
//! `*.yaml` / `*.yml` (sorted, so diagnostics come out in a stable order).
//! Symlinked directories are not followed, so a link cycle cannot make the
//! walk loop. Files are read with a size cap and must be UTF-8.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::policy::yaml::Position;

/// Policy files larger than this are refused: real policies are a few KiB,
/// and a cap keeps a mistaken `vigil validate /` from reading gigabytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

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
pub fn collect_paths(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
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
                walk(input, &mut files, &mut diags);
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
            Ok(meta) if meta.is_file() => files.push(input.clone()),
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

fn walk(dir: &Path, files: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
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
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        // symlink_metadata: do not follow links into directories (cycles).
        let Ok(meta) = fs::symlink_metadata(&child) else {
            continue;
        };
        if meta.is_dir() {
            walk(&child, files, diags);
        } else if is_yaml(&child)
            && (meta.is_file() || fs::metadata(&child).is_ok_and(|m| m.is_file()))
        {
            files.push(child);
        }
    }
}

/// Read one file with the size cap and the UTF-8 check.
pub fn read(path: &Path) -> Result<SourceFile, Diagnostic> {
    let fail = |e: std::io::Error| {
        Diagnostic::error(
            Code::ReadFailed,
            format!("cannot read file: {}", io_reason(&e)),
        )
        .in_file(path)
        .with_hint("check the file exists and is readable")
    };
    // O_NONBLOCK: if the path was swapped for a FIFO after the walk, opening
    // it must not wait for a writer.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(fail)?;
    // Re-check on the open handle: the path may have been swapped for a FIFO.
    if !file.metadata().map_err(fail)?.is_file() {
        return Err(Diagnostic::error(Code::ReadFailed, "not a regular file").in_file(path));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            Code::FileTooLarge,
            format!(
                "file is larger than the {} KiB limit for policy files",
                MAX_FILE_BYTES / 1024
            ),
        )
        .in_file(path)
        .with_hint(
            "split the policy into several files, or check that this is the file you meant",
        ));
    }
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

/// An I/O error's reason without the path (the diagnostic carries the path).
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

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
}
