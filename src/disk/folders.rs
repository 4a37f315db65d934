//! The four folders of the life of a file, and the only code that moves or writes files in them.
//!
//! Every move is an atomic rename that can never replace an existing name (`renameat2` with
//! `RENAME_NOREPLACE`, or link + unlink where the filesystem lacks it). A taken name gets a
//! derived free name (`data.csv` → `data-2.csv`). Across filesystems a file is copied to a
//! hidden temporary name beside its target, synced, linked into place without replacing
//! anything, and only then removed from where it was. Reports are published whole
//! (`publish_new_file`: written unnamed, then linked, never replacing). Nothing here ever opens
//! a user's file for writing. The deepest crash point of the tests (`test_hooks`) is inside a
//! report write, here.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{CWD, RenameFlags};
use tempfile::NamedTempFile;

use crate::test_hooks;

/// How many numbered names are tried (`name-2` … `name-10000`) before the names that carry a
/// unique tag (the job id, or a new ULID), which are always free: a name dropped for the
/// ten-thousand-and-first time still finds a place.
pub const MAX_NAME_ATTEMPTS: u32 = 10_000;

/// Longest file name Linux filesystems accept, in bytes.
const NAME_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot create folder {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot move {from} into {to_dir}: {source}")]
    Move {
        from: PathBuf,
        to_dir: PathBuf,
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// `unprocessed/ underprocess/ processed/ failed/` under one root.
#[derive(Debug, Clone)]
pub struct Folders {
    pub root: PathBuf,
    pub unprocessed: PathBuf,
    pub underprocess: PathBuf,
    pub processed: PathBuf,
    pub failed: PathBuf,
}

impl Folders {
    /// The four folders.
    pub fn all(&self) -> [&PathBuf; 4] {
        [
            &self.unprocessed,
            &self.underprocess,
            &self.processed,
            &self.failed,
        ]
    }

    /// Creates the root and its four folders where missing.
    pub fn create(root: &Path) -> Result<Folders, FolderError> {
        let folders = Folders {
            root: root.to_path_buf(),
            unprocessed: root.join("unprocessed"),
            underprocess: root.join("underprocess"),
            processed: root.join("processed"),
            failed: root.join("failed"),
        };
        for dir in [
            &folders.unprocessed,
            &folders.underprocess,
            &folders.processed,
            &folders.failed,
        ] {
            fs::create_dir_all(dir).map_err(|source| FolderError::Create {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(folders)
    }
}

impl Folders {
    /// Creates any of the four folders that went missing (removed while running). Errors are
    /// left to the step that needs the folder, which reports them.
    pub fn recreate_missing(&self) {
        for dir in [
            &self.unprocessed,
            &self.underprocess,
            &self.processed,
            &self.failed,
        ] {
            if !exists(dir) {
                match fs::create_dir_all(dir) {
                    Ok(()) => log::warn!("{} was missing: created it again", dir.display()),
                    Err(err) => log::debug!("cannot create {} again: {err}", dir.display()),
                }
            }
        }
    }
}

/// The `attempt`-th name derived from `name`: the name itself, then `stem-2.ext`, `stem-3.ext`…
pub fn derived_name(name: &OsStr, attempt: u32) -> OsString {
    if attempt <= 1 {
        return name.to_os_string();
    }
    let path = Path::new(name);
    let mut out = OsString::new();
    match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            out.push(stem);
            out.push(format!("-{attempt}."));
            out.push(ext);
        }
        _ => {
            out.push(name);
            out.push(format!("-{attempt}"));
        }
    }
    out
}

/// The `attempt`-th derived name, shortened where needed so that it still fits the
/// filesystem's name limit with `reserve` more bytes appended (a report suffix): a long name
/// must never make the file or its report impossible to place.
pub fn fitting_name(name: &OsStr, attempt: u32, reserve: usize) -> OsString {
    let candidate = derived_name(name, attempt);
    if candidate.len() <= NAME_MAX.saturating_sub(reserve) {
        return candidate;
    }
    // A shortened name always carries a number, so that its attempts stay distinct.
    tagged_name(name, &format!("-{}", attempt.max(2)), reserve)
}

/// `stem` + `tag` + `.ext`, the stem shortened where needed so that it fits the name limit
/// with `reserve` more bytes appended.
fn tagged_name(name: &OsStr, tag: &str, reserve: usize) -> OsString {
    let limit = NAME_MAX.saturating_sub(reserve);
    let path = Path::new(name);
    let (stem, ext) = match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) if ext.len() + 1 < limit / 2 => (stem.as_bytes(), Some(ext)),
        _ => (name.as_bytes(), None),
    };
    let ext_len = ext.map_or(0, |ext| ext.len() + 1);
    let mut stem_end = limit.saturating_sub(tag.len() + ext_len).min(stem.len());
    // Cut on a character boundary when the name is UTF-8, so it stays readable.
    if let Ok(text) = std::str::from_utf8(stem) {
        while stem_end > 0 && !text.is_char_boundary(stem_end) {
            stem_end -= 1;
        }
    }
    let mut out = stem[..stem_end].to_vec();
    out.extend_from_slice(tag.as_bytes());
    if let Some(ext) = ext {
        out.push(b'.');
        out.extend_from_slice(ext.as_bytes());
    }
    OsString::from_vec(out)
}

/// The `attempt`-th name to try for `name`: the numbered names of `fitting_name` up to
/// `MAX_NAME_ATTEMPTS`, then `stem-UNIQUE.ext`, `stem-UNIQUE-2.ext`, … (`unique`: a job id or a
/// new ULID), so that the search always ends.
pub fn candidate_name(name: &OsStr, attempt: u32, reserve: usize, unique: &str) -> OsString {
    if attempt <= MAX_NAME_ATTEMPTS {
        return fitting_name(name, attempt, reserve);
    }
    let tag = match attempt - MAX_NAME_ATTEMPTS {
        1 => format!("-{unique}"),
        n => format!("-{unique}-{n}"),
    };
    tagged_name(name, &tag, reserve)
}

/// `name` followed by `suffix` (a report's name: `NAME` + `.report.json`).
pub fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut out = name.to_os_string();
    out.push(suffix);
    out
}

/// Moves `from` into `to_dir` under `name`, or the first derived name that is free, never
/// replacing anything. With `companion_suffix` (e.g. `.report.json`), a name is only taken if
/// `NAME + suffix` is free too, so that the report written next to it has its place.
/// Returns the new path.
pub fn move_into(
    from: &Path,
    to_dir: &Path,
    name: &OsStr,
    companion_suffix: Option<&str>,
    durable: bool,
) -> Result<PathBuf, FolderError> {
    let move_error = |source| FolderError::Move {
        from: from.to_path_buf(),
        to_dir: to_dir.to_path_buf(),
        source,
    };
    // Set once `from` turned out to be on another filesystem: a synced copy waiting for a name.
    let mut copy: Option<NamedTempFile> = None;
    let mut copied = false;
    let mut attempt = 1;
    // Made only if the numbered names run out.
    let mut unique = None;
    loop {
        let candidate = if attempt <= MAX_NAME_ATTEMPTS {
            fitting_name(name, attempt, companion_suffix.map_or(0, str::len))
        } else {
            let unique = unique.get_or_insert_with(|| ulid::Ulid::generate().to_string());
            candidate_name(name, attempt, companion_suffix.map_or(0, str::len), unique)
        };
        let target = to_dir.join(&candidate);
        if let Some(suffix) = companion_suffix
            && exists(&to_dir.join(with_suffix(&candidate, suffix)))
        {
            attempt += 1;
            continue;
        }
        let outcome = match copy.take() {
            None => rename_no_replace(from, &target),
            Some(temp) => temp.persist_noclobber(&target).map(drop).map_err(|err| {
                copy = Some(err.file);
                err.error
            }),
        };
        match outcome {
            Ok(()) => {
                if durable || copied {
                    sync_dir(to_dir);
                }
                if copied {
                    if let Err(err) = fs::remove_file(from) {
                        // The original cannot leave: the copy must not stay either, or the
                        // file would exist twice (and be processed twice).
                        if let Err(undo) = fs::remove_file(&target) {
                            log::error!(
                                "cannot remove the copy {} after the original could not be \
                                 removed: {undo}",
                                target.display()
                            );
                        }
                        return Err(move_error(err));
                    }
                    sync_parent(from);
                }
                return Ok(target);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                log::debug!("{} is taken; trying the next name", target.display());
                attempt += 1;
            }
            Err(err) if err.kind() == io::ErrorKind::CrossesDevices && !copied => {
                log::debug!("{} is on another filesystem: copying", from.display());
                copy = Some(copy_to_temp(from, to_dir).map_err(move_error)?);
                copied = true;
            }
            Err(err) => return Err(move_error(err)),
        }
        if attempt > MAX_NAME_ATTEMPTS + UNIQUE_NAME_ATTEMPTS {
            // Only a folder that fakes every name as taken gets here.
            return Err(move_error(io::Error::from(io::ErrorKind::AlreadyExists)));
        }
    }
}

/// Names with a unique tag tried after the numbered ones; the first one is free but for a
/// file planted under it.
pub const UNIQUE_NAME_ATTEMPTS: u32 = 1000;

/// Creates `dir/name` holding `bytes` all at once: nobody ever sees it partly written, a crash
/// never leaves it partly written, and a taken name fails with `AlreadyExists` (nothing is
/// replaced). The bytes go to an unnamed file (`O_TMPFILE`) that is then linked into place: one
/// change to the folder. Where the filesystem cannot do that, a hidden temp file is written and
/// renamed instead (a crash can then leave the temp file, which the next start removes).
pub fn publish_new_file(dir: &Path, name: &OsStr, bytes: &[u8], durable: bool) -> io::Result<()> {
    let target = dir.join(name);
    match publish_unnamed(dir, &target, bytes, durable) {
        Ok(()) => Ok(()),
        Err(Unnamed::Failed(err)) => Err(err),
        Err(Unnamed::Unsupported(err)) => {
            log::debug!(
                "no unnamed files in {} ({err}): using a temp file",
                dir.display()
            );
            let mut temp = temp_in(dir)?;
            write_maybe_crashing(temp.as_file_mut(), bytes)?;
            if durable {
                temp.as_file().sync_all()?;
            }
            temp.persist_noclobber(&target)
                .map(drop)
                .map_err(|err| err.error)
        }
    }
}

enum Unnamed {
    Unsupported(io::Error),
    Failed(io::Error),
}

fn publish_unnamed(dir: &Path, target: &Path, bytes: &[u8], durable: bool) -> Result<(), Unnamed> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|errno| match errno {
        rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL => {
            Unnamed::Unsupported(errno.into())
        }
        errno => Unnamed::Failed(errno.into()),
    })?;
    let mut file = File::from(fd);
    write_maybe_crashing(&mut file, bytes).map_err(Unnamed::Failed)?;
    if durable {
        file.sync_all().map_err(Unnamed::Failed)?;
    }
    // By descriptor: since Linux 6.10 allowed to the process that opened the file, before
    // that only with a privilege. It spares a walk of /proc per report; once refused here,
    // every report goes through /proc, which needs no privilege.
    if !BY_DESCRIPTOR_REFUSED.load(Ordering::Relaxed) {
        match rustix::fs::linkat(&file, "", CWD, target, AtFlags::EMPTY_PATH) {
            Ok(()) => return Ok(()),
            // Refused (or `target`'s folder is gone: then /proc answers the same).
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {}
            Err(errno) => return Err(Unnamed::Failed(errno.into())),
        }
        let linked = link_by_proc(&file, target);
        if linked.is_ok() {
            BY_DESCRIPTOR_REFUSED.store(true, Ordering::Relaxed);
        }
        return linked;
    }
    link_by_proc(&file, target)
}

/// Set once linking an unnamed file by its descriptor was refused where /proc was not.
static BY_DESCRIPTOR_REFUSED: AtomicBool = AtomicBool::new(false);

fn link_by_proc(file: &File, target: &Path) -> Result<(), Unnamed> {
    use rustix::fs::AtFlags;
    use std::os::fd::AsRawFd;
    let by_proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, by_proc.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").exists() => {
            Err(Unnamed::Unsupported(rustix::io::Errno::NOENT.into()))
        }
        Err(errno) => Err(Unnamed::Failed(errno.into())),
    }
}

fn write_maybe_crashing(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    if test_hooks::crash_armed("during-report-write") {
        file.write_all(&bytes[..bytes.len() / 2])?;
        test_hooks::crash_point("during-report-write");
    }
    file.write_all(bytes)
}

/// Prefix and suffix of every temporary file this program makes; at start, whatever carries
/// both was left by a crash.
pub const TEMP_PREFIX: &str = ".fp-";
pub const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is one of this program's temporary files.
pub fn is_temp_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.starts_with(TEMP_PREFIX.as_bytes()) && bytes.ends_with(TEMP_SUFFIX.as_bytes())
}

/// Between a cluster node's name and the rest of its temp files' names (`.fp-NODE~XXXX.tmp`);
/// node names never hold it, nor do tempfile's random parts.
const TEMP_NODE_END: char = '~';

/// In cluster mode, every temp file of this process carries its node's name, so that a node
/// removes only its own leftovers and a dead node's.
static TEMP_PREFIX_OF_NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Tags this process's temp files with `node` (once, at start, in cluster mode).
pub fn tag_temp_files(node: &str) {
    let _ = TEMP_PREFIX_OF_NODE.set(format!("{TEMP_PREFIX}{node}{TEMP_NODE_END}"));
}

/// The node a temp file belongs to, when its name says (`None`: a single daemon's).
pub fn temp_owner(name: &OsStr) -> Option<&str> {
    let rest = name.to_str()?.strip_prefix(TEMP_PREFIX)?;
    let (node, _) = rest.split_once(TEMP_NODE_END)?;
    (!node.is_empty()).then_some(node)
}

/// Temp files start with a dot and end in `.tmp`: the watcher ignores both. They are created
/// with the mode of any new file (0666 less the umask), not tempfile's 0600, as they become
/// the user's files and reports.
pub fn temp_in(dir: &Path) -> io::Result<NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(
            TEMP_PREFIX_OF_NODE
                .get()
                .map_or(TEMP_PREFIX, String::as_str),
        )
        .suffix(TEMP_SUFFIX)
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

fn copy_to_temp(from: &Path, to_dir: &Path) -> io::Result<NamedTempFile> {
    let mut temp = temp_in(to_dir)?;
    let mut source = File::open(from)?;
    io::copy(&mut source, temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // The filesystem does not know RENAME_NOREPLACE: a hard link never replaces either.
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(errno) => Err(errno.into()),
    }
}

pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The file at `path`, by device and inode (a rename keeps them), if there is one: a file
/// known again after it moved, and told from another that took its name.
pub fn file_key(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Makes a rename durable. A failure here loses nothing already done, so it is only logged.
pub fn sync_dir(dir: &Path) {
    if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
        log::debug!("cannot sync folder {}: {err}", dir.display());
    }
}

fn sync_parent(path: &Path) {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// A name is safe to keep as a single path component: it is what `file_name()` returned.
pub fn file_name_of(path: &Path) -> Option<&OsStr> {
    path.file_name().filter(|name| !name.as_bytes().is_empty())
}

/// `name` is one path component: joined to a folder it names an entry of that folder and
/// nothing else. Every name read back from the folders (reports) is checked with this before
/// it is used as a path.
pub fn is_single_component(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes != b"."
        && bytes != b".."
        && !bytes.contains(&b'/')
        && !bytes.contains(&0)
}

/// `dir/name` when `name` is one path component, else `None`.
pub fn entry_of(dir: &Path, name: &OsStr) -> Option<PathBuf> {
    is_single_component(name).then(|| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        let table = [
            ("data.csv", 1, "data.csv"),
            ("data.csv", 2, "data-2.csv"),
            ("archive.tar.gz", 3, "archive.tar-3.gz"),
            ("README", 2, "README-2"),
            (".hidden", 2, ".hidden-2"),
        ];
        for (name, attempt, want) in table {
            assert_eq!(
                derived_name(OsStr::new(name), attempt),
                OsString::from(want)
            );
        }
    }

    #[test]
    fn long_names_are_shortened_to_fit_with_their_report() {
        let long = format!("{}.csv", "é".repeat(200));
        for attempt in [1, 2, 17] {
            let name = fitting_name(OsStr::new(&long), attempt, ".report.json".len());
            assert!(name.len() + ".report.json".len() <= NAME_MAX, "{name:?}");
            let text = name.to_str().expect("still UTF-8");
            assert!(text.ends_with(".csv"), "{text}");
            assert!(text.contains(&format!("-{}.", attempt.max(2))), "{text}");
        }
        let short = fitting_name(OsStr::new("data.csv"), 3, 12);
        assert_eq!(short, OsString::from("data-3.csv"));
        let no_ext = "x".repeat(255);
        let name = fitting_name(OsStr::new(&no_ext), 1, 12);
        assert_eq!(name.len(), 243);
    }

    #[test]
    fn moves_never_replace_and_respect_the_companion() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        fs::create_dir_all(&src).expect("mkdir");
        fs::create_dir_all(&dst).expect("mkdir");
        fs::write(dst.join("a.txt"), "old").expect("write");
        fs::write(dst.join("a-2.txt.report.json"), "{}").expect("write");
        fs::write(src.join("a.txt"), "new").expect("write");

        let moved = move_into(
            &src.join("a.txt"),
            &dst,
            OsStr::new("a.txt"),
            Some(".report.json"),
            false,
        )
        .expect("move");
        assert_eq!(moved, dst.join("a-3.txt"));
        assert_eq!(fs::read_to_string(dst.join("a.txt")).expect("read"), "old");
        assert_eq!(fs::read_to_string(&moved).expect("read"), "new");
        assert!(!src.join("a.txt").exists());
    }

    #[test]
    fn published_files_appear_whole_and_never_replace() {
        let dir = tempfile::tempdir().expect("temp dir");
        publish_new_file(dir.path(), OsStr::new("r.json"), b"first", false).expect("publish");
        let again = publish_new_file(dir.path(), OsStr::new("r.json"), b"second", true);
        assert_eq!(
            again.map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("r.json")).expect("read"),
            "first"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("r.json")]);
    }

    /// The way taken where linking by descriptor is refused (kernels before 6.10, without
    /// a privilege): through /proc, never replacing.
    #[test]
    fn unnamed_files_are_linked_through_proc_too() {
        use rustix::fs::{Mode, OFlags};
        let dir = tempfile::tempdir().expect("temp dir");
        let unnamed = |bytes: &[u8]| {
            let fd = rustix::fs::openat(
                CWD,
                dir.path(),
                OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .expect("unnamed file");
            let mut file = File::from(fd);
            file.write_all(bytes).expect("written");
            file
        };
        let target = dir.path().join("r.json");
        assert!(link_by_proc(&unnamed(b"first"), &target).is_ok());
        let again = link_by_proc(&unnamed(b"second"), &target);
        assert!(
            matches!(again, Err(Unnamed::Failed(e)) if e.kind() == io::ErrorKind::AlreadyExists)
        );
        assert_eq!(fs::read_to_string(&target).expect("read"), "first");
    }
}
