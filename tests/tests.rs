//! Integration tests: the real `vigil` binary, run in fresh temporary
//! directories with a scrubbed environment. One binary, one module per topic.

mod util;

/// The benchmarks' helpers (a child's peak RSS), shared with the tests.
#[path = "../benches/common.rs"]
#[allow(dead_code)]
mod bench_common;

mod fakeapi;

mod approaches;
mod demo;
mod e2e;
mod external;
mod first_hour;
mod gather;
mod hostile;
mod images;
mod import;
mod incluster;
mod interop;
mod kube;
mod layering;
mod layers;
mod monitor;
mod pipelines;
mod plan;
mod probe;
mod pss;
mod registry;
mod release;
mod runner;
mod scan;
mod seal;
mod tls;
mod validate;
mod workloads;
