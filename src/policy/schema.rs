//! The JSON Schemas in `schemas/`, embedded, and the mapping of their errors
//! to diagnostics at YAML positions.
//!
//! The schemas are the contract published for editors; the binary validates
//! with the very same files (`include_str!`), so editor and CLI agree.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diag::{Code, Diagnostic};
use crate::policy::source::SourceFile;
use crate::policy::yaml::{Document, escape_segment};

/// The Profile schema, as published in `schemas/profile.schema.json`.
pub(crate) const PROFILE_SCHEMA: &str = include_str!("../../schemas/profile.schema.json");
/// The ScanPolicy schema, as published in `schemas/policy.schema.json`.
pub(crate) const POLICY_SCHEMA: &str = include_str!("../../schemas/policy.schema.json");

/// Document kinds that have a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `kind: Profile`.
    Profile,
    /// `kind: ScanPolicy`.
    ScanPolicy,
}

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compiled(kind: Kind) -> &'static Compiled {
    static PROFILE: OnceLock<Compiled> = OnceLock::new();
    static POLICY: OnceLock<Compiled> = OnceLock::new();
    let (cell, text) = match kind {
        Kind::Profile => (&PROFILE, PROFILE_SCHEMA),
        Kind::ScanPolicy => (&POLICY, POLICY_SCHEMA),
    };
    cell.get_or_init(|| {
        // The schemas ship inside the binary and are tested; failing here is a build bug.
        let schema: Value = serde_json::from_str(text).expect("embedded schema is JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("embedded schema compiles");
        Compiled { schema, validator }
    })
}

/// Validate one document against its kind's schema; every violation becomes
/// a diagnostic at the YAML position of the offending key or value.
pub(crate) fn validate(kind: Kind, doc: &Document, src: &SourceFile) -> Vec<Diagnostic> {
    let c = compiled(kind);
    let mut out = Vec::new();
    for err in c.validator.iter_errors(&doc.value) {
        out.extend(to_diagnostics(&err, c, doc, src));
    }
    out
}

/// `doc` without the fields the schema does not know, when those were its
/// only schema errors: the semantic checks can then run on the rest, so one
/// typo does not hide every other error. `None` when other errors remain.
pub(crate) fn without_unknown_fields(kind: Kind, doc: &Document) -> Option<Document> {
    let c = compiled(kind);
    let mut pruned = doc.clone();
    let mut unknown = Vec::new();
    for err in c.validator.iter_errors(&doc.value) {
        match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = err.instance_path().as_str().to_string();
                unknown.extend(unexpected.iter().map(|k| (parent.clone(), k.clone())));
            }
            _ => return None,
        }
    }
    for (parent, key) in unknown {
        if let Some(serde_json::Value::Object(m)) = pruned.value.pointer_mut(&parent) {
            m.remove(&key);
        }
    }
    c.validator.is_valid(&pruned.value).then_some(pruned)
}

fn to_diagnostics(
    err: &ValidationError<'_>,
    c: &Compiled,
    doc: &Document,
    src: &SourceFile,
) -> Vec<Diagnostic> {
    let path = err.instance_path().as_str().to_string();
    let shown_path = if path.is_empty() {
        "document root".to_string()
    } else {
        format!("`{}`", dotted(&path))
    };
    let at_value = |d: Diagnostic| d.at(&src.path, &src.text, doc.value_position(&path));
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| {
                let ptr = format!("{path}/{}", escape_segment(key));
                let allowed = allowed_properties(c, err);
                let mut d = Diagnostic::error(
                    Code::UnknownField,
                    format!("unknown field `{key}` in {shown_path}"),
                )
                .at(&src.path, &src.text, doc.key_position(&ptr));
                if let Some(best) = closest(key, &allowed) {
                    d = d.with_hint(format!("did you mean `{best}`?"));
                } else if !allowed.is_empty() {
                    d = d.with_hint(format!("allowed here: {}", allowed.join(", ")));
                }
                d
            })
            .collect(),
        ValidationErrorKind::PropertyNames { error } => {
            let key = error.instance().as_str().unwrap_or_default().to_string();
            let ptr = format!("{path}/{}", escape_segment(&key));
            let allowed = match error.kind() {
                ValidationErrorKind::Enum { options } => options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let mut d = Diagnostic::error(
                Code::UnknownField,
                format!("field `{key}` does not belong in {shown_path}"),
            )
            .at(&src.path, &src.text, doc.key_position(&ptr));
            if !allowed.is_empty() {
                d = d.with_hint(format!("this kind of check takes: {}", allowed.join(", ")));
            }
            vec![d]
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![at_value(
                Diagnostic::error(
                    Code::MissingField,
                    format!("missing required field `{name}` in {shown_path}"),
                )
                .with_hint(format!("add `{name}:`")),
            )]
        }
        ValidationErrorKind::Type { .. } => {
            let mut d = Diagnostic::error(
                Code::WrongType,
                format!("wrong type at {shown_path}: {}", err),
            );
            if let Some(desc) = description(c, err) {
                d = d.with_hint(desc);
            }
            vec![at_value(d)]
        }
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. }
            if is_check(err) =>
        {
            vec![at_value(
                Diagnostic::error(
                    Code::SchemaViolation,
                    format!("{shown_path} must name exactly one kind of check"),
                )
                .with_hint(
                    "use one of: file, directory, package, users, groups, os, config, process, command, all, any, none",
                ),
            )]
        }
        _ => {
            let mut d = Diagnostic::error(Code::SchemaViolation, format!("{shown_path}: {err}"));
            if let Some(desc) = description(c, err) {
                d = d.with_hint(desc);
            }
            vec![at_value(d)]
        }
    }
}

/// `/spec/targets/0/selector` → `spec.targets[0].selector`.
pub(crate) fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.trim_start_matches('/').split('/') {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

fn is_check(err: &ValidationError<'_>) -> bool {
    err.schema_path().as_str().contains("check")
}

/// The schema object that holds the failing keyword, found through the
/// keyword's absolute location (which resolves `$ref`s).
fn schema_parent<'a>(c: &'a Compiled, err: &ValidationError<'_>) -> Option<&'a Value> {
    let uri = err.absolute_keyword_location()?;
    let fragment = uri.fragment()?.as_str();
    let parent = fragment.rsplit_once('/').map_or("", |(p, _)| p);
    c.schema.pointer(parent)
}

fn allowed_properties(c: &Compiled, err: &ValidationError<'_>) -> Vec<String> {
    schema_parent(c, err)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn description(c: &Compiled, err: &ValidationError<'_>) -> Option<String> {
    schema_parent(c, err)
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The allowed name closest to `key` when it is plausibly a typo (edit
/// distance at most a third of the length, or equal ignoring case).
fn closest(key: &str, allowed: &[String]) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| {
            let d = if a.to_ascii_lowercase() == lower {
                0
            } else {
                levenshtein(&lower, &a.to_ascii_lowercase())
            };
            (d, a)
        })
        .filter(|(d, a)| *d <= (a.len().max(3) / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.clone())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        let _ = compiled(Kind::Profile);
        let _ = compiled(Kind::ScanPolicy);
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(
            dotted("/spec/targets/0/selector"),
            "spec.targets[0].selector"
        );
        assert_eq!(dotted("/a~1b/c"), "a/b.c");
    }

    #[test]
    fn typo_suggestions() {
        let allowed: Vec<String> = ["tokenTTL", "mode", "audiences"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest("tokenTtl", &allowed).as_deref(), Some("tokenTTL"));
        assert_eq!(closest("audience", &allowed).as_deref(), Some("audiences"));
        assert_eq!(closest("zzzzzz", &allowed), None);
    }
}
