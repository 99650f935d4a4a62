//! Framing facts on a byte stream (the probe's stdout, an exec stream, a
//! pod log).
//!
//! Output from a container is hostile input: it may contain anything,
//! including text that looks like vigil's own output. A frame is therefore
//! bound to a per-run nonce and to the exact length and digest of its body:
//!
//! ```text
//! VIGIL-FACTS v1 <nonce> <length>\n
//! <length bytes of JSON>\n
//! VIGIL-END <nonce> <sha256 of the JSON, hex>\n
//! ```
//!
//! The parser accepts exactly one frame with the expected nonce, refuses
//! bodies over a size cap, and parses the body strictly (unknown fields are
//! errors). Bytes before the header (a shell's banner) are ignored; anything
//! else is an error.

use sha2::{Digest, Sha256};

use super::Facts;

/// Largest body accepted (facts of a big image stay far below this).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No header with the expected nonce.
    #[error("no facts frame with the expected nonce in the output")]
    NoFrame,
    /// The header is malformed or the length is not a number.
    #[error("malformed frame header")]
    BadHeader,
    /// The body is larger than [`MAX_FRAME_BYTES`].
    #[error("frame body of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// The stream ended before the body or trailer.
    #[error("output ended inside the frame (truncated)")]
    Truncated,
    /// The trailer does not match the nonce or the digest.
    #[error("frame trailer does not match (corrupted or forged output)")]
    BadTrailer,
    /// The body is not valid facts JSON.
    #[error("frame body is not valid facts: {0}")]
    BadBody(String),
    /// Something other than the frame followed it.
    #[error("unexpected output after the frame")]
    TrailingData,
    /// The output should have been encrypted to this scan's key and was
    /// not, or does not decrypt.
    #[error("output is not encrypted to this scan's key")]
    NotDecryptable,
}

/// The armor lines of an age file (`age -a`).
const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &[u8] = b"-----END AGE ENCRYPTED FILE-----";

/// Encrypt an encoded frame to a scan's one-time X25519 recipient, ASCII
/// armored (a container log is text). The probe writes this instead of the
/// frame when the runner gives it a recipient: facts, file contents
/// included, then never sit in plaintext in a pod's log, where anyone with
/// `get pods/log` and every node log shipper could read them.
pub fn encrypt(frame: &[u8], recipient: &age::x25519::Recipient) -> Vec<u8> {
    use std::io::Write as _;
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .expect("one recipient");
    let mut out = Vec::with_capacity(frame.len() * 4 / 3 + 512);
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .expect("writing to memory");
    let mut w = encryptor.wrap_output(armored).expect("writing to memory");
    w.write_all(frame).expect("writing to memory");
    w.finish()
        .and_then(|a| a.finish())
        .expect("writing to memory");
    out
}

/// Find the one armored age block in `output` (a log may hold other lines)
/// and decrypt it with the scan's identity.
pub fn decrypt(output: &[u8], identity: &age::x25519::Identity) -> Result<Vec<u8>, FrameError> {
    let start = find(output, ARMOR_BEGIN).ok_or(FrameError::NotDecryptable)?;
    let end = find(&output[start..], ARMOR_END).ok_or(FrameError::Truncated)? + start;
    let block = &output[start..end + ARMOR_END.len()];
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(block))
        .map_err(|_| FrameError::NotDecryptable)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|_| FrameError::NotDecryptable)?;
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut reader, MAX_FRAME_BYTES as u64 + 4096),
        &mut plain,
    )
    .map_err(|_| FrameError::NotDecryptable)?;
    Ok(plain)
}

/// Encode facts as one frame.
pub fn encode(nonce: &str, facts: &Facts) -> Vec<u8> {
    let body = serde_json::to_vec(facts).expect("facts always serialize");
    let digest = hex(&Sha256::digest(&body));
    let mut out = format!("VIGIL-FACTS v1 {nonce} {}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(format!("\nVIGIL-END {nonce} {digest}\n").as_bytes());
    out
}

/// Find and check the frame for `nonce` in `output`, and parse its body.
pub fn decode(nonce: &str, output: &[u8]) -> Result<Facts, FrameError> {
    let header = format!("VIGIL-FACTS v1 {nonce} ");
    let start = find(output, header.as_bytes()).ok_or(FrameError::NoFrame)?;
    if start != 0 && output[start - 1] != b'\n' {
        return Err(FrameError::BadHeader);
    }
    let rest = &output[start + header.len()..];
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FrameError::Truncated)?;
    let len_text = std::str::from_utf8(&rest[..nl]).map_err(|_| FrameError::BadHeader)?;
    if len_text.is_empty() || len_text.len() > 12 || !len_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::BadHeader);
    }
    let len: usize = len_text.parse().map_err(|_| FrameError::BadHeader)?;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let body_start = nl + 1;
    let body = rest
        .get(body_start..body_start + len)
        .ok_or(FrameError::Truncated)?;
    let after = &rest[body_start + len..];
    let trailer = format!("\nVIGIL-END {nonce} {}\n", hex(&Sha256::digest(body)));
    if after.len() < trailer.len() {
        return Err(FrameError::Truncated);
    }
    if &after[..trailer.len()] != trailer.as_bytes() {
        return Err(FrameError::BadTrailer);
    }
    if after[trailer.len()..]
        .iter()
        .any(|b| !b.is_ascii_whitespace())
    {
        return Err(FrameError::TrailingData);
    }
    parse_body(body)
}

fn parse_body(body: &[u8]) -> Result<Facts, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::BadBody(e.to_string()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub use crate::encoding::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_frames_round_trip_only_with_the_scans_key() {
        let facts = Facts::default();
        let frame = encode("n0", &facts);
        let id = age::x25519::Identity::generate();
        let sealed = encrypt(&frame, &id.to_public());
        let text = String::from_utf8(sealed.clone()).unwrap();
        assert!(
            text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") && !text.contains("VIGIL-FACTS")
        );
        // Around it, a log may carry other lines.
        let log = [b"probe starting\n".as_slice(), &sealed, b"\n"].concat();
        assert_eq!(decrypt(&log, &id).unwrap(), frame);
        assert_eq!(decode("n0", &decrypt(&log, &id).unwrap()).unwrap(), facts);
        let other = age::x25519::Identity::generate();
        assert_eq!(decrypt(&log, &other), Err(FrameError::NotDecryptable));
        // A plaintext frame where ciphertext was expected is refused.
        assert_eq!(decrypt(&frame, &id), Err(FrameError::NotDecryptable));
        assert_eq!(
            decrypt(&sealed[..sealed.len() - 40], &id),
            Err(FrameError::Truncated)
        );
    }
    use crate::facts::FileFact;

    fn sample() -> Facts {
        let mut f = Facts::default();
        f.files.insert(
            "/etc/passwd".into(),
            FileFact {
                content: Some(crate::facts::Content::Text("VIGIL-END x\n".into())),
                ..FileFact::default()
            },
        );
        f
    }

    #[test]
    fn round_trip_with_banner() {
        let mut out = b"welcome to the container\n".to_vec();
        out.extend(encode("n0nce", &sample()));
        assert_eq!(decode("n0nce", &out).unwrap(), sample());
    }

    #[test]
    fn hostile_variants_are_refused() {
        let good = encode("n0nce", &sample());
        assert_eq!(decode("other", &good), Err(FrameError::NoFrame));
        assert_eq!(
            decode("n0nce", &good[..good.len() - 10]),
            Err(FrameError::Truncated)
        );
        let mut flipped = good.clone();
        let i = good.iter().position(|&b| b == b'{').unwrap() + 3;
        flipped[i] ^= 0x01;
        assert_eq!(decode("n0nce", &flipped), Err(FrameError::BadTrailer));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"rm -rf /\n");
        assert_eq!(decode("n0nce", &trailing), Err(FrameError::TrailingData));
        let huge = format!("VIGIL-FACTS v1 n0nce {}\n", MAX_FRAME_BYTES + 1);
        assert_eq!(
            decode("n0nce", huge.as_bytes()),
            Err(FrameError::TooLarge(MAX_FRAME_BYTES + 1))
        );
        assert_eq!(
            decode("n0nce", b"VIGIL-FACTS v1 n0nce -5\n"),
            Err(FrameError::BadHeader)
        );
        // A well-formed frame whose body has an unknown field.
        let body = br#"{"files":{},"dirs":{},"walks":{},"evil":1}"#;
        let forged = [
            format!("VIGIL-FACTS v1 n0nce {}\n", body.len()).into_bytes(),
            body.to_vec(),
            format!("\nVIGIL-END n0nce {}\n", hex(&Sha256::digest(body))).into_bytes(),
        ]
        .concat();
        assert!(matches!(
            decode("n0nce", &forged),
            Err(FrameError::BadBody(_))
        ));
    }
}
