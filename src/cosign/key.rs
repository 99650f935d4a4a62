//! Public keys for cosign signatures: PEM `PUBLIC KEY` (SubjectPublicKeyInfo),
//! ECDSA P-256 (cosign's default, and what `openssl ecparam -name
//! prime256v1` makes) or Ed25519.

use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};

/// Keys are a few hundred bytes of PEM.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A verification key and its fingerprint.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kind: Kind,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: the key's fingerprint
    /// in the signed statement.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
enum Kind {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unreadable file.
    #[error(transparent)]
    Read(#[from] crate::safeio::InputError),
    /// Not a P-256 or Ed25519 public key in PEM.
    #[error(
        "{0}: not an ECDSA P-256 or Ed25519 public key in PEM (\"-----BEGIN PUBLIC KEY-----\", as `cosign generate-key-pair` or `openssl pkey -pubout` write it)"
    )]
    Format(String),
}

impl PublicKey {
    /// Read a PEM key file.
    pub fn from_file(path: &std::path::Path) -> Result<PublicKey, KeyError> {
        let text = crate::safeio::read_to_string(path, MAX_KEY_FILE, "public key")?;
        PublicKey::from_pem(&text).ok_or_else(|| {
            KeyError::Format(crate::safeio::printable(&path.display().to_string()).into_owned())
        })
    }

    /// A policy's `verify.key`: the PEM itself, or a file relative to `base`.
    pub fn resolve(key: &str, base: &std::path::Path) -> Result<PublicKey, KeyError> {
        if key.trim_start().starts_with("-----BEGIN") {
            return PublicKey::from_pem(key)
                .ok_or_else(|| KeyError::Format("the key in the policy".into()));
        }
        PublicKey::from_file(&base.join(key))
    }

    /// Parse PEM text; `None` when it is not a supported public key.
    pub fn from_pem(text: &str) -> Option<PublicKey> {
        let text = text.trim();
        let (kind, der) = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(text) {
            let der = k.to_public_key_der().ok()?;
            (Kind::P256(k), der)
        } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(text) {
            let der = k.to_public_key_der().ok()?;
            (Kind::Ed25519(k), der)
        } else {
            return None;
        };
        Some(PublicKey {
            kind,
            fingerprint: crate::encoding::key_id(der.as_bytes()),
        })
    }

    /// `ecdsa-p256-sha256` or `ed25519`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            Kind::P256(_) => "ecdsa-p256-sha256",
            Kind::Ed25519(_) => "ed25519",
        }
    }

    /// Whether `signature` is this key's signature over `payload`: for
    /// P-256 an ASN.1 DER ECDSA signature over its SHA-256 (cosign's and
    /// `openssl dgst -sha256 -sign`'s form), for Ed25519 a 64-byte
    /// signature of the payload itself, checked strictly.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            Kind::P256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| k.verify(payload, &s).is_ok())
            }
            Kind::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(payload, &s).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kinds_and_refuses_others() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = ed
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let k = PublicKey::from_pem(&pem).unwrap();
        assert_eq!(k.algorithm(), "ed25519");
        use ed25519_dalek::Signer as _;
        let sig = ed.sign(b"payload").to_bytes();
        assert!(k.verifies(b"payload", &sig));
        assert!(!k.verifies(b"payloaD", &sig));
        assert!(!k.verifies(b"payload", &sig[..63]));

        let ec = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let pem = ec
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let k = PublicKey::from_pem(&pem).unwrap();
        assert_eq!(k.algorithm(), "ecdsa-p256-sha256");
        let sig: p256::ecdsa::Signature = ec.sign(b"payload");
        assert!(k.verifies(b"payload", sig.to_der().as_bytes()));
        assert!(
            !k.verifies(b"payload", &sig.to_bytes()),
            "raw r||s is not cosign's form"
        );
        assert!(k.fingerprint.starts_with("SHA256:") && k.fingerprint.len() == 71);

        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_none()
        );
        assert!(PublicKey::from_pem("").is_none());
    }
}
