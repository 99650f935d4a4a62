//! Image scans against real tools: layouts built by `umoci` (several
//! layers, whiteouts, a replaced directory, hard links), converted by
//! `skopeo` to oci-archive, docker-archive and zstd layers and pushed to
//! Debian's `docker-registry`; every source must give the results of the
//! equivalent extracted root. Hostile layouts are written by Python's
//! tarfile, independently of vigil.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::registry::{Registry, run, s, tools};
use crate::util::{TempDir, is_root, prerequisite, repo, vigil_in};

/// An image built layer by layer with umoci, and the same steps applied to
/// a plain directory: the root the image's final filesystem must equal.
struct Built {
    dir: TempDir,
    layout: PathBuf,
    root: PathBuf,
}

impl Built {
    fn new(name: &str) -> Built {
        let dir = TempDir::new(name);
        let layout = dir.path().join("oci");
        run("umoci", &["init", "--layout", &s(&layout)]);
        run("umoci", &["new", "--image", &format!("{}:v1", s(&layout))]);
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        Built { dir, layout, root }
    }

    /// One layer: `change` applied to the image's unpacked root, then
    /// repacked (umoci writes the whiteouts), and to the plain root.
    fn layer(&self, change: impl Fn(&Path)) {
        let image = format!("{}:v1", s(&self.layout));
        let bundle = self.dir.path().join("bundle");
        let _ = std::fs::remove_dir_all(&bundle);
        run("umoci", &["unpack", "--image", &image, &s(&bundle)]);
        change(&bundle.join("rootfs"));
        run("umoci", &["repack", "--image", &image, &s(&bundle)]);
        change(&self.root);
    }
}

const PROFILE: &str = "\
apiVersion: vigil/v1
kind: Profile
metadata: {name: layers}
controls:
  - id: L-1
    title: a file deleted in an upper layer is gone
    impact: 0.5
    check: {file: /etc/gshadow, expect: {exists: false}}
  - id: L-2
    title: a replaced directory holds only the new content
    impact: 0.5
    check: {file: /opt/app/config.yaml, expect: {content_matches: '^version: 2'}}
  - id: L-3
    title: the replaced directory's old files are gone
    impact: 0.5
    check: {file: /opt/app/old.txt, expect: {exists: false}}
  - id: L-4
    title: a hard link reads its target's content
    impact: 0.5
    check: {file: /usr/local/bin/tool-link, expect: {type: file, content_matches: '^#!/bin/sh'}}
  - id: L-5
    title: a symlink into the replaced directory resolves in the image
    impact: 0.5
    check: {file: /etc/app.yaml, expect: {content_matches: 'version: 2'}}
  - id: L-6
    title: nothing under /opt is world-writable
    impact: 0.5
    check: {directory: /opt, expect: {no_world_writable: true}}
  - id: L-7
    title: a file that is not there is absent, in every source
    impact: 0.3
    check: {file: /opt/app/never, expect: {exists: true}}
";

/// The fixture debian root, then: gshadow deleted, /opt/app replaced, a
/// hard link and a symlink added, a world-writable file in /opt.
fn build_layers(name: &str) -> Built {
    let b = Built::new(name);
    let fx = crate::util::rootfs_fixtures();
    let debian = fx.path().join("rootfs/debian");
    b.layer(|root| {
        run("cp", &["-a", &format!("{}/.", s(&debian)), &s(root)]);
        std::fs::create_dir_all(root.join("opt/app")).unwrap();
        std::fs::write(root.join("opt/app/config.yaml"), "version: 1\n").unwrap();
        std::fs::write(root.join("opt/app/old.txt"), "old\n").unwrap();
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        std::fs::write(root.join("usr/local/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    });
    b.layer(|root| {
        std::fs::remove_file(root.join("etc/gshadow")).unwrap();
        std::fs::remove_dir_all(root.join("opt/app")).unwrap();
        std::fs::create_dir_all(root.join("opt/app")).unwrap();
        std::fs::write(root.join("opt/app/config.yaml"), "version: 2\n").unwrap();
        std::fs::hard_link(
            root.join("usr/local/bin/tool"),
            root.join("usr/local/bin/tool-link"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../opt/app/config.yaml", root.join("etc/app.yaml")).unwrap();
        std::fs::write(root.join("opt/scratch"), "x").unwrap();
        std::fs::set_permissions(
            root.join("opt/scratch"),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
    });
    b
}

/// control id → statuses, per target id, from a run's HDF files.
fn results(out: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut all = BTreeMap::new();
    for policy in std::fs::read_dir(out).unwrap().flatten() {
        for run in std::fs::read_dir(policy.path()).unwrap().flatten() {
            for f in std::fs::read_dir(run.path().join("targets"))
                .unwrap()
                .flatten()
            {
                if !f.file_name().to_string_lossy().ends_with(".hdf.json") {
                    continue; // the target's inventory
                }
                let hdf: Value = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
                let mut controls = BTreeMap::new();
                for p in hdf["profiles"].as_array().unwrap() {
                    for c in p["controls"].as_array().unwrap() {
                        let st = c["results"].as_array().unwrap().iter().map(|r| {
                            format!(
                                "{} {}",
                                r["status"].as_str().unwrap(),
                                r["message"].as_str().unwrap_or_default()
                            )
                        });
                        controls.insert(c["id"].as_str().unwrap().to_string(), st.collect());
                    }
                }
                all.insert(
                    hdf["platform"]["target_id"].as_str().unwrap().to_string(),
                    controls,
                );
            }
        }
    }
    all
}

fn policy(dir: &Path, targets: &str) {
    std::fs::write(dir.join("layers.yaml"), PROFILE).unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: images}}\nspec:\n  profiles: [container-baseline, layers]\n  targets:\n{targets}"),
    )
    .unwrap();
}

fn scan(dir: &Path, extra: &[&str]) -> (crate::util::Run, Value) {
    let profiles = repo().join("policies/profiles");
    let mut args = vec![
        "run",
        "p.yaml",
        "layers.yaml",
        profiles.to_str().unwrap(),
        "--out",
        "out",
        "--plaintext",
        "--unsigned",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = vigil_in(dir, &args);
    let summary = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, summary)
}

#[test]
fn every_image_source_gives_the_extracted_roots_results() {
    if !tools()
        || !prerequisite(
            is_root(),
            "root (umoci keeps the fixtures' owners only as root)",
        )
    {
        return;
    }
    let b = build_layers("image-parity");
    let d = b.dir.path();
    let layout = format!("{}:v1", s(&b.layout));
    // The same image through skopeo: an OCI archive, a docker-archive,
    // zstd layers, and a registry.
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{layout}"),
            &format!("oci-archive:{}:v1", s(&d.join("image.tar"))),
        ],
    );
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{layout}"),
            &format!(
                "docker-archive:{}:vigil/images:v1",
                s(&d.join("docker.tar"))
            ),
        ],
    );
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-compress-format",
            "zstd",
            &format!("oci:{layout}"),
            &format!("oci:{}:v1", s(&d.join("zstd"))),
        ],
    );
    let reg = Registry::start("image-registry");
    let pushed = reg.push_layout(&layout, "vigil/images", "v1");
    policy(
        d,
        &format!(
            "    - {{rootfs: root}}\n    - {{image: 'oci-dir:oci:v1', name: dir}}\n    - {{image: 'oci-archive:image.tar', name: archive}}\n    - {{image: 'docker-archive:docker.tar', name: docker}}\n    - {{image: 'oci-dir:zstd:v1', name: zstd}}\n    - {{image: 'registry:{}/vigil/images@{pushed}', name: pushed}}\n",
            reg.host
        ),
    );
    let (r, summary) = scan(d, &["--insecure-registry", &reg.host]);
    assert!(matches!(r.code, 0 | 1), "{}\n{}", r.stderr, r.stdout);
    let all = results(&d.join("out"));
    let root = &all["rootfs/root"];
    // The layer controls say what the layers did.
    let status = |id: &str| root[id][0].split(' ').next().unwrap().to_string();
    for id in ["L-1", "L-2", "L-3", "L-4", "L-5"] {
        assert_eq!(status(id), "passed", "{id}: {:?}", root[id]);
    }
    assert_eq!(status("L-6"), "failed");
    assert_eq!(status("L-7"), "failed");
    assert_eq!(all.len(), 6, "{:?}", all.keys());
    for (id, controls) in &all {
        assert_eq!(controls, root, "{id} differs from the extracted root");
    }
    // Ids, HDF and summary name the digest scanned.
    let targets = summary[0]["targets"].as_array().unwrap();
    let pushed_target = targets
        .iter()
        .find(|t| t["id"].as_str().unwrap().starts_with("image/pushed@"))
        .unwrap();
    assert_eq!(pushed_target["image_digest"], pushed.as_str());
    assert_eq!(pushed_target["approach"], "image");
    assert!(
        pushed_target["id"]
            .as_str()
            .unwrap()
            .ends_with(&pushed[7..19])
    );
}

/// Whether python3 is here (it writes the hand-made layouts).
fn python() -> bool {
    prerequisite(
        Command::new("python3").arg("-V").output().is_ok(),
        "python3",
    )
}

/// Write an OCI layout by hand (Python's tarfile and hashlib): layers from
/// `entries` (a Python list expression of tarfile members), index.json,
/// manifest and config with diff_ids. Prints nothing; vigil is not involved.
fn python_layout(dir: &Path, layers_py: &str) {
    let script = format!(
        r#"
import hashlib, io, json, os, tarfile, gzip, sys
root = sys.argv[1]
os.makedirs(root + "/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(root + "/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d
def member(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.mode = mode; ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return (ti, data)
layers, diff_ids = [], []
for entries in {layers_py}:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    gz = gzip.compress(raw.getvalue(), mtime=0)
    layers.append({{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)}})
config = json.dumps({{"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
    "config": {{"User": "", "Env": ["PATH=/usr/bin", "DB_PASSWORD=hunter2", "API_TOKEN=", "KEY_FILE=/run/key"], "ExposedPorts": {{"22/tcp": {{}}}}, "Labels": {{"org.opencontainers.image.source": "x"}}}},
    "rootfs": {{"type": "layers", "diff_ids": diff_ids}}}}).encode()
manifest = json.dumps({{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)}},
    "layers": layers}}).encode()
m = blob(manifest)
json.dump({{"schemaVersion": 2, "manifests": [{{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": len(manifest)}}]}}, open(root + "/index.json", "w"))
open(root + "/oci-layout", "w").write('{{"imageLayoutVersion": "1.0.0"}}')
print(m)
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script, &s(dir)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (controls file for hostile cases) and the run of policy p.yaml.
const HOSTILE_PROFILE: &str = "\
apiVersion: vigil/v1
kind: Profile
metadata: {name: hostile}
controls:
  - id: H-1
    title: os-release read inside the image
    impact: 0.5
    check: {file: /etc/os-release, expect: {content_matches: 'ID=inside'}}
  - id: H-2
    title: the escaping link reads nothing from the host
    impact: 0.5
    check: {file: /etc/escape, expect: {content_matches: 'CANARY'}}
  - id: H-3
    title: the relative escaping link stays in the image
    impact: 0.5
    check: {file: /etc/up, expect: {content_matches: 'CANARY'}}
";

#[test]
fn hostile_layers_are_contained_and_altered_images_refused() {
    if !python() {
        return;
    }
    let dir = TempDir::new("image-hostile");
    let d = dir.path();
    let canary = d.join("canary");
    std::fs::write(&canary, "CANARY secret\n").unwrap();
    let layers = format!(
        r#"[[member("etc/", tarfile.DIRTYPE, mode=0o755), member("etc/os-release", data=b"ID=inside\n"),
            member("../../../../{c}", data=b"written outside"), member("/abs-file", data=b"abs"),
            member("etc/escape", tarfile.SYMTYPE, link="{c}"), member("etc/up", tarfile.SYMTYPE, link="../../../../../../{c}"),
            member("etc/fifo", tarfile.FIFOTYPE)]]"#,
        c = canary.display().to_string().trim_start_matches('/')
    )
    .replace("link=\"tmp", "link=\"/tmp");
    let layout = d.join("hostile");
    python_layout(&layout, &layers);
    std::fs::write(d.join("hostile.yaml"), HOSTILE_PROFILE).unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: hostile}\nspec:\n  profiles: [hostile]\n  targets:\n    - {image: 'oci-dir:hostile'}\n",
    )
    .unwrap();
    let scan = |extra: &[&str]| {
        let _ = std::fs::remove_dir_all(d.join("out"));
        let mut args = vec![
            "run",
            "p.yaml",
            "hostile.yaml",
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        vigil_in(d, &args)
    };
    let r = scan(&[]);
    assert!(matches!(r.code, 0 | 1), "{}\n{}", r.stderr, r.stdout);
    let all = results(&d.join("out"));
    let (_, controls) = all.iter().next().unwrap();
    assert!(controls["H-1"][0].starts_with("passed"), "{controls:?}");
    for id in ["H-2", "H-3"] {
        assert!(
            !controls[id][0].starts_with("passed"),
            "{id}: {:?}",
            controls[id]
        );
        assert!(
            !controls[id][0].contains("secret"),
            "{id} read the host's canary: {:?}",
            controls[id]
        );
    }
    // `../../../../x` is cleaned inside the image, as umoci and containerd
    // clean it: it names `/x` there, never a host path.
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "CANARY secret\n");
    // Nothing was written anywhere: no extraction.
    assert!(!d.join("abs-file").exists() && !Path::new("/abs-file").exists());

    // A tag-only registry reference is refused when planning.
    let r = vigil_in(
        d,
        &[
            "plan",
            "p.yaml",
            "hostile.yaml",
            "--image",
            "registry:127.0.0.1:5000/vigil:latest",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not pinned by digest"), "{}", r.stderr);

    // A layer altered after it was written: the target is an error result
    // naming the digest, no control passes.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_file = layout.join("blobs/sha256").join(&layer[7..]);
    let original = std::fs::read(&layer_file).unwrap();
    let mut altered = original.clone();
    let n = altered.len();
    altered[n - 9] ^= 0xff; // the gzip trailer's CRC
    std::fs::write(&layer_file, &altered).unwrap();
    let r = scan(&[]);
    assert_eq!(r.code, 3, "{}\n{}", r.stderr, r.stdout);
    assert!(
        r.stdout.contains("does not match its digest") || r.stdout.contains("crc"),
        "{}",
        r.stdout
    );
    let all = results(&d.join("out"));
    assert!(
        all.values()
            .next()
            .unwrap()
            .values()
            .all(|v| v[0].starts_with("error"))
    );

    // A missing layer.
    std::fs::remove_file(&layer_file).unwrap();
    let r = scan(&[]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stdout.contains("missing from the image: layer"),
        "{}",
        r.stdout
    );
    std::fs::write(&layer_file, &original).unwrap();

    // The manifest names a layer by a digest its bytes do not have (and the
    // index is updated to the new manifest, as an attacker would).
    let other = format!("sha256:{}", crate::registry::sha256_hex(b"other"));
    std::fs::copy(&layer_file, layout.join("blobs/sha256").join(&other[7..])).unwrap();
    let mut m2 = manifest.clone();
    m2["layers"][0]["digest"] = Value::String(other);
    let m2_bytes = serde_json::to_vec(&m2).unwrap();
    let m2_digest = format!("sha256:{}", crate::registry::sha256_hex(&m2_bytes));
    std::fs::write(layout.join("blobs/sha256").join(&m2_digest[7..]), &m2_bytes).unwrap();
    let mut i2 = index.clone();
    i2["manifests"][0]["digest"] = Value::String(m2_digest.clone());
    i2["manifests"][0]["size"] = Value::from(m2_bytes.len());
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&i2).unwrap()).unwrap();
    let r = scan(&[]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stdout.contains("does not match its digest"),
        "{}",
        r.stdout
    );

    // A FIFO where a layer should be is refused, never read (no hang).
    std::fs::remove_file(&layer_file).unwrap();
    run("mkfifo", &[&s(&layer_file)]);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(d.join("out"));
    let r = crate::util::vigil_with_deadline(
        d,
        &[
            "run",
            "p.yaml",
            "hostile.yaml",
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
            "--format",
            "json",
        ],
        b"",
        60,
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("not a regular file"), "{}", r.stdout);
    std::fs::remove_file(&layer_file).unwrap();
    std::fs::write(&layer_file, &original).unwrap();
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&i2).unwrap()).unwrap();

    // index.json names a manifest whose bytes are not its digest.
    std::fs::write(layout.join("blobs/sha256").join(&m2_digest[7..]), b"{}").unwrap();
    let r = vigil_in(d, &["plan", "p.yaml", "hostile.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not match its digest"),
        "{}",
        r.stderr
    );
}

#[test]
fn whiteouts_opaque_directories_and_links_follow_the_oci_image_spec() {
    if !python() {
        return;
    }
    let dir = TempDir::new("image-whiteouts");
    let d = dir.path();
    // Lower: d/{a,b}, gone/x, keep. Upper: d made opaque and given c, gone
    // whited out, a hard link to the lower keep, and e/f beside its own
    // whiteout (which hides only lower layers' e/f).
    python_layout(
        &d.join("layout"),
        r#"[[member("d/a", data=b"a"), member("d/b", data=b"b"), member("gone/x", data=b"x"),
             member("keep", data=b"kept content"), member("e/f", data=b"lower f")],
            [member("d/.wh..wh..opq"), member("d/c", data=b"c"), member(".wh.gone"),
             member("h", tarfile.LNKTYPE, link="keep"), member("e/f", data=b"upper f"), member("e/.wh.f")]]"#,
    );
    std::fs::write(
        d.join("wh.yaml"),
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: wh}\ncontrols:\n\
  - {id: W-1, title: opaque hides the lower entries, impact: 0.5, check: {file: /d/a, expect: {exists: false}}}\n\
  - {id: W-2, title: opaque keeps the upper entries, impact: 0.5, check: {file: /d/c, expect: {content_matches: '^c$'}}}\n\
  - {id: W-3, title: a whited-out directory is gone with its files, impact: 0.5, check: {all: [{file: /gone, expect: {exists: false}}, {file: /gone/x, expect: {exists: false}}]}}\n\
  - {id: W-4, title: a hard link to a lower layer reads its content, impact: 0.5, check: {file: /h, expect: {content_matches: '^kept content$'}}}\n\
  - {id: W-5, title: a whiteout hides only lower layers, impact: 0.5, check: {file: /e/f, expect: {content_matches: '^upper f$'}}}\n\
  - {id: W-6, title: the directory walk sees the final tree, impact: 0.5, check: {directory: /d, expect: {no_world_writable: true}}}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: wh}\nspec:\n  profiles: [wh]\n  targets:\n    - {image: 'oci-dir:layout'}\n",
    )
    .unwrap();
    let r = vigil_in(
        d,
        &[
            "run",
            "p.yaml",
            "wh.yaml",
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    let all = results(&d.join("out"));
    for (id, statuses) in all.values().next().unwrap() {
        assert!(
            statuses.iter().all(|s| s.starts_with("passed")),
            "{id}: {statuses:?}"
        );
    }
}

#[test]
fn the_image_baseline_judges_the_config_and_never_records_a_secret_value() {
    if !python() {
        return;
    }
    let dir = TempDir::new("image-config");
    let d = dir.path();
    python_layout(
        &d.join("layout"),
        r#"[[member("etc/os-release", data=b"ID=inside\n")]]"#,
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(d.join("layout/index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The policy's own target is a root; --image replaces it.
    std::fs::create_dir_all(d.join("root/etc")).unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: cfg}\nspec:\n  profiles: [image-baseline]\n  targets:\n    - {rootfs: root}\n",
    )
    .unwrap();
    let profiles = repo().join("policies/profiles");
    let r = vigil_in(
        d,
        &[
            "run",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--image",
            "oci-dir:layout",
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
            "--format",
            "json",
        ],
    );
    assert!(matches!(r.code, 0 | 1), "{}\n{}", r.stderr, r.stdout);
    let all = results(&d.join("out"));
    let (id, controls) = all.iter().next().unwrap();
    assert_eq!(id, &format!("image/layout@{}", &digest[7..19]));
    let status = |c: &str| controls[c][0].split(' ').next().unwrap().to_string();
    // USER unset (root), DB_PASSWORD with a value, no healthcheck, port 22,
    // the source label set, built 2026-01-02.
    assert_eq!(status("IB-01"), "failed", "{:?}", controls["IB-01"]);
    assert_eq!(status("IB-02"), "failed");
    assert!(
        controls["IB-02"][0].contains("DB_PASSWORD"),
        "{:?}",
        controls["IB-02"]
    );
    assert!(
        !controls["IB-02"][0].contains("API_TOKEN") && !controls["IB-02"][0].contains("KEY_FILE"),
        "{:?}",
        controls["IB-02"]
    );
    assert_eq!(status("IB-03"), "failed");
    assert_eq!(status("IB-04"), "failed");
    assert_eq!(status("IB-05"), "passed");
    // The secret's value is nowhere: not in stdout, stderr or any file.
    let mut everything = r.stdout.clone() + &r.stderr;
    for f in crate::util::files_under(&d.join("out")) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    assert!(!everything.contains("hunter2"), "a secret value leaked");
    // HDF's platform names the source and the digest scanned.
    let hdf_file = crate::util::files_under(&d.join("out"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".hdf.json"))
        .unwrap();
    let hdf: Value = serde_json::from_slice(&std::fs::read(hdf_file).unwrap()).unwrap();
    assert_eq!(hdf["platform"]["image_digest"], digest.as_str());
    assert!(
        hdf["platform"]["image"]
            .as_str()
            .unwrap()
            .starts_with("oci-dir:")
    );
    // A container-baseline control on the same image works as on a root;
    // an image control on a rootfs target is an error, never a pass.
    let _ = std::fs::remove_dir_all(d.join("out"));
    let r = vigil_in(
        d,
        &[
            "run",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
        ],
    );
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    let all = results(&d.join("out"));
    assert!(
        all["rootfs/root"]
            .values()
            .all(|v| v[0].starts_with("error")),
        "{all:?}"
    );
}

/// An image scan, and a pod in the test API server running that image (its
/// kubelet reports the image's digest as `imageID`) whose root has one
/// package upgraded and one file added: `vigil drift` reports exactly
/// those, and signs its report over both bundles' statements.
#[test]
fn drift_reports_what_changed_in_a_running_container() {
    if !tools() || !crate::util::root_and_busybox() {
        return;
    }
    let b = Built::new("image-drift");
    let d = b.dir.path();
    let fx = crate::util::rootfs_fixtures();
    let debian = fx.path().join("rootfs/debian");
    crate::util::install_busybox(&debian);
    b.layer(|root| {
        run("cp", &["-a", &format!("{}/.", s(&debian)), &s(root)]);
        std::fs::create_dir_all(root.join("opt/app")).unwrap();
        std::fs::write(root.join("opt/app/config.yaml"), "version: 1\n").unwrap();
    });
    let index: Value =
        serde_json::from_slice(&std::fs::read(b.layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The running container: the image's root, then changed at runtime.
    let live = d.join("live");
    run("cp", &["-a", &s(&b.root), &s(&live)]);
    let status = live.join("var/lib/dpkg/status");
    let db = std::fs::read_to_string(&status).unwrap();
    assert!(db.contains("Version: 3.0.13-1~deb12u1"));
    std::fs::write(
        &status,
        db.replace("Version: 3.0.13-1~deb12u1", "Version: 3.0.15-1~deb12u1"),
    )
    .unwrap();
    std::fs::write(live.join("opt/app/added.sh"), "#!/bin/sh\n").unwrap();
    let image_ref = format!("registry.example/app@{digest}");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app-0", "namespace": "shop", "uid": "uid-app-0"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": image_ref}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": image_ref,
            "imageID": format!("docker-pullable://{image_ref}"), "containerID": format!("containerd://{}", "ab".repeat(32)), "state": {"running": {}}}]}
    });
    let roots = std::collections::HashMap::from([(
        ("shop".to_string(), "app-0".to_string()),
        live.clone(),
    )]);
    let server = crate::fakeapi::FakeApiServer::start(d, vec![pod], roots);
    crate::util::signing_key(d);
    std::fs::write(
        d.join("drift.yaml"),
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: drift}\ncontrols:\n  - {id: D-1, title: /opt/app is owned by root, impact: 0.5, check: {directory: /opt/app, expect: {owner: root}}}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: shop}\nspec:\n  profiles: [container-baseline, drift]\n  targets:\n    - {namespace: shop, approach: api}\n",
    )
    .unwrap();
    let profiles = repo().join("policies/profiles");
    let sealed = [
        "--signing-key",
        "signer.key.pem",
        "--plaintext",
        "--format",
        "json",
    ];
    let image_run = vigil_in(
        d,
        &[
            &[
                "run",
                "p.yaml",
                "drift.yaml",
                profiles.to_str().unwrap(),
                "--image",
                "oci-dir:oci:v1",
                "--out",
                "img",
            ][..],
            &sealed[..],
        ]
        .concat(),
    );
    assert!(matches!(image_run.code, 0 | 1), "{}", image_run.stderr);
    // The cluster run: `vigil run p.yaml policies/profiles/ --out out …`.
    let runtime_run: crate::util::Run = crate::util::run_cmd(
        d,
        &server.kubeconfig,
        &["drift.yaml", "--signing-key", "signer.key.pem"],
    )
    .output()
    .unwrap()
    .into();
    assert!(matches!(runtime_run.code, 0 | 1), "{}", runtime_run.stderr);
    let bundle = |out: &str, summary: &str| {
        let v: Value = serde_json::from_str(summary).unwrap();
        format!("{out}/shop/{}", v[0]["run_id"].as_str().unwrap())
    };
    let (img, rt) = (
        bundle("img", &image_run.stdout),
        bundle("out", &runtime_run.stdout),
    );
    let r = vigil_in(
        d,
        &[
            "drift",
            &img,
            &rt,
            "--trusted-key",
            "signer.pub.pem",
            "--format",
            "json",
            "--fail-on-drift",
            "--attestation",
            "drift.dsse.json",
            "--signing-key",
            "signer.key.pem",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stderr, r.stdout);
    let drifts: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(drifts.as_array().unwrap().len(), 1, "{drifts}");
    let drift = &drifts[0];
    assert_eq!(drift["runtime"]["target"], "shop/app-0/app");
    assert_eq!(drift["image"]["digest"], digest.as_str());
    assert_eq!(
        drift["files_added"],
        serde_json::json!(["/opt/app/added.sh"]),
        "{drift}"
    );
    assert_eq!(drift["files_removed"], serde_json::json!([]), "{drift}");
    assert_eq!(drift["files_modified"], serde_json::json!([]), "{drift}");
    assert_eq!(
        drift["packages_changed"],
        serde_json::json!([{"name": "openssl:amd64", "image": "3.0.13-1~deb12u1", "runtime": "3.0.15-1~deb12u1"}]),
        "{drift}"
    );
    assert_eq!(drift["packages_added"], serde_json::json!({}));
    assert_eq!(drift["packages_removed"], serde_json::json!({}));
    assert_eq!(drift["controls"], serde_json::json!([]), "{drift}");
    // The signed report: an in-toto statement over both bundles' statements.
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(d.join("drift.dsse.json")).unwrap()).unwrap();
    use base64::Engine as _;
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["predicateType"],
        "https://vigil.dev/attestations/drift/v1"
    );
    let statement_digest = |b: &str| {
        crate::registry::sha256_hex(&std::fs::read(d.join(b).join("statement.dsse.json")).unwrap())
    };
    assert_eq!(
        payload["subject"][0]["digest"]["sha256"],
        statement_digest(&img).as_str()
    );
    assert_eq!(
        payload["subject"][1]["digest"]["sha256"],
        statement_digest(&rt).as_str()
    );
    assert_eq!(payload["predicate"]["drifted"], true);
    // Text form; and without --fail-on-drift it reports but exits 0.
    let r = vigil_in(d, &["drift", &img, &rt, "--trusted-key", "signer.pub.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("DRIFTED")
            && r.stdout
                .contains("package  changed   openssl:amd64 3.0.13-1~deb12u1 -> 3.0.15-1~deb12u1"),
        "{}",
        r.stdout
    );
    // A comparison of nothing is an error, never "no drift": the bundles
    // swapped, one kind twice, and an image no container runs.
    for (a, b, says) in [
        (&rt, &img, "holds no image scans"),
        (&img, &img, "holds no containers"),
        (&rt, &rt, "holds no image scans"),
    ] {
        let r = vigil_in(
            d,
            &[
                "drift",
                a,
                b,
                "--trusted-key",
                "signer.pub.pem",
                "--fail-on-drift",
            ],
        );
        assert_eq!(r.code, 2, "drift {a} {b}: {}", r.stderr);
        assert!(r.stderr.contains(says), "drift {a} {b}: {}", r.stderr);
    }
    let other_run = vigil_in(
        d,
        &[
            &[
                "run",
                "p.yaml",
                "drift.yaml",
                profiles.to_str().unwrap(),
                "--image",
                &format!(
                    "oci-dir:{}",
                    crate::util::repo().join("fixtures/images/demo").display()
                ),
                "--out",
                "other",
            ][..],
            &sealed[..],
        ]
        .concat(),
    );
    assert!(matches!(other_run.code, 0 | 1), "{}", other_run.stderr);
    let other = bundle("other", &other_run.stdout);
    let r = vigil_in(
        d,
        &[
            "drift",
            &other,
            &rt,
            "--trusted-key",
            "signer.pub.pem",
            "--fail-on-drift",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no container of the runtime bundle runs an image of the image bundle"),
        "{}",
        r.stderr
    );
    // A bundle that does not verify is refused.
    let r = vigil_in(
        d,
        &["drift", &img, &rt, "--trusted-key", "fixtures-nothing.pem"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}
