//! `scripts/release.sh`: the release artifacts verify with openssl and
//! sha256sum alone, as docs/ci.md tells users to, and refuse tampering.

use std::process::Command;

use crate::util::{TempDir, repo, vigil_in};

fn sh(dir: &std::path::Path, script: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn release_artifacts_verify_with_openssl_and_refuse_tampering() {
    let dir = TempDir::new("release");
    let r = vigil_in(dir.path(), &["keygen", "signing", "--out", "rel"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let script = repo().join("scripts/release.sh");
    let release = |out: &str| {
        Command::new(&script)
            .args(["rel.key.pem", out, env!("CARGO_BIN_EXE_vigil")])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = release("dist");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What docs/ci.md says, with the public key published by the project.
    let verify = "cd dist && openssl pkeyutl -verify -pubin -inkey ../rel.pub.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig && sha256sum -c SHA256SUMS";
    let (ok, text) = sh(dir.path(), verify);
    assert!(ok, "{text}");
    assert!(text.contains("Signature Verified Successfully"), "{text}");
    // The binary runs as vigil.
    let (ok, text) = sh(dir.path(), "./dist/vigil-*-x86_64-linux --version");
    assert!(ok && text.starts_with("vigil "), "{text}");
    // Tampered binary: the checksum fails. Tampered sums: the signature fails.
    let (ok, _) = sh(
        dir.path(),
        "cp -a dist t1 && printf x >> t1/vigil-*-x86_64-linux && cd t1 && sha256sum -c SHA256SUMS",
    );
    assert!(!ok);
    let (ok, text) = sh(
        dir.path(),
        "cp -a dist t2 && printf '# appended\n' >> t2/SHA256SUMS && cd t2 && openssl pkeyutl -verify -pubin -inkey ../rel.pub.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig",
    );
    assert!(!ok, "{text}");
    // Another key's signature does not verify.
    let r = vigil_in(dir.path(), &["keygen", "signing", "--out", "other"]);
    assert_eq!(r.code, 0);
    let (ok, _) = sh(
        dir.path(),
        "cd dist && openssl pkeyutl -verify -pubin -inkey ../other.pub.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig",
    );
    assert!(!ok);
    // Artifacts are never overwritten.
    let again = release("dist");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    match Command::new("shellcheck").arg(&script).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => {
            crate::util::prerequisite(false, "shellcheck");
        }
    }
}
