//! DSSE envelopes (Dead Simple Signing Envelope, as used by in-toto and
//! Sigstore): the signature covers the PAE encoding of the payload type and
//! the payload bytes, so neither can be swapped without breaking it.

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::{Signer, keyid};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload.
    pub payload_type: String,
    /// Base64 (standard, padded) of the payload bytes.
    pub payload: String,
    /// Signatures over `PAE(payloadType, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Informational key id; never used to pick a key.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the 64-byte ed25519 signature.
    pub sig: String,
}

pub use crate::encoding::dsse_pae as pae;

/// Sign `payload` into an envelope.
pub fn sign(payload_type: &str, payload: &[u8], signer: &Signer) -> Envelope {
    let sig = signer.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: base64::engine::general_purpose::STANDARD.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: keyid(&signer.verifying_key()),
            sig: base64::engine::general_purpose::STANDARD.encode(sig),
        }],
    }
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload type is not the expected one.
    #[error("payloadType is {0:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    /// The payload is not base64.
    #[error("payload is not valid base64")]
    PayloadEncoding,
    /// No signature from any trusted key.
    #[error("no signature by a trusted key ({0} signature(s) checked against {1} trusted key(s))")]
    Untrusted(usize, usize),
}

/// Check the payload type and that some signature verifies under some
/// trusted key (`keyid` is ignored). Returns the payload bytes and the key.
pub fn verify<'k>(
    env: &Envelope,
    trusted: &'k [VerifyingKey],
) -> Result<(Vec<u8>, &'k VerifyingKey), EnvelopeError> {
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(env.payload_type.clone()));
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .map_err(|_| EnvelopeError::PayloadEncoding)?;
    let message = pae(&env.payload_type, &payload);
    for s in &env.signatures {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&s.sig) else {
            continue;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            continue;
        };
        if let Some(k) = trusted
            .iter()
            .find(|k| k.verify_strict(&message, &sig).is_ok())
        {
            return Ok((payload, k));
        }
    }
    Err(EnvelopeError::Untrusted(
        env.signatures.len(),
        trusted.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_verify_and_refusals() {
        let good = Signer::generate();
        let other = Signer::generate();
        let env = sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &good);
        assert!(
            verify(&env, &[other.verifying_key(), good.verifying_key()]).is_ok(),
            "rotation: any trusted key"
        );
        assert_eq!(
            verify(&env, &[other.verifying_key()]).unwrap_err(),
            EnvelopeError::Untrusted(1, 1)
        );
        let mut typed = env.clone();
        typed.payload_type = "application/json".into();
        assert!(matches!(
            verify(&typed, &[good.verifying_key()]),
            Err(EnvelopeError::PayloadType(_))
        ));
        let mut forged = env.clone();
        forged.signatures[0].keyid = keyid(&other.verifying_key());
        assert!(
            verify(&forged, &[good.verifying_key()]).is_ok(),
            "keyid is informational only"
        );
        let mut tampered = env;
        tampered.payload = base64::engine::general_purpose::STANDARD.encode(b"{ }");
        assert!(verify(&tampered, &[good.verifying_key()]).is_err());
    }
}
