//! Results: HDF documents, summaries, thresholds, waivers.
pub mod threshold;
