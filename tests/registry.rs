//! A real OCI registry (Debian's `docker-registry`, the Distribution
//! registry server) on 127.0.0.1, images built by `umoci` and pushed by
//! `skopeo`, and cosign signatures made by `openssl` and pushed with
//! `curl` through the registry's HTTP API: none of it vigil's own code.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::util::{TempDir, prerequisite, vigil_in};

/// A registry server for one test, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its storage root (to tamper with blobs behind its back).
    pub storage: PathBuf,
    pub dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the registry tools are here (skipped, or failed under
/// VIGIL_REQUIRE_INTEROP, when not).
pub fn tools() -> bool {
    ["docker-registry", "umoci", "skopeo", "openssl", "curl"]
        .iter()
        .all(|t| prerequisite(have(t), t))
}

impl Registry {
    /// Start one; returns when it says it listens.
    pub fn start(name: &str) -> Registry {
        let dir = TempDir::new(name);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.path().join("storage");
        let config = dir.write(
            "registry.yml",
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: vigil-test\n",
                storage.display()
            ),
        );
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("listening on")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("docker-registry did not start listening within 30 s");
        Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            storage,
            dir,
        }
    }

    /// Build an image from `root` with umoci (one layer per entry of
    /// `layers`: a directory copied over the previous ones), push it as
    /// `repo:tag` with skopeo, and return its manifest digest.
    pub fn push_image(&self, repo: &str, tag: &str, layers: &[&Path]) -> String {
        let work = self
            .dir
            .path()
            .join(format!("build-{}-{tag}", repo.replace('/', "-")));
        let layout = work.join("oci");
        run("umoci", &["init", "--layout", &s(&layout)]);
        let image = format!("{}:{tag}", s(&layout));
        run("umoci", &["new", "--image", &image]);
        for layer in layers {
            let bundle = work.join("bundle");
            let _ = std::fs::remove_dir_all(&bundle);
            run(
                "umoci",
                &["unpack", "--rootless", "--image", &image, &s(&bundle)],
            );
            run(
                "cp",
                &["-a", &format!("{}/.", s(layer)), &s(&bundle.join("rootfs"))],
            );
            run("umoci", &["repack", "--image", &image, &s(&bundle)]);
        }
        self.push_layout(&image, repo, tag)
    }

    /// Push the OCI layout image `layout` (`DIR:TAG`) as `repo:tag` with
    /// skopeo; returns the digest the registry gives it.
    pub fn push_layout(&self, layout: &str, repo: &str, tag: &str) -> String {
        let digest_file = self
            .dir
            .path()
            .join(format!("digest-{}", repo.replace('/', "-")));
        run(
            "skopeo",
            &[
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--digestfile",
                &s(&digest_file),
                &format!("oci:{layout}"),
                &format!("docker://{}/{repo}:{tag}", self.host),
            ],
        );
        std::fs::read_to_string(digest_file)
            .unwrap()
            .trim()
            .to_string()
    }

    /// Upload `bytes` as a blob of `repo` (monolithic upload: POST, then
    /// PUT with the digest) and return its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let location = curl(&[
            "-sS",
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-w",
            "%header{location}",
            &format!("http://{}/v2/{repo}/blobs/uploads/", self.host),
        ]);
        let location = String::from_utf8(location).unwrap();
        let url = if location.starts_with('/') {
            format!("http://{}{location}", self.host)
        } else {
            location
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let file = self.dir.write("blob.tmp", bytes);
        curl(&[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", s(&file)),
            &format!("{url}{sep}digest={digest}"),
        ]);
        digest
    }

    /// Put a manifest (or an index, by its `mediaType`) under `reference`
    /// (a tag).
    pub fn put_manifest(&self, repo: &str, reference: &str, manifest: &serde_json::Value) {
        let file = self
            .dir
            .write("manifest.tmp", serde_json::to_vec(manifest).unwrap());
        curl(&[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            &format!(
                "Content-Type: {}",
                manifest["mediaType"]
                    .as_str()
                    .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            ),
            "--data-binary",
            &format!("@{}", s(&file)),
            &format!("http://{}/v2/{repo}/manifests/{reference}", self.host),
        ]);
    }

    /// Store a cosign signature of `image_digest` in `repo` as the cosign
    /// spec lays it out: the payload as a blob, a manifest under the tag
    /// `sha256-<hex>.sig` with one simple-signing layer per signature.
    pub fn put_signatures(
        &self,
        repo: &str,
        image_digest: &str,
        signatures: &[(Vec<u8>, Vec<u8>)],
    ) {
        use base64::Engine as _;
        let config = self.put_blob(repo, b"{}");
        let layers: Vec<serde_json::Value> = signatures
            .iter()
            .map(|(payload, sig)| {
                let digest = self.put_blob(repo, payload);
                serde_json::json!({
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": payload.len(),
                    "digest": digest,
                    "annotations": {
                        "dev.cosignproject.cosign/signature": base64::engine::general_purpose::STANDARD.encode(sig)
                    }
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": config},
            "layers": layers
        });
        self.put_manifest(
            repo,
            &format!("{}.sig", image_digest.replace(':', "-")),
            &manifest,
        );
    }

    /// The file the registry stores blob `digest` in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// A path as an argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Run a tool; it must succeed. Returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn curl(args: &[&str]) -> Vec<u8> {
    run("curl", args)
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A signing key made by openssl: `kind` is `p256` or `ed25519`. Returns
/// (private key PEM path, public key PEM path).
pub fn openssl_key(dir: &Path, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    match kind {
        "p256" => run(
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &s(&key),
            ],
        ),
        _ => run(
            "openssl",
            &["genpkey", "-algorithm", "ed25519", "-out", &s(&key)],
        ),
    };
    run(
        "openssl",
        &["pkey", "-in", &s(&key), "-pubout", "-out", &s(&public)],
    );
    (key, public)
}

/// Sign `payload` with openssl as cosign does: ECDSA over its SHA-256
/// (DER), or pure Ed25519.
pub fn openssl_sign(dir: &Path, key: &Path, kind: &str, payload: &[u8]) -> Vec<u8> {
    let input = dir.join("payload.tmp");
    std::fs::write(&input, payload).unwrap();
    let out = dir.join("sig.tmp");
    match kind {
        "p256" => run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                &s(key),
                "-out",
                &s(&out),
                &s(&input),
            ],
        ),
        _ => run(
            "openssl",
            &[
                "pkeyutl",
                "-sign",
                "-inkey",
                &s(key),
                "-rawin",
                "-in",
                &s(&input),
                "-out",
                &s(&out),
            ],
        ),
    };
    std::fs::read(out).unwrap()
}

/// A cosign simple-signing payload for `digest`.
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap()
}

fn verify_image(reg: &Registry, image: &str, key: &Path) -> crate::util::Run {
    vigil_in(
        reg.dir.path(),
        &[
            "verify-image",
            image,
            "--key",
            &s(key),
            "--insecure-registry",
            &reg.host,
        ],
    )
}

/// A scanner image built for amd64 and arm64 is pinned by its index
/// digest (what `docker buildx build --platform linux/amd64,linux/arm64`
/// pushes and what the kubelet reports when it pulls by it): `cosign sign`
/// of that digest verifies; a signature of one platform's manifest does
/// not stand for the index.
#[test]
fn verify_image_takes_a_multi_platform_index_by_its_digest() {
    if !tools() {
        return;
    }
    let reg = Registry::start("verify-index");
    let root = crate::util::rootfs_fixtures();
    let mut entries = Vec::new();
    for (arch, fixture) in [("amd64", "distroless"), ("arm64", "debian")] {
        let digest = reg.push_image(
            "vigil/scanner",
            arch,
            &[&root.path().join("rootfs").join(fixture)],
        );
        let manifest = curl(&[
            "-sSf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{}/v2/vigil/scanner/manifests/{digest}", reg.host),
        ]);
        assert_eq!(format!("sha256:{}", sha256_hex(&manifest)), digest);
        entries.push((arch, digest, manifest.len()));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries.iter().map(|(arch, digest, size)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        })).collect::<Vec<_>>()
    });
    reg.put_manifest("vigil/scanner", "multi", &index);
    let index_digest = format!(
        "sha256:{}",
        sha256_hex(&serde_json::to_vec(&index).unwrap())
    );
    let served = curl(&[
        "-sSf",
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json",
        &format!("http://{}/v2/vigil/scanner/manifests/multi", reg.host),
    ]);
    assert_eq!(format!("sha256:{}", sha256_hex(&served)), index_digest);
    let dir = reg.dir.path().to_path_buf();
    let (key, public) = openssl_key(&dir, "p256", "p256");
    let reference = format!("{}/vigil/scanner", reg.host);
    let image = format!("{reference}@{index_digest}");
    // One platform's manifest signed: the index is not.
    let amd64 = &entries[0].1;
    let one = payload(&reference, amd64);
    reg.put_signatures(
        "vigil/scanner",
        amd64,
        &[(one.clone(), openssl_sign(&dir, &key, "p256", &one))],
    );
    let r = verify_image(&reg, &image, &public);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no cosign signature found"),
        "{}",
        r.stderr
    );
    // The index digest signed, as `cosign sign IMAGE@INDEX_DIGEST` does.
    let signed = payload(&reference, &index_digest);
    reg.put_signatures(
        "vigil/scanner",
        &index_digest,
        &[(signed.clone(), openssl_sign(&dir, &key, "p256", &signed))],
    );
    let r = verify_image(&reg, &image, &public);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("verified: {image}")),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_image_against_a_real_registry_and_openssl_signatures() {
    if !tools() {
        return;
    }
    let reg = Registry::start("verify-image");
    let root = crate::util::rootfs_fixtures();
    let digest = reg.push_image(
        "vigil/scanner",
        "v1",
        &[&root.path().join("rootfs/distroless")],
    );
    let image = format!("{}/vigil/scanner@{digest}", reg.host);
    let dir = reg.dir.path().to_path_buf();
    let (p256_key, p256_pub) = openssl_key(&dir, "p256", "p256");
    let (ed_key, ed_pub) = openssl_key(&dir, "ed", "ed25519");

    // No signature yet.
    let r = verify_image(&reg, &image, &p256_pub);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no cosign signature found"),
        "{}",
        r.stderr
    );

    // A valid P-256 signature passes; the Ed25519 key is another key.
    let good = payload(&format!("{}/vigil/scanner", reg.host), &digest);
    let sig = openssl_sign(&dir, &p256_key, "p256", &good);
    reg.put_signatures("vigil/scanner", &digest, &[(good.clone(), sig.clone())]);
    let r = verify_image(&reg, &image, &p256_pub);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("verified: {image}")) && r.stdout.contains("ecdsa-p256-sha256"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("from tag {}.sig", digest.replace(':', "-"))),
        "{}",
        r.stdout
    );
    let r = verify_image(&reg, &image, &ed_pub);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("verifies with key") && r.stderr.contains("another key"),
        "{}",
        r.stderr
    );

    // An Ed25519 signature beside it: both keys now verify.
    let ed_sig = openssl_sign(&dir, &ed_key, "ed25519", &good);
    reg.put_signatures(
        "vigil/scanner",
        &digest,
        &[(good.clone(), sig.clone()), (good.clone(), ed_sig)],
    );
    let r = verify_image(&reg, &image, &ed_pub);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ed25519"), "{}", r.stdout);

    // A signature by the key, for another digest.
    let other = format!("sha256:{}", "ab".repeat(32));
    let elsewhere = payload("x", &other);
    let other_sig = openssl_sign(&dir, &p256_key, "p256", &elsewhere);
    reg.put_signatures("vigil/scanner", &digest, &[(elsewhere, other_sig)]);
    let r = verify_image(&reg, &image, &p256_pub);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("is for {other}, not the pinned {digest}")),
        "{}",
        r.stderr
    );

    // A tampered payload uploaded with the original signature.
    let tampered = String::from_utf8(good.clone())
        .unwrap()
        .replace("cosign container", "cosign  container");
    reg.put_signatures(
        "vigil/scanner",
        &digest,
        &[(tampered.into_bytes(), sig.clone())],
    );
    let r = verify_image(&reg, &image, &p256_pub);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("changed after signing"), "{}", r.stderr);

    // The signed payload altered in the registry's storage: the blob no
    // longer matches its digest.
    reg.put_signatures("vigil/scanner", &digest, &[(good.clone(), sig)]);
    assert_eq!(verify_image(&reg, &image, &p256_pub).code, 0);
    let blob = reg.blob_file(&format!("sha256:{}", sha256_hex(&good)));
    let altered = String::from_utf8(std::fs::read(&blob).unwrap())
        .unwrap()
        .replace(&reg.host, &reg.host.replace("127", "721"));
    std::fs::write(&blob, altered).unwrap();
    let r = verify_image(&reg, &image, &p256_pub);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not match its digest"),
        "{}",
        r.stderr
    );

    // A tag instead of a digest is bad input.
    let r = verify_image(&reg, &format!("{}/vigil/scanner:v1", reg.host), &p256_pub);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not pinned by digest"), "{}", r.stderr);

    // An unreachable registry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("127.0.0.1:{closed}/vigil/scanner@{digest}");
    let r = vigil_in(
        reg.dir.path(),
        &[
            "verify-image",
            &unreachable,
            "--key",
            &s(&p256_pub),
            "--insecure-registry",
            &format!("127.0.0.1:{closed}"),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot reach registry 127.0.0.1:{closed}")),
        "{}",
        r.stderr
    );

    // Without --insecure-registry vigil speaks only HTTPS: the plain-HTTP
    // registry is not reached.
    let r = vigil_in(
        reg.dir.path(),
        &["verify-image", &image, "--key", &s(&p256_pub)],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach registry"), "{}", r.stderr);
}

/// A scripted registry on 127.0.0.1: each connection's request head is
/// read, then `answer` writes what it likes (threads, one per connection).
/// Returns `host:port`.
fn scripted_registry(answer: fn(&str, &mut std::net::TcpStream)) -> String {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if sock.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                answer(&String::from_utf8_lossy(&head), &mut sock);
            });
        }
    });
    host
}

/// `vigil verify-image` of an image at the scripted registry `host` (plain
/// HTTP allowed), with `extra` flags; killed (a failure) after 30 s.
fn verify_image_at(host: &str, extra: &[&str]) -> crate::util::Run {
    let image = format!("{host}/vigil@sha256:{}", "a".repeat(64));
    let key = crate::util::repo().join("fixtures/cosign/key.pub");
    let mut args = vec![
        "verify-image",
        &image,
        "--key",
        key.to_str().unwrap(),
        "--insecure-registry",
        host,
    ];
    args.extend_from_slice(extra);
    crate::util::vigil_with_deadline(&crate::util::repo(), &args, b"", 30)
}

/// Every request answered with a body trickled one byte every 200 ms.
fn trickle(_: &str, sock: &mut std::net::TcpStream) {
    use std::io::Write as _;
    let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: 100000\r\n\r\n");
    for _ in 0..100_000 {
        if sock.write_all(b" ").is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A registry that answers every request with a body trickled one byte
/// every 200 ms: `--registry-timeout` cuts it off, and the run says why.
#[test]
fn a_trickling_registry_is_cut_at_the_timeout_given() {
    let host = scripted_registry(trickle);
    let started = std::time::Instant::now();
    let r = verify_image_at(
        &host,
        &["--registry-timeout", "1", "--registry-min-rate", "4096"],
    );
    let took = started.elapsed();
    crate::util::figure(&format!(
        "a trickling registry under --registry-timeout 1: verify-image ended after {took:?}"
    ));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("deadline"), "{said}");
    // The deadline is 1 s plus the 4 MiB manifest cap at 4 MiB/s, per
    // request: seconds, not the 100,000 × 200 ms the registry would take.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// The policy's `limits.registryTimeout` and `registryMinRate` set the
/// same deadlines for a run: the image target is an error result in
/// seconds, and says why.
#[test]
fn the_policy_sets_the_registry_deadlines() {
    let host = scripted_registry(trickle);
    let dir = TempDir::new("policy-deadline");
    std::fs::write(
        dir.path().join("p.yaml"),
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: slow}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{image: 'registry:{host}/vigil@sha256:{}'}}\n  limits: {{registryTimeout: 1s, registryMinRate: 4096}}\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let profiles = crate::util::repo().join("policies/profiles");
    let started = std::time::Instant::now();
    let r = vigil_in(
        dir.path(),
        &[
            "run",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--insecure-registry",
            &host,
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
            "--format",
            "json",
        ],
    );
    let took = started.elapsed();
    assert_eq!(r.code, 3, "an error result: {}", r.stderr);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let error = summary[0]["targets"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("deadline"), "{error}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// A registry that redirects every request to itself: the request ends
/// after 5 redirects with a message that says so.
#[test]
fn a_redirect_loop_ends_with_a_clear_error() {
    fn redirect(head: &str, sock: &mut std::net::TcpStream) {
        use std::io::Write as _;
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let _ = write!(
            sock,
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }
    let host = scripted_registry(redirect);
    let started = std::time::Instant::now();
    let r = verify_image_at(&host, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("more than 5 redirects"), "{said}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// A registry that accepts the request and never answers: two SIGINTs
/// stop the run at once (the fetch selects on the run's stop), the bundle
/// is still sealed, and no download directory is left behind.
#[test]
fn a_second_signal_ends_a_stalled_registry_fetch_at_once() {
    stalled_fetch_stopped_by(&["INT", "INT"], "30s", 3);
}

/// One SIGTERM during a stalled fetch: the fetch may go on for the
/// policy's grace period, then ends; the same clean end.
#[test]
fn sigterm_ends_a_stalled_registry_fetch_after_the_grace_period() {
    stalled_fetch_stopped_by(&["TERM"], "1s", 4);
}

/// Send `signals` (200 ms apart) to a run whose registry never answers;
/// it must end within `within_s` seconds of the last, with exit 3 (a run
/// with error results), the target an error saying why, and no download
/// directory left.
fn stalled_fetch_stopped_by(signals: &[&str], grace: &str, within_s: u64) {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let mut b = [0u8; 4096];
            let _ = sock.read(&mut b);
            held.push(sock); // never answered, never closed
        }
    });
    let dir = TempDir::new("stalled-fetch");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let repo = crate::util::repo();
    std::fs::write(
        dir.path().join("p.yaml"),
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: stall}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{image: 'registry:{host}/vigil@sha256:{}'}}\n  limits: {{gracePeriod: {grace}}}\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "run",
            "p.yaml",
            repo.join("policies/profiles").to_str().unwrap(),
            "--insecure-registry",
            &host,
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
        ])
        .current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the fetch is under way (its download directory exists).
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tmp).unwrap().next().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the fetch never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let mut stopped = std::time::Instant::now();
    for (i, sig) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        stopped = std::time::Instant::now();
        assert!(
            Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }
    let out = child.wait_with_output().unwrap();
    let took = stopped.elapsed();
    crate::util::figure(&format!(
        "a stalled registry fetch: the run ended {took:?} after {signals:?} (grace period {grace})"
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < std::time::Duration::from_secs(within_s),
        "{signals:?} took {took:?} to end the run: {stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{signals:?}: {stderr}");
    assert!(
        stderr.contains("stopped by a signal while waiting for the registry"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `verify-image` keeps the default signal handling: SIGTERM during a
/// registry wait that never ends stops it at once.
#[test]
fn sigterm_ends_verify_image_waiting_on_a_stalled_registry() {
    fn hold(_: &str, sock: &mut std::net::TcpStream) {
        use std::io::Read as _;
        let mut b = [0u8; 1];
        let _ = sock.read(&mut b); // never answered
    }
    let host = scripted_registry(hold);
    let image = format!("{host}/vigil@sha256:{}", "a".repeat(64));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["verify-image", &image, "--key"])
        .arg(crate::util::repo().join("fixtures/cosign/key.pub"))
        .args(["--insecure-registry", &host])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Give it time to connect and wait; then stop it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stopped = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let took = stopped.elapsed();
    crate::util::figure(&format!(
        "verify-image on a stalled registry ended {took:?} after SIGTERM"
    ));
    assert!(!status.success());
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

/// `vigil attest --push` against the real registry: the scanned image's
/// verdict lands under `sha256-<hex>.att` as `cosign attest` stores it, a
/// second attestation is appended (the same one is not), and an
/// independent verifier written here from the cosign attestation and DSSE
/// specs (curl for the registry, base64 by hand, PAE by hand, `openssl
/// pkeyutl` for the Ed25519 signature) accepts what vigil wrote.
/// `vigil verify-attestation` reads it back; another key, another digest,
/// `--require passed` on a WARNED verdict and a changed byte are refused.
#[test]
fn attestations_are_pushed_as_cosign_stores_them_and_verify_independently() {
    use base64::Engine as _;
    if !tools() {
        return;
    }
    let reg = Registry::start("attest");
    let root = crate::util::rootfs_fixtures();
    let digest = reg.push_image("team/app", "v1", &[&root.path().join("rootfs/debian")]);
    let dir = reg.dir.path().to_path_buf();
    let v = |args: &[&str]| crate::util::vigil_in(&dir, args);
    crate::util::signing_key(&dir);
    std::fs::write(
        dir.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: pipeline}\nspec:\n  profiles: [container-baseline]\n  targets: [{rootfs: .}]\n  threshold: {compliance: {min: 10}}\n  output: {signingKey: signer.key.pem}\n",
    )
    .unwrap();
    let image = format!("{}/team/app@{digest}", reg.host);
    let profiles = crate::util::repo().join("policies/profiles");
    let run = v(&[
        "run",
        "p.yaml",
        profiles.to_str().unwrap(),
        "--image",
        &format!("registry:{image}"),
        "--insecure-registry",
        &reg.host,
        "--plaintext",
        "--out",
        "out",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary[0]["targets"][0]["image_digest"], digest.as_str());
    let bundle = format!("out/pipeline/{}", summary[0]["run_id"].as_str().unwrap());
    let attest = |url: &str| {
        crate::util::attest_in(
            &dir,
            &bundle,
            "verdicts",
            &["--url", url, "--push", "--insecure-registry", &reg.host],
        )
    };
    let a = attest("https://ci.example/job/1");
    assert_eq!(a.code, 0, "{}", a.stderr);
    let tag = format!("{}.att", digest.replace(':', "-"));
    assert!(
        a.stdout.contains("WARNED") && a.stdout.contains(&format!("to {tag}")),
        "{}",
        a.stdout
    );
    // The same envelope again is not appended; another one is.
    assert_eq!(attest("https://ci.example/job/1").code, 0);
    assert_eq!(attest("https://ci.example/job/2").code, 0);

    // The independent verifier: the .att manifest's DSSE layers.
    let manifest: serde_json::Value = serde_json::from_slice(&curl(&[
        "-sSf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/team/app/manifests/{tag}", reg.host),
    ]))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest:#}");
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, layer) in layers.iter().enumerate() {
        assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
        assert_eq!(
            layer["annotations"]["predicateType"],
            "https://in-toto.io/attestation/test-result/v0.1"
        );
        let blob = curl(&[
            "-sSf",
            &format!(
                "http://{}/v2/team/app/blobs/{}",
                reg.host,
                layer["digest"].as_str().unwrap()
            ),
        ]);
        assert_eq!(
            format!("sha256:{}", sha256_hex(&blob)),
            layer["digest"].as_str().unwrap()
        );
        let env: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
        let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
        let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(st["subject"][0]["digest"]["sha256"], &digest[7..]);
        assert_eq!(st["subject"][0]["name"], format!("{}/team/app", reg.host));
        assert_eq!(st["predicate"]["result"], "WARNED");
        assert!(
            !st["predicate"]["failedTests"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            st["predicate"]["url"],
            format!("https://ci.example/job/{}", i + 1)
        );
        // PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body
        let mut pae = format!(
            "DSSEv1 {} application/vnd.in-toto+json {} ",
            "application/vnd.in-toto+json".len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(&payload);
        std::fs::write(dir.join("pae.bin"), &pae).unwrap();
        let sig = b64
            .decode(env["signatures"][0]["sig"].as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join("sig.bin"), &sig).unwrap();
        let checked = std::process::Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "signer.pub.pem",
                "-rawin",
                "-in",
                "pae.bin",
                "-sigfile",
                "sig.bin",
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "openssl refused layer {i}: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
    }

    // vigil reads it back.
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-attestation",
            &image,
            "--insecure-registry",
            &reg.host,
        ];
        args.extend_from_slice(extra);
        v(&args)
    };
    let r = verify(&["--key", "signer.pub.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("result WARNED") && r.stdout.contains(&format!("tag {tag}")),
        "{}",
        r.stdout
    );
    let r = verify(&["--key", "signer.pub.pem", "--require", "passed"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is WARNED, not PASSED"), "{}", r.stderr);
    v(&["keygen", "signing", "--out", "other"]);
    let r = verify(&["--key", "other.pub.pem"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("signed by key"), "{}", r.stderr);
    let r = verify(&[
        "--key",
        "signer.pub.pem",
        "--predicate-type",
        "https://slsa.dev/provenance/v1",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Another image of the same repository has no attestation.
    let other = reg.push_image("team/app", "v2", &[&root.path().join("rootfs/alpine")]);
    let r = v(&[
        "verify-attestation",
        &format!("{}/team/app@{other}", reg.host),
        "--key",
        "signer.pub.pem",
        "--insecure-registry",
        &reg.host,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no attestation"), "{}", r.stderr);
    // A changed byte in a stored envelope: its digest no longer matches.
    for layer in layers {
        let file = reg.blob_file(layer["digest"].as_str().unwrap());
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.iter().position(|b| *b == b'{').unwrap();
        bytes[at] = b' ';
        std::fs::write(&file, bytes).unwrap();
    }
    let r = verify(&["--key", "signer.pub.pem"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

/// An image pinned by its multi-platform index: vigil scans this machine's
/// platform manifest, and the verdict names both digests and is stored
/// under both, so an admission controller that checks the digest the pod
/// names (the index) finds it.
#[test]
fn a_verdict_on_an_index_pinned_image_is_found_by_the_index_digest() {
    if !tools() {
        return;
    }
    let reg = Registry::start("attest-index");
    let root = crate::util::rootfs_fixtures();
    let platform = reg.push_image("team/multi", "v1", &[&root.path().join("rootfs/debian")]);
    let manifest = curl(&[
        "-sSf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/team/multi/manifests/{platform}", reg.host),
    ]);
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": platform, "size": manifest.len(), "platform": {"os": "linux", "architecture": arch}}]
    });
    reg.put_manifest("team/multi", "multi", &index);
    let index_digest = format!(
        "sha256:{}",
        sha256_hex(&serde_json::to_vec(&index).unwrap())
    );
    let dir = reg.dir.path().to_path_buf();
    let v = |args: &[&str]| crate::util::vigil_in(&dir, args);
    crate::util::signing_key(&dir);
    std::fs::write(
        dir.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: multi}\nspec:\n  profiles: [container-baseline]\n  targets: [{rootfs: .}]\n  threshold: {compliance: {min: 10}}\n  output: {signingKey: signer.key.pem}\n",
    )
    .unwrap();
    let profiles = crate::util::repo().join("policies/profiles");
    let source = format!("registry:{}/team/multi@{index_digest}", reg.host);
    let run = v(&[
        "run",
        "p.yaml",
        profiles.to_str().unwrap(),
        "--image",
        &source,
        "--insecure-registry",
        &reg.host,
        "--plaintext",
        "--out",
        "out",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary[0]["targets"][0]["image_digest"], platform.as_str());
    let bundle = format!("out/multi/{}", summary[0]["run_id"].as_str().unwrap());
    let a = crate::util::attest_in(
        &dir,
        &bundle,
        "verdicts",
        &["--push", "--insecure-registry", &reg.host],
    );
    assert_eq!(a.code, 0, "{}", a.stderr);
    for d in [&platform, &index_digest] {
        assert!(
            a.stdout
                .contains(&format!("to {}.att", d.replace(':', "-"))),
            "{}",
            a.stdout
        );
        let r = v(&[
            "verify-attestation",
            &format!("{}/team/multi@{d}", reg.host),
            "--key",
            "signer.pub.pem",
            "--insecure-registry",
            &reg.host,
        ]);
        assert_eq!(r.code, 0, "{d}: {}", r.stderr);
    }
    let st = crate::util::statement_payload_of(&dir.join(format!(
        "verdicts/{}.intoto.json",
        platform.replace(':', "-")
    )));
    let subjects: Vec<&str> = st["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["digest"]["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, [&platform[7..], &index_digest[7..]]);
}
