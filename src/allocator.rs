//! The C allocator's settings for this process (glibc's `malloc`): where its defaults make
//! the analyses pay the kernel for memory they just gave back.
//!
//! glibc serves an allocation of 128 KiB or more with its own `mmap` and returns it at `free`,
//! and gives back the top of a heap once 128 KiB of it is free. Both thresholds adapt upwards
//! only when such a block is freed, and a table that grows by doubling asks for a larger block
//! each time, so every CSV column's table, record batch and inflate buffer of every archive
//! member was faulted in page by page and zeroed by the kernel anew: a tenth of the CPU of a
//! 200-member zip went to page faults (README, "Compressed files and archives").
//!
//! Here blocks up to `MMAP_THRESHOLD` come from the heaps, and a heap keeps up to
//! `TRIM_THRESHOLD` free at its top for the next member; larger blocks (a huge record, a
//! large table) are still mapped and returned at once. What a heap keeps is bounded (one per
//! thread that allocates, about 8 MiB each at most), and the daemon gives it all back once
//! its pool is idle (`give_back`, called by the scheduler).

/// Blocks at least this large are mapped on their own and returned to the system at `free`.
const MMAP_THRESHOLD: i32 = 4 << 20;

/// Free memory at the top of a heap beyond this is returned to the system.
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Applies the settings; call once, first thing in `main`. Elsewhere than on glibc, nothing.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets two of the allocator's parameters; it takes the
        // allocator's own lock and may be called at any time.
        let set = unsafe {
            (
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            )
        };
        if set != (1, 1) {
            log::debug!("the allocator refused its settings: {set:?}");
        }
    }
}

/// Returns the free memory of every heap to the system (glibc's `malloc_trim`: the tops, and
/// the free pages inside). Costs a walk over the heaps: for when the daemon goes idle.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes each heap's lock and only releases free pages.
        let released = unsafe { libc::malloc_trim(0) };
        log::debug!("idle: the allocator gave memory back ({released})");
    }
}
