//! Fuzz the facts frame decoder (probe output read back from a pod).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::facts::frame::decode("fuzz", data);
});
