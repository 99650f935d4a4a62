//! In-toto attestations stored next to an image the way `cosign attest`
//! stores them (sigstore/cosign `specs/ATTESTATION_SPEC.md`): each DSSE
//! envelope a layer (media type `application/vnd.dsse.envelope.v1+json`,
//! its `predicateType` annotated) of the manifest tagged `sha256-<hex>.att`
//! in the image's repository, appended to what is there; and, where the
//! registry offers the OCI 1.1 referrers API, one artifact manifest per
//! envelope whose `subject` is the image. Admission controllers (Kyverno
//! `verifyImages` attestations, sigstore policy-controller) read them so.
//!
//! [`judge`] accepts an attestation only when a signature by the key
//! verifies over DSSE's PAE of the payload, the in-toto statement names
//! exactly the image's digest as a subject, its predicate type is the one
//! asked for, and, when asked, the Test Result predicate's `result` is
//! `PASSED`. Nothing in an envelope (key ids, names) picks a key.

use base64::Engine as _;
use serde_json::{Value, json};

use super::PublicKey;
use crate::registry::{Client, Reference, RegistryError};

/// A DSSE envelope's media type, as a layer or an artifact.
pub(crate) const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto statement.
pub(crate) const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// The in-toto Test Result predicate (a vetted predicate).
pub(crate) const TEST_RESULT_PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// Envelopes looked at for one image.
const MAX_ATTESTATIONS: usize = 64;
/// An envelope of a few KiB to a few MiB (test names listed).
pub(crate) const MAX_ENVELOPE: u64 = 8 << 20;
/// All the envelopes read for one image: a registry that stores many large
/// ones (anyone who may push there can) cannot make vigil hold more.
const MAX_ENVELOPES_TOTAL: u64 = 64 << 20;

/// Where an attestation was stored.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Stored {
    /// The image, pinned.
    pub image: String,
    /// The `.att` tag it was appended to.
    pub tag: String,
    /// The envelope's blob digest.
    pub layer: String,
    /// The OCI 1.1 referrer manifest, where the registry offers the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// Store the DSSE `envelope` (its JSON bytes) as an attestation of `image`
/// (pinned): appended to the `.att` manifest (made when absent; an envelope
/// already there is not added twice) and, where the registry offers the
/// referrers API, as a referrer of the image.
pub(crate) async fn store(
    client: &Client,
    image: &Reference,
    envelope: &[u8],
    predicate_type: &str,
) -> Result<Stored, RegistryError> {
    let tag = att_tag(image);
    let layer = client.put_blob(image, envelope).await?;
    let config = client.put_blob(image, b"{}").await?;
    let mut layers: Vec<Value> = match client.manifest(image, &tag).await {
        Ok(m) => serde_json::from_slice::<Value>(&m.bytes)
            .ok()
            .and_then(|v| v.get("layers").and_then(Value::as_array).cloned())
            .unwrap_or_default(),
        Err(RegistryError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let descriptor = json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": envelope.len(),
        "digest": layer,
        "annotations": {
            "dev.cosignproject.cosign/signature": "",
            "predicateType": predicate_type,
        }
    });
    if !layers.iter().any(|l| l["digest"] == layer.as_str()) {
        layers.push(descriptor.clone());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": config},
        "layers": layers,
    });
    client
        .put_manifest(
            image,
            &tag,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).expect("a manifest serializes"),
        )
        .await?;
    let referrer = match client
        .referrers(image, &image.digest, DSSE_MEDIA_TYPE)
        .await?
    {
        None => None,
        Some(_) => {
            let subject = client.manifest(image, &image.digest).await?;
            let empty = client.put_blob(image, b"{}").await?;
            let artifact = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": DSSE_MEDIA_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": empty},
                "layers": [descriptor],
                "subject": {
                    "mediaType": subject.media_type.unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into()),
                    "size": subject.bytes.len(),
                    "digest": image.digest,
                },
                "annotations": {"predicateType": predicate_type},
            });
            let bytes = serde_json::to_vec(&artifact).expect("a manifest serializes");
            let digest = format!(
                "sha256:{}",
                crate::encoding::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes))
            );
            Some(
                client
                    .put_manifest(
                        image,
                        &digest,
                        "application/vnd.oci.image.manifest.v1+json",
                        &bytes,
                    )
                    .await?,
            )
        }
    };
    Ok(Stored {
        image: image.to_string(),
        tag,
        layer,
        referrer,
    })
}

/// `sha256-<hex>.att`.
fn att_tag(image: &Reference) -> String {
    format!("{}.att", image.digest.replace(':', "-"))
}

/// The envelopes stored for `image`: the `.att` manifest's DSSE layers,
/// then the referrers API's DSSE artifacts; each with where it was found.
pub(crate) async fn fetch(
    client: &Client,
    image: &Reference,
) -> Result<Vec<(Vec<u8>, String)>, RegistryError> {
    let tag = att_tag(image);
    let mut manifests = Vec::new();
    match client.manifest(image, &tag).await {
        Ok(m) => manifests.push((m.bytes, format!("tag {tag}"))),
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    if let Some(index) = client
        .referrers(image, &image.digest, DSSE_MEDIA_TYPE)
        .await?
    {
        let listed: Vec<String> = serde_json::from_slice::<Value>(&index.bytes)
            .ok()
            .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d["digest"].as_str().map(str::to_string))
            .filter(|d| crate::registry::is_sha256_digest(d))
            .take(MAX_ATTESTATIONS)
            .collect();
        for d in listed {
            let m = client.manifest(image, &d).await?;
            manifests.push((m.bytes, format!("referrer {d}")));
        }
    }
    let mut out = Vec::new();
    let mut budget = MAX_ENVELOPES_TOTAL;
    for (bytes, source) in manifests {
        let layers = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("layers").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        for l in layers {
            if out.len() >= MAX_ATTESTATIONS {
                break;
            }
            let (Some(DSSE_MEDIA_TYPE), Some(d)) = (l["mediaType"].as_str(), l["digest"].as_str())
            else {
                continue;
            };
            // A digest that is not one (anyone who can push may write it)
            // is passed over, never a reason to read none of the others.
            if !crate::registry::is_sha256_digest(d) {
                continue;
            }
            if budget == 0 {
                break;
            }
            // One that is too large is passed over, so that whoever can
            // push a huge one cannot hide the others.
            let blob = match client.blob(image, d, MAX_ENVELOPE.min(budget)).await {
                Ok(b) => b,
                Err(RegistryError::TooLarge { .. }) => continue,
                Err(e) => return Err(e),
            };
            budget = budget.saturating_sub(blob.len() as u64);
            out.push((blob, format!("{source}, layer {d}")));
        }
    }
    Ok(out)
}

/// What an attestation must say to be accepted.
#[derive(Debug, Clone)]
pub(crate) struct Wanted<'a> {
    /// The image's manifest digest, `sha256:<hex>`.
    pub digest: &'a str,
    /// The predicate type.
    pub predicate_type: &'a str,
    /// Require a Test Result whose `result` is `PASSED`.
    pub passed: bool,
}

/// An accepted attestation.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Accepted {
    /// Where it was found.
    pub source: String,
    /// The key that signed it (fingerprint).
    pub key: String,
    /// Its predicate type.
    pub predicate_type: String,
    /// The Test Result's `result`, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// Why no attestation was accepted: the most telling reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotAccepted {
    /// There was none.
    #[error("no attestation of {0} was found ({1})")]
    Missing(String, String),
    /// None is signed by the key.
    #[error("none of the {0} attestation(s) found is signed by key {1}")]
    WrongKey(usize, String),
    /// Signed, but about another artifact.
    #[error("an attestation signed by the key names other subjects ({0}), not {1}")]
    OtherSubject(String, String),
    /// Signed, about the image, but of another predicate type.
    #[error("the attestation signed by the key is of predicate type {0:?}, not {1:?}")]
    OtherPredicate(String, String),
    /// Signed, about the image, but its result is not PASSED.
    #[error("the test result signed by the key is {0}, not PASSED")]
    NotPassed(String),
    /// Signed by the key but not an in-toto statement.
    #[error("an envelope signed by the key does not hold an in-toto statement: {0}")]
    Malformed(String),
}

impl NotAccepted {
    /// How telling a reason is: the most specific one found is reported.
    fn rank(&self) -> u8 {
        match self {
            NotAccepted::Missing(..) => 0,
            NotAccepted::WrongKey(..) => 1,
            NotAccepted::Malformed(_) => 2,
            NotAccepted::OtherSubject(..) => 3,
            NotAccepted::OtherPredicate(..) => 4,
            NotAccepted::NotPassed(_) => 5,
        }
    }
}

/// Accept the first envelope that a signature by `key` covers and that
/// says what `wanted` asks; else the most telling reason none does.
pub(crate) fn judge(
    envelopes: &[(Vec<u8>, String)],
    key: &PublicKey,
    wanted: &Wanted<'_>,
    looked: &str,
) -> Result<Accepted, NotAccepted> {
    if envelopes.is_empty() {
        return Err(NotAccepted::Missing(wanted.digest.into(), looked.into()));
    }
    let mut worst = NotAccepted::WrongKey(envelopes.len(), key.fingerprint.clone());
    for (bytes, source) in envelopes {
        let Some(payload) = signed_payload(bytes, key) else {
            continue;
        };
        match statement_says(&payload, wanted) {
            Ok((predicate_type, result)) => {
                return Ok(Accepted {
                    source: source.clone(),
                    key: key.fingerprint.clone(),
                    predicate_type,
                    result,
                });
            }
            Err(why) if why.rank() > worst.rank() => worst = why,
            Err(_) => {}
        }
    }
    Err(worst)
}

/// The payload of a DSSE envelope of an in-toto statement when one of its
/// signatures verifies with `key` over PAE(payloadType, payload).
fn signed_payload(envelope: &[u8], key: &PublicKey) -> Option<Vec<u8>> {
    let env: Value = serde_json::from_slice(envelope).ok()?;
    let payload_type = env["payloadType"].as_str()?;
    if payload_type != IN_TOTO_PAYLOAD {
        return None;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(env["payload"].as_str()?).ok()?;
    let message = crate::encoding::dsse_pae(payload_type, &payload);
    env["signatures"]
        .as_array()?
        .iter()
        .filter_map(|s| b64.decode(s["sig"].as_str()?).ok())
        .any(|sig| key.verifies(&message, &sig))
        .then_some(payload)
}

/// Whether a signed statement says what `wanted` asks: its predicate type
/// and the Test Result's result.
fn statement_says(
    payload: &[u8],
    wanted: &Wanted<'_>,
) -> Result<(String, Option<String>), NotAccepted> {
    let st: Value =
        serde_json::from_slice(payload).map_err(|e| NotAccepted::Malformed(e.to_string()))?;
    if st["_type"] != "https://in-toto.io/Statement/v1" {
        return Err(NotAccepted::Malformed(format!(
            "_type is {}, not https://in-toto.io/Statement/v1",
            crate::safeio::excerpt(&st["_type"].to_string(), 80)
        )));
    }
    let hex = wanted.digest.trim_start_matches("sha256:");
    let subjects = st["subject"].as_array().cloned().unwrap_or_default();
    if !subjects.iter().any(|s| s["digest"]["sha256"] == hex) {
        let named: Vec<String> = subjects
            .iter()
            .filter_map(|s| s["digest"]["sha256"].as_str())
            .map(|d| format!("sha256:{}", crate::safeio::excerpt(d, 64)))
            .take(4)
            .collect();
        return Err(NotAccepted::OtherSubject(
            named.join(", "),
            wanted.digest.to_string(),
        ));
    }
    let predicate_type = st["predicateType"].as_str().unwrap_or_default().to_string();
    if predicate_type != wanted.predicate_type {
        return Err(NotAccepted::OtherPredicate(
            crate::safeio::excerpt(&predicate_type, 120),
            wanted.predicate_type.to_string(),
        ));
    }
    // The signer's words, escaped before anything prints them.
    let result = (predicate_type == TEST_RESULT_PREDICATE).then(|| {
        crate::safeio::excerpt(st["predicate"]["result"].as_str().unwrap_or("absent"), 40)
    });
    if wanted.passed && result.as_deref() != Some("PASSED") {
        return Err(NotAccepted::NotPassed(crate::safeio::excerpt(
            result.as_deref().unwrap_or("not a test result"),
            40,
        )));
    }
    Ok((predicate_type, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{Read as _, Write as _};
    use std::sync::{Arc, Mutex};

    /// A registry that offers the OCI 1.1 referrers API (Debian's
    /// docker-registry, which the integration tests run, does not): blobs
    /// and manifests kept in memory; `/referrers/<digest>` lists the stored
    /// manifests whose `subject` is that digest. Tag reads can be turned
    /// off, so that only the referrers API finds an attestation.
    struct Memory {
        blobs: HashMap<String, Vec<u8>>,
        manifests: HashMap<String, Vec<u8>>,
        tags_readable: bool,
    }

    fn serve(state: Arc<Mutex<Memory>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                let state = state.clone();
                std::thread::spawn(move || answer(&mut sock, &state));
            }
        });
        host
    }

    fn answer(sock: &mut std::net::TcpStream, state: &Mutex<Memory>) {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if sock.read(&mut b).unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        sock.read_exact(&mut body).unwrap();
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap(), words.next().unwrap());
        let path = target.split('?').next().unwrap();
        let digest_of = |b: &[u8]| {
            format!(
                "sha256:{}",
                crate::encoding::hex(&<sha2::Sha256 as sha2::Digest>::digest(b))
            )
        };
        let mut st = state.lock().unwrap();
        let (status, ctype, out, location): (&str, &str, Vec<u8>, Option<String>) = match method {
            "POST" => (
                "202 Accepted",
                "text/plain",
                vec![],
                Some("/v2/upload/1".into()),
            ),
            "PUT" if path.starts_with("/v2/upload/") => {
                st.blobs.insert(digest_of(&body), body);
                ("201 Created", "text/plain", vec![], None)
            }
            "PUT" => {
                let reference = path.rsplit('/').next().unwrap().to_string();
                st.manifests.insert(digest_of(&body), body.clone());
                st.manifests.insert(reference, body);
                ("201 Created", "text/plain", vec![], None)
            }
            "GET" if path.contains("/referrers/") => {
                let d = path.rsplit('/').next().unwrap();
                let listed: Vec<Value> = st
                    .manifests
                    .iter()
                    .filter(|(k, _)| k.starts_with("sha256:"))
                    .filter_map(|(k, m)| {
                        let v: Value = serde_json::from_slice(m).ok()?;
                        (v["subject"]["digest"] == d).then(|| json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": k, "size": m.len(), "artifactType": v["artifactType"]}))
                    })
                    .collect();
                let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed});
                (
                    "200 OK",
                    "application/vnd.oci.image.index.v1+json",
                    serde_json::to_vec(&index).unwrap(),
                    None,
                )
            }
            "GET" if path.contains("/manifests/") => {
                let r = path.rsplit('/').next().unwrap();
                match st.manifests.get(r) {
                    Some(m) if r.starts_with("sha256:") || st.tags_readable => (
                        "200 OK",
                        "application/vnd.oci.image.manifest.v1+json",
                        m.clone(),
                        None,
                    ),
                    _ => (
                        "404 Not Found",
                        "application/json",
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
                        None,
                    ),
                }
            }
            "GET" if path.contains("/blobs/") => {
                match st.blobs.get(path.rsplit('/').next().unwrap()) {
                    Some(b) => ("200 OK", "application/octet-stream", b.clone(), None),
                    None => (
                        "404 Not Found",
                        "application/json",
                        br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#.to_vec(),
                        None,
                    ),
                }
            }
            _ => ("404 Not Found", "text/plain", vec![], None),
        };
        let mut resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
            out.len()
        );
        if let Some(l) = location {
            resp.push_str(&format!("Location: {l}\r\n"));
        }
        resp.push_str("\r\n");
        let _ = sock.write_all(resp.as_bytes());
        let _ = sock.write_all(&out);
    }

    /// Where the registry offers the referrers API, an attestation is also
    /// stored as an OCI 1.1 artifact whose subject is the image, and read
    /// back through the API alone when the `.att` tag cannot be read.
    #[test]
    fn referrers_carry_the_attestation_where_offered() {
        let image_manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#.to_vec();
        let digest = format!(
            "sha256:{}",
            crate::encoding::hex(&<sha2::Sha256 as sha2::Digest>::digest(&image_manifest))
        );
        let state = Arc::new(Mutex::new(Memory {
            blobs: HashMap::new(),
            manifests: HashMap::from([(digest.clone(), image_manifest)]),
            tags_readable: true,
        }));
        let host = serve(state.clone());
        let image = Reference::parse(&format!("{host}/team/app@{digest}")).unwrap();
        let client = Client::new(std::slice::from_ref(&host), Default::default()).unwrap();
        let signer = crate::seal::keys::Signer::generate();
        let statement = json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x", "digest": {"sha256": &digest[7..]}}], "predicateType": TEST_RESULT_PREDICATE, "predicate": {"result": "PASSED", "configuration": []}});
        let envelope = crate::seal::dsse::sign(
            IN_TOTO_PAYLOAD,
            &serde_json::to_vec(&statement).unwrap(),
            &signer,
        );
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stored = rt
            .block_on(store(&client, &image, &bytes, TEST_RESULT_PREDICATE))
            .unwrap();
        let referrer = stored
            .referrer
            .clone()
            .expect("a referrer where the API is offered");
        let artifact: Value =
            serde_json::from_slice(&state.lock().unwrap().manifests[&referrer]).unwrap();
        assert_eq!(artifact["subject"]["digest"], digest.as_str());
        assert_eq!(artifact["artifactType"], DSSE_MEDIA_TYPE);
        assert_eq!(artifact["layers"][0]["digest"], stored.layer.as_str());
        // Only the referrers API can find it now.
        state.lock().unwrap().tags_readable = false;
        let found = rt.block_on(fetch(&client, &image)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].1.starts_with(&format!("referrer {referrer}")),
            "{}",
            found[0].1
        );
        let key =
            PublicKey::from_pem(&crate::seal::keys::spki_pem(&signer.verifying_key())).unwrap();
        let wanted = Wanted {
            digest: &digest,
            predicate_type: TEST_RESULT_PREDICATE,
            passed: true,
        };
        let accepted = judge(&found, &key, &wanted, "referrers").unwrap();
        assert_eq!(accepted.result.as_deref(), Some("PASSED"));
    }
}
