//! The `vigil` binary: parse arguments, run, print the final error once,
//! and pick the exit code (see `vigil::cli::Exit`).

use std::process::ExitCode;

fn main() -> ExitCode {
    cap_malloc_arenas();
    vigil::cli::main()
}

/// glibc gives threads that allocate at once their own malloc arenas, up
/// to 8 per core, and each keeps the memory freed in it. A cluster run has
/// `concurrency` + one worker thread per core (66 at concurrency 64): with
/// the default, a 2,000-target run's peak RSS carried about 18 MB of such
/// arenas. One arena per core keeps the allocator as parallel as the
/// machine is. `MALLOC_ARENA_MAX`, when set, is left to decide.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = i32::try_from(cores).unwrap_or(i32::MAX).max(1);
    // SAFETY: mallopt only sets an allocator parameter; it runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}
