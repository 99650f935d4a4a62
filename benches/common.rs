//! Shared by the benchmarks (each includes it with `#[path]`).

/// This process's peak resident set size (VmHWM), in KiB.
#[allow(dead_code)]
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Run `cmd` to its end and return its exit code and its peak RSS in KiB
/// (`ru_maxrss` of the child, from `wait4`), so a benchmark measures the
/// vigil binary as users run it.
#[allow(dead_code)]
pub fn child_peak_rss_kib(cmd: &mut std::process::Command) -> (i32, u64) {
    let child = cmd.spawn().expect("the command starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss as u64)
}
