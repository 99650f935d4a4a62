//! Sealed bundles: interop with the `age` CLI and OpenSSL, and tamper tests
//! (each must make `vigil verify` fail with a precise message).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use vigil::seal::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use vigil::seal::keys::{Signer, load_identities};

use crate::util::{Run, TempDir, repo, vigil_in};

/// A temp dir with a signing key, an age identity, a policy over one
/// fixture rootfs encrypted to the identity (and `extra` recipients).
struct Setup {
    dir: TempDir,
    policy: PathBuf,
}

fn tool(name: &str) -> bool {
    let present = Command::new(name).arg("--version").output().is_ok()
        || Command::new("which")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success());
    crate::util::prerequisite(present, name)
}

fn setup(extra_recipients: &[String]) -> Setup {
    let dir = TempDir::new("seal");
    crate::util::signing_key(dir.path());
    assert_eq!(
        vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]).code,
        0
    );
    let recipient = std::fs::read_to_string(dir.path().join("auditor.pub"))
        .unwrap()
        .trim()
        .to_string();
    let mut recipients = vec![recipient];
    recipients.extend(extra_recipients.iter().cloned());
    let list = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let root = repo().join("fixtures/rootfs");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: sealed}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {r}/debian, name: debian}}\n    - {{rootfs: {r}/distroless, name: distroless}}\n  output: {{recipients: [{list}], signingKey: signer.key.pem}}\n",
            r = root.display()
        ),
    );
    Setup { dir, policy }
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run once; return the bundle directory.
    fn run(&self) -> PathBuf {
        let summary = self.run_summary();
        self.path()
            .join("out/sealed")
            .join(summary[0]["run_id"].as_str().unwrap())
    }

    /// Run once into `out/`; return the JSON summary it printed.
    fn run_summary(&self) -> Value {
        let profiles = repo().join("policies/profiles");
        let out = self.path().join("out");
        let run = vigil_in(
            self.path(),
            &[
                "run",
                self.policy.to_str().unwrap(),
                profiles.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    }

    fn verify(&self, bundle: &Path) -> Run {
        vigil_in(
            self.path(),
            &[
                "verify",
                bundle.to_str().unwrap(),
                "--trusted-key",
                "signer.pub.pem",
                "--identity",
                "auditor.key",
            ],
        )
    }
}

fn copy_dir(from: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
}

fn assert_fails(run: &Run, file: &str, words: &str) {
    assert_eq!(run.code, 1, "verify must fail\n{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(file) && l.contains(words));
    assert!(
        line.is_some(),
        "expected a problem about {file} saying {words:?}:\n{}",
        run.stderr
    );
}

#[test]
fn a_fresh_bundle_verifies_and_opens() {
    let s = setup(&[]);
    let bundle = s.run();
    let mut names: Vec<String> = std::fs::read_dir(bundle.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "rootfs_debian.hdf.json.age",
            "rootfs_debian.inv.json.age",
            "rootfs_distroless.hdf.json.age",
            "rootfs_distroless.inv.json.age"
        ]
    );
    assert!(bundle.join("summary.json.age").is_file());
    let v = s.verify(&bundle);
    assert_eq!(v.code, 0, "{}", v.stderr);
    // The summary, and each target's HDF and inventory.
    assert!(v.stdout.contains("5 plaintexts checked"), "{}", v.stdout);
    // Signature-only verification needs no identity.
    let v = vigil_in(
        s.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    let open = vigil_in(
        s.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--identity",
            "auditor.key",
            "--trusted-key",
            "signer.pub.pem",
            "--target",
            "rootfs/debian",
            "--out",
            "plain",
        ],
    );
    assert_eq!(open.code, 0, "{}", open.stderr);
    assert!(
        open.stdout.contains("rootfs/debian: 19 passed"),
        "{}",
        open.stdout
    );
    let hdf: Value = serde_json::from_slice(
        &std::fs::read(s.path().join("plain/rootfs_debian.hdf.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(hdf["platform"]["target_id"], "rootfs/debian");
    // The statement is an in-toto statement in a DSSE envelope.
    let env: Envelope =
        serde_json::from_slice(&std::fs::read(bundle.join("statement.dsse.json")).unwrap())
            .unwrap();
    assert_eq!(env.payload_type, IN_TOTO_PAYLOAD_TYPE);
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    // summary, and each target's HDF and inventory
    assert_eq!(st["subject"].as_array().unwrap().len(), 5);
    assert_eq!(st["predicate"]["policy"]["name"], "sealed");
    assert_eq!(st["predicate"]["targets"][0]["counts"]["passed"], 19);
}

#[test]
fn unsigned_runs_need_a_flag_and_never_verify() {
    let s = setup(&[]);
    std::fs::remove_file(s.path().join("signer.key.pem")).unwrap();
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        s.path(),
        &[
            "run",
            s.policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
        ],
    );
    assert_eq!(run.code, 2, "a missing key refuses the run");
    assert!(run.stderr.contains("signer.key.pem"), "{}", run.stderr);
    std::fs::write(
        s.path().join("p2.yaml"),
        std::fs::read_to_string(&s.policy)
            .unwrap()
            .replace(", signingKey: signer.key.pem", ""),
    )
    .unwrap();
    let run = vigil_in(
        s.path(),
        &[
            "run",
            "p2.yaml",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
        ],
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("UNSIGNED"),
        "the summary says so loudly: {}",
        run.stdout
    );
    assert!(run.stderr.contains("UNSIGNED"));
    let bundle = std::fs::read_dir(s.path().join("out/sealed"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_fails(
        &s.verify(&bundle),
        "statement.dsse.json",
        "no signature by a trusted key",
    );
}

#[test]
fn group_readable_keys_are_refused_without_leaking_them() {
    let s = setup(&[]);
    let key = std::fs::read_to_string(s.path().join("signer.key.pem")).unwrap();
    std::fs::set_permissions(
        s.path().join("signer.key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        s.path(),
        &[
            "run",
            s.policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!run.stderr.contains(&body));
}

#[test]
fn age_cli_interop_x25519_and_ssh() {
    if !tool("age") || !tool("ssh-keygen") {
        return;
    }
    let keys = TempDir::new("sshkeys");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@vigil", "-f"])
        .arg(keys.path().join("id_ed25519"))
        .status()
        .unwrap();
    assert!(st.success());
    let ssh_pub = std::fs::read_to_string(keys.path().join("id_ed25519.pub"))
        .unwrap()
        .trim()
        .to_string();
    let s = setup(std::slice::from_ref(&ssh_pub));
    let bundle = s.run();
    let file = bundle.join("targets/rootfs_debian.hdf.json.age");
    for identity in [s.path().join("auditor.key"), keys.path().join("id_ed25519")] {
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "age -d -i {}: {}",
            identity.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let hdf: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(hdf["platform"]["target_id"], "rootfs/debian");
    }
    // vigil opens with the ssh key too.
    let open = vigil_in(
        s.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--identity",
            keys.path().join("id_ed25519").to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(open.code, 0, "{}", open.stderr);
    // And vigil decrypts what the age CLI made, binary and armored.
    let plain = s.dir.write("plain.txt", "made by the age CLI\n");
    let recipient = std::fs::read_to_string(s.path().join("auditor.pub")).unwrap();
    for armor in [false, true] {
        let mut cmd = Command::new("age");
        cmd.args(["-r", recipient.trim()]);
        if armor {
            cmd.arg("-a");
        }
        let enc = cmd.arg(&plain).output().unwrap();
        assert!(enc.status.success());
        let ids = load_identities(&s.path().join("auditor.key")).unwrap();
        let got =
            vigil::seal::verify::decrypt(std::io::BufReader::new(&enc.stdout[..]), &ids).unwrap();
        assert_eq!(got, b"made by the age CLI\n");
    }
}

#[test]
fn openssl_interop_both_ways() {
    if !tool("openssl") {
        return;
    }
    let s = setup(&[]);
    let bundle = s.run();
    // OpenSSL verifies vigil's signature over the PAE bytes.
    let env: Envelope =
        serde_json::from_slice(&std::fs::read(bundle.join("statement.dsse.json")).unwrap())
            .unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .unwrap();
    let pae = s
        .dir
        .write("pae.bin", dsse::pae(&env.payload_type, &payload));
    let sig = s.dir.write(
        "sig.bin",
        base64::engine::general_purpose::STANDARD
            .decode(&env.signatures[0].sig)
            .unwrap(),
    );
    let out = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pub.pem",
            "-rawin",
            "-in",
        ])
        .arg(&pae)
        .arg("-sigfile")
        .arg(&sig)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // vigil verifies an envelope OpenSSL signed with a key from `openssl genpkey`.
    let dir = s.path();
    assert!(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out", "ossl.key"])
            .current_dir(dir)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("openssl")
            .args(["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"])
            .current_dir(dir)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("openssl")
            .args([
                "pkeyutl", "-sign", "-inkey", "ossl.key", "-rawin", "-in", "pae.bin", "-out",
                "ossl.sig"
            ])
            .current_dir(dir)
            .status()
            .unwrap()
            .success()
    );
    let mut resigned = env.clone();
    resigned.signatures = vec![dsse::EnvelopeSignature {
        keyid: String::new(),
        sig: base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(dir.join("ossl.sig")).unwrap()),
    }];
    std::fs::write(
        bundle.join("statement.dsse.json"),
        serde_json::to_vec(&resigned).unwrap(),
    )
    .unwrap();
    let v = vigil_in(
        dir,
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "ossl.pub",
        ],
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    // vigil also loads OpenSSL's private key (PKCS#8) as a signing key.
    std::fs::set_permissions(
        dir.join("ossl.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert!(Signer::from_file(&dir.join("ossl.key")).is_ok());
}

/// Re-sign a modified statement with the trusted key (a compromised or
/// careless signer), to test what the verifier does with hostile content.
fn forge(s: &Setup, bundle: &Path, payload_type: &str, edit: impl Fn(&mut Value)) {
    let mut st = crate::util::statement_payload(bundle);
    edit(&mut st);
    let signer = Signer::from_file(&s.path().join("signer.key.pem")).unwrap();
    let forged = dsse::sign(payload_type, &serde_json::to_vec(&st).unwrap(), &signer);
    std::fs::write(
        bundle.join("statement.dsse.json"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn tampering_is_detected_precisely() {
    let s = setup(&[]);
    let first = s.run();
    let bundle = s.run(); // a second, newer run of the same policy
    let case = |name: &str| -> PathBuf {
        let p = s.path().join(format!("case-{name}"));
        copy_dir(&bundle, &p);
        p
    };
    let debian = "targets/rootfs_debian.hdf.json.age";

    let b = case("bitflip");
    flip(&b.join(debian), 300);
    assert_fails(&s.verify(&b), debian, "sha256 mismatch");

    let b = case("payload");
    let mut env: Value =
        serde_json::from_slice(&std::fs::read(b.join("statement.dsse.json")).unwrap()).unwrap();
    let mut payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    payload[40] ^= 0x01;
    env["payload"] = Value::String(base64::engine::general_purpose::STANDARD.encode(&payload));
    std::fs::write(
        b.join("statement.dsse.json"),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    assert_fails(
        &s.verify(&b),
        "statement.dsse.json",
        "no signature by a trusted key",
    );

    let b = case("signature");
    let mut env: Value =
        serde_json::from_slice(&std::fs::read(b.join("statement.dsse.json")).unwrap()).unwrap();
    let mut sig = base64::engine::general_purpose::STANDARD
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    sig[5] ^= 0x80;
    env["signatures"][0]["sig"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(&sig));
    std::fs::write(
        b.join("statement.dsse.json"),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    assert_fails(
        &s.verify(&b),
        "statement.dsse.json",
        "no signature by a trusted key",
    );

    let b = case("truncated");
    let bytes = std::fs::read(b.join(debian)).unwrap();
    std::fs::write(b.join(debian), &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(&s.verify(&b), debian, "sha256 mismatch");

    let b = case("swapped");
    std::fs::copy(first.join(debian), b.join(debian)).unwrap();
    assert_fails(&s.verify(&b), debian, "sha256 mismatch");

    let b = case("dropped");
    std::fs::remove_file(b.join(debian)).unwrap();
    assert_fails(&s.verify(&b), debian, "missing");

    // A run that died before writing its statement leaves nothing that verifies.
    let b = case("no-statement");
    std::fs::remove_file(b.join("statement.dsse.json")).unwrap();
    assert_fails(&s.verify(&b), "statement.dsse.json", "missing");

    let b = case("added");
    std::fs::write(b.join("targets/extra.hdf.json.age"), "x").unwrap();
    assert_fails(
        &s.verify(&b),
        "targets/extra.hdf.json.age",
        "not named in the statement",
    );

    let b = case("replayed");
    std::fs::copy(
        first.join("statement.dsse.json"),
        b.join("statement.dsse.json"),
    )
    .unwrap();
    assert_fails(&s.verify(&b), debian, "sha256 mismatch");

    let b = case("untrusted");
    let other = TempDir::new("other-key");
    vigil_in(other.path(), &["keygen", "signing", "--out", "k"]);
    let v = vigil_in(
        s.path(),
        &[
            "verify",
            b.to_str().unwrap(),
            "--trusted-key",
            other.path().join("k.pub.pem").to_str().unwrap(),
        ],
    );
    assert_fails(&v, "statement.dsse.json", "no signature by a trusted key");

    let b = case("payload-type");
    forge(&s, &b, "application/json", |_| {});
    assert_fails(&s.verify(&b), "statement.dsse.json", "payloadType");

    // A forged statement whose subjects point outside the bundle: refused
    // by name, and the outside file is never read (its correct digest would
    // otherwise make it "verify").
    let canary = s.dir.write("canary.txt", "outside");
    let canary_sha = vigil::facts::frame::hex(&sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        std::fs::read(&canary).unwrap(),
    )));
    for evil in ["../../canary.txt", &canary.display().to_string()] {
        let b = case(&format!("evil-{}", evil.len()));
        let sha = canary_sha.clone();
        let name = evil.to_string();
        forge(&s, &b, IN_TOTO_PAYLOAD_TYPE, move |st| {
            st["subject"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"name": name, "digest": {"sha256": sha}}));
        });
        assert_fails(&s.verify(&b), evil, "not a plain relative path");
    }

    // A symlink standing in for a result file is refused, not followed.
    let b = case("symlink");
    std::fs::remove_file(b.join(debian)).unwrap();
    std::os::unix::fs::symlink(first.join(debian), b.join(debian)).unwrap();
    assert_fails(&s.verify(&b), debian, "not a regular file");

    // Counts in the statement that do not match the HDF (a signer lying
    // about results) are caught when decrypting.
    let b = case("counts");
    forge(&s, &b, IN_TOTO_PAYLOAD_TYPE, |st| {
        st["predicate"]["targets"][0]["counts"]["failed"] = serde_json::json!(0);
    });
    assert_fails(&s.verify(&b), debian, "counts");
}

/// Files the verifier cannot see are files it cannot vouch for: an extra
/// file in a directory it may not list (verify run unprivileged), or below
/// a chain of directories longer than PATH_MAX, fails verification.
#[test]
fn hidden_files_fail_verification() {
    let s = setup(&[]);
    let bundle = s.run();
    let trusted = s.path().join("signer.pub.pem");
    // An unlistable directory holding an extra file.
    let b1 = s.path().join("b1");
    copy_dir(&bundle, &b1);
    std::fs::create_dir(b1.join("hidden")).unwrap();
    std::fs::write(b1.join("hidden/extra"), "added").unwrap();
    std::fs::set_permissions(
        b1.join("hidden"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let run: Run = if crate::util::is_root() {
        // Root lists anything; verify as nobody, who can read the bundle
        // (owned by it) but not the root-owned mode-000 directory.
        for e in std::fs::read_dir(&b1).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "hidden" {
                assert!(
                    Command::new("chown")
                        .args(["-R", "65534:65534"])
                        .arg(&p)
                        .status()
                        .unwrap()
                        .success()
                );
            }
        }
        assert!(
            Command::new("chown")
                .args(["65534:65534"])
                .arg(&b1)
                .status()
                .unwrap()
                .success()
        );
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "verify",
                b1.to_str().unwrap(),
                "--trusted-key",
                trusted.to_str().unwrap(),
            ])
            .current_dir("/")
            .output()
            .unwrap()
            .into()
    } else {
        vigil_in(
            s.path(),
            &[
                "verify",
                b1.to_str().unwrap(),
                "--trusted-key",
                "signer.pub.pem",
            ],
        )
    };
    assert_fails(&run, "hidden", "cannot");
    std::fs::set_permissions(
        b1.join("hidden"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // 2,100 nested directories with a file at the bottom.
    let b2 = s.path().join("b2");
    copy_dir(&bundle, &b2);
    let mut fd = rustix::fs::open(
        &b2,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..2100 {
        rustix::fs::mkdirat(&fd, "d", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(
            &fd,
            "d",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    let f = rustix::fs::openat(
        &fd,
        "extra",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    drop(f);
    let run = s.verify(&b2);
    assert_fails(&run, "d/d/d", "deeper");
    // Removing a 2,100-deep tree needs descriptors too: `rm -rf` does it.
    assert!(
        Command::new("rm")
            .args(["-rf"])
            .arg(&b2)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn armored_bundles_verify_and_open_with_the_age_cli() {
    let s = setup(&[]);
    let text = std::fs::read_to_string(&s.policy).unwrap().replace(
        "signingKey: signer.key.pem}",
        "signingKey: signer.key.pem, armor: true}",
    );
    std::fs::write(&s.policy, text).unwrap();
    let bundle = s.run();
    let file = bundle.join("targets/rootfs_debian.hdf.json.age");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    );
    let v = s.verify(&bundle);
    assert_eq!(v.code, 0, "{}", v.stderr);
    if tool("age") {
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(s.path().join("auditor.key"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A signing key mounted as the kubelet mounts a Secret for a pod with
/// `fsGroup` (mode 0440, group the pod's, on a read-only mount) is loaded;
/// the same mode on a writable disk, with another group, or readable by
/// others is refused. Real read-only mounts, in a private mount namespace,
/// read as the runner's uid and group.
#[test]
fn a_secret_volume_key_is_accepted_only_as_the_kubelet_mounts_it() {
    if !crate::util::prerequisite(crate::util::is_root(), "root") {
        return;
    }
    let dir = TempDir::new("secretvol");
    crate::util::signing_key(dir.path());
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fx = crate::util::rootfs_fixtures();
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: sv}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: t}}\n",
            fx.path().join("rootfs/debian").display()
        ),
    );
    let script = r#"set -e
D=$1; KEY=$2; MODE=$3; GROUP=$4; RO=$5; shift 5
mount -t tmpfs tmpfs "$D"
cp "$KEY" "$D/signing.key.pem"
chown 0:"$GROUP" "$D/signing.key.pem"
chmod "$MODE" "$D/signing.key.pem"
if [ "$RO" = ro ]; then mount -o remount,ro "$D"; fi
exec setpriv --reuid=10001 --regid=10001 --groups=10001 "$@" --signing-key "$D/signing.key.pem"
"#;
    let profiles = repo().join("policies/profiles");
    for (i, (mode, group, ro, accepted)) in [
        ("0440", "10001", "ro", true),
        ("0440", "10001", "rw", false),
        ("0440", "4242", "ro", false),
        ("0444", "10001", "ro", false),
        ("0460", "10001", "ro", false),
    ]
    .into_iter()
    .enumerate()
    {
        let mnt = dir.path().join(format!("keys{i}"));
        let out = dir.path().join(format!("out{i}"));
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let run: Run = Command::new("unshare")
            .args(["-m", "sh", "-c", script, "sh"])
            .arg(&mnt)
            .arg(dir.path().join("signer.key.pem"))
            .args([mode, group, ro])
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "run",
                policy.to_str().unwrap(),
                profiles.to_str().unwrap(),
                "--plaintext",
                "--out",
            ])
            .arg(&out)
            .current_dir(dir.path())
            .output()
            .unwrap()
            .into();
        if accepted {
            assert!(
                run.code == 0 || run.code == 1,
                "{mode} {group} {ro}: {}",
                run.stderr
            );
        } else {
            assert_eq!(run.code, 2, "{mode} {group} {ro}: {}", run.stderr);
            // (In another group, the kernel already refuses the open.)
            assert!(
                run.stderr.contains("readable by group or others")
                    || run.stderr.contains("permission denied"),
                "{}",
                run.stderr
            );
            assert!(!run.stderr.contains("BEGIN PRIVATE KEY"));
        }
    }
}

/// `vigil open` with an identity that is not a recipient says so, once,
/// naming the identity, as invalid input — not one failure per file.
#[test]
fn open_with_the_wrong_identity_says_so_once() {
    let s = setup(&[]);
    let bundle = s.run();
    assert_eq!(
        vigil_in(s.path(), &["keygen", "age", "--out", "stranger"]).code,
        0
    );
    let run = vigil_in(
        s.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "stranger.key",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("none of the given identities (stranger.key) is a recipient"),
        "{}",
        run.stderr
    );
}

/// An encrypted run's findings never reach the disk readable: the spool the
/// run keeps them in while it goes on (`report::spool`) leaves no file
/// behind, and no file under the output holds a finding's title or message
/// in plaintext (the statement names files, digests and counts only).
#[test]
fn an_encrypted_runs_findings_leave_no_plaintext_on_disk() {
    let s = setup(&[]);
    let summary = s.run_summary();
    let out = s.path().join("out");
    let needles: Vec<String> = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["findings"].as_array().cloned().unwrap_or_default())
        .flat_map(|f| [f["title"].clone(), f["message"].clone()])
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|t| t.len() >= 16)
        .collect();
    assert!(needles.len() >= 4, "{summary}");
    let run_id = summary[0]["run_id"].as_str().unwrap();
    let beside: Vec<String> = std::fs::read_dir(out.join("sealed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, [run_id], "nothing but the bundle beside it");
    let files = crate::util::files_under(&out);
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{} holds {n:?} in plaintext",
                f.display()
            );
        }
    }
}
