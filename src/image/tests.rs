//! Manifest resolution over in-memory layouts: nested indexes and platform
//! choice, `docker save`'s quirks (an empty `index.json`, the legacy
//! `manifest.json`), and documents that are not what their digest says.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::ImageError;
use super::manifest::resolve;
use super::source::{Member, Store, blob_name};

#[derive(Default)]
struct Mem(HashMap<String, Vec<u8>>);

impl Store for Mem {
    fn open(&self, name: &str) -> Result<Member<'_>, ImageError> {
        Ok(self.0.get(name).map(|b| {
            let r: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(b.clone()));
            (r, b.len() as u64)
        }))
    }
}

impl Mem {
    fn blob(&mut self, bytes: &[u8]) -> String {
        let d = format!("sha256:{}", crate::encoding::hex(&Sha256::digest(bytes)));
        self.0.insert(blob_name(&d).unwrap(), bytes.to_vec());
        d
    }

    fn json_blob(&mut self, v: serde_json::Value) -> (String, usize) {
        let b = serde_json::to_vec(&v).unwrap();
        (self.blob(&b), b.len())
    }

    /// A manifest with one (absent) layer and its config.
    fn image(&mut self, arch: &str) -> (String, usize) {
        let (config, config_len) = self.json_blob(serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]}
        }));
        self.json_blob(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{}", "2".repeat(64)), "size": 1}]
        }))
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn nested_indexes_lead_to_this_machines_platform() {
    let mut m = Mem::default();
    let (mine, mine_len) = m.image(arch());
    let (other, other_len) = m.image("s390x");
    let (inner, inner_len) = m.json_blob(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other, "size": other_len, "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mine, "size": mine_len, "platform": {"os": "linux", "architecture": arch()}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other, "size": other_len, "platform": {"os": "unknown", "architecture": "unknown"}}
        ]
    }));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner, "size": inner_len, "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    ]});
    m.0.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    let r = resolve(&m, None, false).unwrap();
    assert_eq!(r.digest, mine);
    assert_eq!(
        r.indexes,
        vec![inner.clone()],
        "the index it was reached by"
    );
    assert_eq!(r.layers.len(), 1);
    assert!(r.layers[0].diff_id.is_some() && r.layers[0].digest.is_some());
    assert_eq!(resolve(&m, Some("v1"), false).unwrap().digest, mine);
    let e = resolve(&m, Some("v2"), false).unwrap_err().to_string();
    assert!(
        e.contains("no image named \"v2\"") && e.contains("v1"),
        "{e}"
    );
    // A descriptor size that is not the blob's is refused.
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": inner, "size": inner_len + 1}]});
    m.0.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    let e = resolve(&m, None, false).unwrap_err().to_string();
    assert!(e.contains("descriptor says"), "{e}");
}

#[test]
fn docker_archives_fall_back_to_manifest_json_and_check_the_config_name() {
    let mut m = Mem::default();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "3".repeat(64))]}
    }))
    .unwrap();
    let hex = crate::encoding::hex(&Sha256::digest(&config));
    m.0.insert(format!("{hex}.json"), config.clone());
    let manifest = serde_json::json!([{"Config": format!("{hex}.json"), "RepoTags": ["x:1"], "Layers": ["abc/layer.tar"]}]);
    m.0.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    // Newer Docker writes an index.json whose manifests may be empty.
    m.0.insert(
        "index.json".into(),
        br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
    );
    let r = resolve(&m, None, true).unwrap();
    assert_eq!(r.digest, format!("sha256:{hex}"), "the image ID");
    assert_eq!(r.layers[0].name, "abc/layer.tar");
    assert_eq!(
        r.layers[0].diff_id.as_deref(),
        Some(format!("sha256:{}", "3".repeat(64)).as_str())
    );
    // As an OCI layout, an empty index is an error, not an empty image.
    assert!(
        resolve(&m, None, false)
            .unwrap_err()
            .to_string()
            .contains("lists no manifests")
    );
    // A config whose bytes are not the digest its name says.
    let mut altered = config.clone();
    altered.push(b' ');
    m.0.insert(format!("{hex}.json"), altered);
    let e = resolve(&m, None, true).unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    // Several images in one archive: say so, do not guess.
    let two = serde_json::json!([
        {"Config": format!("{hex}.json"), "RepoTags": ["x:1"], "Layers": []},
        {"Config": format!("{hex}.json"), "RepoTags": ["y:2"], "Layers": []}
    ]);
    m.0.insert("manifest.json".into(), serde_json::to_vec(&two).unwrap());
    let e = resolve(&m, None, true).unwrap_err().to_string();
    assert!(e.contains("holds 2 images") && e.contains("y:2"), "{e}");
}

#[test]
fn a_manifest_that_is_not_its_digest_is_refused() {
    let mut m = Mem::default();
    let (d, len) = m.image(arch());
    m.0.insert(blob_name(&d).unwrap(), b"{\"schemaVersion\":2}".to_vec());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": d, "size": len}]});
    m.0.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    let e = resolve(&m, None, false).unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    // A digest that is not sha256 hex never becomes a path.
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": "sha256:../../etc/passwd"}]});
    m.0.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    assert!(
        resolve(&m, None, false)
            .unwrap_err()
            .to_string()
            .contains("not a sha256 digest")
    );
}

#[test]
fn sources_parse_as_skopeo_names_them() {
    use super::Source;
    let base = std::path::Path::new("/policies");
    assert_eq!(
        Source::parse("oci-dir:images/app:v1", base).unwrap(),
        Source::OciDir {
            path: "/policies/images/app".into(),
            tag: Some("v1".into())
        }
    );
    assert_eq!(
        Source::parse("oci-archive:/abs/app.tar", base).unwrap(),
        Source::OciArchive {
            path: "/abs/app.tar".into(),
            tag: None
        }
    );
    assert!(matches!(
        Source::parse("docker-archive:app.tar", base).unwrap(),
        Source::DockerArchive { .. }
    ));
    let e = Source::parse("registry:r.example/app:1", base)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not pinned by digest"), "{e}");
    assert!(Source::parse("app.tar", base).is_err());
    assert!(
        Source::parse("podman:x", base)
            .unwrap_err()
            .to_string()
            .contains("unknown kind")
    );
    let s = Source::parse("oci-dir:a/b:v2", base).unwrap();
    assert_eq!(
        Source::parse(&s.spec(), std::path::Path::new("/elsewhere")).unwrap(),
        s
    );
}

/// A registry whose layer blob streams without end: the scan stops at the
/// descriptor's size (not the 32 GiB blob cap) and says so, and leaves no
/// download directory behind.
#[test]
fn a_registry_blob_is_read_no_further_than_its_descriptor() {
    use tokio::io::AsyncWriteExt as _;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]}
    }))
    .unwrap();
    let config_digest = format!("sha256:{}", crate::encoding::hex(&Sha256::digest(&config)));
    let layer_digest = format!("sha256:{}", "2".repeat(64));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": 417}]
    }))
    .unwrap();
    let manifest_digest = format!(
        "sha256:{}",
        crate::encoding::hex(&Sha256::digest(&manifest))
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (m, c) = (manifest.clone(), config.clone());
    let streamed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = streamed.clone();
    let host = rt.block_on(crate::registry::tests::raw_server(move |mut sock, line| {
        let (m, c, counted) = (m.clone(), c.clone(), counted.clone());
        async move {
            let body = if line.contains("/manifests/") {
                m
            } else if line.contains(&c_digest(&c)) {
                c
            } else {
                crate::registry::tests::endless_chunks(&mut sock, &counted).await;
                return;
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body).await;
        }
    }));
    let tmp = std::env::temp_dir();
    let before = stores(&tmp);
    let reference =
        crate::registry::Reference::parse(&format!("{host}/vigil@{manifest_digest}")).unwrap();
    let source = super::Source::Registry(reference);
    let opened = super::open(&source, std::slice::from_ref(&host)).unwrap();
    let e = opened
        .scan(&source, &crate::facts::FactRequest::default())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("larger than its descriptor's 417 bytes"),
        "{e}"
    );
    assert!(
        streamed.load(std::sync::atomic::Ordering::Relaxed) < 64 << 20,
        "the client read on past the descriptor"
    );
    drop(opened);
    assert_eq!(stores(&tmp), before, "a download directory was left behind");
}

fn c_digest(c: &[u8]) -> String {
    crate::encoding::hex(&Sha256::digest(c))
}

/// This process's download directories in `tmp`.
fn stores(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mine = format!("{}{}-", super::STORE_PREFIX, std::process::id());
    let mut v: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&mine))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Download directories of vigil processes that are gone are removed at
/// the next start; a live process's, another name's and a symlink are not.
#[test]
fn stale_download_directories_of_dead_processes_are_swept() {
    let tmp = std::env::temp_dir().join(format!("vigil-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let dead = tmp.join(format!("{}4294967-aa", super::STORE_PREFIX));
    std::fs::create_dir_all(dead.join("blobs/sha256")).unwrap();
    std::fs::write(dead.join("blobs/sha256/x"), "layer").unwrap();
    let live = tmp.join(format!("{}{}-bb", super::STORE_PREFIX, std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let other = tmp.join("vigil-image-notapid");
    std::fs::create_dir_all(&other).unwrap();
    let target = tmp.join("keep");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("file"), "kept").unwrap();
    let link = tmp.join(format!("{}4294968-cc", super::STORE_PREFIX));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    super::sweep_stale(&tmp);
    assert!(!dead.exists(), "the dead process's directory stays");
    assert!(live.exists() && other.exists());
    assert!(target.join("file").exists(), "a symlink was followed");
    std::fs::remove_dir_all(&tmp).unwrap();
}
