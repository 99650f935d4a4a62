//! Image scan benchmark: a generated image of about 200 MB in about 20,000
//! files (`VIGIL_BENCH_IMAGE_MB`, `VIGIL_BENCH_IMAGE_FILES` to change it),
//! one gzip layer in an OCI layout, scanned with the container baseline.
//! Compared with what vigil replaces: `tar -xzf` the layer, then scan the
//! extracted root. Each scan runs in a process of its own, which prints its
//! time and peak RSS (VmHWM). Goal: faster than extract-then-scan, peak RSS
//! under 200 MB.
//!
//! Then the memory cases of layers built to make an index large (each
//! under 10 MB compressed; goal: peak RSS under 200 MB each): 120 files
//! each 2,040 directories deep with no directory entries; 120,000 files
//! with 4,000-byte names; names past the name budget (refused); and the
//! worst case at the node cap (a million entries).
//!
//! Run with `cargo bench --bench image`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

#[path = "common.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scan-image") {
        return scan(Some(Path::new(&args[i + 1])), None);
    }
    if let Some(i) = args.iter().position(|a| a == "--scan-root") {
        return scan(None, Some(Path::new(&args[i + 1])));
    }
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        return scan_memory(Path::new(&args[i + 1]), &args[i + 2]);
    }
    if std::env::var_os("VIGIL_BENCH_IMAGE_MEMORY_ONLY").is_none() {
        speed();
    }
    memory();
}

fn speed() {
    let mb: u64 = env("VIGIL_BENCH_IMAGE_MB", 200);
    let files: u64 = env("VIGIL_BENCH_IMAGE_FILES", 20_000);
    let dir = std::env::temp_dir().join(format!("vigil-bench-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let (layer, raw) = generate(&dir.join("layout"), mb << 20, files);
    eprintln!(
        "image bench: {files} files, {} MiB uncompressed, a {} MiB gzip layer, generated in {:.1} s",
        raw >> 20,
        std::fs::metadata(&layer).unwrap().len() >> 20,
        started.elapsed().as_secs_f64()
    );
    let me = std::env::current_exe().unwrap();
    let run = |args: &[&str]| {
        let status = std::process::Command::new(&me).args(args).status().unwrap();
        assert!(status.success(), "{args:?} failed");
    };
    run(&["--scan-image", dir.join("layout").to_str().unwrap()]);
    // What vigil replaces: extract, then scan the root.
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let t = Instant::now();
    let ok = std::process::Command::new("tar")
        .args([
            "-xzf",
            layer.to_str().unwrap(),
            "-C",
            root.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let extract = t.elapsed().as_secs_f64();
    println!("extract (tar -xzf): {extract:.2} s");
    run(&["--scan-root", root.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The memory cases: each layout generated here, scanned in a child.
fn memory() {
    let dir = std::env::temp_dir().join(format!("vigil-bench-image-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let me = std::env::current_exe().unwrap();
    type Case = (&'static str, Box<Entries>);
    let cases: Vec<Case> = vec![
        (
            "120 files each 2,040 directories deep, no directory entries",
            Box::new(|add| {
                for i in 0..120 {
                    add(&format!("r{i}/{}f", "d/".repeat(2039)));
                }
            }),
        ),
        (
            "120,000 files with 4,000-byte names",
            Box::new(|add| {
                let dirs: String = (0..15)
                    .map(|i| format!("{}{i:02}/", "n".repeat(250)))
                    .collect();
                for i in 0..120_000 {
                    add(&format!("{dirs}{i:07}{}", "f".repeat(3990 - dirs.len())));
                }
            }),
        ),
        (
            "names past the 64 MiB name budget (refused)",
            Box::new(|add| {
                for i in 0..300_000 {
                    add(&format!("{i:07}{}", "x".repeat(248)));
                }
            }),
        ),
        (
            "the node cap: 998,999 files in 1,000 directories (1,000,000 nodes)",
            Box::new(|add| {
                for i in 0..998_999u32 {
                    add(&format!("d{:03}/{i:07}-{}", i % 1000, "y".repeat(48)));
                }
            }),
        ),
    ];
    for (what, entries) in cases {
        let layout = dir.join("layout");
        let _ = std::fs::remove_dir_all(&layout);
        let t = Instant::now();
        let layer = write_layout(&layout, &*entries);
        eprintln!(
            "memory case: {what}: a {} KiB gzip layer, generated in {:.1} s",
            std::fs::metadata(&layer).unwrap().len() >> 10,
            t.elapsed().as_secs_f64()
        );
        let status = std::process::Command::new(&me)
            .args(["--memory", layout.to_str().unwrap(), what])
            .status()
            .unwrap();
        assert!(status.success(), "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An OCI layout of one gzip layer of empty files named by `entries`.
/// Calls its argument with each entry name of a layer.
type Entries = dyn Fn(&mut dyn FnMut(&str));

fn write_layout(layout: &Path, entries: &Entries) -> PathBuf {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let tmp = layout.join("layer.tmp");
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap()),
        flate2::Compression::default(),
    );
    let mut hashing = HashWriter {
        inner: gz,
        hash: Sha256::new(),
        len: 0,
    };
    {
        let mut tar = tar::Builder::new(&mut hashing);
        entries(&mut |path: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, &[][..]).unwrap();
        });
        tar.finish().unwrap();
    }
    let diff_id = format!("sha256:{}", hex(&hashing.hash.finalize()));
    hashing.inner.finish().unwrap().flush().unwrap();
    finish_layout(layout, &tmp, diff_id)
}

/// Scan a memory case's layout with the baseline; print peak RSS.
fn scan_memory(layout: &Path, what: &str) {
    let baseline =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles/container-baseline.yaml");
    let (set, _) = vigil::policy::load(&[baseline]);
    let profile = set.profile("container-baseline").unwrap();
    let req = vigil::facts::compile::compile(profile.value.controls.iter(), 1 << 20);
    let source = vigil::image::Source::OciDir {
        path: layout.to_path_buf(),
        tag: None,
    };
    let t = Instant::now();
    let outcome = match vigil::image::open(&source, &[]).and_then(|o| o.scan(&source, &req)) {
        Ok(s) => format!("{} nodes", s.files),
        Err(e) => format!("refused: {}", vigil_excerpt(&e.to_string())),
    };
    println!(
        "memory case: {what}: {outcome} in {:.2} s, peak RSS {} MiB (goal: under 200 MB)",
        t.elapsed().as_secs_f64(),
        common::peak_rss_kib() / 1024
    );
}

fn vigil_excerpt(s: &str) -> String {
    s.chars().take(200).collect()
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift bytes: content gzip cannot shrink to nothing, like binaries.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Write an OCI layout with one gzip layer: the account files, os-release
/// and a dpkg database the baseline reads, then `files` files of about
/// `bytes / files` bytes under /usr (half of them text). Returns the
/// layer's path and its uncompressed size.
fn generate(layout: &Path, bytes: u64, files: u64) -> (PathBuf, u64) {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let tmp = layout.join("layer.tmp");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tmp).unwrap(),
        flate2::Compression::fast(),
    );
    let mut hashing = HashWriter {
        inner: gz,
        hash: Sha256::new(),
        len: 0,
    };
    {
        let mut tar = tar::Builder::new(&mut hashing);
        let mut add = |path: &str, mode: u32, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, data).unwrap();
        };
        add(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/usr/sbin/nologin\n",
        );
        add(
            "etc/group",
            0o644,
            b"root:x:0:\nshadow:x:42:\napp:x:1000:\n",
        );
        add(
            "etc/shadow",
            0o640,
            b"root:*:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n",
        );
        add("etc/os-release", 0o644, b"ID=debian\nVERSION_ID=\"12\"\n");
        let mut status = String::new();
        for i in 0..400 {
            status.push_str(&format!(
                "Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}-1\n\n"
            ));
        }
        add("var/lib/dpkg/status", 0o644, status.as_bytes());
        let size = (bytes / files.max(1)) as usize;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; size];
        for i in 0..files {
            if i % 2 == 0 {
                fill(&mut seed, &mut buf);
            } else {
                let line = format!("line {i} of a text file in the benchmark image\n");
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = line.as_bytes()[j % line.len()];
                }
            }
            add(
                &format!("usr/share/bench/d{:03}/f{i:05}", i % 500),
                0o644,
                &buf,
            );
        }
        tar.finish().unwrap();
    }
    let raw = hashing.len;
    let diff_id = format!("sha256:{}", hex(&hashing.hash.finalize()));
    hashing.inner.finish().unwrap().flush().unwrap();
    (finish_layout(layout, &tmp, diff_id), raw)
}

/// Move the gzip layer at `tmp` into the layout's blobs and write the
/// config, manifest and index around it. Returns the layer blob's path.
fn finish_layout(layout: &Path, tmp: &Path, diff_id: String) -> PathBuf {
    let blobs = layout.join("blobs/sha256");
    let layer_bytes = std::fs::read(tmp).unwrap();
    let layer_digest = hex(&Sha256::digest(&layer_bytes));
    let layer = blobs.join(&layer_digest);
    std::fs::rename(tmp, &layer).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&d), bytes).unwrap();
        format!("sha256:{d}")
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{layer_digest}"), "size": layer_bytes.len()}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len()}]
        }))
        .unwrap(),
    )
    .unwrap();
    layer
}

struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: std::io::Write> std::io::Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Scan an image layout or an extracted root with the container baseline's
/// requests, in this process, and print time, peak RSS and the outcome.
fn scan(image: Option<&Path>, root: Option<&Path>) {
    let baseline =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles/container-baseline.yaml");
    let (set, diags) = vigil::policy::load(&[baseline]);
    assert!(diags.iter().all(|d| !d.is_error()));
    let profile = set.profile("container-baseline").unwrap();
    let req = vigil::facts::compile::compile(profile.value.controls.iter(), 1 << 20);
    let t = Instant::now();
    let (what, facts) = match (image, root) {
        (Some(layout), _) => {
            let source = vigil::image::Source::parse(
                &format!("oci-dir:{}", layout.display()),
                Path::new("/"),
            )
            .unwrap();
            let opened = vigil::image::open(&source, &[]).unwrap();
            let scanned = opened.scan(&source, &req).unwrap();
            (
                format!("image scan ({} files indexed)", scanned.files),
                scanned.facts,
            )
        }
        (_, Some(root)) => (
            "scan of the extracted root".to_string(),
            vigil::facts::rootfs::collect(root, &req).unwrap(),
        ),
        _ => unreachable!(),
    };
    let secs = t.elapsed().as_secs_f64();
    let hwm_kib: u64 = common::peak_rss_kib();
    println!(
        "{what}: {secs:.2} s, peak RSS {} MiB, {} files and {} walks in the facts",
        hwm_kib / 1024,
        facts.files.len(),
        facts.walks.len()
    );
}
