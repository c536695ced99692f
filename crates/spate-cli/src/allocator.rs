//! The system allocator's one setting the `spate` binary changes: glibc's mmap threshold.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at start) with its own `mmap`,
//! returned to the kernel on free. But the threshold is *dynamic*: each time such a block is
//! freed, glibc raises the threshold to its size, up to 32 MiB. A streaming job frees blocks of
//! megabytes all the time (receiver blocks, their encoded write-ahead-log frames, fetch
//! buffers), so after the first few every such buffer comes from the heap instead, and a freed
//! buffer in the middle of the heap stays resident. A fixed threshold stops that drift.
//!
//! docs/benchmarks.md ("Allocator decision") has the runs behind the value: 512 KiB took the
//! receiver job with its log on from 134–139 MiB to 115 MiB peak RSS and log off from 103–116 to
//! 90–95 MiB, without a CPU cost outside the noise; 128 KiB cost about half as much CPU again
//! (every fetch-sized buffer became an mmap and its page faults).
//!
//! A user's `MALLOC_MMAP_THRESHOLD_` wins: glibc reads it at start and this does nothing then.
//! Other allocators (the `mimalloc` feature, musl) are left alone.

/// glibc's mmap threshold for the `spate` binary.
pub const MMAP_THRESHOLD_BYTES: usize = 512 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`] unless the environment sets one.
/// Returns whether it did. Call it first thing in `main`, before threads start.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
#[allow(unsafe_code)]
pub fn fix_mmap_threshold() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return false;
    }
    let bytes = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; it takes no pointers and is safe to
    // call at any time (glibc serialises it with its arenas' locks).
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

/// Not glibc (or mimalloc is the global allocator): nothing to fix.
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
pub fn fix_mmap_threshold() -> bool {
    false
}
