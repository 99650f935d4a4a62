//! vigil: least-privilege container compliance scanning with sealed,
//! verifiable results.
//!
//! The modules mirror the data flow: `policy` → `inventory` → `plan` →
//! (access → approach → facts → checks) → `report` → (seal).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![allow(clippy::result_large_err)]

pub mod access;
pub mod approach;
pub mod audit;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod cosign;
pub(crate) mod diag;
pub(crate) mod encoding;
pub mod facts;
pub mod image;
pub mod image_source;
pub mod inventory;
pub(crate) mod log;
pub mod monitor;
pub mod plan;
pub mod policy;
pub(crate) mod redact;
pub mod registry;
pub mod report;
pub mod runner;
pub(crate) mod safeio;
pub(crate) mod schedule;
pub mod seal;
