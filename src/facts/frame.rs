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

/// Bytes a stream may carry before the armor or the frame header (a
/// shell's banner, the probe's own log lines in a container log). More is
/// refused at once rather than read to the output cap.
pub const MAX_PREAMBLE_BYTES: usize = 1024 * 1024;

/// Decrypt the one armored age block in `input` (a log may hold other lines
/// around it) with the scan's identity and decode its frame, as the input
/// is read: what is held is the frame's body, never the whole output or the
/// whole plaintext. Reading stops after the armor's last line; the caller
/// may read the rest of `input` (to let a command finish).
pub fn decrypt_and_decode<R: std::io::BufRead>(
    nonce: &str,
    input: &mut R,
    identity: &age::x25519::Identity,
) -> Result<Facts, FrameError> {
    let mut armor = ArmorBlock::new(input);
    armor.seek_begin()?;
    let decoded = (|| {
        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&mut armor))
            .map_err(|_| FrameError::NotDecryptable)?;
        let reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|_| FrameError::NotDecryptable)?;
        read_frame(nonce, &mut std::io::BufReader::new(reader), |_| {
            FrameError::NotDecryptable
        })
    })();
    // A stream that ended inside the armor was cut: whatever the decryptor
    // made of it, that is the error worth retrying.
    if armor.cut {
        return Err(FrameError::Truncated);
    }
    decoded
}

/// The armored block of a stream: [`ArmorBlock::seek_begin`] skips what
/// precedes its first line; reads then end after its last line.
struct ArmorBlock<'a, R> {
    inner: &'a mut R,
    /// Where the block's first line starts in `inner`'s buffer, until read.
    pending: Vec<u8>,
    /// The last line has been passed on.
    done: bool,
    /// The stream ended before the last line.
    cut: bool,
    line: Vec<u8>,
}

impl<'a, R: std::io::BufRead> ArmorBlock<'a, R> {
    fn new(inner: &'a mut R) -> Self {
        ArmorBlock {
            inner,
            pending: Vec::new(),
            done: false,
            cut: false,
            line: Vec::new(),
        }
    }

    /// Skip to the line holding the armor's first marker (at most
    /// [`MAX_PREAMBLE_BYTES`] before it).
    fn seek_begin(&mut self) -> Result<(), FrameError> {
        let mut seen = 0usize;
        loop {
            let mut line = Vec::new();
            let n = read_line_capped(self.inner, &mut line, MAX_PREAMBLE_BYTES + 1 - seen)
                .map_err(|_| FrameError::Truncated)?;
            if n == 0 {
                return Err(FrameError::NotDecryptable);
            }
            if let Some(at) = find(&line, ARMOR_BEGIN) {
                self.pending = line.split_off(at);
                return Ok(());
            }
            seen += n;
            if seen > MAX_PREAMBLE_BYTES {
                return Err(FrameError::NotDecryptable);
            }
        }
    }
}

impl<R: std::io::BufRead> std::io::Read for ArmorBlock<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let available = std::io::BufRead::fill_buf(self)?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for ArmorBlock<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pending.is_empty() && !self.done {
            // One line at a time (armor lines are 64 columns), so nothing
            // after the last line is taken from `inner`.
            self.line.clear();
            let n = read_line_capped(self.inner, &mut self.line, 4096)?;
            if n == 0 {
                self.cut = true;
                self.done = true;
            } else {
                if self.line.trim_ascii_end() == ARMOR_END {
                    self.done = true;
                }
                std::mem::swap(&mut self.pending, &mut self.line);
            }
        }
        Ok(&self.pending)
    }

    fn consume(&mut self, amt: usize) {
        self.pending.drain(..amt.min(self.pending.len()));
    }
}

/// `read_until(b'\n')`, reading at most `cap` bytes.
fn read_line_capped<R: std::io::BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<usize> {
    std::io::BufRead::read_until(&mut std::io::Read::take(r, cap as u64), b'\n', line)
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
    read_frame(nonce, &mut &output[..], |_| FrameError::Truncated)
}

/// Find the frame for `nonce` in a stream (after at most
/// [`MAX_PREAMBLE_BYTES`] of other output), check it and parse its body.
/// Only the body is held. `io_error` says what a failed read means.
fn read_frame<R: std::io::BufRead>(
    nonce: &str,
    r: &mut R,
    io_error: impl Fn(std::io::Error) -> FrameError,
) -> Result<Facts, FrameError> {
    use std::io::Read as _;
    let header = format!("VIGIL-FACTS v1 {nonce} ");
    let mut seen = 0usize;
    let mut line = Vec::new();
    let len_text = loop {
        line.clear();
        // The header line itself is short; a longer one is not a header.
        let n = read_line_capped(r, &mut line, MAX_PREAMBLE_BYTES + 1 - seen).map_err(&io_error)?;
        if n == 0 {
            return Err(FrameError::NoFrame);
        }
        if let Some(at) = find(&line, header.as_bytes()) {
            if at != 0 {
                return Err(FrameError::BadHeader);
            }
            let rest = &line[header.len()..];
            let Some(text) = rest.strip_suffix(b"\n") else {
                return Err(FrameError::Truncated);
            };
            break text.to_vec();
        }
        seen += n;
        if seen > MAX_PREAMBLE_BYTES {
            return Err(FrameError::NoFrame);
        }
    };
    let len_text = std::str::from_utf8(&len_text).map_err(|_| FrameError::BadHeader)?;
    if len_text.is_empty() || len_text.len() > 12 || !len_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::BadHeader);
    }
    let len: usize = len_text.parse().map_err(|_| FrameError::BadHeader)?;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    // The body is parsed as it is read (only the facts are held), through
    // a hasher; the trailer is checked before the facts are given out, and
    // a body that does not match it is reported as such whether or not it
    // parsed.
    let mut body = BodyReader {
        inner: r.by_ref().take(len as u64),
        digest: Sha256::new(),
        read: 0,
        failed: None,
    };
    let parsed = parse_body(&mut body);
    // Whatever the parser left unread still counts towards the digest.
    std::io::copy(&mut body, &mut std::io::sink()).map_err(&io_error)?;
    if let Some(e) = body.failed.take() {
        return Err(io_error(e));
    }
    if body.read < len as u64 {
        return Err(FrameError::Truncated);
    }
    let trailer = format!("\nVIGIL-END {nonce} {}\n", hex(&body.digest.finalize()));
    let mut got = Vec::with_capacity(trailer.len());
    r.by_ref()
        .take(trailer.len() as u64)
        .read_to_end(&mut got)
        .map_err(&io_error)?;
    if got.len() < trailer.len() {
        return Err(FrameError::Truncated);
    }
    if got != trailer.as_bytes() {
        return Err(FrameError::BadTrailer);
    }
    // Whitespace may follow, nothing else (read in bounded steps).
    let mut after = [0u8; 4096];
    loop {
        let n = r.read(&mut after).map_err(&io_error)?;
        if n == 0 {
            break;
        }
        if after[..n].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(FrameError::TrailingData);
        }
    }
    parsed
}

/// A frame's body as it is read: hashed and counted; a failed read is
/// kept for the caller (the JSON parser would report it as bad JSON).
struct BodyReader<R> {
    inner: R,
    digest: Sha256,
    read: u64,
    failed: Option<std::io::Error>,
}

impl<R: std::io::Read> std::io::Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed.is_some() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.digest.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(e);
                Ok(0)
            }
        }
    }
}

fn parse_body(body: impl std::io::Read) -> Result<Facts, FrameError> {
    // Buffered: serde_json reads a reader byte by byte.
    serde_json::from_reader(std::io::BufReader::with_capacity(64 * 1024, body))
        .map_err(|e| FrameError::BadBody(e.to_string()))
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
        let log = [b"probe starting\n".as_slice(), &sealed, b"\nprobe done\n"].concat();
        let open = |bytes: &[u8], id: &age::x25519::Identity| {
            decrypt_and_decode("n0", &mut std::io::BufReader::new(bytes), id)
        };
        assert_eq!(open(&log, &id).unwrap(), facts);
        let other = age::x25519::Identity::generate();
        assert_eq!(open(&log, &other), Err(FrameError::NotDecryptable));
        // A plaintext frame where ciphertext was expected is refused.
        assert_eq!(open(&frame, &id), Err(FrameError::NotDecryptable));
        assert_eq!(
            open(&sealed[..sealed.len() - 40], &id),
            Err(FrameError::Truncated)
        );
    }

    /// Hands out a stream in pieces of pseudo-random sizes, as an exec
    /// stream or a log arrives.
    struct Trickle<'a> {
        data: &'a [u8],
        seed: u64,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let want = 1 + (self.seed >> 33) as usize % 9000;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn encrypted_output_decodes_as_it_streams_in_any_pieces() {
        // A body of several age chunks (64 KiB each) and armor lines.
        let mut facts = sample();
        facts.files.insert(
            "/big".into(),
            FileFact {
                content: Some(crate::facts::Content::Text("x".repeat(300_000))),
                ..FileFact::default()
            },
        );
        let id = age::x25519::Identity::generate();
        let sealed = encrypt(&encode("n1", &facts), &id.to_public());
        let log = [b"banner\n".as_slice(), &sealed, b"after\n"].concat();
        for seed in 0..20 {
            let mut r = std::io::BufReader::with_capacity(
                1 + seed as usize * 97,
                Trickle { data: &log, seed },
            );
            assert_eq!(
                decrypt_and_decode("n1", &mut r, &id).unwrap(),
                facts,
                "seed {seed}"
            );
            // Reading stopped at the armor's end: the rest is the caller's.
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut rest).unwrap();
            assert_eq!(rest, b"after\n", "seed {seed}");
        }
        // A cut anywhere inside the armor is a truncated stream; a flipped
        // ciphertext character does not decrypt.
        let begin = log.len() - sealed.len() - 6;
        for cut in [
            begin + 40,
            begin + sealed.len() / 2,
            begin + sealed.len() - 10,
        ] {
            assert_eq!(
                decrypt_and_decode("n1", &mut &log[..cut], &id),
                Err(FrameError::Truncated),
                "cut at {cut}"
            );
        }
        let mut flipped = log.clone();
        let at = begin + sealed.len() / 2;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decrypt_and_decode("n1", &mut &flipped[..], &id),
            Err(FrameError::NotDecryptable)
        );
        // Endless output before any armor is refused after the preamble
        // cap, not read to the output cap.
        let mut endless =
            std::io::BufReader::new(std::io::Read::take(std::io::repeat(b'y'), u64::MAX));
        assert_eq!(
            decrypt_and_decode("n1", &mut endless, &id),
            Err(FrameError::NotDecryptable)
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
