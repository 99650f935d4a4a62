//! Sealing results: age encryption, ed25519-signed DSSE envelopes over an
//! in-toto statement, the bundle layout, and offline verification.
//!
//! Formats stay standard so the reference tools interoperate: the `age`
//! CLI decrypts every result file, and `openssl pkeyutl -verify -rawin`
//! verifies the signature over the DSSE PAE bytes with the SPKI public key.

pub(crate) mod attest;
pub mod bundle;
pub(crate) mod drift;
pub mod dsse;
pub mod keys;
pub(crate) mod layout;
pub(crate) mod merge;
pub(crate) mod options;
pub(crate) mod statement;
pub(crate) mod verdict;
pub mod verify;
