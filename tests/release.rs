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

/// Every base image of the Dockerfile is pinned by digest: `scratch`, or
/// the BUILDER argument, which the build refuses unless it is a digest
/// (its guard is run here as the build would run it).
#[test]
fn the_dockerfile_pins_every_base_image_by_digest() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(froms, ["${BUILDER}", "scratch"], "{text}");
    assert!(
        !text.contains("ARG BUILDER="),
        "BUILDER must have no default"
    );
    // The RUN guard right after the builder's FROM, as sh runs it.
    let start = text.find("RUN case").unwrap();
    let guard = text[start + 4..]
        .split("esac")
        .next()
        .unwrap()
        .replace("\\\n", "\n")
        + "esac";
    let dir = TempDir::new("dockerfile");
    let hex = "a".repeat(64);
    for (builder, ok) in [
        (format!("rust:1.89-bookworm@sha256:{hex}"), true),
        (format!("rust@sha256:{hex}"), true),
        ("rust:1.89-bookworm".to_string(), false),
        (format!("rust@sha256:{}", &hex[..63]), false),
        (String::new(), false),
    ] {
        let out = Command::new("sh")
            .args(["-c", &guard])
            .env("BUILDER", &builder)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "BUILDER={builder:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What following the README and docs creates at the repository root
/// (results, opened HDF, reports, keys) is ignored by git, so a private
/// signing key cannot be committed by following them; and the Docker build
/// context leaves out build output, results and keys.
#[test]
fn what_the_docs_create_is_ignored_by_git_and_docker() {
    if !repo().join(".git").exists() {
        crate::util::skipped("a git checkout");
        return;
    }
    let created = [
        "keys/signer.key.pem",
        "keys/reader.key",
        "signer.key.pem",
        "reader.key",
        "dist/vigil",
        "results/demo/RUN/summary.json.age",
        "demo-hdf/rootfs_debian.hdf.json",
        "hdf/x.json",
        "report.xml",
        "saf-cli.log",
        "target/debug/vigil",
    ];
    for path in created {
        let out = Command::new("git")
            .args(["check-ignore", "-q", "--no-index", path])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(out.success(), "git does not ignore {path}");
    }
    // The demo keys are part of the repository.
    for kept in [
        "fixtures/keys/demo-signing.key.pem",
        "fixtures/keys/demo-age.key",
    ] {
        let out = Command::new("git")
            .args(["check-ignore", "-q", "--no-index", kept])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(!out.success(), "git ignores {kept}");
    }
    let docker = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for needed in ["target/", "results/", "keys/", "*.key.pem", "*.key"] {
        assert!(
            docker.lines().any(|l| l.trim() == needed),
            ".dockerignore lacks {needed}"
        );
    }
}
