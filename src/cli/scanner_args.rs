//! `--scanner-key` and friends: how `vigil run` verifies scanner images.

use std::path::PathBuf;

use super::InvalidInput;
use crate::runner::scanner::ScannerTrust;

/// Scanner image verification settings.
#[derive(Debug, clap::Args)]
pub struct ScannerArgs {
    /// Verify the debug and sidecar scanner images' cosign signatures with
    /// this public key (PEM, ECDSA P-256 or Ed25519) before any scan;
    /// replaces the policies' verify.key.
    #[arg(long, value_name = "PUB")]
    scanner_key: Option<PathBuf>,
    /// A saved signature of the scanner image (`cosign download signature`
    /// output): verify without contacting its registry.
    #[arg(long, value_name = "FILE")]
    scanner_signature: Option<PathBuf>,
    /// Use plain HTTP for this registry host (test registries only); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
}

impl ScannerArgs {
    /// The settings, the key read and checked now (a bad key is bad input,
    /// found before anything runs).
    pub fn trust(&self) -> Result<ScannerTrust, InvalidInput> {
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
            insecure_registries: self.insecure_registries.clone(),
        })
    }
}
