//! Test hooks: points in the pipeline where the integration tests can kill the process
//! (`FP_CRASH_AT`), make a job wait (`FP_PAUSE_AT`) or panic (`FP_PANIC_AT`), to check what
//! a crash, a change at the wrong moment or a bug leaves behind.
//!
//! They exist only in debug builds (what `cargo test` runs); in a release build every hook is
//! an empty function and no environment variable is read.

#[cfg(debug_assertions)]
mod armed {
    /// Test hook: with `FP_CRASH_AT=POINT` in the environment the process kills itself with
    /// SIGKILL when it reaches POINT, so that the tests can crash the real binary at each step of
    /// a file's life; with `FP_CRASH_AT=POINT:N`, the N-th time it reaches POINT. Points:
    /// `after-claim`, `during-report-write`, `after-report`, `after-offer` (before each offered
    /// file is claimed).
    pub fn crash_point(point: &str) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static REACHED: AtomicU64 = AtomicU64::new(0);
        if crash_armed(point) && REACHED.fetch_add(1, Ordering::Relaxed) + 1 >= crash_setting().1 {
            log::warn!("FP_CRASH_AT={point}: killing this process");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }

    pub fn crash_armed(point: &str) -> bool {
        crash_setting().0 == point
    }

    /// `FP_CRASH_AT`'s point (empty when unset) and the time it is reached at which to crash.
    fn crash_setting() -> &'static (String, u64) {
        static CRASH_AT: std::sync::OnceLock<(String, u64)> = std::sync::OnceLock::new();
        CRASH_AT.get_or_init(|| match std::env::var("FP_CRASH_AT") {
            Ok(value) => match value.split_once(':') {
                Some((point, n)) => (point.to_string(), n.parse().unwrap_or(1)),
                None => (value, 1),
            },
            Err(_) => (String::new(), 1),
        })
    }

    /// Test hook: with `FP_PAUSE_AT=POINT:MS` in the environment a job waits MS milliseconds at
    /// POINT, so that the tests can change a claimed file at that moment. Points:
    /// `after-analysis` (before the check that the file is still the one analysed),
    /// `after-progress` (each time a job's progress is told to the store: a slow analysis),
    /// `before-report` (a cluster node's finish, after it checked that it still holds the
    /// file and before it publishes the report), `after-report` (after it published the
    /// report, before it moves the file beside it),
    /// `before-publish` (a cluster node's changes, before they go to Redis), and `after-offer`
    /// (the scheduler, before each offered file is claimed: what it had queued for Redis, such
    /// as acknowledgements, has time to leave before a crash at the same point).
    pub fn pause_point(point: &str) {
        static PAUSE_AT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
        let armed = PAUSE_AT.get_or_init(|| hook_setting("FP_PAUSE_AT"));
        if let Some((at, ms)) = armed
            && at == point
        {
            log::warn!("FP_PAUSE_AT={point}: waiting {ms} ms");
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
    }

    /// Test hook: with `FP_PANIC_AT=POINT:N` in the environment the first N jobs to reach POINT
    /// panic there, so that the tests can check that a job thread outlives a panic outside the
    /// analysis. Points: `before-finish`.
    pub fn panic_point(point: &str) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static PANIC_AT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
        static PANICKED: AtomicU64 = AtomicU64::new(0);
        let armed = PANIC_AT.get_or_init(|| hook_setting("FP_PANIC_AT"));
        if let Some((at, times)) = armed
            && at == point
            && PANICKED.fetch_add(1, Ordering::Relaxed) < *times
        {
            panic!("FP_PANIC_AT={point}");
        }
    }

    /// `POINT:N` from the test hook variable `var`, if set and well formed.
    fn hook_setting(var: &str) -> Option<(String, u64)> {
        let value = std::env::var(var).ok()?;
        let (at, n) = value.split_once(':')?;
        Some((at.to_string(), n.parse().ok()?))
    }
}

#[cfg(debug_assertions)]
pub use armed::{crash_armed, crash_point, panic_point, pause_point};

#[cfg(not(debug_assertions))]
mod disarmed {
    pub fn crash_point(_point: &str) {}

    pub fn crash_armed(_point: &str) -> bool {
        false
    }

    pub fn pause_point(_point: &str) {}

    pub fn panic_point(_point: &str) {}
}

#[cfg(not(debug_assertions))]
pub use disarmed::{crash_armed, crash_point, panic_point, pause_point};
