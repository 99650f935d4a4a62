//! `vigil open`: verify a bundle, then decrypt its results.

use crate::safeio::printable;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::seal::verify::{recount, verify};

const AFTER_HELP: &str = "\
Examples:
  K=\"--identity fixtures/keys/demo-age.key --trusted-key fixtures/keys/demo-signing.pub.pem\"
  vigil open results/demo/RUN_ID $K
  vigil open results/demo/RUN_ID $K --target rootfs/alpine --out hdf/

Prints each target's summary; with --out, writes the decrypted HDF files
there (never overwriting). Refuses a bundle that does not verify unless
--no-verify is given.";

/// Verify a sealed bundle and decrypt its results.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The bundle directory.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    identities: super::trust_args::Identities,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    /// Only this target id.
    #[arg(long, value_name = "ID")]
    target: Option<String>,
    /// Write decrypted HDF files into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Open without verifying (for forensics on a broken bundle).
    #[arg(long)]
    no_verify: bool,
    /// Which failed and error controls to list under each target: of
    /// targets that fail their threshold or have errors (failed), of every
    /// target (all), or none.
    #[arg(long, value_enum, default_value_t = crate::report::findings::Details::Failed)]
    details: crate::report::findings::Details,
    /// At most this many controls listed per target ("and N more").
    #[arg(long, value_name = "N", default_value_t = 10)]
    details_limit: usize,
    /// Also write a CI report of the opened results, in plaintext:
    /// junit=PATH, sarif=PATH, markdown=PATH or oscal=PATH (OSCAL 1.1
    /// assessment results); repeatable.
    #[arg(long = "report", value_name = "FORMAT=PATH")]
    reports: Vec<crate::report::ci::Request>,
    /// Replace files that exist: the HDF files in --out and the --report
    /// files (regular files only; without it, open never overwrites).
    #[arg(long)]
    force: bool,
}

/// The identities and trusted keys given, checked before anything is
/// read: an identity is required for an encrypted bundle (a plaintext one
/// needs none), a trusted key unless `--no-verify`, and the wrong identity
/// is said once, not as one failure per file.
#[allow(clippy::type_complexity)]
fn keys(
    args: &Args,
) -> anyhow::Result<(
    Vec<Box<dyn age::Identity + Send + Sync>>,
    Vec<ed25519_dalek::VerifyingKey>,
)> {
    let encrypted = crate::seal::layout::encrypted_summary(&args.bundle);
    if args.identities.identities.is_empty() && encrypted.is_some() {
        return Err(InvalidInput(
            "pass --identity KEY: the age identity (or ssh key) the results were encrypted to"
                .into(),
        )
        .into());
    }
    let identities = args.identities.load()?;
    if args.trusted.trusted_keys.is_empty() && !args.no_verify {
        return Err(InvalidInput(
            "pass --trusted-key PUB to verify the bundle first (or --no-verify to skip it)".into(),
        )
        .into());
    }
    let trusted = args.trusted.load_given()?;
    if let Some(summary) = encrypted
        && crate::seal::verify::is_recipient(&summary, &identities) == Some(false)
    {
        let given: Vec<String> = args
            .identities
            .identities
            .iter()
            .map(|p| printable(&p.display().to_string()).into_owned())
            .collect();
        return Err(InvalidInput(format!(
            "none of the given identities ({}) is a recipient of {}; pass the age identity or ssh key the results were encrypted to (the policy's output.recipients)",
            given.join(", "),
            printable(&args.bundle.display().to_string())
        ))
        .into());
    }
    Ok((identities, trusted))
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let (identities, trusted) = keys(&args)?;
    let v = verify(&args.bundle, &trusted, &identities);
    if !v.ok() && !args.no_verify {
        for pr in &v.problems {
            eprintln!(
                "vigil: open: {}: {}",
                printable(&pr.file),
                printable(&pr.message)
            );
        }
        eprintln!(
            "vigil: open: refusing to open {}: it does not verify (use --no-verify for forensics)",
            args.bundle.display()
        );
        return Ok(Exit::Failed);
    }
    let statement = match v.statement {
        Some(s) => s,
        // --no-verify on a bundle whose statement did not verify.
        None => crate::seal::verify::read_statement_unverified(&args.bundle)?,
    };
    let p = &statement.predicate;
    if let Some(t) = &args.target
        && !p.targets.iter().any(|x| &x.id == t)
    {
        return Err(InvalidInput(format!("the bundle has no target {}", printable(t))).into());
    }
    if let Some(dir) = &args.out {
        // Plaintext results: a private directory, private files.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                InvalidInput(format!(
                    "cannot create {}: {}",
                    printable(&dir.display().to_string()),
                    crate::safeio::io_reason(&e)
                ))
            })?;
    }
    crate::report::ci::check_paths(&args.reports, args.force)
        .map_err(|e| InvalidInput(e.to_string()))?;
    let mut report_targets = Vec::new();
    let mut out = format!(
        "policy {} run {} verdict {}\n",
        printable(&p.policy.name),
        printable(&p.run_id),
        printable(&p.verdict.to_string())
    );
    for t in p
        .targets
        .iter()
        .filter(|t| args.target.as_ref().is_none_or(|id| &t.id == id))
    {
        let bytes = crate::seal::verify::target_result(&args.bundle, t, p.encrypted, &identities)
            .map_err(|e| match e {
            crate::seal::verify::ResultError::UnsafeName(_) => {
                anyhow::Error::from(InvalidInput(e.to_string()))
            }
            other => anyhow::Error::from(other),
        })?;
        let hdf = crate::report::import::read(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", t.hdf.file))?;
        let findings = crate::report::findings::findings(&hdf);
        let mut target = t.report_target(&hdf, findings, !args.reports.is_empty());
        // What the decrypted results say (with --no-verify, the statement's
        // counts may not be theirs).
        target.counts = recount(&hdf);
        out.push_str(&crate::report::text::opened_target(
            &target,
            args.details,
            args.details_limit,
        ));
        if !args.reports.is_empty() {
            report_targets.push(target);
        }
        if let Some(dir) = &args.out {
            write_result(dir, &t.id, &bytes, args.force)?;
        }
    }
    if let Some(c) = &p.coverage {
        out.push_str(&crate::report::text::coverage(
            c,
            p.coverage_passed.map(|held| (held, String::new())),
        ));
    }
    print_stdout(&out)?;
    if !args.reports.is_empty() {
        write_reports(&args, p, report_targets)?;
    }
    Ok(Exit::Success)
}

/// The `--report` files of an opened bundle, from its statement and the
/// targets read. SARIF locates results at the bundle's signed statement:
/// the profiles' sources are not in a bundle.
fn write_reports(
    args: &Args,
    p: &crate::seal::statement::RunPredicate,
    targets: Vec<crate::report::view::ReportTarget>,
) -> anyhow::Result<()> {
    let statement = args.bundle.join(crate::seal::bundle::STATEMENT_FILE);
    let runs = [p.report_run(targets)];
    let files = [(p.policy.name.clone(), statement.display().to_string())].into();
    crate::report::ci::write(
        &args.reports,
        &runs,
        &Default::default(),
        &files,
        args.force,
    )?;
    Ok(())
}

/// Write one target's decrypted HDF into `dir` (private, never replacing
/// a file unless `force`).
fn write_result(dir: &std::path::Path, id: &str, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let dest = dir.join(crate::report::hdf_file_name(id));
    let shown = printable(&dest.display().to_string()).into_owned();
    crate::safeio::write_private(&dest, bytes, force).map_err(|e| {
        let why = crate::safeio::io_reason(&e);
        use std::io::ErrorKind::{AlreadyExists, NotFound, PermissionDenied};
        match e.kind() {
            AlreadyExists => InvalidInput(format!(
                "cannot create {shown}: {why}; open never overwrites: choose an empty --out directory, or pass --force to replace the files"
            ))
            .into(),
            PermissionDenied | NotFound => {
                InvalidInput(format!("cannot create {shown}: {why}")).into()
            }
            _ => anyhow::anyhow!("cannot write {shown}: {why}"),
        }
    })
}
