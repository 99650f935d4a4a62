//! Keys: ed25519 signing keys as PKCS#8 v1 / SPKI PEM (what OpenSSL 3
//! reads), age identities and recipients in the `age` CLI's own formats.
//!
//! Private keys load from a file (refused when group- or world-readable) or
//! from an environment variable, and never appear in logs or errors: error
//! messages name the file or the variable, never the content.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// DER prefix of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519 (RFC 8410): the
/// 32-byte seed follows. ed25519-dalek writes v2 (with the public key),
/// which OpenSSL 3.0 refuses, so vigil writes v1 itself.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an Ed25519 `SubjectPublicKeyInfo`; the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Environment variable that may hold the signing key PEM.
pub const SIGNING_KEY_ENV: &str = "VIGIL_SIGNING_KEY";

/// Key errors. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key {path}: {reason}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A private key file is readable by group or others.
    #[error(
        "private key {path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}` (group read is accepted only on a read-only mount in one of vigil's own groups, as a Kubernetes Secret volume with fsGroup)"
    )]
    Permissions {
        /// File.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The content is not a key of the expected kind.
    #[error("{source_name} is not {what}")]
    Invalid {
        /// File name or environment variable.
        source_name: String,
        /// What was expected.
        what: &'static str,
    },
    /// Writing a key failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// An ed25519 signing key. `Debug` never shows the key.
pub struct Signer {
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer(keyid {})", keyid(&self.key.verifying_key()))
    }
}

impl Signer {
    /// Generate a fresh key from the OS's random source.
    pub fn generate() -> Signer {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the OS random source is available");
        Signer {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Load a PKCS#8 PEM key (v1 or v2) from a file that only its owner can read.
    pub fn from_file(path: &Path) -> Result<Signer, KeyError> {
        use rustix::fs::{FileType, Mode, OFlags};
        let fail = |reason: String| KeyError::Read {
            path: path.into(),
            reason,
        };
        // One descriptor for the mode check and the read, so the file that
        // was checked is the file that is read.
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| fail(crate::safeio::io_reason(&e.into())))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| fail(crate::safeio::io_reason(&e.into())))?;
        let mode = st.st_mode & 0o777;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && mode & 0o077 != 0
            && !kubelet_secret(&fd, &st)
        {
            return Err(KeyError::Permissions {
                path: path.into(),
                mode,
            });
        }
        let bytes =
            crate::safeio::read_fd(fd, MAX_KEY_FILE_BYTES).map_err(|p| fail(p.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        Signer::from_pem(&text, &path.display().to_string())
    }

    /// Load from the environment variable [`SIGNING_KEY_ENV`], if set.
    pub fn from_env() -> Option<Result<Signer, KeyError>> {
        let text = std::env::var(SIGNING_KEY_ENV).ok()?;
        Some(Signer::from_pem(&text, SIGNING_KEY_ENV))
    }

    fn from_pem(text: &str, source_name: &str) -> Result<Signer, KeyError> {
        SigningKey::from_pkcs8_pem(text.trim())
            .map(|key| Signer { key })
            .map_err(|_| KeyError::Invalid {
                source_name: source_name.into(),
                what: "an Ed25519 private key (PKCS#8 PEM)",
            })
    }

    /// Sign `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// PKCS#8 v1 PEM of the private key.
    pub fn to_pkcs8_v1_pem(&self) -> String {
        let mut der = PKCS8_V1_PREFIX.to_vec();
        der.extend_from_slice(self.key.as_bytes());
        pem("PRIVATE KEY", &der)
    }

    /// Write `PREFIX.key.pem` (mode 0600, never overwriting) and `PREFIX.pub.pem`.
    pub fn write(&self, prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let key_path = with_suffix(prefix, ".key.pem");
        let pub_path = with_suffix(prefix, ".pub.pem");
        refuse_existing(&[&key_path, &pub_path])?;
        write_new(&key_path, self.to_pkcs8_v1_pem().as_bytes(), 0o600)?;
        write_new(&pub_path, spki_pem(&self.verifying_key()).as_bytes(), 0o644)?;
        Ok((key_path, pub_path))
    }
}

/// Returns true if and only if a group-readable key file is a Secret as the
/// kubelet mounts it for a pod with `fsGroup`: group read only (0440: the
/// kubelet adds group read to `defaultMode`, kubernetes/kubernetes#57923),
/// nothing for others, on a read-only mount, and its group one of this
/// process's own. A 0640 key on a workstation's writable disk still fails.
fn kubelet_secret(fd: &std::os::fd::OwnedFd, st: &rustix::fs::Stat) -> bool {
    let mode = st.st_mode & 0o777;
    let group_read_only = mode & 0o077 == 0o040;
    let read_only_mount = rustix::fs::fstatvfs(fd)
        .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    let own_group = rustix::process::getgid().as_raw() == st.st_gid
        || rustix::process::getgroups().is_ok_and(|gs| gs.iter().any(|g| g.as_raw() == st.st_gid));
    group_read_only && read_only_mount && own_group
}

/// Key files larger than this are refused while reading: a PEM key is a
/// few hundred bytes, an identity file with many keys a few KiB.
pub const MAX_KEY_FILE_BYTES: u64 = 256 * 1024;

/// Read a key file under [`crate::safeio`]'s rules (capped, no devices, no
/// pseudo files, FIFOs with a deadline).
fn read_key_bytes(path: &Path, what: &'static str) -> Result<Vec<u8>, KeyError> {
    crate::safeio::read(path, MAX_KEY_FILE_BYTES, what).map_err(|e| KeyError::Read {
        path: path.into(),
        reason: e.problem.to_string(),
    })
}

fn read_key_text(path: &Path, what: &'static str) -> Result<String, KeyError> {
    String::from_utf8(read_key_bytes(path, what)?).map_err(|_| KeyError::Read {
        path: path.into(),
        reason: "not UTF-8 text".into(),
    })
}

/// SPKI PEM of a public key.
pub fn spki_pem(key: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    pem("PUBLIC KEY", &der)
}

/// Read a trusted public key (SPKI PEM).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_key_text(path, "trusted key")?;
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|_| KeyError::Invalid {
        source_name: path.display().to_string(),
        what: "an Ed25519 public key (SPKI PEM)",
    })
}

/// The key id: `SHA256:` and the hex sha256 of the SPKI DER. Informational
/// only; verification never trusts it.
pub fn keyid(key: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    crate::encoding::key_id(&der)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Refuse before writing anything when any file of a key pair exists, so
/// that a refused `keygen` never leaves half a pair behind.
fn refuse_existing(paths: &[&Path]) -> Result<(), KeyError> {
    // `--out keys/signer` where keys/ does not exist yet: create it, private
    // (0700), as `ssh-keygen` leaves ~/.ssh.
    if let Some(dir) = paths.first().and_then(|p| p.parent())
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| KeyError::Write {
                path: dir.to_path_buf(),
                reason: crate::safeio::io_reason(&e),
            })?;
    }
    for p in paths {
        if fs::symlink_metadata(p).is_ok() {
            return Err(KeyError::Write {
                path: p.to_path_buf(),
                reason: "it already exists; keygen never overwrites a key (choose another --out)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Create a file that must not exist yet, with `mode` from the start.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let err = |e: io::Error| KeyError::Write {
        path: path.into(),
        reason: crate::safeio::io_reason(&e),
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
}

/// Generate an age X25519 identity; write `PREFIX.key` (age-keygen's format,
/// mode 0600) and `PREFIX.pub` (the recipient line).
pub fn write_age_identity(prefix: &Path) -> Result<(PathBuf, PathBuf, String), KeyError> {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let key_text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    refuse_existing(&[&key_path, &pub_path])?;
    write_new(&key_path, key_text.as_bytes(), 0o600)?;
    write_new(&pub_path, format!("{recipient}\n").as_bytes(), 0o644)?;
    Ok((key_path, pub_path, recipient))
}

/// Identities to decrypt with: age identity files (`AGE-SECRET-KEY-1…`) or
/// unencrypted ssh private keys (ed25519, rsa).
pub fn load_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, KeyError> {
    let bytes = read_key_bytes(path, "identity file")?;
    let invalid = || KeyError::Invalid {
        source_name: path.display().to_string(),
        what: "an age identity file or an unencrypted ssh private key",
    };
    if let Ok(file) = age::IdentityFile::from_buffer(io::BufReader::new(&bytes[..]))
        && let Ok(ids) = file.into_identities()
        && !ids.is_empty()
    {
        return Ok(ids);
    }
    match age::ssh::Identity::from_buffer(
        io::BufReader::new(&bytes[..]),
        Some(path.display().to_string()),
    ) {
        Ok(id @ age::ssh::Identity::Unencrypted(_)) => Ok(vec![Box::new(id)]),
        _ => Err(invalid()),
    }
}

/// Parse recipients as the policy lists them (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`).
pub fn parse_recipients(
    list: &[String],
) -> Result<Vec<Box<dyn age::Recipient + Send + Sync>>, crate::policy::lint::RecipientError> {
    list.iter()
        .map(|r| crate::policy::lint::parse_recipient(r))
        .collect()
}

#[cfg(test)]
mod tests {

    /// One key, one id: the signing key's id in statements and the same
    /// key's id as a cosign key are the same text (once `SHA256:` and
    /// `sha256:`), the sha256 of its SPKI DER.
    #[test]
    fn a_key_has_one_id_wherever_it_is_shown() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/keys/demo-signing.pub.pem");
        let vk = load_public_key(&path).unwrap();
        let cosign = crate::cosign::PublicKey::from_file(&path).unwrap();
        assert_eq!(keyid(&vk), cosign.fingerprint);
        assert!(keyid(&vk).starts_with("SHA256:"));
    }

    use super::*;

    #[test]
    fn pkcs8_v1_round_trip_and_refusals() {
        let dir = std::env::temp_dir().join(format!("vigil-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let s = Signer::generate();
        let (key, public) = s.write(&dir.join("k")).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pem = fs::read_to_string(&key).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        assert_eq!(der.len(), 48, "PKCS#8 v1: no public key inside");
        let loaded = Signer::from_file(&key).unwrap();
        assert_eq!(loaded.verifying_key(), s.verifying_key());
        assert_eq!(load_public_key(&public).unwrap(), s.verifying_key());
        assert!(s.write(&dir.join("k")).is_err(), "never overwrites");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Signer::from_file(&key).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("PRIVATE"), "{e}");
        assert!(
            !format!("{loaded:?}").contains(&pem[30..60]),
            "Debug never shows the key"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
