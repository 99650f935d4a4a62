//! From a layout to one image: `index.json` (nested indexes followed,
//! one platform picked) or, for `docker save` archives, `manifest.json`;
//! then the manifest, its config and its layers. Every document is capped
//! while it is read and checked against the digest it was named by.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::ImageError;
use super::source::{Store, blob_name};
use crate::registry::Descriptor;

/// Manifests and indexes: the distribution registry refuses bigger ones.
const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs carry history and labels; still small.
const MAX_CONFIG: u64 = 16 << 20;
/// Layers an image may have (overlay filesystems stop at 128; Docker
/// builds at 127).
const MAX_LAYERS: usize = 1000;
/// Index levels followed (an index of indexes of …).
const MAX_DEPTH: usize = 4;

/// One image, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The manifest's digest, or for a legacy `docker save` archive (which
    /// keeps no manifest) the config's: Docker's image ID.
    pub digest: String,
    /// The config JSON.
    pub config: Vec<u8>,
    /// Its digest.
    pub config_digest: String,
    /// Layers, lowest first.
    pub layers: Vec<LayerRef>,
    /// The digests of the indexes followed to reach the manifest, outermost
    /// first: a multi-platform image is pulled (and its containers report
    /// their `imageID`) by its index digest.
    pub indexes: Vec<String>,
}

/// A layer: where it is, and what it must hash to.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// Member of the store.
    pub name: String,
    /// The digest of the stored (compressed) bytes, when known.
    pub digest: Option<String>,
    /// The digest of the uncompressed tar (`rootfs.diff_ids`), when known.
    pub diff_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", crate::encoding::hex(&Sha256::digest(b)))
}

fn invalid(s: String) -> ImageError {
    ImageError::Invalid(s)
}

/// Read blob `d`, capped, and check it against its digest and size.
fn blob(store: &dyn Store, d: &Descriptor, cap: u64, what: &str) -> Result<Vec<u8>, ImageError> {
    let name = blob_name(&d.digest)?;
    let bytes = store
        .read(&name, cap)?
        .ok_or_else(|| ImageError::Missing(format!("{what} {} ({name})", d.digest)))?;
    let actual = sha256(&bytes);
    if actual != d.digest {
        return Err(ImageError::DigestMismatch {
            what: format!("{what} {name}"),
            expected: d.digest.clone(),
            actual,
        });
    }
    if let Some(size) = d.size
        && size != bytes.len() as u64
    {
        return Err(invalid(format!(
            "{what} {} is {} bytes, its descriptor says {size}",
            d.digest,
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn parse<T: for<'a> Deserialize<'a>>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("{what} is not valid JSON for its kind: {e}")))
}

/// Resolve the image of `store`: by `index.json`, or (when `docker` and the
/// index is absent or empty, as some `docker save` versions write it) by
/// `manifest.json`. `tag` picks among several images.
pub(crate) fn resolve(
    store: &dyn Store,
    tag: Option<&str>,
    docker: bool,
) -> Result<Resolved, ImageError> {
    let index = store.read("index.json", MAX_MANIFEST)?;
    let index: Option<Document> = index
        .as_deref()
        .map(|b| parse(b, "index.json"))
        .transpose()?;
    match index {
        Some(Document {
            manifests: Some(m), ..
        }) if !m.is_empty() => from_index(store, m, tag),
        _ if docker => from_docker_manifest(store),
        Some(_) => Err(invalid("index.json lists no manifests".into())),
        None => Err(ImageError::Missing(
            "index.json: this is not an OCI image layout".into(),
        )),
    }
}

fn from_index(
    store: &dyn Store,
    manifests: Vec<Descriptor>,
    tag: Option<&str>,
) -> Result<Resolved, ImageError> {
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let mut candidates = manifests;
    let mut chosen = match tag {
        Some(t) => {
            let names: Vec<String> = candidates
                .iter()
                .filter_map(|d| d.annotations.get(REF_NAME))
                .take(20)
                .map(|n| crate::safeio::excerpt(n, 80))
                .collect();
            let i = candidates
                .iter()
                .position(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(t))
                .ok_or_else(|| {
                    invalid(format!(
                        "no image named {t:?} in index.json (names: {})",
                        names.join(", ")
                    ))
                })?;
            candidates.swap_remove(i)
        }
        None => pick(candidates, "index.json")?,
    };
    let mut indexes = Vec::new();
    for _ in 0..MAX_DEPTH {
        let bytes = blob(store, &chosen, MAX_MANIFEST, "manifest")?;
        let doc: Document = parse(&bytes, &format!("manifest {}", chosen.digest))?;
        let media = doc
            .media_type
            .clone()
            .unwrap_or_else(|| chosen.media_type.clone());
        if let Some(m) = doc.manifests {
            if !media.contains("index") && !media.contains("list") && !media.is_empty() {
                return Err(invalid(format!(
                    "{} has manifests but is a {media}",
                    chosen.digest
                )));
            }
            indexes.push(chosen.digest.clone());
            chosen = pick(m, &chosen.digest)?;
            continue;
        }
        let config = doc
            .config
            .ok_or_else(|| invalid(format!("manifest {} has no config", chosen.digest)))?;
        let config_bytes = blob(store, &config, MAX_CONFIG, "config")?;
        let diff_ids = parse::<Config>(&config_bytes, "the image config")?
            .rootfs
            .map(|r| r.diff_ids)
            .unwrap_or_default();
        let layers = doc.layers.unwrap_or_default();
        if layers.len() > MAX_LAYERS {
            return Err(invalid(format!(
                "manifest {} has {} layers; at most {MAX_LAYERS} are read",
                chosen.digest,
                layers.len()
            )));
        }
        diff_ids_fit(
            diff_ids.len(),
            layers.len(),
            &format!("manifest {}", chosen.digest),
        )?;
        let layers = layers
            .into_iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| {
                Ok(LayerRef {
                    name: blob_name(&l.digest)?,
                    digest: Some(l.digest),
                    diff_id: Some(diff_id),
                })
            })
            .collect::<Result<Vec<_>, ImageError>>()?;
        return Ok(Resolved {
            digest: chosen.digest,
            config_digest: config.digest,
            config: config_bytes,
            layers,
            indexes,
        });
    }
    Err(invalid(format!(
        "indexes nested more than {MAX_DEPTH} deep"
    )))
}

/// Every source: a config must list one `rootfs.diff_ids` entry per
/// layer (OCI image-spec `config.md`), or the layers' uncompressed bytes
/// cannot be checked and a runtime refuses the image.
fn diff_ids_fit(diff_ids: usize, layers: usize, what: &str) -> Result<(), ImageError> {
    if diff_ids == layers {
        return Ok(());
    }
    Err(invalid(format!(
        "{what}: the config lists {diff_ids} diff_ids for {layers} layers: the layers cannot be verified"
    )))
}

/// One manifest of an index: the only one, else this machine's platform
/// (attestation manifests, `unknown/unknown`, are never images).
fn pick(manifests: Vec<Descriptor>, within: &str) -> Result<Descriptor, ImageError> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut images: Vec<Descriptor> = manifests
        .into_iter()
        .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
        .collect();
    if images.len() == 1 {
        return Ok(images.remove(0));
    }
    let i = images
        .iter()
        .position(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .ok_or_else(|| {
            invalid(format!(
                "{within} holds {} images and none for linux/{arch}; name one with :TAG",
                images.len()
            ))
        })?;
    Ok(images.swap_remove(i))
}

/// `docker save`'s `manifest.json`: one image, its config named by the
/// config's digest, its layers checked against the config's diff_ids.
fn from_docker_manifest(store: &dyn Store) -> Result<Resolved, ImageError> {
    let bytes = store.read("manifest.json", MAX_MANIFEST)?.ok_or_else(|| {
        ImageError::Missing("neither index.json nor manifest.json: not an image archive".into())
    })?;
    let mut entries: Vec<DockerEntry> = parse(&bytes, "manifest.json")?;
    if entries.len() != 1 {
        let tags: Vec<String> = entries
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .take(20)
            .map(|t| crate::safeio::excerpt(&t, 80))
            .collect();
        return Err(invalid(format!(
            "manifest.json holds {} images ({}); save one image per archive",
            entries.len(),
            tags.join(", ")
        )));
    }
    let entry = entries.remove(0);
    let config = store.read(&entry.config, MAX_CONFIG)?.ok_or_else(|| {
        ImageError::Missing(format!(
            "config {}",
            crate::safeio::excerpt(&entry.config, 120)
        ))
    })?;
    let config_digest = sha256(&config);
    // The config's name is its digest (`<hex>.json`, or `blobs/sha256/<hex>`).
    let named = entry
        .config
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_string();
    if named.len() == 64 && format!("sha256:{named}") != config_digest {
        return Err(ImageError::DigestMismatch {
            what: format!("config {}", crate::safeio::excerpt(&entry.config, 120)),
            expected: format!("sha256:{named}"),
            actual: config_digest,
        });
    }
    let diff_ids = parse::<Config>(&config, "the image config")?
        .rootfs
        .map(|r| r.diff_ids)
        .unwrap_or_default();
    if entry.layers.len() > MAX_LAYERS {
        return Err(invalid(format!(
            "manifest.json lists {} layers; at most {MAX_LAYERS} are read",
            entry.layers.len()
        )));
    }
    diff_ids_fit(diff_ids.len(), entry.layers.len(), "manifest.json")?;
    let layers = entry
        .layers
        .into_iter()
        .zip(diff_ids)
        .map(|(name, diff_id)| LayerRef {
            // `blobs/sha256/<hex>` members are named by their digest too.
            digest: name
                .strip_prefix("blobs/sha256/")
                .filter(|h| h.len() == 64)
                .map(|h| format!("sha256:{h}")),
            name,
            diff_id: Some(diff_id),
        })
        .collect();
    Ok(Resolved {
        digest: config_digest.clone(),
        config,
        config_digest,
        layers,
        indexes: Vec::new(),
    })
}
