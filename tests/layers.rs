//! Image layer semantics against the reference: umoci. Random layer stacks
//! (seeded) are written as OCI layouts by a tar writer of this file's own
//! (independent of vigil's reader), unpacked by `umoci unpack` (what a
//! runtime gives), and scanned both ways: vigil's image scan of the
//! layout, and vigil's rootfs scan of umoci's root. The shipped container
//! baseline's results and the inventory (every path with type, mode,
//! owner, size and content digest) must be identical. Where umoci refuses
//! an image, vigil must refuse it too. Named regression cases (one per
//! class of layer that once scanned differently) run first.
//!
//! `cargo test --test integration layers` runs `VIGIL_LAYER_SEEDS` seeds
//! (300 by default); `differential_layers_many_seeds` (ignored) runs
//! 3000.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};
use vigil::facts::{FactRequest, Facts, WalkRequest};
use vigil::policy::model::Approach;
use vigil::report::inventory::Inventory;

use crate::util::{TempDir, is_root, prerequisite, repo};

// ---------------------------------------------------------------- tar

/// One tar member, as bytes: the writer puts any name in it.
#[derive(Clone, Debug)]
struct Entry {
    name: Vec<u8>,
    flag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    data: Vec<u8>,
    link: Vec<u8>,
}

impl Entry {
    fn new(name: impl AsRef<[u8]>, flag: u8) -> Entry {
        Entry {
            name: name.as_ref().to_vec(),
            flag,
            mode: if flag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            data: Vec::new(),
            link: Vec::new(),
        }
    }
    fn file(name: impl AsRef<[u8]>, data: &[u8], mode: u32) -> Entry {
        Entry {
            data: data.to_vec(),
            mode,
            ..Entry::new(name, b'0')
        }
    }
    fn dir(name: impl AsRef<[u8]>) -> Entry {
        Entry::new(name, b'5')
    }
    fn symlink(name: impl AsRef<[u8]>, to: impl AsRef<[u8]>) -> Entry {
        Entry {
            link: to.as_ref().to_vec(),
            mode: 0o777,
            ..Entry::new(name, b'2')
        }
    }
    fn hardlink(name: impl AsRef<[u8]>, to: impl AsRef<[u8]>) -> Entry {
        Entry {
            link: to.as_ref().to_vec(),
            ..Entry::new(name, b'1')
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{v:0n$o}");
    field[..n].copy_from_slice(s.as_bytes());
    field[n] = 0;
}

fn header(name: &[u8], flag: u8, e: &Entry, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], u64::from(e.uid));
    octal(&mut h[116..124], u64::from(e.gid));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = flag;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..265].copy_from_slice(b"ustar  \0"); // GNU: long names as 'L'/'K'
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

/// A tar stream. `cut_end`: no padding after the last entry's data and no
/// end blocks, as `umoci insert` writes layers.
fn tar(entries: &[Entry], cut_end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (long, flag) in [(&e.name, b'L'), (&e.link, b'K')] {
            if long.len() > 100 {
                let mut data = long.clone();
                data.push(0);
                out.extend_from_slice(&header(
                    b"././@LongLink",
                    flag,
                    &Entry::new("", flag),
                    data.len() as u64,
                    b"",
                ));
                out.extend_from_slice(&data);
                pad(&mut out);
            }
        }
        out.extend_from_slice(&header(&e.name, e.flag, e, e.data.len() as u64, &e.link));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    if cut_end {
        // Drop the last entry's padding.
        if let Some(last) = entries.last() {
            let rem = last.data.len() % 512;
            if rem != 0 {
                out.truncate(out.len() - (512 - rem));
            }
        }
    } else {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Write an OCI layout of these layers (each a tar stream) at `dir`, tag
/// `v1`. `diff_ids` overrides the config's list.
fn layout(dir: &Path, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    let mut descs = Vec::new();
    let mut ids = Vec::new();
    for l in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, l).unwrap();
        let (d, n) = put(&gz.finish().unwrap());
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
        ids.push(sha(l));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.unwrap_or(ids)},
    });
    let (cd, cn) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    });
    let (md, mn) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

// ---------------------------------------------------------------- scans

/// What one scan saw: every control's results, and the inventory.
#[derive(Debug, PartialEq)]
struct Seen {
    controls: BTreeMap<String, Vec<(String, String)>>,
    inventory: Inventory,
}

struct Oracle {
    profile: vigil::policy::model::Profile,
}

impl Oracle {
    fn new() -> Oracle {
        let (set, diags) = vigil::policy::load(&[repo().join("policies/profiles")]);
        assert!(diags.is_empty(), "{diags:?}");
        Oracle {
            profile: set.profile("container-baseline").unwrap().value.clone(),
        }
    }

    /// The request: the baseline's facts, plus `paths` stat'ed and read,
    /// `dirs` listed, and a walk of the whole tree recording every entry.
    fn request(&self, paths: &[String], dirs: &[String]) -> FactRequest {
        let mut req = vigil::facts::compile::compile(&self.profile.controls, 1 << 20);
        req.stat.insert("/".into());
        for p in paths {
            req.read.insert(p.clone());
        }
        for d in dirs {
            req.read_dirs.insert(d.clone());
        }
        req.walks.insert(WalkRequest {
            path: "/".into(),
            depth: 64,
            limit: 100_000,
            all: true,
        });
        req
    }

    fn seen(&self, mut facts: Facts, req: &FactRequest) -> Seen {
        facts.image = None;
        let ctx = vigil::checks::Context::new(Approach::Local);
        let controls = self
            .profile
            .controls
            .iter()
            .map(|c| {
                let results = vigil::checks::evaluate(c, &facts, &ctx)
                    .into_iter()
                    .map(|r| {
                        (
                            format!("{:?}", r.status),
                            format!("{} | {}", r.code_desc, r.message),
                        )
                    })
                    .collect();
                (c.id.clone(), results)
            })
            .collect();
        Seen {
            controls,
            inventory: Inventory::of(&facts, req),
        }
    }

    fn image(&self, layout: &Path, req: &FactRequest) -> Result<Seen, String> {
        let source = vigil::image::Source::OciDir {
            path: layout.to_path_buf(),
            tag: Some("v1".into()),
        };
        let opened = vigil::image::open(&source, &[]).map_err(|e| e.to_string())?;
        let scanned = opened.scan(&source, req).map_err(|e| e.to_string())?;
        Ok(self.seen(scanned.facts, req))
    }

    fn root(&self, root: &Path, req: &FactRequest) -> Seen {
        self.seen(vigil::facts::rootfs::collect(root, req).unwrap(), req)
    }
}

/// `umoci raw unpack` (umask 022, as root): the root filesystem a runtime
/// would run (no runtime config is generated: that reads the image's
/// `/etc/passwd`, which is not layer semantics), or umoci's refusal.
fn umoci_unpack(layout: &Path, bundle: &Path) -> Result<PathBuf, String> {
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(bundle).unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            "umask 022; exec umoci raw unpack --image \"$1:v1\" \"$2\"",
            "sh",
        ])
        .arg(layout)
        .arg(&rootfs)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(rootfs)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn tools() -> bool {
    prerequisite(
        is_root(),
        "root (umoci keeps owners and makes devices only as root)",
    ) && prerequisite(
        Command::new("umoci").arg("--version").output().is_ok(),
        "umoci",
    )
}

/// How one stack compared.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Both gave a root, and the scans agree.
    Same,
    /// umoci refused, and so did vigil.
    BothRefused,
    /// vigil refused a layer on which the runtimes disagree (a whiteout
    /// naming its own existing directory: containerd removes the
    /// directory, umoci keeps what the layer wrote there or fails), which
    /// umoci unpacked: the one documented divergence, an error result,
    /// never a pass.
    Disputed,
}

/// Build `layers` as a layout under `dir`, unpack it with umoci, scan both
/// ways and compare. `paths`/`dirs` widen the request.
fn compare(
    oracle: &Oracle,
    dir: &Path,
    layers: &[Vec<u8>],
    paths: &[String],
    dirs: &[String],
) -> Result<Outcome, String> {
    compare_with(oracle, dir, layers, layers, paths, dirs)
}

/// [`compare`], with umoci given `reference`: the same layers as a
/// runtime reads them where umoci is stricter than the runtime (pax
/// global headers, which containerd ignores and umoci refuses).
fn compare_with(
    oracle: &Oracle,
    dir: &Path,
    layers: &[Vec<u8>],
    reference: &[Vec<u8>],
    paths: &[String],
    dirs: &[String],
) -> Result<Outcome, String> {
    let _ = std::fs::remove_dir_all(dir);
    let oci = dir.join("oci");
    layout(&oci, layers, None);
    if reference == layers {
        return compare_layout(oracle, dir, &oci, &oci, paths, dirs);
    }
    let refd = dir.join("oci-reference");
    layout(&refd, reference, None);
    compare_layout(oracle, dir, &oci, &refd, paths, dirs)
}

/// Scan the layout `oci` (tag `v1`) and umoci's unpacking of `reference`
/// (the same image, or the same as a runtime reads it), and compare; the
/// unpacked root goes under `dir`.
fn compare_layout(
    oracle: &Oracle,
    dir: &Path,
    oci: &Path,
    reference: &Path,
    paths: &[String],
    dirs: &[String],
) -> Result<Outcome, String> {
    let req = oracle.request(paths, dirs);
    let image = oracle.image(oci, &req);
    match umoci_unpack(reference, &dir.join("bundle")) {
        Err(why) => match image {
            Err(_) => Ok(Outcome::BothRefused),
            Ok(seen) => Err(format!(
                "umoci refused the image ({why}) but vigil scanned it: {:?}",
                seen.controls
            )),
        },
        Ok(root) => {
            let image = match image {
                Err(e) if e.contains("a whiteout that names no entry") => {
                    return Ok(Outcome::Disputed);
                }
                image => image.map_err(|e| format!("vigil refused an image umoci unpacks: {e}"))?,
            };
            let root = oracle.root(&root, &req);
            if image == root {
                return Ok(Outcome::Same);
            }
            Err(diff(&image, &root))
        }
    }
}

fn diff(image: &Seen, root: &Seen) -> String {
    let mut out = String::new();
    for (id, r) in &root.controls {
        if image.controls.get(id) != Some(r) {
            out += &format!(
                "control {id}:\n  image: {:?}\n  root:  {r:?}\n",
                image.controls.get(id)
            );
        }
    }
    let (a, b) = (&image.inventory.files, &root.inventory.files);
    for p in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if a.get(p) != b.get(p) {
            out += &format!(
                "file {p}:\n  image: {:?}\n  root:  {:?}\n",
                a.get(p),
                b.get(p)
            );
        }
    }
    if image.inventory.packages != root.inventory.packages {
        out += &format!(
            "packages:\n  image: {:?}\n  root:  {:?}\n",
            image.inventory.packages, root.inventory.packages
        );
    }
    if out.is_empty() {
        out = format!("{image:?}\n!=\n{root:?}");
    }
    out
}

// ---------------------------------------------------------------- named cases

fn named(name: &str, layers: &[Vec<u8>], paths: &[&str]) -> Outcome {
    let dir = TempDir::new(&format!("layers-{name}"));
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    compare(&Oracle::new(), dir.path(), layers, &paths, &[])
        .unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n";

/// Class 1: a lower layer makes `/etc` a symlink; a later layer's
/// `etc/shadow` is written through it (containerd `fs.RootPath`, umoci
/// `SecureJoinVFS`).
#[test]
fn layers_write_through_a_symlinked_parent() {
    if !tools() {
        return;
    }
    let lower = tar(
        &[
            Entry::dir("usr/"),
            Entry::dir("usr/etc/"),
            Entry::file("usr/etc/passwd", PASSWD, 0o644),
            Entry::symlink("etc", "usr/etc"),
            Entry::symlink("lib", "/usr/lib"),
        ],
        false,
    );
    let upper = tar(
        &[
            Entry::file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o666),
            Entry::file("lib/x.so", b"x", 0o4755),
        ],
        false,
    );
    assert_eq!(
        named(
            "symlinked-parent",
            &[lower, upper],
            &["/etc/shadow", "/usr/lib/x.so"]
        ),
        Outcome::Same
    );
}

/// Class 2: `..` inside a member name or a hard-link target stays inside
/// the root and is applied after cleaning.
#[test]
fn layers_clean_dotdot_inside_names_and_links() {
    if !tools() {
        return;
    }
    let layer = tar(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/../etc/shadow", b"root:*:1:::::\n", 0o666),
            Entry::file("../../etc/passwd", PASSWD, 0o646),
            Entry::hardlink("etc/shadow-copy", "etc/../etc/shadow"),
        ],
        false,
    );
    assert_eq!(
        named("dotdot", &[layer], &["/etc/shadow", "/etc/shadow-copy"]),
        Outcome::Same
    );
}

/// Class 3: names that are not UTF-8 stay distinct, and a whiteout hides
/// only the name it spells.
#[test]
fn layers_keep_non_utf8_names_apart() {
    if !tools() {
        return;
    }
    let lower = tar(
        &[
            Entry::dir("bin/"),
            Entry::file(b"bin/n\xff", b"a", 0o4755),
            Entry::file(b"bin/n\xfe", b"b", 0o755),
            Entry::file(b"bin/n\xfd", b"c", 0o4755),
        ],
        false,
    );
    let upper = tar(&[Entry::file(b"bin/.wh.n\xfe", b"", 0o644)], false);
    let dir = TempDir::new("layers-utf8");
    let oracle = Oracle::new();
    assert_eq!(
        compare(&oracle, dir.path(), &[lower, upper], &[], &["/bin".into()]).unwrap(),
        Outcome::Same
    );
    // Both setuid files are found, under distinct names.
    let req = oracle.request(&[], &["/bin".into()]);
    let seen = oracle.image(&dir.path().join("oci"), &req).unwrap();
    let names: Vec<&String> = seen
        .inventory
        .files
        .keys()
        .filter(|k| k.starts_with("/bin/"))
        .collect();
    assert_eq!(
        names,
        ["/bin/n\\xfd", "/bin/n\\xff"],
        "{:?}",
        seen.inventory.files
    );
}

/// Class 4: an opaque marker at the root hides the lower layers' entries,
/// never the root itself or the marker's own layer.
#[test]
fn layers_opaque_root_keeps_its_own_layer() {
    if !tools() {
        return;
    }
    let lower = tar(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/passwd", PASSWD, 0o644),
            Entry::file("old", b"x", 0o777),
        ],
        false,
    );
    let upper = tar(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/shadow", b"root:*:1:::::\n", 0o666),
            Entry::file(".wh..wh..opq", b"", 0o644),
            Entry::file("etc/passwd", PASSWD, 0o600),
        ],
        false,
    );
    assert_eq!(
        named(
            "opaque-root",
            &[lower, upper],
            &["/etc/shadow", "/etc/passwd", "/old"]
        ),
        Outcome::Same
    );
}

/// Class 4, the empty whiteout: `.wh.` names no entry; at the image root
/// umoci deletes the whole root, this layer's entries included. vigil
/// refuses such a layer (an error result, never a pass).
#[test]
fn layers_refuse_a_whiteout_that_names_nothing() {
    let dir = TempDir::new("layers-empty-whiteout");
    let oci = dir.path().join("oci");
    let layer = tar(
        &[
            Entry::file("etc", b"x", 0o644),
            Entry::file(".wh.", b"", 0o644),
        ],
        false,
    );
    layout(&oci, &[layer], None);
    let oracle = Oracle::new();
    let e = oracle.image(&oci, &oracle.request(&[], &[])).unwrap_err();
    assert!(e.contains("a whiteout that names no entry"), "{e}");
}

/// Class 5: a layer that ends right after the last file's data (no
/// padding, no end blocks) is read as Go's archive/tar reads it; a stream
/// cut inside an entry's data is still refused.
#[test]
fn layers_ending_after_the_last_data_are_read() {
    if !tools() {
        return;
    }
    let layer = tar(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/shadow", b"root:*:1:::::\n", 0o666),
        ],
        true,
    );
    assert_eq!(layer.len() % 512, 14, "the stream ends inside the padding");
    assert_eq!(
        named("cut-end", std::slice::from_ref(&layer), &["/etc/shadow"]),
        Outcome::Same
    );
    // Cut inside the data: both refuse.
    let cut = layer[..layer.len() - 4].to_vec();
    assert_eq!(
        named("cut-data", &[cut], &["/etc/shadow"]),
        Outcome::BothRefused
    );
}

/// `umoci insert` writes layers that end right after the last file's data
/// (no padding, no end blocks); such an image scans like its unpacked root.
#[test]
fn layers_umoci_insert_scans_like_its_unpacked_root() {
    if !tools() {
        return;
    }
    let dir = TempDir::new("layers-insert");
    let d = dir.path();
    let oci = d.join("oci");
    let umoci = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let image = format!("{}:v1", oci.display());
    umoci(&["init", "--layout", oci.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    let shadow = d.join("shadow");
    std::fs::write(&shadow, "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&shadow, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        shadow.to_str().unwrap(),
        "/etc/shadow",
    ]);
    let app = d.join("app");
    std::fs::create_dir_all(app.join("bin")).unwrap();
    std::fs::write(app.join("bin/tool"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        app.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        app.to_str().unwrap(),
        "/opt/app",
    ]);
    // The layers really end inside the padding.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| std::fs::read(oci.join("blobs/sha256").join(&digest[7..])).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let unpadded = manifest["layers"].as_array().unwrap().iter().any(|l| {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&blob(l["digest"].as_str().unwrap())[..]),
            &mut plain,
        )
        .unwrap();
        !plain.len().is_multiple_of(512)
    });
    assert!(
        unpadded,
        "umoci insert wrote padded layers: the case is not tested"
    );
    let oracle = Oracle::new();
    let paths = ["/etc/shadow".to_string(), "/opt/app/bin/tool".to_string()];
    assert_eq!(
        compare_layout(&oracle, d, &oci, &oci, &paths, &["/opt/app/bin".into()]).unwrap(),
        Outcome::Same
    );
    let seen = oracle.image(&oci, &oracle.request(&paths, &[])).unwrap();
    assert_eq!(seen.inventory.files["/etc/shadow"].mode, 0o666);
}

/// Class 6: a config listing fewer diff_ids than the manifest has layers
/// is refused for an OCI layout too, with the counts.
#[test]
fn layers_refuse_a_config_with_too_few_diff_ids() {
    let dir = TempDir::new("layers-diff-ids");
    let oci = dir.path().join("oci");
    let a = tar(&[Entry::file("a", b"a", 0o644)], false);
    let b = tar(&[Entry::file("b", b"b", 0o644)], false);
    layout(&oci, &[a.clone(), b], Some(vec![sha(&a)]));
    let oracle = Oracle::new();
    let e = oracle.image(&oci, &oracle.request(&[], &[])).unwrap_err();
    assert!(
        e.contains("the config lists 1 diff_ids for 2 layers"),
        "{e}"
    );
}

/// Class 7: a package installed for two architectures is two packages in
/// the inventory.
#[test]
fn layers_inventory_packages_by_architecture() {
    if !tools() {
        return;
    }
    let status = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n";
    let layer = tar(
        &[
            Entry::file("var/lib/dpkg/status", status, 0o644),
            Entry::file("etc/os-release", b"ID=debian\n", 0o644),
        ],
        false,
    );
    let dir = TempDir::new("layers-multiarch");
    let oracle = Oracle::new();
    assert_eq!(
        compare(&oracle, dir.path(), &[layer], &[], &[]).unwrap(),
        Outcome::Same
    );
    let seen = oracle
        .image(&dir.path().join("oci"), &oracle.request(&[], &[]))
        .unwrap();
    let keys: Vec<&String> = seen.inventory.packages.keys().collect();
    assert_eq!(keys, ["libc6:amd64", "libc6:i386"]);
}

/// Class 8: paths are stored as name components, so 120 files each 2,040
/// directories deep (no directory entries) make ~2,000 nodes, not 240,000
/// paths of 4 KB. (Peak memory is measured in `benches/image.rs`.)
#[test]
fn layers_deep_implicit_parents_are_nodes_once() {
    let deep = "d/".repeat(2040);
    let entries: Vec<Entry> = (0..120)
        .map(|i| Entry::file(format!("{deep}f{i}"), b"x", 0o644))
        .collect();
    let dir = TempDir::new("layers-deep");
    let oci = dir.path().join("oci");
    layout(&oci, &[tar(&entries, false)], None);
    let source = vigil::image::Source::OciDir {
        path: oci,
        tag: None,
    };
    let opened = vigil::image::open(&source, &[]).unwrap();
    let scanned = opened.scan(&source, &FactRequest::default()).unwrap();
    assert_eq!(scanned.files, 1 + 2040 + 120);
}

// ---------------------------------------------------------------- generator

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The classes a stack exercises, counted over a run.
#[derive(Default, Debug)]
struct Classes(BTreeMap<&'static str, usize>);

impl Classes {
    fn add(&mut self, c: &'static str) {
        *self.0.entry(c).or_default() += 1;
    }
}

const TOP: &[&[u8]] = &[b"etc", b"usr", b"bin", b"lib", b"opt", b"var", b"srv"];
const MID: &[&[u8]] = &[b"etc", b"lib", b"a", b"b", b"ssh", b"d\xff"];
const LEAF: &[&[u8]] = &[
    b"passwd",
    b"shadow",
    b"x",
    b"y",
    b"caf\xc3\xa9",
    b"n\xff",
    b"n\xfe",
    b"back\\slash",
    b".dot",
    b"sp ace",
];
const MODES: &[u32] = &[
    0o644, 0o600, 0o755, 0o4755, 0o2755, 0o666, 0o777, 0o1777, 0o6711, 0o640,
];
const IDS: &[u32] = &[0, 0, 0, 1000, 65534, 42];

/// A random path: 1 to 3 components, sometimes long, odd, deep or with
/// `..`/`.` inside.
fn path(r: &mut Rng, c: &mut Classes) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = vec![r.pick(TOP).to_vec()];
    for _ in 0..r.below(3) {
        parts.push(r.pick(MID).to_vec());
    }
    let leaf = if r.chance(4) {
        c.add("long name");
        vec![b'l'; 150 + r.below(100)]
    } else {
        r.pick(LEAF).to_vec()
    };
    parts.push(leaf);
    if r.chance(3) {
        c.add("deep path");
        for _ in 0..40 + r.below(60) {
            parts.insert(1, b"q".to_vec());
        }
    }
    let mut joined = parts.join(&b'/');
    if r.chance(10) {
        c.add("dot-dot in a name");
        let at = 1 + r.below(parts.len().max(2) - 1).min(parts.len() - 1);
        let mut with: Vec<Vec<u8>> = parts.clone();
        with.insert(at, b"..".to_vec());
        with.insert(at, r.pick(MID).to_vec());
        if r.chance(30) {
            with.insert(0, b"..".to_vec());
        }
        joined = with.join(&b'/');
    }
    if r.chance(10) {
        joined = [b"./".to_vec(), joined].concat();
    } else if r.chance(5) {
        joined = [b"/".to_vec(), joined].concat();
    }
    if joined.iter().any(|b| *b >= 0x80) && std::str::from_utf8(&joined).is_err() {
        c.add("non-UTF-8 name");
    }
    joined
}

fn parent_of(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => p[..i].to_vec(),
        None => Vec::new(),
    }
}

fn base_of(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => p[i + 1..].to_vec(),
        None => p.to_vec(),
    }
}

/// A random stack of 1 to 6 layers.
/// Returns the layers, and the same layers without pax global headers
/// (what containerd applies; umoci refuses those headers).
fn stack(seed: u64, c: &mut Classes) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut r = Rng(seed);
    let mut files: Vec<Vec<u8>> = Vec::new(); // regular files emitted so far
    let mut names: Vec<Vec<u8>> = Vec::new(); // anything emitted so far
    let layers = 1 + r.below(6);
    let mut out = Vec::new();
    let mut reference = Vec::new();
    for li in 0..layers {
        let mut entries = Vec::new();
        if li == 0 && r.chance(30) {
            entries.push(Entry::dir("./"));
        }
        if r.chance(10) {
            // A pax global header (git archive writes one): metadata, not
            // a file.
            c.add("pax global header");
            entries.push(Entry {
                data: b"17 comment=hello\n".to_vec(),
                ..Entry::new("pax_global_header", b'g')
            });
        }
        for _ in 0..2 + r.below(14) {
            let p = path(&mut r, c);
            let mode = *r.pick(MODES);
            if mode & 0o6000 != 0 {
                c.add("setuid or setgid");
            }
            if mode & 0o002 != 0 {
                c.add("world-writable");
            }
            let owner = (*r.pick(IDS), *r.pick(IDS));
            let e = match r.below(100) {
                0..=34 => {
                    files.push(p.clone());
                    let data = format!("seed {seed} layer {li} {}", r.next()).into_bytes();
                    Entry::file(&p, &data, mode)
                }
                35..=49 => {
                    if names.contains(&p) {
                        c.add("directory over an entry");
                    }
                    Entry {
                        mode,
                        ..Entry::dir(&p)
                    }
                }
                50..=64 => {
                    // Directory symlinks, the class runtimes write through.
                    c.add("symlink");
                    let (at, to): (Vec<u8>, Vec<u8>) = match r.below(7) {
                        0 => (b"etc".to_vec(), b"usr/etc".to_vec()),
                        1 => (b"etc".to_vec(), b"/usr/etc".to_vec()),
                        2 => (b"lib".to_vec(), b"usr/lib".to_vec()),
                        3 => (b"opt".to_vec(), b"/srv/../var/opt".to_vec()),
                        4 => (b"usr/lib64".to_vec(), b"../lib".to_vec()),
                        5 => (p.clone(), r.pick(TOP).to_vec()),
                        _ => (p.clone(), [b"/".to_vec(), path(&mut r, c)].concat()),
                    };
                    if at.len() <= 7 {
                        c.add("symlinked parent");
                    }
                    Entry {
                        uid: owner.0,
                        gid: owner.1,
                        ..Entry::symlink(at, to)
                    }
                }
                65..=74 if !files.is_empty() => {
                    c.add("hard link");
                    // A recent file: one a later whiteout has had little
                    // chance to remove (a link to nothing is refused by
                    // both, which tests less).
                    let recent = &files[files.len().saturating_sub(3)..];
                    let mut to = r.pick(recent).clone();
                    if r.chance(30) {
                        c.add("dot-dot in a hard link");
                        to = [b"srv/../".to_vec(), to].concat();
                    }
                    Entry::hardlink(&p, to)
                }
                75..=86 if !names.is_empty() => {
                    c.add("whiteout");
                    let n = r.pick(&names).clone();
                    let dir = parent_of(&n);
                    let wh = [b".wh.".to_vec(), base_of(&n)].concat();
                    Entry::file(
                        if dir.is_empty() {
                            wh
                        } else {
                            [dir, b"/".to_vec(), wh].concat()
                        },
                        b"",
                        0o644,
                    )
                }
                87..=93 => {
                    let dir = if r.chance(25) {
                        c.add("opaque root");
                        Vec::new()
                    } else {
                        c.add("opaque directory");
                        parent_of(&p)
                    };
                    Entry::file(
                        if dir.is_empty() {
                            b".wh..wh..opq".to_vec()
                        } else {
                            [dir, b"/.wh..wh..opq".to_vec()].concat()
                        },
                        b"",
                        0o644,
                    )
                }
                94..=95 => {
                    c.add("fifo");
                    Entry {
                        mode: 0o644,
                        ..Entry::new(&p, b'6')
                    }
                }
                96 => {
                    // A character device (0:0), or an old-style ('\0')
                    // entry, which Go reads as a directory when its name
                    // ends in `/`, or a symlink to nothing at all.
                    match r.below(10) {
                        0..=2 => {
                            c.add("device");
                            Entry::new(&p, b'3')
                        }
                        3..=5 => {
                            c.add("old-style entry");
                            Entry {
                                flag: 0,
                                ..Entry::file(&p, b"old", mode)
                            }
                        }
                        6..=8 => {
                            c.add("old-style directory");
                            Entry {
                                flag: 0,
                                ..Entry::file([p.clone(), b"/".to_vec()].concat(), b"", mode)
                            }
                        }
                        _ => {
                            c.add("symlink to an empty target");
                            Entry::symlink(&p, "")
                        }
                    }
                }
                _ => {
                    c.add("file over an entry");
                    let n = if names.is_empty() {
                        p.clone()
                    } else {
                        r.pick(&names).clone()
                    };
                    files.push(n.clone());
                    Entry::file(&n, b"replaced", mode)
                }
            };
            let e = if matches!(e.flag, 0 | b'0' | b'3' | b'5' | b'6') {
                Entry {
                    uid: owner.0,
                    gid: owner.1,
                    ..e
                }
            } else {
                e
            };
            names.push(e.name.clone());
            entries.push(e);
        }
        let cut = r.chance(15);
        if cut {
            c.add("stream ends after the data");
        }
        out.push(tar(&entries, cut));
        let runtime: Vec<Entry> = entries.iter().filter(|e| e.flag != b'g').cloned().collect();
        reference.push(tar(&runtime, cut));
    }
    c.add(match layers {
        1 => "1 layer",
        2..=3 => "2-3 layers",
        _ => "4-6 layers",
    });
    (out, reference)
}

/// Paths the request names: each member's cleaned name, where it is UTF-8.
fn request_paths(layers: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let mut paths = std::collections::BTreeSet::new();
    let mut dirs = std::collections::BTreeSet::new();
    for l in layers {
        let mut a = ::tar::Archive::new(&l[..]);
        let Ok(entries) = a.entries() else { continue };
        for e in entries.flatten() {
            let name = e.path_bytes().into_owned();
            let mut parts: Vec<&[u8]> = Vec::new();
            for c in name.split(|b| *b == b'/') {
                match c {
                    b"" | b"." => {}
                    b".." => {
                        parts.pop();
                    }
                    c => parts.push(c),
                }
            }
            let Ok(p) = String::from_utf8(parts.join(&b'/')) else {
                continue;
            };
            if p.is_empty() || p.contains(".wh.") {
                continue;
            }
            dirs.insert(format!("/{}", parent_of(p.as_bytes()).escape_ascii()));
            paths.insert(format!("/{p}"));
        }
    }
    (
        paths.into_iter().collect(),
        dirs.into_iter().filter(|d| !d.contains('\\')).collect(),
    )
}

fn differential(seeds: std::ops::Range<u64>) {
    if !tools() {
        return;
    }
    let oracle = Oracle::new();
    let dir = TempDir::new("layers-diff");
    let mut classes = Classes::default();
    let (mut same, mut refused, mut disputed) = (0, 0, 0);
    let mut failures = Vec::new();
    for seed in seeds.clone() {
        let (layers, reference) = stack(seed, &mut classes);
        let (paths, dirs) = request_paths(&layers);
        match compare_with(
            &oracle,
            &dir.path().join("s"),
            &layers,
            &reference,
            &paths,
            &dirs,
        ) {
            Ok(Outcome::Same) => same += 1,
            Ok(Outcome::Disputed) => disputed += 1,
            Ok(Outcome::BothRefused) => {
                refused += 1;
                if std::env::var_os("VIGIL_LAYER_DEBUG").is_some() {
                    let why = umoci_unpack(&dir.path().join("s/oci"), &dir.path().join("t"));
                    let _ = std::fs::remove_dir_all(dir.path().join("t"));
                    eprintln!("seed {seed}: refused: {why:?}");
                }
            }
            Err(e) => failures.push(format!("seed {seed}:\n{e}")),
        }
    }
    let summary = format!(
        "layers: {} seeds: {same} identical, {refused} refused by both, {disputed} refused by vigil where runtimes disagree (a whiteout naming its own directory), {} different; classes: {:?}",
        seeds.end - seeds.start,
        failures.len(),
        classes.0
    );
    eprintln!("{summary}");
    // `.ci/run` prints it: the class counts of every CI run.
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("layer-classes.txt"),
        format!("{summary}\n"),
    );
    let seeds_failed: Vec<&str> = failures.iter().filter_map(|f| f.lines().next()).collect();
    assert!(
        failures.is_empty(),
        "{} seeds differ ({}); first:\n{}",
        failures.len(),
        seeds_failed.join(" "),
        failures[0]
    );
    assert!(
        disputed * 20 <= same + refused + disputed,
        "{disputed} stacks hit the disputed whiteout: more than 5%, the generator tests a divergence, not layers"
    );
    assert!(
        same * 10 >= (same + refused) * 7,
        "too few stacks unpack ({same} of {}): the generator tests refusals, not layers",
        same + refused
    );
    for class in [
        "symlinked parent",
        "dot-dot in a name",
        "dot-dot in a hard link",
        "non-UTF-8 name",
        "opaque root",
        "opaque directory",
        "whiteout",
        "hard link",
        "stream ends after the data",
        "setuid or setgid",
        "world-writable",
        "long name",
        "deep path",
        "file over an entry",
        "directory over an entry",
        "device",
        "old-style directory",
        "pax global header",
    ] {
        assert!(
            classes.0.get(class).copied().unwrap_or(0) > 0,
            "no stack had {class}"
        );
    }
}

#[test]
fn differential_layers_against_umoci() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (from, n) = (
        env("VIGIL_LAYER_SEED_FROM", 0),
        env("VIGIL_LAYER_SEEDS", 300),
    );
    differential(from..from + n);
}

#[test]
#[ignore = "thousands of seeds: cargo test --test integration differential_layers_many_seeds -- --ignored"]
fn differential_layers_many_seeds() {
    differential(10_000..13_000);
}
