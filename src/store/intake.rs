//! Files the HTTP side puts into `unprocessed/` with a job id already given (uploads and
//! retries), so that the scheduler queues them under that id and not a new one.
//!
//! An entry is keyed by the file's device and inode, taken from the open file before it is
//! renamed into `unprocessed/`: a name could be taken by another file meanwhile, an inode
//! cannot. The scheduler takes the entry when the file becomes ready. Once placed, an entry
//! also knows the file's name, so that the scheduler's reconcile scan can drop the entries of
//! files removed before they were queued (`sweep`): their jobs are forgotten, and their inode,
//! which a new file may reuse, no longer carries an old job id.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::job::JobId;

/// An entry not placed this long belongs to a placing that failed without withdrawing it.
const UNPLACED_STALE: Duration = Duration::from_secs(60);

/// The device and inode of a file.
pub type FileKey = (u64, u64);

struct Expected {
    id: JobId,
    since: Instant,
    /// Its name in `unprocessed/`, once placed there.
    name: Option<OsString>,
}

#[derive(Default)]
pub struct Intake {
    expected: Mutex<HashMap<FileKey, Expected>>,
}

impl Intake {
    /// The file `key`, about to be renamed into `unprocessed/`, is job `id`.
    pub fn expect(&self, key: FileKey, id: JobId) {
        self.lock().insert(
            key,
            Expected {
                id,
                since: Instant::now(),
                name: None,
            },
        );
    }

    /// The file `key` is now `unprocessed/NAME`.
    pub fn placed(&self, key: FileKey, name: &OsStr) {
        if let Some(entry) = self.lock().get_mut(&key) {
            entry.name = Some(name.to_os_string());
        }
    }

    /// The file did not get there after all.
    pub fn withdraw(&self, key: FileKey) {
        self.lock().remove(&key);
    }

    /// The job id given to the file `key`, if any; at most once.
    pub fn take(&self, key: FileKey) -> Option<JobId> {
        let mut expected = self.lock();
        if expected.is_empty() {
            return None;
        }
        expected.remove(&key).map(|entry| entry.id)
    }

    /// Drops the entries whose file is no longer in `unprocessed/` (`present(name, key)` says
    /// whether `NAME` there is still that file) and returns their job ids. Entries still being
    /// placed are left alone unless they are stale.
    pub fn sweep(&self, mut present: impl FnMut(&OsStr, FileKey) -> bool) -> Vec<JobId> {
        let mut expected = self.lock();
        if expected.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut gone = Vec::new();
        expected.retain(|key, entry| {
            let keep = match &entry.name {
                Some(name) => present(name, *key),
                None => now.duration_since(entry.since) < UNPLACED_STALE,
            };
            if !keep {
                gone.push(entry.id);
            }
            keep
        });
        gone
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, Expected>> {
        // Every update is one map operation: a panic elsewhere cannot leave it half done.
        self.expected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_file_is_taken_once_and_others_get_nothing() {
        let intake = Intake::default();
        let id = JobId::from(7u128);
        intake.expect((1, 42), id);
        assert_eq!(intake.take((1, 43)), None);
        assert_eq!(intake.take((2, 42)), None);
        assert_eq!(intake.take((1, 42)), Some(id));
        assert_eq!(intake.take((1, 42)), None);
        intake.expect((1, 44), id);
        intake.withdraw((1, 44));
        assert_eq!(intake.take((1, 44)), None);
    }

    #[test]
    fn entries_of_removed_files_are_swept_and_their_inode_is_free_again() {
        let intake = Intake::default();
        let (kept, removed, placing) = (JobId::from(1u128), JobId::from(2u128), JobId::from(3u128));
        intake.expect((1, 1), kept);
        intake.placed((1, 1), OsStr::new("a.csv"));
        intake.expect((1, 2), removed);
        intake.placed((1, 2), OsStr::new("b.csv"));
        intake.expect((1, 3), placing);
        let gone = intake.sweep(|name, key| name == "a.csv" && key == (1, 1));
        assert_eq!(gone, vec![removed]);
        // A new file on the removed one's inode is a new job.
        assert_eq!(intake.take((1, 2)), None);
        assert_eq!(intake.take((1, 1)), Some(kept));
        assert_eq!(intake.take((1, 3)), Some(placing));
    }
}
