//! Verifying an image's cosign signature with a public key, as the cosign
//! signature spec (`specs/SIGNATURE_SPEC.md` in sigstore/cosign) defines
//! it: a "simple signing" JSON payload naming the image's manifest digest,
//! signed with ECDSA P-256 or Ed25519.
//!
//! Signatures are found in the registry under the tag
//! `sha256-<hex>.sig` (tag-based discovery, which every cosign version
//! writes) and through the OCI 1.1 referrers API where the registry offers
//! it, or read from a file saved with `cosign download signature` for
//! air-gapped runs. A signature counts only when it verifies with the key
//! and its payload names exactly the pinned digest.

pub(crate) mod attestation;
pub(crate) mod key;

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub(crate) use key::PublicKey;

use crate::registry::{Client, Descriptor, Reference, RegistryError};

/// The payload's media type in a signature manifest.
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that carries the base64 signature.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type cosign gives signatures stored as OCI 1.1 referrers.
const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// `critical.type` of a cosign signature payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Payloads are a few hundred bytes.
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Signatures looked at for one image (a signature manifest holds one
/// layer per signature; a referrers index one manifest per artifact).
const MAX_SIGNATURES: usize = 64;
/// A saved signature file: JSON lines, a few KiB each.
const MAX_SIGNATURE_FILE: u64 = 4 << 20;

/// A verified signature: what the signed statement records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Verified {
    /// The image, as pinned.
    pub image: String,
    /// The manifest digest the signature names.
    pub digest: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
    /// sha256 of the key's DER SubjectPublicKeyInfo.
    pub key: String,
    /// sha256 of the signature bytes.
    pub signature: String,
    /// sha256 of the signed payload.
    pub payload: String,
    /// Where the signature came from: `tag <name>`, `referrer <digest>`
    /// or `file <path>`.
    pub source: String,
}

/// Why an image is not verified. Each case has its own message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// Neither the tag nor the referrers API (nor the file) had a signature.
    #[error(
        "{image}: no cosign signature found ({looked}); sign it with `cosign sign --key` or pass a saved one with --signature"
    )]
    Missing {
        /// The image.
        image: String,
        /// Where vigil looked.
        looked: String,
    },
    /// Signatures exist, none verifies with the key.
    #[error(
        "{image}: none of the {count} signature(s) found verifies with key {key}: signed by another key, or the payload or signature was changed after signing"
    )]
    WrongKey {
        /// The image.
        image: String,
        /// Signatures tried.
        count: usize,
        /// The key's fingerprint.
        key: String,
    },
    /// A valid signature by the key, for another image.
    #[error(
        "{image}: the signature by key {key} is for {signed}, not the pinned {pinned}; it does not vouch for this image"
    )]
    OtherDigest {
        /// The image.
        image: String,
        /// The key's fingerprint.
        key: String,
        /// Digest in the signed payload.
        signed: String,
        /// Digest pinned.
        pinned: String,
    },
    /// A signature by the key over something that is not a cosign payload.
    #[error(
        "{image}: the payload signed by key {key} is not a cosign simple-signing payload ({why})"
    )]
    BadPayload {
        /// The image.
        image: String,
        /// The key's fingerprint.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A saved signature file vigil cannot read.
    #[error("{path}: {why}")]
    SignatureFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The registry failed (unreachable, denied, altered content…).
    #[error("{image}: {cause}")]
    Registry {
        /// The image.
        image: String,
        /// The registry's error.
        cause: RegistryError,
    },
}

/// One signature and its payload, from wherever it was found.
struct Candidate {
    payload: Vec<u8>,
    signature: Vec<u8>,
    source: String,
}

/// Verify `image` against `key`: from `signature_file` when given (no
/// registry contact), else from the registry through `client`.
pub(crate) async fn verify(
    client: &Client,
    image: &Reference,
    key: &PublicKey,
    signature_file: Option<&Path>,
) -> Result<Verified, Refused> {
    let (candidates, looked) = match signature_file {
        Some(path) => (from_file(path)?, format!("in {}", printable_path(path))),
        None => from_registry(client, image)
            .await
            .map_err(|source| Refused::Registry {
                image: image.to_string(),
                cause: source,
            })?,
    };
    judge(image, key, candidates, looked)
}

/// Pick the signature that verifies and names the pinned digest; else say
/// the most telling reason none does.
fn judge(
    image: &Reference,
    key: &PublicKey,
    candidates: Vec<Candidate>,
    looked: String,
) -> Result<Verified, Refused> {
    if candidates.is_empty() {
        return Err(Refused::Missing {
            image: image.to_string(),
            looked,
        });
    }
    let mut refusal = None;
    let count = candidates.len();
    for c in candidates {
        if !key.verifies(&c.payload, &c.signature) {
            continue;
        }
        match signed_digest(&c.payload) {
            Ok(d) if d == image.digest => {
                return Ok(Verified {
                    image: image.to_string(),
                    digest: d,
                    algorithm: key.algorithm().to_string(),
                    key: key.fingerprint.clone(),
                    signature: sha256(&c.signature),
                    payload: sha256(&c.payload),
                    source: c.source,
                });
            }
            Ok(d) => {
                refusal = Some(Refused::OtherDigest {
                    image: image.to_string(),
                    key: key.fingerprint.clone(),
                    signed: crate::safeio::excerpt(&d, 80),
                    pinned: image.digest.clone(),
                })
            }
            Err(why) => {
                refusal.get_or_insert(Refused::BadPayload {
                    image: image.to_string(),
                    key: key.fingerprint.clone(),
                    why,
                });
            }
        }
    }
    Err(refusal.unwrap_or(Refused::WrongKey {
        image: image.to_string(),
        count,
        key: key.fingerprint.clone(),
    }))
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", crate::encoding::hex(&Sha256::digest(b)))
}

/// The digest a simple-signing payload vouches for: `critical.image.
/// docker-manifest-digest` of a payload whose `critical.type` is cosign's.
/// The key is matched without regard to case, as Go's JSON decoder (and so
/// cosign) does, but two keys that differ only in case are refused.
fn signed_digest(payload: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let field = |obj: &serde_json::Value, name: &str| -> Result<serde_json::Value, String> {
        let map = obj
            .as_object()
            .ok_or_else(|| format!("expected an object holding {name:?}"))?;
        let mut found = map.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Ok(v.clone()),
            (None, _) => Err(format!("no {name:?}")),
            (Some(_), Some(_)) => Err(format!("{name:?} appears twice")),
        }
    };
    let critical = field(&v, "critical")?;
    let kind = field(&critical, "type")?;
    if kind.as_str() != Some(PAYLOAD_TYPE) {
        return Err(format!("critical.type is {kind}, not {PAYLOAD_TYPE:?}"));
    }
    let digest = field(&field(&critical, "image")?, "docker-manifest-digest")?;
    match digest.as_str() {
        Some(d) if crate::registry::is_sha256_digest(d) => Ok(d.to_string()),
        _ => Err(format!(
            "docker-manifest-digest {digest} is not a sha256 digest"
        )),
    }
}

/// The signatures in the registry: the `sha256-<hex>.sig` tag's manifest,
/// then the referrers API's signature artifacts.
async fn from_registry(
    client: &Client,
    image: &Reference,
) -> Result<(Vec<Candidate>, String), RegistryError> {
    let tag = format!("{}.sig", image.digest.replace(':', "-"));
    let mut out = Vec::new();
    match client.manifest(image, &tag).await {
        Ok(m) => signatures_in(client, image, &m.bytes, &format!("tag {tag}"), &mut out).await?,
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    if let Some(index) = client
        .referrers(image, &image.digest, SIGNATURE_ARTIFACT)
        .await?
    {
        for digest in referrer_manifests(&index.bytes) {
            if out.len() >= MAX_SIGNATURES {
                break;
            }
            let m = client.manifest(image, &digest).await?;
            signatures_in(
                client,
                image,
                &m.bytes,
                &format!("referrer {digest}"),
                &mut out,
            )
            .await?;
        }
    }
    Ok((
        out,
        format!("tag {tag} and the referrers API of {}", image.api_host()),
    ))
}

/// Manifest digests of the signature artifacts in a referrers index.
fn referrer_manifests(index: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Index>(index)
        .map(|i| {
            i.manifests
                .into_iter()
                .filter(|d| {
                    d.artifact_type
                        .as_deref()
                        .is_none_or(|t| t == SIGNATURE_ARTIFACT)
                })
                .map(|d| d.digest)
                .filter(|d| crate::registry::is_sha256_digest(d))
                .take(MAX_SIGNATURES)
                .collect()
        })
        .unwrap_or_default()
}

/// The simple-signing layers of a signature manifest: each payload blob is
/// fetched (checked against its digest) with the signature annotated on it.
async fn signatures_in(
    client: &Client,
    image: &Reference,
    manifest: &[u8],
    source: &str,
    out: &mut Vec<Candidate>,
) -> Result<(), RegistryError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let Ok(m) = serde_json::from_slice::<Manifest>(manifest) else {
        return Err(RegistryError::Protocol {
            host: image.registry.clone(),
            message: format!("the signature manifest ({source}) is not an OCI image manifest"),
        });
    };
    for layer in m
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
    {
        if out.len() >= MAX_SIGNATURES {
            break;
        }
        let Some(sig) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(sig.trim()) else {
            continue;
        };
        if layer.size.unwrap_or(0) > MAX_PAYLOAD {
            return Err(RegistryError::TooLarge {
                host: image.registry.clone(),
                what: format!("signature payload {}", layer.digest),
                cap: crate::safeio::human_bytes(MAX_PAYLOAD),
            });
        }
        let payload = client.blob(image, &layer.digest, MAX_PAYLOAD).await?;
        out.push(Candidate {
            payload,
            signature,
            source: source.to_string(),
        });
    }
    Ok(())
}

/// Signatures saved with `cosign download signature`: one JSON object per
/// line with base64 `Payload` and `Base64Signature`.
fn from_file(path: &Path) -> Result<Vec<Candidate>, Refused> {
    let shown = printable_path(path);
    let bad = |why: String| Refused::SignatureFile {
        path: shown.clone(),
        why,
    };
    let text = crate::safeio::read_to_string(path, MAX_SIGNATURE_FILE, "signature file")
        .map_err(|e| bad(e.to_string()))?;
    #[derive(serde::Deserialize)]
    struct Saved {
        #[serde(rename = "Payload")]
        payload: String,
        #[serde(rename = "Base64Signature")]
        signature: String,
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |why: &str| {
            bad(format!(
                "line {}: {why} (expected the JSON lines `cosign download signature` writes)",
                i + 1
            ))
        };
        let s: Saved = serde_json::from_str(line).map_err(|e| at(&e.to_string()))?;
        let payload = b64
            .decode(s.payload.trim())
            .map_err(|_| at("Payload is not base64"))?;
        let signature = b64
            .decode(s.signature.trim())
            .map_err(|_| at("Base64Signature is not base64"))?;
        if out.len() < MAX_SIGNATURES {
            out.push(Candidate {
                payload,
                signature,
                source: format!("file {shown}"),
            });
        }
    }
    Ok(out)
}

fn printable_path(p: &Path) -> String {
    crate::safeio::printable(&p.display().to_string()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn payload(digest: &str) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"r.example/v"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    #[test]
    fn reads_the_digest_of_a_simple_signing_payload() {
        assert_eq!(signed_digest(&payload(D)).unwrap(), D);
        let upper = String::from_utf8(payload(D))
            .unwrap()
            .replace("docker-manifest-digest", "Docker-manifest-digest");
        assert_eq!(signed_digest(upper.as_bytes()).unwrap(), D);
        let twice = String::from_utf8(payload(D)).unwrap().replace(
            r#""docker-manifest-digest""#,
            r#""Docker-Manifest-Digest":"sha256:00","docker-manifest-digest""#,
        );
        assert!(
            signed_digest(twice.as_bytes())
                .unwrap_err()
                .contains("twice")
        );
        let atomic = String::from_utf8(payload(D)).unwrap().replace(
            "cosign container image signature",
            "atomic container signature",
        );
        assert!(signed_digest(atomic.as_bytes()).is_err());
        assert!(signed_digest(b"[]").is_err());
        assert!(signed_digest(&payload("sha256:abc")).is_err());
    }

    #[test]
    fn judges_each_case_with_its_own_refusal() {
        use ed25519_dalek::Signer as _;
        use p256::pkcs8::EncodePublicKey as _;
        let signer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let pem = signer
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem(&pem).unwrap();
        let image = Reference::parse(&format!("r.example/v@{D}")).unwrap();
        let c = |p: Vec<u8>, by: &ed25519_dalek::SigningKey| Candidate {
            signature: by.sign(&p).to_bytes().to_vec(),
            payload: p,
            source: "test".into(),
        };
        let ok = judge(
            &image,
            &key,
            vec![c(payload(D), &other), c(payload(D), &signer)],
            String::new(),
        )
        .unwrap();
        assert_eq!((ok.digest.as_str(), ok.algorithm.as_str()), (D, "ed25519"));
        assert!(matches!(
            judge(&image, &key, vec![], "x".into()),
            Err(Refused::Missing { .. })
        ));
        assert!(matches!(
            judge(&image, &key, vec![c(payload(D), &other)], String::new()),
            Err(Refused::WrongKey { count: 1, .. })
        ));
        let other_digest = D.replace("0123", "9999");
        assert!(matches!(
            judge(
                &image,
                &key,
                vec![c(payload(&other_digest), &signer)],
                String::new()
            ),
            Err(Refused::OtherDigest { .. })
        ));
        let mut tampered = c(payload(D), &signer);
        tampered.payload = payload(&other_digest);
        assert!(matches!(
            judge(&image, &key, vec![tampered], String::new()),
            Err(Refused::WrongKey { .. })
        ));
    }
}
