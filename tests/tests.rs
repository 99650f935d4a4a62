//! Integration tests: the real `vigil` binary, run in fresh temporary
//! directories with a scrubbed environment. One binary, one module per topic.

mod util;

mod gather;
mod interop;
mod plan;
mod probe;
mod scan;
mod seal;
mod validate;
