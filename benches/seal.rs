//! Sealing benchmark.
//!
//! 1. Sealing 1 GiB of result bytes (64 files of 16 MiB: age encryption to
//!    one X25519 recipient, sha256 of plaintext and ciphertext, atomic
//!    writes) on 2 threads, compared in the same run with the `age` CLI
//!    encrypting the same 64 files, sequentially and as 2 parallel processes,
//!    and with the reference tools doing vigil's whole work (age, then
//!    `openssl dgst -sha256` of plaintext and ciphertext); then each step
//!    of vigil's write alone on one core, which is where the time goes.
//! 2. Verifying a generated 10,000-target bundle: signature and every
//!    digest, no decryption.
//!
//! Run with `cargo bench --bench seal` (needs the `age` and `openssl` CLIs on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use vigil::report::output::{RunOutput, Written};
use vigil::seal::bundle::SealedDir;
use vigil::seal::keys::{Signer, parse_recipients};

const FILES: usize = 64;
const FILE_BYTES: usize = 16 << 20;
const TARGETS: usize = 10_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("vigil-bench-seal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    seal_gib(&dir, &recipient);
    verify_10k(&dir, &recipient);
    let _ = std::fs::remove_dir_all(&dir);
}

/// HDF-like text: compresses poorly enough to be honest, costs nothing to make.
fn content(i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(FILE_BYTES);
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15 ^ i as u64;
    while v.len() < FILE_BYTES {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        v.extend_from_slice(
            format!(
                "{{\"status\":\"passed\",\"code_desc\":\"File /etc/{n:x} mode\",\"run_time\":{}}},",
                n % 1000
            )
            .as_bytes(),
        );
    }
    v.truncate(FILE_BYTES);
    v
}

fn seal_gib(dir: &Path, recipient: &str) {
    let inputs: Vec<PathBuf> = (0..FILES)
        .map(|i| {
            let p = dir.join(format!("in-{i:02}.json"));
            std::fs::write(&p, content(i)).unwrap();
            p
        })
        .collect();
    let total_mib = (FILES * FILE_BYTES) >> 20;
    // vigil: read each file and seal it through the bundle writer, 2 threads.
    let out = SealedDir::create(
        &dir.join("sealed"),
        "bench",
        "run",
        parse_recipients(&[recipient.to_string()]).unwrap(),
        false,
    )
    .unwrap();
    flush();
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = inputs.get(i) else { break };
                    let bytes = std::fs::read(p).unwrap();
                    out.write(&format!("targets/t{i:02}.hdf.json"), &bytes)
                        .unwrap();
                }
            });
        }
    });
    let vigil_s = t.elapsed().as_secs_f64();
    println!(
        "seal: where one thread's time goes, each step alone on one core over the same {total_mib} MiB:"
    );
    breakdown(dir, &inputs, recipient);
    // age CLI, one process after another.
    flush();
    let t = Instant::now();
    for (i, p) in inputs.iter().enumerate() {
        let st = Command::new("age")
            .args(["-r", recipient, "-o"])
            .arg(dir.join(format!("age-{i:02}.age")))
            .arg(p)
            .status()
            .expect("the age CLI is installed");
        assert!(st.success());
    }
    let age_seq = t.elapsed().as_secs_f64();
    // age CLI, two processes at a time (the same parallelism vigil used).
    flush();
    let age_par = two_at_a_time(inputs.as_slice(), |p, out| {
        let mut c = Command::new("age");
        c.args(["-r", recipient, "-o"])
            .arg(dir.join(format!("age2-{out}.age")))
            .arg(p);
        c
    });
    // The same work as vigil's with the reference tools: age, then the
    // sha256 of the plaintext and of the ciphertext (`openssl dgst`, which
    // uses the SHA extensions as vigil's sha2 does; coreutils' sha256sum
    // here does not), two files at a time.
    flush();
    let age_hash_par = two_at_a_time(inputs.as_slice(), |p, out| {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "age -r \"$1\" -o \"$3\" \"$2\" && openssl dgst -sha256 \"$2\" \"$3\" >/dev/null",
            "sh",
            recipient,
        ])
        .arg(p)
        .arg(dir.join(format!("age3-{out}.age")));
        c
    });
    println!(
        "seal: {total_mib} MiB in {FILES} files (page cache, no fsync for either): vigil {vigil_s:.2} s ({:.0} MiB/s: read + encrypt + sha256 of plaintext and ciphertext + atomic write, 2 threads); age CLI {age_seq:.2} s one at a time ({:.2}x vigil's time), {age_par:.2} s two at a time; vigil / age two at a time = {:.2} (goal 1.25)",
        total_mib as f64 / vigil_s,
        age_seq / vigil_s,
        vigil_s / age_par
    );
    println!(
        "seal: the same work with the reference tools (age, then openssl's sha256 of plaintext and ciphertext), two at a time: {age_hash_par:.2} s; vigil / that = {:.2}",
        vigil_s / age_hash_par
    );
    for p in inputs {
        let _ = std::fs::remove_file(p);
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("age") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("sealed"));
}

/// Where one thread's time goes when it seals the 64 files: each step
/// alone, one after another on one core (the profile the figure above
/// hides). Reading into a fresh buffer is what the two-thread figure pays.
fn breakdown(dir: &Path, inputs: &[PathBuf], recipient: &str) {
    use sha2::Digest;
    use std::io::{Read, Write};
    let step = |name: &str, f: &mut dyn FnMut(&[u8])| {
        let mut buf = Vec::with_capacity(FILE_BYTES);
        let mut spent = 0.0;
        flush();
        for p in inputs {
            buf.clear();
            std::fs::File::open(p)
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
            let t = Instant::now();
            f(&buf);
            spent += t.elapsed().as_secs_f64();
        }
        println!("  {name:<58} {spent:.3} s");
    };
    let t = Instant::now();
    for p in inputs {
        std::hint::black_box(std::fs::read(p).unwrap());
    }
    println!(
        "  {:<58} {:.3} s",
        "read each file into a new buffer",
        t.elapsed().as_secs_f64()
    );
    let mut buf = Vec::with_capacity(FILE_BYTES);
    let t = Instant::now();
    for p in inputs {
        buf.clear();
        std::fs::File::open(p)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
    }
    println!(
        "  {:<58} {:.3} s",
        "read each file into one reused buffer",
        t.elapsed().as_secs_f64()
    );
    step("sha256", &mut |b| {
        std::hint::black_box(sha2::Sha256::digest(b));
    });
    let r = parse_recipients(&[recipient.to_string()]).unwrap();
    step("age encrypt to a sink (no hashing, no file)", &mut |b| {
        let enc =
            age::Encryptor::with_recipients(r.iter().map(|r| r.as_ref() as &dyn age::Recipient))
                .unwrap();
        let mut w = enc.wrap_output(std::io::sink()).unwrap();
        w.write_all(b).unwrap();
        w.finish().unwrap();
    });
    let mut n = 0;
    step("write plaintext to a new file", &mut |b| {
        n += 1;
        std::fs::write(dir.join(format!("plain-{n}")), b).unwrap();
    });
    let out = SealedDir::create(
        &dir.join("one"),
        "bench",
        "run",
        parse_recipients(&[recipient.to_string()]).unwrap(),
        false,
    )
    .unwrap();
    let mut n = 0;
    step(
        "vigil's sealed write (all of the above but the read)",
        &mut |b| {
            n += 1;
            out.write(&format!("t{n}.json"), b).unwrap();
        },
    );
    let _ = std::fs::remove_dir_all(dir.join("one"));
    for n in 1..=inputs.len() {
        let _ = std::fs::remove_file(dir.join(format!("plain-{n}")));
    }
}

/// Seconds to run `command` for every input, two processes at a time
/// (`out`: a name unique to the input for the command's output).
fn two_at_a_time(inputs: &[PathBuf], command: impl Fn(&Path, &str) -> Command) -> f64 {
    let t = Instant::now();
    for (j, pair) in inputs.chunks(2).enumerate() {
        let children: Vec<_> = pair
            .iter()
            .enumerate()
            .map(|(k, p)| command(p, &format!("{j:02}-{k}")).spawn().unwrap())
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "age and openssl are installed");
        }
    }
    t.elapsed().as_secs_f64()
}

/// Write back dirty pages so one measurement does not pay for another's.
fn flush() {
    let _ = Command::new("sync").status();
}

fn verify_10k(dir: &Path, recipient: &str) {
    use vigil::runner::{RunSummary, StatusCounts, TargetSummary};
    let signer = Signer::generate();
    let out = SealedDir::create(
        &dir.join("big"),
        "bench",
        "run",
        parse_recipients(&[recipient.to_string()]).unwrap(),
        false,
    )
    .unwrap();
    let hdf = content(7)[..4096].to_vec();
    let targets: Vec<TargetSummary> = (0..TARGETS)
        .map(|i| {
            let id = format!("ns-{:02}/pod-{i:05}/main", i % 20);
            let name = format!("targets/{}", vigil::report::hdf_file_name(&id).display());
            let w: Written = out.write(&name, &hdf).unwrap();
            TargetSummary {
                id,
                scan_id: format!("scan-{i}"),
                approach: vigil::policy::model::Approach::Api,
                evidence: vigil::policy::model::Evidence::Api,
                status: vigil::runner::TargetStatus::Scanned,
                error: None,
                failure: None,
                counts: StatusCounts {
                    passed: 20,
                    failed: 4,
                    ..StatusCounts::default()
                },
                compliance: 83,
                threshold: None,
                hdf: w,
                duration: 0.01,
                attempts: 1,
                image_digest: None,
                image: None,
                inventory: None,
                findings: Default::default(),
                controls: Vec::new(),
            }
        })
        .collect();
    let summary = RunSummary {
        labels: Default::default(),
        scanner_images: Vec::new(),
        run_id: "run".into(),
        policy: "bench".into(),
        vigil_version: env!("CARGO_PKG_VERSION"),
        started: chrono::Utc::now(),
        ended: chrono::Utc::now(),
        targets,
        verdict: vigil::runner::RunVerdict::Pass,
        complete: true,
        not_scanned: Vec::new(),
        stats: Default::default(),
        imported: None,
        plan: None,
        coverage: Default::default(),
        coverage_threshold: None,
    };
    let summary_file = out
        .write(
            "summary.json",
            &serde_json::to_vec_pretty(&summary).unwrap(),
        )
        .unwrap();
    out.seal(&summary, &summary_file, "0", Some(&signer), None)
        .unwrap();
    let bundle = out.location().to_path_buf();
    let statement_mb = std::fs::metadata(bundle.join("statement.dsse.json"))
        .unwrap()
        .len() as f64
        / 1e6;
    let trusted = [signer.verifying_key()];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let v = vigil::seal::verify::verify(&bundle, &trusted, &[]);
        assert!(v.ok(), "{:?}", v.problems.first());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "verify: {TARGETS}-target bundle ({} files, statement {statement_mb:.1} MB): best of 3 {best:.2} s (signature + every digest, no decryption)",
        TARGETS + 2
    );
}
