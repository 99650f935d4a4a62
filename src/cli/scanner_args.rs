//! `--scanner-key` and friends: how `vigil run` verifies scanner images.

use std::path::PathBuf;

use super::InvalidInput;
use crate::runner::scanner::ScannerTrust;

/// Scanner image verification settings.
#[derive(Debug, clap::Args)]
pub(super) struct ScannerArgs {
    /// Verify the debug and sidecar scanner images' cosign signatures with
    /// this public key (PEM, ECDSA P-256 or Ed25519) before any scan;
    /// replaces the policies' verify.key.
    #[arg(long, value_name = "PUB")]
    scanner_key: Option<PathBuf>,
    /// A saved signature of the scanner image (`cosign download signature`
    /// output): verify without contacting its registry.
    #[arg(long, value_name = "FILE")]
    scanner_signature: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// How registries are reached: `vigil run` and `vigil verify-image`.
#[derive(Debug, clap::Args)]
pub(super) struct RegistryArgs {
    /// Use plain HTTP for this registry host (test registries only); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Seconds one registry request may take besides its body's transfer
    /// time (a registry that trickles bytes is cut off). Replaces the
    /// policy's limits.registryTimeout [default: 120].
    #[arg(long = "registry-timeout", value_name = "SECONDS")]
    timeout: Option<u64>,
    /// The slowest a registry may send a body, in KiB/s: a body of N KiB
    /// may take N / this many seconds more. Replaces the policy's
    /// limits.registryMinRate [default: 256].
    #[arg(long = "registry-min-rate", value_name = "KIB_PER_S",
          value_parser = clap::value_parser!(u64).range(1..))]
    min_rate: Option<u64>,
}

impl RegistryArgs {
    /// A registry client for these flags (plain-HTTP hosts, deadlines) with
    /// the credentials of the environment's auth file.
    pub(crate) fn client(&self) -> anyhow::Result<crate::registry::Client> {
        let credentials = crate::registry::Credentials::from_environment()
            .map_err(|e| InvalidInput(e.to_string()))?;
        Ok(crate::registry::Client::new(&self.insecure, credentials)?
            .with_deadlines(self.deadlines().over(crate::registry::Deadlines::default())))
    }

    /// The request deadlines these flags set (each replaces the policy's).
    pub(super) fn deadlines(&self) -> crate::registry::DeadlineFlags {
        crate::registry::DeadlineFlags {
            timeout: self.timeout.map(std::time::Duration::from_secs),
            min_rate: self.min_rate.map(|k| k.saturating_mul(1024)),
        }
    }
}

impl ScannerArgs {
    /// The settings, the key read and checked now (a bad key is bad input,
    /// found before anything runs).
    pub(super) fn trust(&self) -> Result<ScannerTrust, InvalidInput> {
        let key = self
            .scanner_key
            .as_ref()
            .map(|p| {
                crate::cosign::PublicKey::from_file(p).map_err(|e| InvalidInput(e.to_string()))
            })
            .transpose()?;
        if let Some(p) = &self.scanner_signature {
            crate::safeio::read(p, 4 << 20, "signature file")
                .map_err(|e| InvalidInput(e.to_string()))?;
        }
        Ok(ScannerTrust {
            key,
            signature: self.scanner_signature.clone(),
            insecure_registries: self.registry.insecure.clone(),
            registry_deadlines: self.registry.deadlines(),
        })
    }
}
