//! vigil: least-privilege container compliance scanning with sealed,
//! verifiable results.
//!
//! The modules mirror the data flow: `policy` → `inventory` → `plan` →
//! (access → approach → facts → checks) → `report` → (seal).
//!
//! The public surface is what embedders, the tests and the benchmarks
//! use: load and plan (`policy`, `inventory`, `plan`, `runner::session`),
//! run and seal (`runner::pipeline`), read results (`report`, `seal`),
//! and the layers the differential tests drive directly (`facts`,
//! `checks`, `image::open`). Everything else is `pub(crate)`, and
//! `unreachable_pub` is denied so it stays so.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]
#![allow(clippy::result_large_err)]

pub mod access;
pub mod approach;
pub mod audit;
pub mod checks;
pub mod cli;
pub mod cluster;
pub(crate) mod cosign;
pub(crate) mod diag;
pub(crate) mod encoding;
pub mod facts;
pub mod image;
pub(crate) mod image_source;
pub mod inventory;
pub(crate) mod log;
pub mod monitor;
pub mod plan;
pub mod policy;
pub(crate) mod redact;
pub(crate) mod registry;
pub mod report;
pub mod runner;
pub(crate) mod safeio;
pub(crate) mod schedule;
pub mod seal;
