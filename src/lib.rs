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
pub mod diag;
pub mod facts;
pub mod inventory;
pub mod log;
pub mod plan;
pub mod policy;
pub mod report;
pub mod runner;
pub mod safeio;
pub mod schedule;
pub mod seal;
