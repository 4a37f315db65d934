//! Files the HTTP side puts into `unprocessed/` with a job id already given (uploads and
//! retries), so that the scheduler queues them under that id and not a new one.
//!
//! An entry is keyed by the file's device and inode, taken from the open file before it is
//! renamed into `unprocessed/`: a name could be taken by another file meanwhile, an inode
//! cannot. The scheduler takes the entry when the file becomes ready. Entries for files that
//! never got there (removed by hand before they were queued) are dropped after `STALE`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::registry::JobId;

/// An entry not taken this long is for a file that is gone.
const STALE: Duration = Duration::from_secs(3600);

/// The device and inode of a file.
pub type FileKey = (u64, u64);

#[derive(Default)]
pub struct Intake {
    expected: Mutex<HashMap<FileKey, (JobId, Instant)>>,
}

impl Intake {
    /// The file `key`, about to be renamed into `unprocessed/`, is job `id`.
    pub fn expect(&self, key: FileKey, id: JobId) {
        let mut expected = self.lock();
        let now = Instant::now();
        if expected.len() >= 1024 {
            expected.retain(|_, (_, since)| now.duration_since(*since) < STALE);
        }
        expected.insert(key, (id, now));
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
        expected.remove(&key).map(|(id, _)| id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, (JobId, Instant)>> {
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
}
