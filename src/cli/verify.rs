//! `vigil verify`: check a sealed bundle offline.

use std::path::PathBuf;

use super::{Exit, print_stdout};
use crate::seal::verify::verify;

const AFTER_HELP: &str = "\
Examples:
  K=fixtures/keys/demo-signing.pub.pem
  vigil verify results/demo/RUN_ID --trusted-key $K
  vigil verify results/demo/RUN_ID --trusted-key signer.pub.pem --trusted-key $K   # key rotation
  vigil verify results/demo/RUN_ID --trusted-key $K --identity fixtures/keys/demo-age.key

Exit 0 only when a trusted key signed the statement, every file it names is
present with its digest, and nothing else is in the bundle; with --identity,
also when every result decrypts to the digest and counts the statement
records. Exit 1 otherwise, with one line per problem. Never uses the network.";

/// Verify a sealed bundle: signature, digests, completeness (and, with an identity, contents).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The bundle directory (OUT/<policy>/<run-id>).
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    #[command(flatten)]
    identities: super::trust_args::Identities,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args.trusted.load()?;
    let identities = args.identities.load()?;
    let v = verify(&args.bundle, &trusted, &identities);
    if v.ok() {
        let st = v
            .statement
            .as_ref()
            .expect("verified bundles have a statement");
        let p = &st.predicate;
        let mut out = format!(
            "verified: {} (policy {}, run {}, {} files, signed by {}",
            args.bundle.display(),
            p.policy.name,
            p.run_id,
            st.subject.len(),
            v.signed_by.as_deref().unwrap_or("?")
        );
        if v.plaintext_checked > 0 {
            out.push_str(&format!(", {} plaintexts checked", v.plaintext_checked));
        } else if p.encrypted {
            out.push_str(", contents not decrypted: pass --identity to check them");
        }
        out.push_str(&format!("), verdict {}", p.verdict));
        if let Some(check) = &v.audit_check {
            out.push_str(&format!(
                "; audit-check attested: {}",
                crate::safeio::printable(check["verdict"].as_str().unwrap_or_default())
            ));
        }
        out.push('\n');
        for c in &p.scanner_images {
            let how = match (&c.verified, &c.refused) {
                (Some(v), _) => format!("signed by key {} ({})", v.key, v.source),
                (_, Some(why)) => format!("REFUSED: {why}"),
                _ => "not checked".into(),
            };
            out.push_str(&format!(
                "  {} scanner image {}: {}\n",
                c.role,
                crate::safeio::printable(&c.image),
                crate::safeio::printable(&how)
            ));
        }
        print_stdout(&out)?;
        Ok(Exit::Success)
    } else {
        for pr in &v.problems {
            eprintln!(
                "vigil: verify: {}: {}",
                crate::safeio::printable(&pr.file),
                crate::safeio::printable(&pr.message)
            );
        }
        eprintln!(
            "vigil: verify: {} FAILED ({} problem(s))",
            args.bundle.display(),
            v.problems.len()
        );
        Ok(Exit::Failed)
    }
}
