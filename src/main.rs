//! The `bountyline` binary: parses the command line and runs the chosen part.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    keep_large_buffers_out_of_the_heap();
    give_freed_memory_back();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bountyline: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = bountyline::cli::Cli::parse();
    match runtime.block_on(bountyline::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bountyline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Each password hash (argon2id) takes a 19 MiB buffer. glibc's malloc raises its mmap
/// threshold after the first such buffer is freed, so later ones come from per-thread heaps
/// that keep the memory: an API process grew past 800 MiB after a hundred sign-ups
/// (`bench/run`, figure 7b). A fixed threshold keeps large buffers in mmap, returned on free,
/// and fewer arenas keep the per-thread heaps few.
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// glibc's malloc keeps what a burst freed: a held load's stalls (hundreds of requests in
/// flight at once for a second) each left the API's RSS a few MiB higher for good, though the
/// memory was free again (docs/HELD-LOAD.md). `malloc_trim` returns free pages from every
/// heap; once every few seconds costs well under a millisecond.
fn give_freed_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// How often freed heap memory is handed back to the system.
        const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
        bountyline::telemetry::every(TRIM_EVERY, "malloc-trim", || {
            // SAFETY: malloc_trim only returns free memory to the system; it takes malloc's
            // own locks and is safe to call from any thread at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    }
}
