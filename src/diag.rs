//! Diagnostics: findings about user input, with a stable code, a position and
//! a hint, rendered for people (with the offending source line) or as JSON
//! for CI annotations.
//!
//! Validation collects every finding before returning, so a user fixes all of
//! them in one pass instead of one per run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A line and column, both 1-based, as editors show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub column: u32,
}

/// How bad a finding is. Errors make `vigil validate` exit 2; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input cannot be used.
    Error,
    /// The input works but is probably not what was meant.
    Warning,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case code, e.g. `unknown-field`; see [`Code`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The file, when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    /// The source line the position points into, for rendering.
    #[serde(skip)]
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// An error with the given code and message and no position yet.
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code: code.as_str(),
            severity: Severity::Error,
            message: message.into(),
            hint: None,
            file: None,
            line: 0,
            column: 0,
            snippet: None,
        }
    }

    /// A warning with the given code and message.
    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Attach a file with no position.
    pub fn in_file(mut self, file: &Path) -> Diagnostic {
        self.file = Some(file.to_path_buf());
        self
    }

    /// Attach a file and a position in it; `text` is the file's content, used
    /// to capture the line for the snippet.
    pub fn at(mut self, file: &Path, text: &str, pos: Position) -> Diagnostic {
        self.file = Some(file.to_path_buf());
        self.line = pos.line;
        self.column = pos.column;
        self.snippet = text
            .lines()
            .nth(pos.line.saturating_sub(1) as usize)
            // A bounded excerpt, redacted: the "line" may be anything a
            // file held (a key, a token) when the file was not a policy.
            .map(|l| {
                crate::redact::redact(&l.chars().take(240).collect::<String>())
                    .chars()
                    .take(240)
                    .collect()
            });
        self
    }

    /// Returns true if and only if this finding is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render for a terminal: header, location, snippet with a caret, hint.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{sev}[{}]: {}", self.code, self.message);
        if let Some(file) = &self.file {
            if self.line > 0 {
                let _ = writeln!(
                    out,
                    "  --> {}:{}:{}",
                    file.display(),
                    self.line,
                    self.column
                );
            } else {
                let _ = writeln!(out, "  --> {}", file.display());
            }
        }
        if let Some(snippet) = &self.snippet {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let shown: String = snippet
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {shown}");
            let caret_at = (self.column.max(1) - 1) as usize;
            let _ = writeln!(out, "{pad} | {}^", " ".repeat(caret_at.min(240)));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// Every diagnostic code vigil emits. Codes are part of the CLI contract
/// (CI pipelines filter on them): add new ones, never rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Code {
    ReadFailed,
    FileTooLarge,
    NotUtf8,
    EmptyFile,
    NoPolicyFiles,
    YamlSyntax,
    NotAMapping,
    UnknownApiVersion,
    UnknownKind,
    SchemaViolation,
    UnknownField,
    MissingField,
    WrongType,
    DuplicateId,
    UnresolvedProfile,
    InvalidCron,
    CronNeverFires,
    EvidenceTooWeak,
    DuplicateTarget,
    SafDifference,
    TokenTtlRange,
    UnpinnedImage,
    InvalidSelector,
    InvalidRegex,
    InvalidWaiver,
    ExpiredWaiver,
    UnknownControl,
    InvalidThreshold,
    InvalidRecipient,
    ApproachMismatch,
    InvalidTarget,
    InvalidDuration,
    InvalidVersionConstraint,
    MissingScannerImage,
    InvalidScannerKey,
    InventoryFailed,
    TargetMatchesNothing,
    IgnoredSetting,
    ChecksSkipped,
    /// A scan may run longer than the token it started with has left.
    ScanOutlivesToken,
    /// `access.audiences` is set (tokens would leave out the API server's own).
    TokenAudience,
    /// Debug scans more often than daily pile ephemeral containers up.
    EphemeralAccumulation,
    /// A control mixes workload and filesystem checks.
    MixedEvidence,
    /// A profile uses a tag vigil writes itself.
    ReservedTag,
}

impl Code {
    /// All codes, for the uniqueness test and documentation.
    pub const ALL: &'static [Code] = &[
        Code::ReadFailed,
        Code::FileTooLarge,
        Code::NotUtf8,
        Code::EmptyFile,
        Code::NoPolicyFiles,
        Code::YamlSyntax,
        Code::NotAMapping,
        Code::UnknownApiVersion,
        Code::UnknownKind,
        Code::SchemaViolation,
        Code::UnknownField,
        Code::MissingField,
        Code::WrongType,
        Code::DuplicateId,
        Code::UnresolvedProfile,
        Code::InvalidCron,
        Code::CronNeverFires,
        Code::EvidenceTooWeak,
        Code::DuplicateTarget,
        Code::SafDifference,
        Code::TokenTtlRange,
        Code::UnpinnedImage,
        Code::InvalidSelector,
        Code::InvalidRegex,
        Code::InvalidWaiver,
        Code::ExpiredWaiver,
        Code::UnknownControl,
        Code::InvalidThreshold,
        Code::InvalidRecipient,
        Code::ApproachMismatch,
        Code::InvalidTarget,
        Code::InvalidDuration,
        Code::InvalidVersionConstraint,
        Code::MissingScannerImage,
        Code::InvalidScannerKey,
        Code::InventoryFailed,
        Code::TargetMatchesNothing,
        Code::IgnoredSetting,
        Code::ChecksSkipped,
        Code::MixedEvidence,
        Code::ReservedTag,
        Code::ScanOutlivesToken,
        Code::TokenAudience,
        Code::EphemeralAccumulation,
    ];

    /// The stable kebab-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ReadFailed => "read-failed",
            Code::FileTooLarge => "file-too-large",
            Code::NotUtf8 => "not-utf8",
            Code::EmptyFile => "empty-file",
            Code::NoPolicyFiles => "no-policy-files",
            Code::YamlSyntax => "yaml-syntax",
            Code::NotAMapping => "not-a-mapping",
            Code::UnknownApiVersion => "unknown-api-version",
            Code::UnknownKind => "unknown-kind",
            Code::SchemaViolation => "schema-violation",
            Code::UnknownField => "unknown-field",
            Code::MissingField => "missing-field",
            Code::WrongType => "wrong-type",
            Code::DuplicateId => "duplicate-id",
            Code::UnresolvedProfile => "unresolved-profile",
            Code::InvalidCron => "invalid-cron",
            Code::CronNeverFires => "cron-never-fires",
            Code::EvidenceTooWeak => "evidence-too-weak",
            Code::DuplicateTarget => "duplicate-target",
            Code::SafDifference => "saf-difference",
            Code::TokenTtlRange => "token-ttl-range",
            Code::UnpinnedImage => "unpinned-image",
            Code::InvalidSelector => "invalid-selector",
            Code::InvalidRegex => "invalid-regex",
            Code::InvalidWaiver => "invalid-waiver",
            Code::ExpiredWaiver => "expired-waiver",
            Code::UnknownControl => "unknown-control",
            Code::InvalidThreshold => "invalid-threshold",
            Code::InvalidRecipient => "invalid-recipient",
            Code::ApproachMismatch => "approach-mismatch",
            Code::InvalidTarget => "invalid-target",
            Code::InvalidDuration => "invalid-duration",
            Code::InvalidVersionConstraint => "invalid-version-constraint",
            Code::MissingScannerImage => "missing-scanner-image",
            Code::InvalidScannerKey => "invalid-scanner-key",
            Code::InventoryFailed => "inventory-failed",
            Code::TargetMatchesNothing => "target-matches-nothing",
            Code::IgnoredSetting => "ignored-setting",
            Code::ChecksSkipped => "checks-skipped",
            Code::MixedEvidence => "mixed-evidence",
            Code::ReservedTag => "reserved-tag",
            Code::ScanOutlivesToken => "scan-outlives-token",
            Code::TokenAudience => "token-audience",
            Code::EphemeralAccumulation => "ephemeral-accumulation",
        }
    }
}

/// Render a list of findings as JSON: `{"valid": bool, "diagnostics": [...]}`.
pub(crate) fn to_json(diags: &[Diagnostic]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        valid: bool,
        errors: usize,
        warnings: usize,
        diagnostics: &'a [Diagnostic],
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    serde_json::to_string_pretty(&Out {
        valid: errors == 0,
        errors,
        warnings: diags.len() - errors,
        diagnostics: diags,
    })
    .expect("diagnostics always serialize")
}

/// Sort findings by file, line, column so output is stable across runs.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.code, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.code, &b.message))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_unique_and_kebab_case() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit()),
                "{s} is not kebab-case"
            );
        }
    }

    #[test]
    fn render_points_at_column() {
        let text = "a: 1\nspec:\n  tokenTtl: 5m\n";
        let d = Diagnostic::error(Code::UnknownField, "unknown field `tokenTtl`")
            .at(Path::new("p.yaml"), text, Position { line: 3, column: 3 })
            .with_hint("did you mean `tokenTTL`?");
        let r = d.render();
        assert!(r.contains("--> p.yaml:3:3"), "{r}");
        assert!(r.contains("3 |   tokenTtl: 5m"), "{r}");
        assert!(r.contains("  |   ^"), "{r}");
        assert!(r.contains("hint: did you mean `tokenTTL`?"), "{r}");
    }
}
