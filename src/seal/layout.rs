//! Every name inside a bundle, in one place: what the runner writes, what
//! the seal signs, what `verify` and `open` read.

use std::path::{Component, Path};

/// The statement's file name.
pub const STATEMENT_FILE: &str = "statement.dsse.json";

/// The audit-check attestation's file name (`vigil audit-check --attest`):
/// written after the seal, so it is not a subject of the run's statement;
/// its own subject is that statement.
pub(crate) const AUDIT_CHECK_FILE: &str = "audit-check.dsse.json";

/// Largest statement accepted (a 10,000-target statement is ~5 MB).
pub const MAX_STATEMENT_BYTES: u64 = 256 * 1024 * 1024;

/// The run summary's file name (plaintext name; `.age` when encrypted).
pub const SUMMARY_FILE: &str = "summary.json";

/// What an encrypted file's name adds to its plaintext name.
pub(crate) const ENCRYPTED_SUFFIX: &str = ".age";

/// Where a target's HDF result goes, by its id (the file name is
/// injective: two ids never share a file).
pub(crate) fn target_result(target_id: &str) -> String {
    format!(
        "targets/{}",
        crate::report::hdf_file_name(target_id).display()
    )
}

/// The stored name of a target's inventory (`report::inventory`): the
/// HDF file's name with `.inv.json` (no longer, so any id that fits one
/// fits the other).
pub(crate) fn target_inventory(target_id: &str) -> String {
    let hdf = target_result(target_id);
    format!("{}.inv.json", hdf.trim_end_matches(".hdf.json"))
}

/// Returns true if and only if `name` is `a/b/c` with normal components only.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\0')
        && !name.contains('\\')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !name.ends_with('/')
}

/// Where a policy's bundles go: `--out` if given, else the policy's
/// `output.dir`.
pub fn output_dir(
    policy: &crate::policy::model::ScanPolicy,
    out: Option<&std::path::PathBuf>,
) -> std::path::PathBuf {
    out.cloned()
        .unwrap_or_else(|| std::path::PathBuf::from(&policy.spec.output.dir))
}

/// A bundle's encrypted summary file, if it has one.
pub(crate) fn encrypted_summary(bundle: &Path) -> Option<std::path::PathBuf> {
    let p = bundle.join(format!("{SUMMARY_FILE}{ENCRYPTED_SUFFIX}"));
    p.is_file().then_some(p)
}
