//! Kubernetes label selectors: the model, their validation (the API server's
//! rules for keys and values), and matching against a pod's labels.
//!
//! Matching is done locally so that `vigil plan` works offline against a
//! snapshot and selects exactly what the API server would.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A `metav1.LabelSelector`. All requirements are ANDed; an empty selector
/// matches everything.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Equality requirements.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// One set-based requirement.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: Operator,
    /// Values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Set-based operators.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A problem with a selector, with the JSON pointer suffix (relative to the
/// selector) of the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// e.g. `/matchExpressions/0/values`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl LabelSelector {
    /// Check keys, values and operator arity as the API server does.
    pub fn validate(&self) -> Vec<SelectorError> {
        let mut errors = Vec::new();
        for (k, v) in &self.match_labels {
            let pointer = format!("/matchLabels/{}", crate::policy::yaml::escape_segment(k));
            if let Err(m) = validate_key(k) {
                errors.push(SelectorError {
                    pointer: pointer.clone(),
                    message: m,
                });
            }
            if let Err(m) = validate_value(v) {
                errors.push(SelectorError {
                    pointer,
                    message: m,
                });
            }
        }
        for (i, r) in self.match_expressions.iter().enumerate() {
            let base = format!("/matchExpressions/{i}");
            if let Err(m) = validate_key(&r.key) {
                errors.push(SelectorError {
                    pointer: format!("{base}/key"),
                    message: m,
                });
            }
            match r.operator {
                Operator::In | Operator::NotIn if r.values.is_empty() => {
                    errors.push(SelectorError {
                        pointer: format!("{base}/operator"),
                        message: format!("operator {:?} needs at least one value", r.operator),
                    })
                }
                Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                    errors.push(SelectorError {
                        pointer: format!("{base}/values"),
                        message: format!("operator {:?} takes no values", r.operator),
                    })
                }
                _ => {}
            }
            for (j, v) in r.values.iter().enumerate() {
                if let Err(m) = validate_value(v) {
                    errors.push(SelectorError {
                        pointer: format!("{base}/values/{j}"),
                        message: m,
                    });
                }
            }
        }
        errors
    }

    /// The same selector from the API's type (an operator it does not
    /// know matches nothing: `In` with no values).
    pub fn from_k8s(
        s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> LabelSelector {
        LabelSelector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            match_expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|r| {
                    let known = match r.operator.as_str() {
                        "In" => Some(Operator::In),
                        "NotIn" => Some(Operator::NotIn),
                        "Exists" => Some(Operator::Exists),
                        "DoesNotExist" => Some(Operator::DoesNotExist),
                        _ => None,
                    };
                    Requirement {
                        key: r.key.clone(),
                        operator: known.unwrap_or(Operator::In),
                        values: if known.is_some() {
                            r.values.clone().unwrap_or_default()
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect(),
        }
    }

    /// Returns true if and only if `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let got = labels.get(&r.key);
                match r.operator {
                    Operator::In => got.is_some_and(|g| r.values.contains(g)),
                    Operator::NotIn => got.is_none_or(|g| !r.values.contains(g)),
                    Operator::Exists => got.is_some(),
                    Operator::DoesNotExist => got.is_none(),
                }
            })
    }

    /// The selector in `kubectl -l` syntax, for plans and logs.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match r.operator {
                Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
                Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Operator::Exists => r.key.clone(),
                Operator::DoesNotExist => format!("!{}", r.key),
            });
        }
        parts.join(",")
    }
}

/// Why a `--run-label` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidRunLabel(String);

/// A label the caller puts on a run (`vigil run --run-label KEY=VALUE`):
/// Kubernetes label syntax, and not one of vigil's own keys.
pub(crate) fn parse_run_label(s: &str) -> Result<(String, String), InvalidRunLabel> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| InvalidRunLabel(format!("--run-label {s:?} is not KEY=VALUE")))?;
    validate_key(key).map_err(InvalidRunLabel)?;
    validate_value(value).map_err(InvalidRunLabel)?;
    if key == "app.kubernetes.io/managed-by" || key.starts_with("vigil.dev/") {
        return Err(InvalidRunLabel(format!(
            "--run-label {key:?}: vigil sets that key itself; choose your own (e.g. ci.example.com/pipeline)"
        )));
    }
    Ok((key.to_string(), value.to_string()))
}

/// A qualified name: `[prefix/]name`, name ≤ 63 chars of `[A-Za-z0-9._-]`
/// starting and ending alphanumeric; prefix a DNS subdomain.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!("label key prefix {p:?} is not a DNS subdomain"));
    }
    if name.is_empty() || name.len() > 63 || !is_label_token(name) {
        return Err(format!(
            "label key {key:?} is invalid: the name part must be 1-63 characters of [A-Za-z0-9._-], starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 || !is_label_token(value) {
        return Err(format!(
            "label value {value:?} is invalid: at most 63 characters of [A-Za-z0-9._-], starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain: ≤ 253 chars, dot-separated lowercase labels.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// RFC 1123 label: ≤ 63 chars of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn set_based_matching() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "api")]),
            match_expressions: vec![
                req("tier", Operator::In, &["web", "edge"]),
                req("canary", Operator::DoesNotExist, &[]),
                req("env", Operator::NotIn, &["dev"]),
            ],
        };
        assert!(sel.matches(&labels(&[("app", "api"), ("tier", "web")])));
        assert!(sel.matches(&labels(&[
            ("app", "api"),
            ("tier", "edge"),
            ("env", "prod")
        ])));
        assert!(!sel.matches(&labels(&[("app", "api"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("app", "api"), ("tier", "web"), ("canary", "1")])));
        assert!(!sel.matches(&labels(&[("app", "api"), ("tier", "web"), ("env", "dev")])));
        assert!(!sel.matches(&labels(&[("tier", "web")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert_eq!(
            sel.to_query(),
            "app=api,tier in (web,edge),!canary,env notin (dev)"
        );
    }

    #[test]
    fn validation_rules() {
        let sel = LabelSelector {
            match_labels: labels(&[("example.com/app", "ok"), ("-bad", "x"), ("k", "bad value")]),
            match_expressions: vec![
                req("a", Operator::In, &[]),
                req("b", Operator::Exists, &["x"]),
                req("Bad_Prefix.COM/x", Operator::Exists, &[]),
            ],
        };
        let errs = sel.validate();
        let pointers: Vec<&str> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/matchLabels/-bad",
                "/matchLabels/k",
                "/matchExpressions/0/operator",
                "/matchExpressions/1/values",
                "/matchExpressions/2/key"
            ]
        );
    }
}
