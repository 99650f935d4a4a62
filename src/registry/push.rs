//! Writing to a registry, for what `vigil attest --push` stores next to an
//! image: blobs (a monolithic upload) and manifests. Nothing else writes.

use hyper::Method;
use hyper::body::Bytes;

use super::{Call, Client, MAX_MANIFEST, Reference, RegistryError, protocol};

/// Registry answers to a write are short; their bodies are read and dropped.
const MAX_ANSWER: u64 = 64 * 1024;

impl Client {
    /// Upload `bytes` as a blob of `image`'s repository (POST, then PUT
    /// with the digest: the distribution spec's monolithic upload) and
    /// return its digest.
    pub(crate) async fn put_blob(
        &self,
        image: &Reference,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        use sha2::Digest as _;
        let digest = format!(
            "sha256:{}",
            crate::encoding::hex(&sha2::Sha256::digest(bytes))
        );
        let what = format!("an upload to {}", image.repository);
        let start = format!("/v2/{}/blobs/uploads/", image.repository);
        let answer = self
            .exchange(
                image,
                &Call {
                    method: Method::POST,
                    path: &start,
                    accept: None,
                    body: Bytes::new(),
                    content_type: None,
                },
                MAX_ANSWER,
                &what,
                &mut std::io::sink(),
            )
            .await?;
        let location = answer
            .location
            .ok_or_else(|| protocol(image, format!("{what}: no Location to upload to")))?;
        let path = same_host_path(image, &location).ok_or_else(|| {
            protocol(
                image,
                format!(
                    "{what}: the upload location {:?} is on another host",
                    crate::safeio::excerpt(&location, 120)
                ),
            )
        })?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = format!("{path}{sep}digest={digest}");
        self.exchange(
            image,
            &Call {
                method: Method::PUT,
                path: &put,
                accept: None,
                body: Bytes::copy_from_slice(bytes),
                content_type: Some("application/octet-stream"),
            },
            MAX_ANSWER,
            &format!("blob {digest}"),
            &mut std::io::sink(),
        )
        .await?;
        Ok(digest)
    }

    /// Store `bytes` (of `media_type`) as the manifest `reference` (a tag,
    /// or its digest) of `image`'s repository; returns its digest.
    pub(crate) async fn put_manifest(
        &self,
        image: &Reference,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        use sha2::Digest as _;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(protocol(
                image,
                format!(
                    "a manifest of {} bytes is over the registry's limit",
                    bytes.len()
                ),
            ));
        }
        let path = format!("/v2/{}/manifests/{reference}", image.repository);
        self.exchange(
            image,
            &Call {
                method: Method::PUT,
                path: &path,
                accept: None,
                body: Bytes::copy_from_slice(bytes),
                content_type: Some(media_type),
            },
            MAX_ANSWER,
            &format!("manifest {}:{reference}", image.repository),
            &mut std::io::sink(),
        )
        .await?;
        Ok(format!(
            "sha256:{}",
            crate::encoding::hex(&sha2::Sha256::digest(bytes))
        ))
    }
}

/// The path (and query) of `location` when it is on `image`'s registry:
/// a relative location, or an absolute one naming the same host.
fn same_host_path(image: &Reference, location: &str) -> Option<String> {
    if location.starts_with('/') {
        return Some(location.to_string());
    }
    let uri: hyper::Uri = location.parse().ok()?;
    (uri.authority().map(|a| a.as_str()) == Some(image.api_host()))
        .then(|| uri.path_and_query().map_or("/".into(), |p| p.to_string()))
}
