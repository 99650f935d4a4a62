//! vigil: least-privilege container compliance scanning with sealed,
//! verifiable results.
//!
//! The modules mirror the data flow: `policy` → `inventory` → `plan` →
//! (access → approach → facts → checks) → `report` → (seal).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod diag;
pub mod policy;
pub mod report;
pub mod cli;
pub mod inventory;
pub mod plan;
