//! Fuzz the shell gatherer's output parser: container output is hostile.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let req: vigil::facts::FactRequest = serde_json::from_value(serde_json::json!({
        "nonce": "fuzz", "max_file_bytes": 4096,
        "stat": ["/etc/passwd"], "read": ["/etc/passwd"], "read_dirs": ["/d"],
        "walks": [{"path": "/usr", "depth": 3, "limit": 10, "all": false}],
        "processes": false, "commands": []
    }))
    .unwrap();
    let mut input = b"VIGIL-GATHER v1 fuzz\n".to_vec();
    input.extend_from_slice(data);
    if let Ok(facts) = vigil::facts::shell::parse(&req, &input) {
        assert!(facts.files.keys().all(|k| k == "/etc/passwd"));
        assert!(facts.walks.values().flat_map(|w| &w.entries).all(|e| e.path.starts_with("/usr/")));
    }
});
