//! Approaches: how a planned target's facts are gathered. `local` reads a
//! root filesystem on this machine; `api` runs the shell gatherer with one
//! `pods/exec` as the run's scoped identity. `debug` and `sidecar` arrive
//! with the ephemeral-container work.

pub mod api;
