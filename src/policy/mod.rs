//! Policy-as-code: loading `Profile` and `ScanPolicy` documents from YAML,
//! validating them against the embedded JSON Schemas, and checking what a
//! schema cannot express (references, cron, TTLs, digests, selectors, …).
//!
//! The flow is read → parse (positions kept) → schema → typed model → lint.
//! Every stage collects findings instead of stopping at the first, so
//! `vigil validate` reports everything wrong with a policy set in one pass.

pub(crate) mod duration;
pub(crate) mod lint;
pub mod model;
pub(crate) mod schema;
pub(crate) mod selector;
pub(crate) mod source;
pub mod threshold;
pub(crate) mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Code, Diagnostic};
use model::{API_VERSION, Profile, ScanPolicy};
use source::SourceFile;
use yaml::Document;

/// A typed document with the file and position table it came from, so later
/// stages can still point at the YAML.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The typed document.
    pub value: T,
    /// The file it came from.
    pub source: Arc<SourceFile>,
    /// Positions of its parts.
    pub doc: Document,
}

impl<T> Loaded<T> {
    /// A diagnostic at the value `pointer` names in this document.
    pub fn at_value(&self, d: Diagnostic, pointer: &str) -> Diagnostic {
        d.at(
            &self.source.path,
            &self.source.text,
            self.doc.value_position(pointer),
        )
    }

    /// A diagnostic at the key `pointer` names in this document.
    pub fn at_key(&self, d: Diagnostic, pointer: &str) -> Diagnostic {
        d.at(
            &self.source.path,
            &self.source.text,
            self.doc.key_position(pointer),
        )
    }

    /// The directory of the file this document came from; relative paths
    /// in a policy (rootfs targets, keys) resolve against it.
    pub fn base_dir(&self) -> &Path {
        self.source.path.parent().unwrap_or(Path::new("."))
    }
}

/// Everything loaded from a set of inputs.
#[derive(Debug, Default)]
pub struct PolicySet {
    /// Every `Profile`, in file order.
    pub profiles: Vec<Loaded<Profile>>,
    /// Every `ScanPolicy`, in file order.
    pub policies: Vec<Loaded<ScanPolicy>>,
    /// Files read.
    pub files: usize,
}

impl PolicySet {
    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Loaded<Profile>> {
        self.profiles.iter().find(|p| p.value.metadata.name == name)
    }
}

/// Load and validate every document under `inputs`. The set holds whatever
/// loaded cleanly; the diagnostics say what did not. Callers must treat any
/// error diagnostic as "the set is not usable".
pub fn load(inputs: &[PathBuf]) -> (PolicySet, Vec<Diagnostic>) {
    let (paths, mut diags) = source::collect_paths(inputs);
    let mut set = PolicySet::default();
    for path in &paths {
        match source::read(path) {
            Ok(src) => load_source(Arc::new(src), &mut set, &mut diags),
            Err(d) => diags.push(d),
        }
        set.files += 1;
    }
    diags.extend(lint::check(&set));
    crate::diag::sort(&mut diags);
    (set, diags)
}

/// Load the documents of one file (already read) into `set`.
pub fn load_source(src: Arc<SourceFile>, set: &mut PolicySet, diags: &mut Vec<Diagnostic>) {
    let docs = match yaml::parse_documents(&src.text) {
        Ok(docs) => docs,
        Err(e) => {
            let d = Diagnostic::error(Code::YamlSyntax, format!("invalid YAML: {}", e.message))
                .with_hint("fix the YAML syntax; `vigil validate` checks again");
            diags.push(match e.position {
                Some(pos) => d.at(&src.path, &src.text, pos),
                None => d.in_file(&src.path),
            });
            return;
        }
    };
    if docs.is_empty() {
        diags.push(
            Diagnostic::error(Code::EmptyFile, "file holds no YAML documents")
                .in_file(&src.path)
                .with_hint("add a Profile or ScanPolicy document, or remove the file"),
        );
    }
    for doc in docs {
        let Some(kind) = classify(&doc, &src, diags) else {
            continue;
        };
        let found = schema::validate(kind, &doc, &src);
        let doc = if found.is_empty() {
            doc
        } else {
            diags.extend(found);
            // Unknown fields alone: check the rest too (the document stays
            // refused by the errors above). Anything else: say the checks
            // that need a well-formed document did not run.
            match schema::without_unknown_fields(kind, &doc) {
                Some(pruned) => pruned,
                None => {
                    diags.push(
                        Diagnostic::warning(
                            Code::ChecksSkipped,
                            "the checks beyond the schema did not run on this document; more errors may be hidden behind the ones above",
                        )
                        .at(&src.path, &src.text, doc.start)
                        .with_hint("fix the errors above and validate again"),
                    );
                    continue;
                }
            }
        };
        match kind {
            schema::Kind::Profile => {
                if let Some(p) = typed::<Profile>(&doc, &src, diags) {
                    set.profiles.push(Loaded {
                        value: p,
                        source: src.clone(),
                        doc,
                    });
                }
            }
            schema::Kind::ScanPolicy => {
                if let Some(p) = typed::<ScanPolicy>(&doc, &src, diags) {
                    set.policies.push(Loaded {
                        value: p,
                        source: src.clone(),
                        doc,
                    });
                }
            }
        }
    }
}

/// Check `apiVersion` and `kind` before choosing a schema, so that a wrong
/// kind gets one clear message instead of a screen of schema errors.
fn classify(doc: &Document, src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<schema::Kind> {
    let at = |d: Diagnostic, ptr: &str| d.at(&src.path, &src.text, doc.value_position(ptr));
    let Value::Object(obj) = &doc.value else {
        diags.push(at(
            Diagnostic::error(Code::NotAMapping, "a document must be a mapping with apiVersion and kind")
                .with_hint("start the document with `apiVersion: vigil/v1` and `kind: ScanPolicy` or `kind: Profile`"),
            "",
        ));
        return None;
    };
    match obj.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => {
            diags.push(at(
                Diagnostic::error(
                    Code::UnknownApiVersion,
                    format!("unknown apiVersion {other}"),
                )
                .with_hint(format!("this vigil reads `apiVersion: {API_VERSION}`")),
                "/apiVersion",
            ));
            return None;
        }
        None => {
            diags.push(at(
                Diagnostic::error(Code::MissingField, "missing required field `apiVersion`")
                    .with_hint(format!("add `apiVersion: {API_VERSION}`")),
                "",
            ));
            return None;
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some("Profile") => Some(schema::Kind::Profile),
        Some("ScanPolicy") => Some(schema::Kind::ScanPolicy),
        Some(other) => {
            diags.push(at(
                Diagnostic::error(Code::UnknownKind, format!("unknown kind `{other}`"))
                    .with_hint("vigil documents are `kind: ScanPolicy` or `kind: Profile`"),
                "/kind",
            ));
            None
        }
        None => {
            diags.push(at(
                Diagnostic::error(Code::MissingField, "missing required field `kind`")
                    .with_hint("add `kind: ScanPolicy` or `kind: Profile`"),
                "",
            ));
            None
        }
    }
}

fn typed<T: DeserializeOwned>(
    doc: &Document,
    src: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(&doc.value) {
        Ok(v) => Some(v),
        Err(e) => {
            // The schema accepted what the model refuses: a vigil bug, reported
            // as such rather than blamed on the user.
            diags.push(
                Diagnostic::error(
                    Code::SchemaViolation,
                    format!("document does not fit vigil's model: {e}"),
                )
                .at(&src.path, &src.text, doc.start)
                .with_hint("this is a vigil bug (schema and model disagree); please report it"),
            );
            None
        }
    }
}

/// Parse a single in-memory file (for tests and `--threshold` style inputs).
pub fn load_str(path: &str, text: &str) -> (PolicySet, Vec<Diagnostic>) {
    let mut set = PolicySet::default();
    let mut diags = Vec::new();
    let src = Arc::new(SourceFile {
        path: PathBuf::from(path),
        text: text.to_string(),
    });
    load_source(src, &mut set, &mut diags);
    set.files = 1;
    diags.extend(lint::check(&set));
    crate::diag::sort(&mut diags);
    (set, diags)
}
