//! Why a TLS connection to the API server was refused, in words that name
//! the fix.
//!
//! vigil speaks TLS through rustls, which is stricter than the Go TLS stack
//! `kubectl` uses: a kubeconfig that works with `kubectl` can fail with
//! vigil. The three known shapes (kube-rs#1562, kube-rs#1767,
//! rustls/rustls#2364):
//!
//! - an **X.509 v1** certificate (the server's, or microk8s's client
//!   certificate): webpki accepts v3 only;
//! - `certificate-authority-data` holding the **server's own leaf** instead
//!   of the CA that issued it: Go accepts any certificate there, rustls
//!   needs the issuer (`UnknownIssuer`);
//! - a self-signed **CA certificate served as the server's own**
//!   (`CaUsedAsEndEntity`).
//!
//! rustls reports each as a bare enum name deep in an error chain
//! (`client error (Connect)` at the top). [`explain`] reads the chain and
//! the kubeconfig's certificates and says which certificate is at fault.

use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged, asn1::AnyRef};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The messages of an error and of its sources, joined by ": ", each said
/// once (wrappers often repeat their source's text).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// What rustls refused, as far as vigil can tell from its error text
/// (rustls's `CertificateError` variant names and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    UnsupportedVersion,
    UnknownIssuer,
    CaAsLeaf,
    WrongName,
    Expired,
    NotYetValid,
}

fn refusal(text: &str) -> Option<Refusal> {
    [
        ("UnsupportedCertVersion", Refusal::UnsupportedVersion),
        ("UnknownIssuer", Refusal::UnknownIssuer),
        ("CaUsedAsEndEntity", Refusal::CaAsLeaf),
        ("NotValidForName", Refusal::WrongName),
        ("certificate not valid for name", Refusal::WrongName),
        ("certificate expired", Refusal::Expired),
        ("Expired", Refusal::Expired),
        ("certificate not valid yet", Refusal::NotYetValid),
        ("NotValidYet", Refusal::NotYetValid),
    ]
    .into_iter()
    .find(|(needle, _)| text.contains(needle))
    .map(|(_, r)| r)
}

/// Whether an error's text is rustls refusing a certificate.
pub(crate) fn refused_certificate(text: &str) -> bool {
    refusal(text).is_some()
}

/// The facts vigil can read from a certificate without trusting it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CertShape {
    /// X.509 version (1 or 3; 2 is never seen in practice).
    pub version: u8,
    /// `basicConstraints` with `cA` TRUE.
    pub is_ca: bool,
}

/// basicConstraints, 2.5.29.19, as its DER content octets.
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// Read the version and the CA flag of a DER certificate; `None` when it is
/// not a certificate.
pub(crate) fn shape(der: &[u8]) -> Option<CertShape> {
    let cert = AnyRef::from_der(der).ok()?;
    if cert.tag() != Tag::Sequence {
        return None;
    }
    let mut outer = SliceReader::new(cert.value()).ok()?;
    let tbs = AnyRef::decode(&mut outer).ok()?;
    if tbs.tag() != Tag::Sequence {
        return None;
    }
    let mut fields = SliceReader::new(tbs.value()).ok()?;
    let mut shape = CertShape {
        version: 1,
        is_ca: false,
    };
    while !fields.is_finished() {
        let field = AnyRef::decode(&mut fields).ok()?;
        match context_number(field.tag()) {
            // version [0] EXPLICIT INTEGER (v1 = 0, v3 = 2); absent for v1.
            Some(0) => {
                let v = AnyRef::from_der(field.value()).ok()?;
                shape.version = v.value().last().copied().unwrap_or(0).saturating_add(1);
            }
            // extensions [3] EXPLICIT SEQUENCE OF Extension.
            Some(3) => shape.is_ca = has_ca_flag(field.value()).unwrap_or(false),
            _ => {}
        }
    }
    Some(shape)
}

fn context_number(tag: Tag) -> Option<u8> {
    match tag {
        Tag::ContextSpecific { number, .. } => Some(TagNumber::value(number)),
        _ => None,
    }
}

/// Whether the extensions carry basicConstraints { cA TRUE }.
fn has_ca_flag(explicit: &[u8]) -> Option<bool> {
    let list = AnyRef::from_der(explicit).ok()?;
    let mut exts = SliceReader::new(list.value()).ok()?;
    while !exts.is_finished() {
        let ext = AnyRef::decode(&mut exts).ok()?;
        let mut parts = SliceReader::new(ext.value()).ok()?;
        let oid = AnyRef::decode(&mut parts).ok()?;
        if oid.tag() != Tag::ObjectIdentifier || oid.value() != BASIC_CONSTRAINTS {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE, then the OCTET STRING.
        let mut value = AnyRef::decode(&mut parts).ok()?;
        if value.tag() == Tag::Boolean {
            value = AnyRef::decode(&mut parts).ok()?;
        }
        let constraints = AnyRef::from_der(value.value()).ok()?;
        let mut inner = SliceReader::new(constraints.value()).ok()?;
        if inner.is_finished() {
            return Some(false);
        }
        let ca = AnyRef::decode(&mut inner).ok()?;
        return Some(ca.tag() == Tag::Boolean && ca.value() == [0xff]);
    }
    Some(false)
}

/// The client certificates a kubeconfig names (inline data or a file), DER.
fn client_certs(config: &kube::Config) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let auth = &config.auth_info;
    let pem = if let Some(data) = &auth.client_certificate_data {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .unwrap_or_default()
    } else if let Some(path) = &auth.client_certificate {
        crate::safeio::read(std::path::Path::new(path), 1 << 20, "client certificate")
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// If `error_text` is a certificate refusal, a sentence that says which
/// certificate is at fault and what to change; `None` for other errors.
pub(crate) fn explain(error_text: &str, config: &kube::Config) -> Option<String> {
    let refusal = refusal(error_text)?;
    let server = config.cluster_url.to_string();
    let roots: Vec<CertShape> = config
        .root_cert
        .iter()
        .flatten()
        .filter_map(|d| shape(d))
        .collect();
    let text = match refusal {
        Refusal::UnsupportedVersion => {
            if client_certs(config)
                .iter()
                .filter_map(|d| shape(d))
                .any(|s| s.version < 3)
            {
                "the kubeconfig's client certificate (client-certificate-data) is X.509 v1, which rustls refuses (it accepts v3 only; kubectl's Go TLS accepts v1, rustls/rustls#2364). Reissue the client certificate as v3 (microk8s writes v1 ones), or give vigil a token user instead".to_string()
            } else if roots.iter().any(|s| s.version < 3) {
                "the kubeconfig's certificate-authority-data holds an X.509 v1 certificate, which rustls refuses (v3 only; kubectl's Go TLS accepts v1). Reissue the cluster CA as v3".to_string()
            } else {
                format!(
                    "the API server at {server} presents an X.509 v1 certificate, which rustls refuses (v3 only; kubectl's Go TLS accepts v1). Reissue the API server's serving certificate as v3 with a subjectAltName (kubeadm and kind issue v3)"
                )
            }
        }
        Refusal::UnknownIssuer => {
            if roots.is_empty() {
                format!(
                    "the API server's certificate at {server} was not issued by a CA vigil trusts: the kubeconfig has no certificate-authority(-data) for this cluster. Add the cluster's CA certificate"
                )
            } else if roots.iter().any(|s| !s.is_ca) {
                format!(
                    "the kubeconfig's certificate-authority-data holds a certificate that is not a CA (no basicConstraints CA:TRUE), most likely the API server's own certificate. kubectl accepts that, rustls needs the CA that issued the server's certificate (kube-rs#1767). Put that CA there, for example the last certificate `openssl s_client -showcerts -connect {}` prints",
                    config
                        .cluster_url
                        .authority()
                        .map(|a| a.as_str())
                        .unwrap_or("HOST:PORT")
                )
            } else {
                format!(
                    "the API server's certificate at {server} was not issued by the kubeconfig's certificate-authority-data: another cluster's CA, or a rotated one. Fetch a fresh kubeconfig for this cluster"
                )
            }
        }
        Refusal::CaAsLeaf => format!(
            "the API server at {server} presents a CA certificate (basicConstraints CA:TRUE) as its own serving certificate; rustls refuses that (webpki CaUsedAsEndEntity). Serve a leaf certificate issued by that CA, with a subjectAltName for the address in the kubeconfig"
        ),
        Refusal::WrongName => format!(
            "the API server's certificate is not valid for the address in the kubeconfig ({server}): use a server address its subjectAltNames list, or set tls-server-name in the kubeconfig's cluster"
        ),
        Refusal::Expired => format!(
            "the API server's certificate at {server} (or one of its issuers) has expired: renew it (kubeadm certs renew) or check this machine's clock"
        ),
        Refusal::NotYetValid => format!(
            "the API server's certificate at {server} is not valid yet: check this machine's clock"
        ),
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_rustls_messages() {
        let cases = [
            (
                "client error (Connect): invalid peer certificate: UnknownIssuer",
                Some(Refusal::UnknownIssuer),
            ),
            (
                "invalid private key: invalid peer certificate: Other(OtherError(UnsupportedCertVersion))",
                Some(Refusal::UnsupportedVersion),
            ),
            (
                "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
                Some(Refusal::CaAsLeaf),
            ),
            (
                "invalid peer certificate: certificate not valid for name \"x\"",
                Some(Refusal::WrongName),
            ),
            ("connection refused", None),
        ];
        for (text, want) in cases {
            assert_eq!(refusal(text), want, "{text}");
        }
    }

    #[test]
    fn shapes_of_non_certificates_are_none() {
        assert_eq!(shape(b""), None);
        assert_eq!(shape(b"not der at all"), None);
        // A DER SEQUENCE that holds an INTEGER, not a TBSCertificate.
        assert_eq!(shape(&[0x30, 0x03, 0x02, 0x01, 0x05]), None);
    }
}
