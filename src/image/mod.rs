//! Scanning container images before they run, with no container daemon
//! and no extraction: an OCI layout, an OCI or `docker save` archive, or a
//! registry ([`source`]); the image picked and verified ([`manifest`]);
//! its layers streamed once into an index of the final filesystem
//! ([`index`]); facts served from that index under the rootfs collector's
//! rules ([`collect`]), file content read from the layers only for the
//! files the controls need.

pub(crate) mod collect;
pub(crate) mod index;
pub(crate) mod manifest;
pub(crate) mod source;
mod tree;

use std::collections::BTreeMap;

use crate::facts::{FactRequest, Facts, ImageFacts};
use crate::registry::RegistryError;
pub use source::Source;
use source::Store;

/// Why an image cannot be scanned. Each names what was being read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The source text is wrong.
    #[error(transparent)]
    Source(#[from] crate::image_source::SourceError),
    /// A file of the layout could not be read.
    #[error("cannot read {0}")]
    Read(String),
    /// Something the image names is not there.
    #[error("missing from the image: {0}")]
    Missing(String),
    /// A document that is not what the OCI image spec says it must be.
    #[error("invalid image: {0}")]
    Invalid(String),
    /// Bigger than vigil reads.
    #[error("{what} is larger than {cap}; refused")]
    TooLarge {
        /// What.
        what: String,
        /// The cap, in words.
        cap: String,
    },
    /// Content that is not what its digest says: never scanned.
    #[error(
        "{what} does not match its digest: expected {expected}, got {actual}; the image was altered, nothing from it is used"
    )]
    DigestMismatch {
        /// What.
        what: String,
        /// The digest it is named by.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// A layer that is not a readable tar stream.
    #[error("layer {layer}: {why}")]
    Layer {
        /// The layer's digest or name.
        layer: String,
        /// The reader's complaint.
        why: String,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The run was stopped (a second signal, or its grace period over)
    /// while a registry request was waiting.
    #[error("stopped by a signal while waiting for the registry")]
    Cancelled,
}

/// An opened image: its store and the image resolved in it.
pub struct Opened {
    store: Box<dyn Store>,
    /// The image's digest, config and layers.
    pub resolved: manifest::Resolved,
}

/// Open `source` and resolve its image (for a registry, the manifest and
/// config are fetched; layers are fetched when scanned).
pub fn open(source: &Source, insecure: &[String]) -> Result<Opened, ImageError> {
    open_with(
        source,
        &Access {
            insecure: insecure.to_vec(),
            ..Access::default()
        },
    )
}

/// How a registry source is reached.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Hosts reached over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// Request deadlines (`--registry-timeout`, `--registry-min-rate`).
    pub deadlines: crate::registry::Deadlines,
    /// The run's stop: set when a second signal comes or the grace period
    /// ends; a fetch waiting then ends at once.
    pub abort: Option<tokio::sync::watch::Receiver<bool>>,
}

/// [`open`], reaching registries as `access` says.
pub fn open_with(source: &Source, access: &Access) -> Result<Opened, ImageError> {
    match source {
        Source::OciDir { path, tag } => {
            let store = source::DirStore::open(path)?;
            let resolved = manifest::resolve(&store, tag.as_deref(), false)?;
            Ok(Opened {
                store: Box::new(store),
                resolved,
            })
        }
        Source::OciArchive { path, tag } => {
            let store = source::TarStore::open(path)?;
            let resolved = manifest::resolve(&store, tag.as_deref(), false)?;
            Ok(Opened {
                store: Box::new(store),
                resolved,
            })
        }
        Source::DockerArchive { path } => {
            let store = source::TarStore::open(path)?;
            let resolved = manifest::resolve(&store, None, true)?;
            Ok(Opened {
                store: Box::new(store),
                resolved,
            })
        }
        Source::Registry(reference) => open_registry(reference, access),
    }
}

/// The digest an image target will be scanned at, known offline: a
/// registry reference's own digest, or a local layout's manifest (read
/// from its index; no layer is read).
pub fn planned_digest(source: &Source) -> Result<String, ImageError> {
    match source {
        Source::Registry(r) => Ok(r.digest.clone()),
        local => Ok(open(local, &[])?.resolved.digest),
    }
}

/// What a scan read.
#[derive(Debug)]
pub struct Scanned {
    /// The facts asked for.
    pub facts: Facts,
    /// Files in the final filesystem.
    pub files: usize,
}

impl Opened {
    /// Index the layers and gather `req`'s facts, with the image's own.
    pub fn scan(&self, source: &Source, req: &FactRequest) -> Result<Scanned, ImageError> {
        let mut scanned = scan_layers(self.store.as_ref(), &self.resolved.layers, req)?;
        scanned.facts.image = Some(image_facts(source, &self.resolved)?);
        Ok(scanned)
    }
}

/// Gather `req`'s facts from a root filesystem archive (one tar, plain or
/// compressed, as `docker export` writes it), read as a single layer with
/// the same rules as an image's: modes, owners and special bits come from
/// the archive's headers, never from the machine it is on.
pub fn scan_archive(path: &std::path::Path, req: &FactRequest) -> Result<Scanned, ImageError> {
    let store = source::ArchiveStore::open(path)?;
    // No manifest names its digest, so it is taken first: every later pass
    // is checked against it, and an archive changed during the scan is
    // refused, never read half old and half new.
    let layers = [manifest::LayerRef {
        name: source::ArchiveStore::MEMBER.to_string(),
        digest: Some(store.digest()?),
        diff_id: None,
    }];
    scan_layers(&store, &layers, req)
}

/// Index `layers` of `store` and gather `req`'s facts from the result.
fn scan_layers(
    store: &dyn source::Store,
    layers: &[manifest::LayerRef],
    req: &FactRequest,
) -> Result<Scanned, ImageError> {
    let parent = |p: &str| match p.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => p[..i].to_string(),
    };
    let prefetch = |path: &str| -> Option<u64> {
        let read = req.read.contains(path).then(|| req.read_cap(path));
        let listed = req
            .read_dirs
            .contains(&parent(path))
            .then_some(req.max_file_bytes);
        read.max(listed)
    };
    let mut index = index::build(store, layers, &prefetch)?;
    let wanted = collect::wanted(&index, req);
    let contents = index::read_contents(store, layers, &wanted, &mut index.prefetched)?;
    let facts = collect::facts(&index, req, &contents);
    Ok(Scanned {
        facts,
        files: index.nodes(),
    })
}

/// The image's configuration, as facts: user, ports, environment names
/// that look like secrets (never their values), healthcheck, labels, age.
pub fn image_facts(source: &Source, r: &manifest::Resolved) -> Result<ImageFacts, ImageError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
        #[serde(default)]
        env: Option<Vec<String>>,
        #[serde(default)]
        healthcheck: Option<Health>,
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Health {
        #[serde(default)]
        test: Option<Vec<String>>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        created: Option<String>,
        #[serde(default)]
        config: Option<Inner>,
    }
    let c: Config = serde_json::from_slice(&r.config).map_err(|e| {
        ImageError::Invalid(format!("the image config is not JSON of its kind: {e}"))
    })?;
    let inner = c.config.unwrap_or_default();
    let env = inner.env.unwrap_or_default();
    let secret_env = env
        .iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            crate::facts::looks_secret(k, v).then(|| crate::safeio::excerpt(k, 120))
        })
        .collect();
    Ok(ImageFacts {
        reference: source.to_string(),
        digest: r.digest.clone(),
        config_digest: r.config_digest.clone(),
        index_digests: r.indexes.clone(),
        user: inner.user.unwrap_or_default(),
        exposed_ports: inner
            .exposed_ports
            .unwrap_or_default()
            .into_keys()
            .collect(),
        env_names: env
            .iter()
            .map(|kv| {
                crate::safeio::excerpt(kv.split_once('=').map_or(kv.as_str(), |(k, _)| k), 120)
            })
            .collect(),
        secret_env,
        healthcheck: inner
            .healthcheck
            .and_then(|h| h.test)
            .is_some_and(|t| t.first().is_some_and(|f| f != "NONE")),
        labels: inner.labels.unwrap_or_default(),
        created: c.created,
        layers: r.layers.len(),
    })
}

/// Bytes one blob of a registry image may have (a cap on what is downloaded).
const MAX_BLOB_BYTES: u64 = 32 << 30;

/// A registry image seen as a layout: `index.json` names the pinned
/// digest; each blob is fetched when first opened (a manifest by the
/// manifests endpoint, anything else as a blob), checked against its
/// digest as it arrives, and kept in a private directory for the second
/// pass, so only the chosen platform's blobs are ever downloaded.
struct RegistryStore {
    rt: tokio::runtime::Runtime,
    client: crate::registry::Client,
    reference: crate::registry::Reference,
    dir: std::path::PathBuf,
    cache: source::DirStore,
    /// Digests known to be manifests (the pinned one, then an index's
    /// children): fetched from the manifests endpoint, the rest as blobs.
    manifests: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Fires when the run stops (a second signal, or the grace period
    /// over): every wait on the registry ends then.
    abort: Option<tokio::sync::watch::Receiver<bool>>,
    /// The size each fetched manifest's descriptors give their blobs: a
    /// blob is read no further (a registry that streams without end, or a
    /// blob longer than its descriptor, is refused at the first byte past).
    sizes: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl RegistryStore {
    /// Run a registry request to its end, or until the run is stopped.
    fn wait<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<Result<T, RegistryError>, ImageError> {
        let Some(abort) = &self.abort else {
            return Ok(self.rt.block_on(fut));
        };
        let mut abort = abort.clone();
        self.rt.block_on(async move {
            let stopped = async {
                while !*abort.borrow_and_update() {
                    if abort.changed().await.is_err() {
                        // The run ended without stopping: never fires.
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                r = fut => Ok(r),
                () = stopped => Err(ImageError::Cancelled),
            }
        })
    }
}

impl Store for RegistryStore {
    fn open(&self, name: &str) -> Result<source::Member<'_>, ImageError> {
        let io = |e: std::io::Error| {
            ImageError::Read(format!(
                "{}: {}",
                self.dir.display(),
                crate::safeio::io_reason(&e)
            ))
        };
        if name == "index.json" {
            let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": self.reference.digest}]});
            let bytes = index.to_string().into_bytes();
            let len = bytes.len() as u64;
            return Ok(Some((Box::new(std::io::Cursor::new(bytes)), len)));
        }
        let Some(hex) = name.strip_prefix("blobs/sha256/") else {
            return Ok(None);
        };
        let digest = format!("sha256:{hex}");
        if !crate::registry::is_sha256_digest(&digest) {
            return Ok(None);
        }
        if let Some(found) = self.cache.open(name)? {
            return Ok(Some(found));
        }
        let path = self.dir.join(name);
        let is_manifest = self
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&digest);
        if is_manifest {
            let m = self.wait(self.client.manifest(&self.reference, &digest))??;
            // An index's children are manifests too; a manifest's config
            // and layers are blobs of the sizes it gives.
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&m.bytes) {
                let children = doc["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["digest"].as_str());
                self.manifests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(children.map(str::to_string));
                let blobs = std::iter::once(&doc["config"])
                    .chain(doc["layers"].as_array().into_iter().flatten())
                    .filter_map(|d| Some((d["digest"].as_str()?.to_string(), d["size"].as_u64()?)));
                self.sizes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(blobs);
            }
            std::fs::write(&path, &m.bytes).map_err(io)?;
        } else {
            let size = self
                .sizes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&digest)
                .copied()
                .ok_or_else(|| {
                    ImageError::Invalid(format!(
                        "{digest} is named by no descriptor of a manifest read; not fetched"
                    ))
                })?;
            if size > MAX_BLOB_BYTES {
                return Err(ImageError::TooLarge {
                    what: format!("blob {digest} ({})", crate::safeio::human_bytes(size)),
                    cap: crate::safeio::human_bytes(MAX_BLOB_BYTES),
                });
            }
            let mut file = std::fs::File::create(&path).map_err(io)?;
            let got = self.wait(
                self.client
                    .blob_to(&self.reference, &digest, size, &mut file),
            );
            let got = match got {
                Ok(got) => got,
                Err(cancelled) => {
                    drop(file);
                    let _ = std::fs::remove_file(&path);
                    return Err(cancelled);
                }
            };
            if let Err(e) = got {
                drop(file);
                let _ = std::fs::remove_file(&path);
                return Err(match e {
                    RegistryError::NotFound { .. } => {
                        ImageError::Missing(format!("{digest} in {}", self.reference.name()))
                    }
                    RegistryError::TooLarge { host, .. } => ImageError::TooLarge {
                        what: format!("blob {digest} from {host}"),
                        cap: format!("its descriptor's {size} bytes"),
                    },
                    e => e.into(),
                });
            }
        }
        self.cache.open(name)
    }
}

impl Drop for RegistryStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Download directories are `vigil-image-<pid>-<nonce>` in `$TMPDIR`.
const STORE_PREFIX: &str = "vigil-image-";

/// Remove the download directories that vigil processes no longer running
/// left behind (a process killed mid-download cannot remove its own).
/// Only directories of this user are touched; a symlink is never
/// followed (`remove_dir_all` removes the link itself).
fn sweep_stale(tmp: &std::path::Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STORE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !alive && meta.is_dir() && meta.uid() == me {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn open_registry(
    reference: &crate::registry::Reference,
    access: &Access,
) -> Result<Opened, ImageError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ImageError::Read(format!("cannot start the registry client: {e}")))?;
    let credentials = crate::registry::Credentials::from_environment()
        .map_err(|e| ImageError::Read(e.to_string()))?;
    let client = crate::registry::Client::new(&access.insecure, credentials)?
        .with_deadlines(access.deadlines);
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce).map_err(|e| ImageError::Read(e.to_string()))?;
    sweep_stale(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!(
        "{STORE_PREFIX}{}-{}",
        std::process::id(),
        crate::encoding::hex(&nonce)
    ));
    let made = {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)
    };
    made.and_then(|()| std::fs::create_dir_all(dir.join("blobs/sha256")))
        .map_err(|e| {
            ImageError::Read(format!(
                "{}: {}",
                dir.display(),
                crate::safeio::io_reason(&e)
            ))
        })?;
    let store = RegistryStore {
        cache: source::DirStore::open(&dir)?,
        rt,
        client,
        reference: reference.clone(),
        dir,
        manifests: std::sync::Mutex::new([reference.digest.clone()].into()),
        sizes: std::sync::Mutex::new(BTreeMap::new()),
        abort: access.abort.clone(),
    };
    let resolved = manifest::resolve(&store, None, false)?;
    Ok(Opened {
        store: Box::new(store),
        resolved,
    })
}

#[cfg(test)]
mod tests;
