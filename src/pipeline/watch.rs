//! The notify source: watches `unprocessed/` (inotify, or polling with `--poll`) and turns
//! raw notify events into the few facts the scheduler acts on.
//!
//! It never claims, stats or reads a file, and never blocks notify's thread: events go out
//! with `try_send`, and when the channel is full the event is dropped and `missed` is set, so
//! the scheduler rescans the folder, exactly as after a kernel queue overflow.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

/// What a notify event means for one name in `unprocessed/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// Closed after writing, or moved in whole: complete now.
    Ready(OsString),
    /// Being written: not complete until closed.
    Writing(OsString),
    /// A new name, not (yet) written to: by a writer that will write next (then `Writing`
    /// follows), or a hard link or `O_TMPFILE` + `linkat`, which no close event follows.
    Created(OsString),
    /// Something changed but no event will say when it is complete (polling): settle it.
    Changed(OsString),
    /// Moved away or removed.
    Gone(OsString),
    /// Events were lost: the folder must be listed again.
    Rescan,
    /// The watcher reported an error.
    Failed(String),
}

/// Names the daemon leaves alone: dotfiles (also our own temp files) and the usual names of
/// files still being written by browsers, editors and copy tools.
pub fn is_ignored(name: &OsStr) -> bool {
    const SUFFIXES: [&[u8]; 5] = [b".tmp", b".part", b".crdownload", b".swp", b"~"];
    let bytes = name.as_bytes();
    bytes.is_empty()
        || bytes.starts_with(b".")
        || SUFFIXES.iter().any(|suffix| bytes.ends_with(suffix))
}

/// The running watcher; dropping it stops watching. `rearm` watches the folder afresh: an
/// inotify watch follows the folder's inode, so a folder removed and created again is not
/// watched until then.
pub struct FolderWatcher {
    watcher: Box<dyn Watcher + Send>,
    dir: PathBuf,
    poll: Option<Duration>,
    events: Sender<FileEvent>,
    missed: Arc<AtomicBool>,
}

impl FolderWatcher {
    /// Starts watching `dir` (not its subfolders). With `poll`, a polling watcher scans every
    /// `poll` instead of inotify (network shares, Docker Desktop mounts).
    pub fn new(
        dir: &Path,
        poll: Option<Duration>,
        events: Sender<FileEvent>,
        missed: Arc<AtomicBool>,
    ) -> notify::Result<FolderWatcher> {
        let watcher = watch(dir, poll, events.clone(), Arc::clone(&missed))?;
        Ok(FolderWatcher {
            watcher,
            dir: dir.to_path_buf(),
            poll,
            events,
            missed,
        })
    }

    /// Replaces the watch with a new one on the folder as it is now.
    pub fn rearm(&mut self) -> notify::Result<()> {
        let fresh = watch(
            &self.dir,
            self.poll,
            self.events.clone(),
            Arc::clone(&self.missed),
        )?;
        // The old one goes only once the new one watches: no moment without a watch.
        self.watcher = fresh;
        Ok(())
    }

    /// Stops watching until the next `rearm` (a cluster node that another node scans for
    /// would only wake up for events it ignores).
    pub fn pause(&mut self) {
        if let Err(err) = self.watcher.unwatch(&self.dir) {
            log::debug!("unwatching {}: {err}", self.dir.display());
        }
    }
}

fn watch(
    dir: &Path,
    poll: Option<Duration>,
    events: Sender<FileEvent>,
    missed: Arc<AtomicBool>,
) -> notify::Result<Box<dyn Watcher + Send>> {
    let polling = poll.is_some();
    let handler = move |result: notify::Result<Event>| {
        let facts = match result {
            Ok(event) => classify(&event, polling),
            Err(err) => vec![FileEvent::Failed(err.to_string())],
        };
        for fact in facts {
            match events.try_send(fact) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                // The scheduler is behind: drop the event and have it rescan instead.
                Err(TrySendError::Full(_)) => missed.store(true, Ordering::Release),
            }
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(interval) => Box::new(notify::PollWatcher::new(
            handler,
            notify::Config::default().with_poll_interval(interval),
        )?),
        None => Box::new(notify::recommended_watcher(handler)?),
    };
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Maps one notify event to facts about names. Without close events (polling), every change
/// only restarts the settle check.
pub fn classify(event: &Event, polling: bool) -> Vec<FileEvent> {
    if event.need_rescan() {
        return vec![FileEvent::Rescan];
    }
    let names = || {
        event
            .paths
            .iter()
            .filter_map(|path| path.file_name())
            .filter(|name| !is_ignored(name))
            .map(OsStr::to_os_string)
    };
    let all = |fact: fn(OsString) -> FileEvent| names().map(fact).collect();
    match event.kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            all(FileEvent::Gone)
        }
        _ if polling => match event.kind {
            EventKind::Create(CreateKind::Folder) | EventKind::Access(_) => Vec::new(),
            _ => all(FileEvent::Changed),
        },
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => all(FileEvent::Ready),
        // A rename inside the folder (`x.part` → `x.csv`): the old name is gone, the new one
        // arrived whole.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            let mut facts = Vec::new();
            let mut paths = event.paths.iter().filter_map(|path| path.file_name());
            if let Some(from) = paths.next().filter(|name| !is_ignored(name)) {
                facts.push(FileEvent::Gone(from.to_os_string()));
            }
            if let Some(to) = paths.next().filter(|name| !is_ignored(name)) {
                facts.push(FileEvent::Ready(to.to_os_string()));
            }
            facts
        }
        EventKind::Create(CreateKind::Folder) => Vec::new(),
        EventKind::Create(_) => all(FileEvent::Created),
        EventKind::Modify(ModifyKind::Data(_)) => all(FileEvent::Writing),
        // Renames the backend could not pair, and anything unusual: let the settle check
        // decide.
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Modify(ModifyKind::Any) => {
            all(FileEvent::Changed)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, Flag, RemoveKind};
    use std::path::PathBuf;

    fn event(kind: EventKind, names: &[&str]) -> Event {
        let mut event = Event::new(kind);
        for name in names {
            event = event.add_path(PathBuf::from("/w/unprocessed").join(name));
        }
        event
    }

    fn name(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn ignored_names() {
        for ignored in [
            ".hidden",
            ".fp-1.tmp",
            "a.tmp",
            "a.part",
            "a.crdownload",
            ".a.swp",
            "a.swp",
            "a~",
        ] {
            assert!(is_ignored(OsStr::new(ignored)), "{ignored}");
        }
        for kept in ["a.csv", "tmp", "a.tmp.csv", "part", "a~b"] {
            assert!(!is_ignored(OsStr::new(kept)), "{kept}");
        }
    }

    #[test]
    fn events_become_facts() {
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let moved_in = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let create = EventKind::Create(CreateKind::File);
        let table: Vec<(Event, bool, Vec<FileEvent>)> = vec![
            (
                event(close, &["a.csv"]),
                false,
                vec![FileEvent::Ready(name("a.csv"))],
            ),
            (
                event(moved_in, &["a.csv"]),
                false,
                vec![FileEvent::Ready(name("a.csv"))],
            ),
            (
                event(create, &["a.csv"]),
                false,
                vec![FileEvent::Created(name("a.csv"))],
            ),
            (
                event(write, &["a.csv"]),
                false,
                vec![FileEvent::Writing(name("a.csv"))],
            ),
            (
                event(both, &["a.part", "a.csv"]),
                false,
                vec![FileEvent::Ready(name("a.csv"))],
            ),
            (
                event(both, &["a.csv", "b.csv"]),
                false,
                vec![
                    FileEvent::Gone(name("a.csv")),
                    FileEvent::Ready(name("b.csv")),
                ],
            ),
            (event(close, &["a.part"]), false, vec![]),
            (
                event(EventKind::Create(CreateKind::Folder), &["sub"]),
                false,
                vec![],
            ),
            (
                event(EventKind::Remove(RemoveKind::File), &["a.csv"]),
                false,
                vec![FileEvent::Gone(name("a.csv"))],
            ),
            (
                Event::new(EventKind::Other).set_flag(Flag::Rescan),
                false,
                vec![FileEvent::Rescan],
            ),
            (
                event(write, &["a.csv"]),
                true,
                vec![FileEvent::Changed(name("a.csv"))],
            ),
            (
                event(create, &["a.csv"]),
                true,
                vec![FileEvent::Changed(name("a.csv"))],
            ),
        ];
        for (event, polling, want) in table {
            assert_eq!(
                classify(&event, polling),
                want,
                "{event:?} polling={polling}"
            );
        }
    }
}
