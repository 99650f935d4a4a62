//! Workload manifests as targets: the pod templates of the Pods,
//! Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! ReplicationControllers, Jobs, CronJobs and PodTemplates in YAML or JSON
//! files (multi-document, and `List` objects), each read once with the
//! positions of its fields, so a result points at `file:line:column`.
//!
//! Each file is capped in bytes and in what its YAML may expand to; a
//! directory is walked without following links, and only `.yaml`, `.yml`
//! and `.json` files are read. Pod specs are defaulted as the API server
//! defaults them (`facts::workload::apply_defaults`) so a manifest and the
//! pod created from it are judged alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::facts::workload::{Origin, Workload, apply_defaults};
use crate::policy::yaml::{Limits, Tree, escape_segment, parse_located};

/// Bytes one manifest file may have.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Files one manifest target may read.
pub const MAX_FILES: usize = 100_000;
/// Directory levels walked below a manifest directory.
pub const MAX_DEPTH: usize = 32;
/// Bytes one manifest target may read in all files together.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// Workloads one manifest target may hold (memory follows them).
pub const MAX_WORKLOADS: usize = 200_000;

/// Why a manifest, or a workload in it, cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct ManifestError {
    /// `file`, or `file:line:column`.
    pub place: String,
    /// What is wrong and what to do.
    pub reason: String,
}

fn error(place: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    // File names come from the directory: shown escaped.
    ManifestError {
        place: crate::safeio::printable(&place.into()).into_owned(),
        reason: reason.into(),
    }
}

/// What a manifest path holds.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Every workload found, in file and document order.
    pub workloads: Vec<Workload>,
    /// Files read.
    pub files: usize,
    /// Objects that are not workloads (Services, ConfigMaps, …), by kind.
    pub ignored: BTreeMap<String, usize>,
    /// Namespace objects: name → labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// NetworkPolicies: namespace → (name, pod selector).
    pub network_policies: BTreeMap<String, Vec<(String, crate::policy::selector::LabelSelector)>>,
}

impl Manifests {
    /// Give every workload what its namespace's objects among the
    /// manifests say (its labels, its NetworkPolicies).
    fn attach_context(&mut self) {
        let mut by_ns: BTreeMap<String, Arc<crate::facts::workload::NamespaceContext>> =
            BTreeMap::new();
        for w in &mut self.workloads {
            let ctx = by_ns.entry(w.namespace.clone()).or_insert_with(|| {
                Arc::new(crate::facts::workload::NamespaceContext {
                    source: "the manifests",
                    labels: self.namespaces.get(&w.namespace).cloned(),
                    network_policies: Some(
                        self.network_policies
                            .get(&w.namespace)
                            .cloned()
                            .unwrap_or_default(),
                    ),
                    unread: None,
                })
            });
            w.context = Some(ctx.clone());
        }
    }
}

/// Read every manifest under `path` (a file, a directory, or `-` for
/// standard input), naming files as `shown` joined with their path below
/// it. Errors are collected, not stopped at: each names its file and line.
pub fn read(path: &Path, shown: &str) -> (Manifests, Vec<ManifestError>) {
    let mut out = Manifests::default();
    let mut errors = Vec::new();
    let files = if shown == "-" {
        vec![(PathBuf::from("/dev/stdin"), "-".to_string())]
    } else {
        match list(path, shown) {
            Ok(f) => f,
            Err(e) => return (out, vec![e]),
        }
    };
    if files.is_empty() {
        errors.push(error(
            shown,
            "no .yaml, .yml or .json file here; point `manifest:` at a manifest file or a directory of them",
        ));
    }
    // Files are parsed on every core, then taken in file order; past the
    // total budget, files are refused rather than read.
    let total = std::sync::atomic::AtomicU64::new(0);
    let parsed = parallel_map(&files, |(file, name)| {
        let mut one = Manifests::default();
        let mut errs = Vec::new();
        let read_so_far = total.load(std::sync::atomic::Ordering::Relaxed);
        if read_so_far >= MAX_TOTAL_BYTES {
            errs.push(error(
                name,
                format!(
                    "not read: the manifests read before it reach the {} limit of one target; point at a smaller tree",
                    crate::safeio::human_bytes(MAX_TOTAL_BYTES)
                ),
            ));
            return (one, errs);
        }
        match crate::safeio::read_to_string(file, MAX_FILE_BYTES, "manifest") {
            Ok(text) => {
                total.fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
                read_text(&text, name, &mut one, &mut errs)
            }
            Err(e) => errs.push(error(name, e.problem.to_string())),
        }
        (one, errs)
    });
    for (one, errs) in parsed {
        out.files += 1;
        if out.workloads.len() + one.workloads.len() > MAX_WORKLOADS {
            errors.push(error(
                shown,
                format!("more than {MAX_WORKLOADS} workloads; point at a smaller tree"),
            ));
            return (out, errors);
        }
        out.workloads.extend(one.workloads);
        for (k, n) in one.ignored {
            *out.ignored.entry(k).or_default() += n;
        }
        out.namespaces.extend(one.namespaces);
        for (ns, list) in one.network_policies {
            out.network_policies.entry(ns).or_default().extend(list);
        }
        errors.extend(errs);
    }
    out.attach_context();
    (out, errors)
}

/// `f` over `items` on up to as many threads as there are cores, results
/// in the items' order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// The manifest files under `path`, sorted, with the names they are shown
/// by.
fn list(path: &Path, shown: &str) -> Result<Vec<(PathBuf, String)>, ManifestError> {
    let meta = std::fs::symlink_metadata(path)
        .or_else(|_| std::fs::metadata(path))
        .map_err(|e| error(shown, crate::safeio::io_reason(&e)))?;
    // A link given by name is followed once; links inside a directory
    // are not (no cycles, nothing outside the tree).
    let meta = if meta.file_type().is_symlink() {
        std::fs::metadata(path).map_err(|e| error(shown, crate::safeio::io_reason(&e)))?
    } else {
        meta
    };
    if !meta.is_dir() {
        return Ok(vec![(path.to_path_buf(), shown.to_string())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(
        path.to_path_buf(),
        shown.trim_end_matches('/').to_string(),
        0,
    )];
    while let Some((dir, name, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| error(&name, crate::safeio::io_reason(&e)))?;
        let mut here: Vec<(PathBuf, String, std::fs::FileType)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| error(&name, crate::safeio::io_reason(&e)))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let ft = entry
                .file_type()
                .map_err(|e| error(&name, crate::safeio::io_reason(&e)))?;
            here.push((entry.path(), format!("{name}/{file_name}"), ft));
        }
        here.sort_by(|a, b| a.1.cmp(&b.1));
        for (p, n, ft) in here.into_iter().rev() {
            if ft.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(error(
                        n,
                        format!("more than {MAX_DEPTH} directory levels deep"),
                    ));
                }
                stack.push((p, n, depth + 1));
            } else if ft.is_file() && [".yaml", ".yml", ".json"].iter().any(|x| n.ends_with(x)) {
                out.push((p, n));
                if out.len() > MAX_FILES {
                    return Err(error(
                        shown,
                        format!("more than {MAX_FILES} manifest files; point at a smaller tree"),
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The kinds whose pod template vigil judges, and where the template is.
fn template_of(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "PodTemplate" => Some("/template"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Read one file's text.
pub fn read_text(text: &str, file: &str, out: &mut Manifests, errors: &mut Vec<ManifestError>) {
    let docs = match parse_located(text, Limits::MANIFEST) {
        Ok(d) => d,
        Err(e) => {
            let place = match e.position {
                Some(p) => format!("{file}:{}:{}", p.line, p.column),
                None => file.to_string(),
            };
            errors.push(error(place, format!("not YAML: {}", e.message)));
            return;
        }
    };
    let file: Arc<str> = Arc::from(file);
    for (value, doc) in docs {
        let doc = Arc::new(doc);
        let mut found = Vec::new();
        objects(&value, "", &doc, &file, &mut found, out, errors);
        out.workloads.extend(found);
    }
}

/// The workloads of one object (and of a list's items).
fn objects(
    v: &Value,
    at: &str,
    doc: &Arc<Tree>,
    file: &Arc<str>,
    found: &mut Vec<Workload>,
    out: &mut Manifests,
    errors: &mut Vec<ManifestError>,
) {
    let place = |pointer: &str| {
        let p = doc.value_position(pointer);
        format!("{file}:{}:{}", p.line, p.column)
    };
    let Some(kind) = v.get("kind").and_then(Value::as_str) else {
        errors.push(error(
            place(at),
            "a document without a `kind`; every Kubernetes object names its kind",
        ));
        return;
    };
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some()) {
        for (i, item) in v
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            objects(
                item,
                &format!("{at}/items/{i}"),
                doc,
                file,
                found,
                out,
                errors,
            );
        }
        return;
    }
    let Some(template) = template_of(kind) else {
        match context_object(v, kind) {
            Ok(true) => {}
            Ok(false) => *out.ignored.entry(kind.to_string()).or_default() += 1,
            Err((pointer, reason)) => {
                errors.push(error(place(&format!("{at}{pointer}")), reason));
                return;
            }
        }
        match kind {
            "Namespace" => {
                if let Some(name) = v.pointer("/metadata/name").and_then(Value::as_str) {
                    out.namespaces
                        .insert(name.to_string(), labels_at(v, "/metadata/labels"));
                }
            }
            "NetworkPolicy" => {
                let ns = v
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let name = v
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if let Some(sel) = v
                    .pointer("/spec/podSelector")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                {
                    out.network_policies
                        .entry(ns.to_string())
                        .or_default()
                        .push((name.to_string(), sel));
                }
            }
            _ => {}
        }
        return;
    };
    match workload(v, kind, at, template, doc, file) {
        Ok(w) => found.push(w),
        Err((pointer, reason)) => errors.push(error(place(&pointer), reason)),
    }
}

/// A Namespace or NetworkPolicy (context for the workloads): `Ok(true)`
/// when it is one and well-formed, `Ok(false)` for any other kind.
fn context_object(v: &Value, kind: &str) -> Result<bool, (String, String)> {
    match kind {
        "Namespace"
            if v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none() =>
        {
            Err((
                "/metadata".into(),
                "a Namespace without metadata.name".into(),
            ))
        }
        "NetworkPolicy" => match v.pointer("/spec/podSelector") {
            None => Err((
                "/spec".into(),
                "a NetworkPolicy without spec.podSelector; the API server would refuse it".into(),
            )),
            Some(sel) => {
                serde_json::from_value::<crate::policy::selector::LabelSelector>(sel.clone())
                    .map(|_| true)
                    .map_err(|e| {
                        (
                            "/spec/podSelector".into(),
                            format!(
                                "not a label selector: {}",
                                crate::safeio::excerpt(&e.to_string(), 200)
                            ),
                        )
                    })
            }
        },
        "Namespace" => Ok(true),
        _ => Ok(false),
    }
}

/// The string map at `pointer` (labels, annotations).
fn labels_at(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn workload(
    v: &Value,
    kind: &str,
    at: &str,
    template: &str,
    doc: &Arc<Tree>,
    file: &Arc<str>,
) -> Result<Workload, (String, String)> {
    let meta = v.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            meta.and_then(|m| m.get("generateName"))
                .and_then(Value::as_str)
                .map(|g| format!("{g}*"))
        })
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            (
                format!("{at}/metadata"),
                format!("a {kind} without metadata.name; name it so its results can be told apart"),
            )
        })?;
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    // The API server's rules for names: a DNS subdomain (a `generateName`
    // prefix is checked without its `*`), a namespace a DNS label.
    let plain = name.strip_suffix('*').unwrap_or(&name);
    if !is_object_name(plain.trim_end_matches('-')) {
        return Err((
            format!("{at}/metadata/name"),
            format!(
                "{kind} name {:?} is not a DNS subdomain (lower-case letters, digits, '-' and '.', at most 253); the API server would refuse it",
                crate::safeio::excerpt(&name, 80)
            ),
        ));
    }
    if !crate::policy::selector::is_dns_label(&namespace) {
        return Err((
            format!("{at}/metadata/namespace"),
            format!(
                "namespace {:?} is not a DNS label (lower-case letters, digits and '-', at most 63); the API server would refuse it",
                crate::safeio::excerpt(&namespace, 80)
            ),
        ));
    }
    let base = format!("{at}{template}");
    // Names come from the file: shown escaped, never as they are.
    let shown = crate::safeio::printable(&format!("{kind}/{namespace}/{name}")).into_owned();
    let pod = v.pointer(template).ok_or_else(|| {
        (
            at.to_string(),
            format!(
                "a {kind} without a pod template at {template}; the API server would refuse it"
            ),
        )
    })?;
    let spec_value = pod.get("spec").ok_or_else(|| {
        (
            base.clone(),
            format!("{shown}: the pod template has no spec"),
        )
    })?;
    unknown_volume_types(spec_value, &base)?;
    let mut spec =
        <k8s_openapi::api::core::v1::PodSpec as serde::Deserialize>::deserialize(spec_value)
            .map_err(|e| {
                (
                    format!("{base}/spec"),
                    format!(
                        "{shown}: not a valid pod spec ({}); the API server would refuse it",
                        crate::safeio::excerpt(&e.to_string(), 200)
                    ),
                )
            })?;
    apply_defaults(&mut spec);
    Ok(Workload {
        kind: kind.to_string(),
        namespace,
        name,
        labels: labels_at(pod, "/metadata/labels"),
        annotations: labels_at(pod, "/metadata/annotations"),
        spec,
        origin: Origin::Manifest {
            file: file.clone(),
            base,
            doc: doc.clone(),
        },
        context: None,
    })
}

/// A lower-case RFC 1123 subdomain as the API server checks object names
/// (`IsDNS1123Subdomain`): at most 253 characters, dot-separated parts of
/// `[a-z0-9-]` that start and end alphanumeric (no per-part length cap).
fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// The volume sources Kubernetes knows; a volume naming anything else is
/// refused by the API server (strict field validation), so it is refused
/// here rather than judged as the `emptyDir` it would default to.
const VOLUME_KEYS: &[&str] = &[
    "name",
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

fn unknown_volume_types(spec: &Value, base: &str) -> Result<(), (String, String)> {
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(obj) = v.as_object()
            && let Some(k) = obj.keys().find(|k| !VOLUME_KEYS.contains(&k.as_str()))
        {
            return Err((
                format!("{base}/spec/volumes/{i}/{}", escape_segment(k)),
                format!(
                    "volume {i} has an unknown field `{}`; the API server would refuse it",
                    crate::safeio::printable(k)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> (Manifests, Vec<ManifestError>) {
        let mut out = Manifests::default();
        let mut errors = Vec::new();
        read_text(text, "m.yaml", &mut out, &mut errors);
        (out, errors)
    }

    #[test]
    fn every_workload_kind_gives_its_pod_template_with_positions() {
        let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - name: app
          image: nginx
          securityContext:
            privileged: true
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: busybox}]
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: x}], hostNetwork: true}}
  - {apiVersion: v1, kind: Service, metadata: {name: s}}
"#;
        let (m, errors) = read_str(text);
        assert!(errors.is_empty(), "{errors:?}");
        let ids: Vec<String> = m.workloads.iter().map(Workload::target_id).collect();
        assert_eq!(
            ids,
            [
                "Deployment/shop/web",
                "CronJob/default/nightly",
                "Pod/default/p"
            ]
        );
        assert_eq!(m.ignored.get("Service"), Some(&1));
        let at = m.workloads[0]
            .locate("/spec/containers/0/securityContext/privileged")
            .unwrap();
        assert_eq!((at.line, at.column), (12, 25), "{at:?}");
        // A missing field points at the nearest written ancestor.
        let at = m.workloads[1]
            .locate("/spec/containers/0/securityContext/runAsNonRoot")
            .unwrap();
        assert_eq!(at.line, 22);
        // The host network pod's list item sits on line 27 (the text starts with a newline).
        assert_eq!(m.workloads[2].locate("/spec/hostNetwork").unwrap().line, 27);
    }

    #[test]
    fn bad_workloads_are_errors_with_a_place_never_skipped() {
        let (m, errors) = read_str(
            "kind: Pod\nmetadata: {}\nspec: {containers: []}\n---\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {volumes: [{name: v, bogus: {}}], containers: []}}}\n---\nkind: Pod\nmetadata: {name: t}\nspec: {containers: [{name: c, securityContext: {privileged: \"yes\"}}]}\n---\nmetadata: {name: nokind}\n",
        );
        assert!(m.workloads.is_empty());
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("m.yaml:2:"), "{}", shown[0]);
        assert!(shown[1].contains("unknown field `bogus`") && shown[1].starts_with("m.yaml:7:"));
        assert!(shown[2].contains("not a valid pod spec"), "{}", shown[2]);
        assert!(shown[3].contains("without a `kind`"));
        let (_, errors) = read_str("kind: [unclosed\n");
        assert!(errors[0].to_string().starts_with("m.yaml:"), "{errors:?}");
    }

    /// Names as the API server checks them: a long single part is a valid
    /// object name; capitals, or a namespace that is not a DNS label, are
    /// refused with their place.
    #[test]
    fn object_names_follow_the_api_servers_rules() {
        let long = "a".repeat(100);
        let (m, errors) = read_str(&format!(
            "kind: Pod\nmetadata: {{name: {long}, namespace: team}}\nspec: {{containers: []}}\n---\nkind: Pod\nmetadata: {{name: Web}}\nspec: {{containers: []}}\n---\nkind: Pod\nmetadata: {{name: w, namespace: team.prod}}\nspec: {{containers: []}}\n---\nkind: Job\nmetadata: {{generateName: nightly-}}\nspec: {{template: {{spec: {{containers: []}}}}}}\n"
        ));
        let ids: Vec<String> = m.workloads.iter().map(Workload::target_id).collect();
        assert_eq!(
            ids,
            [
                format!("Pod/team/{long}"),
                "Job/default/nightly-*".to_string()
            ]
        );
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0].starts_with("m.yaml:6:") && shown[0].contains("not a DNS subdomain"),
            "{}",
            shown[0]
        );
        assert!(shown[1].contains("not a DNS label"), "{}", shown[1]);
    }

    /// kubectl reads YAML through go-yaml v2 (YAML 1.1): `yes` is true and
    /// `0644` is octal; a policy file would keep both as strings.
    #[test]
    fn manifests_are_read_as_kubectl_reads_yaml() {
        let (m, errors) = read_str(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: s, secret: {secretName: x, defaultMode: 0644}}]\n  containers: [{name: c, securityContext: {privileged: yes, readOnlyRootFilesystem: on}}]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = &m.workloads[0].spec;
        let mode = s.volumes.as_ref().unwrap()[0]
            .secret
            .as_ref()
            .unwrap()
            .default_mode;
        assert_eq!(mode, Some(0o644));
        let sc = s.containers[0].security_context.as_ref().unwrap();
        assert_eq!(
            (sc.privileged, sc.read_only_root_filesystem),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn a_manifest_is_defaulted_as_the_api_server_defaults_it() {
        let (m, _) = read_str(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  volumes: [{name: scratch}]\n  containers: [{name: c, ports: [{containerPort: 8080}]}]\n",
        );
        let s = &m.workloads[0].spec;
        assert!(s.volumes.as_ref().unwrap()[0].empty_dir.is_some());
        assert_eq!(
            s.containers[0].ports.as_ref().unwrap()[0].host_port,
            Some(8080)
        );
    }
}
