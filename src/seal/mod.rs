//! Sealing results: age encryption, ed25519-signed DSSE envelopes over an
//! in-toto statement, the bundle layout, and offline verification.
//!
//! Formats stay standard so the reference tools interoperate: the `age`
//! CLI decrypts every result file, and `openssl pkeyutl -verify -rawin`
//! verifies the signature over the DSSE PAE bytes with the SPKI public key.

pub mod bundle;
pub mod dsse;
pub mod keys;
pub mod layout;
pub mod merge;
pub mod options;
pub mod statement;
pub mod verify;
