//! Byte encodings shared by every layer (a leaf: it imports nothing from
//! the crate).

/// Lower-case hex, as sha256 digests are written in statements and logs.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A file name's bytes as text that maps back to exactly those bytes:
/// UTF-8 as it is, a backslash as `\\`, and each byte that is not part of
/// valid UTF-8 as `\xNN`. Two different names never give the same text (a
/// lossy conversion turns both `a<ff>` and `a<fe>` into `a\u{fffd}`, so one
/// file would hide another in facts and inventories). Every collector
/// renders names through this one function, so a name reads the same from
/// a root, a shell gatherer and an image.
pub(crate) fn name_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !s.contains('\\')
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A public key's id everywhere vigil prints or records one (signing keys,
/// cosign keys): `SHA256:` and the hex sha256 of its SPKI DER, as
/// `openssl pkey -pubin -outform DER | sha256sum` computes it.
pub(crate) fn key_id(spki_der: &[u8]) -> String {
    use sha2::Digest as _;
    format!("SHA256:{}", hex(&sha2::Sha256::digest(spki_der)))
}

/// DSSE's pre-authentication encoding, what a DSSE signature covers:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body` (lengths in
/// decimal bytes). Here, a leaf, because vigil signs envelopes (`seal`)
/// and verifies other tools' (`cosign`).
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_text_is_one_to_one() {
        use super::name_text;
        assert_eq!(name_text(b"passwd"), "passwd");
        assert_eq!(name_text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(name_text(b"a\xff"), "a\\xff");
        assert_eq!(name_text(b"a\\xff"), "a\\\\xff");
        assert_ne!(name_text(b"a\xff"), name_text(b"a\xfe"));
        assert_ne!(name_text(b"a\xff"), name_text(b"a\\xff"));
        assert_eq!(name_text(b"systemd\\x2d"), "systemd\\\\x2d");
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
